//! The session's clipboard (the X `CLIPBOARD` selection), through x11rb.
//! When the host sends a text, this agent takes the selection and serves
//! that text to programs that paste. When another program takes it
//! (XFixes tells), the agent asks for its text and hands it to the host.
//! Texts past [`MAX_CLIPBOARD`] are not read (nor X's INCR transfers that
//! large ones use).

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use x11rb::connection::Connection;
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, SelectionNotifyEvent,
    SelectionRequestEvent, Window, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{COPY_DEPTH_FROM_PARENT, CURRENT_TIME, NONE};
use zerocast_session::MAX_CLIPBOARD;

/// How long after another program took the clipboard its text is asked
/// for. Asking at once lost the first copy of a session in 3 runs of 3
/// (`xclip`, which exited 0; a few milliseconds of logging in between made
/// it work): the cause was not pinned down, this delay avoids it.
const ASK_AFTER: Duration = Duration::from_millis(50);
/// How often, and after how long, an empty text is asked for again.
const EMPTY_RETRIES: u32 = 5;
const EMPTY_RETRY_AFTER: Duration = Duration::from_millis(100);

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        CLIPBOARD,
        UTF8_STRING,
        TARGETS,
        TEXT,
        INCR,
        ZEROCAST_CLIPBOARD,
    }
}

pub struct Clipboard {
    conn: RustConnection,
    /// An unmapped window: owns the selection and receives its text.
    window: Window,
    atoms: Atoms,
    /// The text this agent serves while it owns the clipboard.
    held: Mutex<Option<String>>,
}

impl Clipboard {
    /// Connects to `$DISPLAY` (with `$XAUTHORITY`) and watches the clipboard.
    pub fn connect() -> Result<Clipboard> {
        let (conn, screen) = RustConnection::connect(None)?;
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id()?;
        conn.create_window(
            COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )?;
        let atoms = Atoms::new(&conn)?.reply()?;
        conn.xfixes_query_version(5, 0)?
            .reply()
            .context("the X server has no XFixes")?;
        conn.xfixes_select_selection_input(
            window,
            atoms.CLIPBOARD,
            SelectionEventMask::SET_SELECTION_OWNER,
        )?;
        conn.flush()?;
        Ok(Clipboard {
            conn,
            window,
            atoms,
            held: Mutex::new(None),
        })
    }

    /// Takes the clipboard with `text`.
    pub fn set(&self, text: String) -> Result<()> {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
        self.conn
            .set_selection_owner(self.window, self.atoms.CLIPBOARD, CURRENT_TIME)?;
        self.conn.flush()?;
        Ok(())
    }

    /// Handles X's events until the connection ends: `changed` gets each
    /// new clipboard text another program offers.
    pub fn run(&self, mut changed: impl FnMut(String) -> Result<()>) -> Result<()> {
        let a = &self.atoms;
        // Asks again for an owner's text that came empty: xclip was seen
        // to give an empty text when asked right after it took the
        // clipboard (it had its text a moment later).
        let mut retries = 0;
        loop {
            match self.conn.wait_for_event()? {
                Event::XfixesSelectionNotify(e) if e.owner != self.window && e.owner != NONE => {
                    retries = 0;
                    thread::sleep(ASK_AFTER);
                    self.ask(a.UTF8_STRING, e.selection_timestamp)?;
                }
                // An owner that has no UTF-8 (xclip's default is STRING) is
                // asked for Latin-1.
                Event::SelectionNotify(e) if e.property == NONE && e.target == a.UTF8_STRING => {
                    self.ask(AtomEnum::STRING.into(), e.time)?;
                }
                Event::SelectionNotify(e) if e.property == NONE => {
                    eprintln!("zerocast-guest: the clipboard's owner gave no text");
                }
                Event::SelectionNotify(e) if e.property != NONE => {
                    match self.read_text(e.property)? {
                        Some(text) if !text.is_empty() => changed(text)?,
                        // Empty for good (a click in a terminal selects
                        // nothing) after a few tries: no copy.
                        Some(_) if retries < EMPTY_RETRIES => {
                            retries += 1;
                            thread::sleep(EMPTY_RETRY_AFTER);
                            self.ask(e.target, e.time)?;
                        }
                        _ => {}
                    }
                }
                Event::SelectionRequest(req) => self.answer(&req)?,
                Event::SelectionClear(_) => {
                    *self.held.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                _ => {}
            }
        }
    }

    /// Asks the clipboard's owner for its text as `target`.
    fn ask(&self, target: Atom, time: u32) -> Result<()> {
        let a = &self.atoms;
        self.conn.convert_selection(
            self.window,
            a.CLIPBOARD,
            target,
            a.ZEROCAST_CLIPBOARD,
            time,
        )?;
        self.conn.flush()?;
        Ok(())
    }

    /// The text the owner put in `property` of our window (UTF-8, or
    /// Latin-1 for STRING), if it is small enough.
    fn read_text(&self, property: Atom) -> Result<Option<String>> {
        let longs = u32::try_from(MAX_CLIPBOARD / 4 + 1).unwrap_or(u32::MAX);
        let reply = self
            .conn
            .get_property(true, self.window, property, AtomEnum::ANY, 0, longs)?
            .reply()?;
        if reply.type_ == self.atoms.INCR
            || reply.bytes_after > 0
            || reply.value.len() > MAX_CLIPBOARD
        {
            eprintln!("zerocast-guest: clipboard text over {MAX_CLIPBOARD} bytes: not shared");
            return Ok(None);
        }
        if reply.type_ == Atom::from(AtomEnum::STRING) {
            return Ok(Some(reply.value.iter().map(|&b| char::from(b)).collect()));
        }
        Ok(String::from_utf8(reply.value).ok())
    }

    /// Serves our text to a program that pastes (ICCCM: the text in the
    /// property it names, then a SelectionNotify; property NONE refuses).
    fn answer(&self, req: &SelectionRequestEvent) -> Result<()> {
        let a = &self.atoms;
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Old clients name no property: the target is used as one.
        let property = if req.property == NONE {
            req.target
        } else {
            req.property
        };
        let served = match held {
            Some(_) if req.target == a.TARGETS => {
                let targets = [a.TARGETS, a.UTF8_STRING, a.TEXT, AtomEnum::STRING.into()];
                self.conn.change_property32(
                    PropMode::REPLACE,
                    req.requestor,
                    property,
                    AtomEnum::ATOM,
                    &targets,
                )?;
                true
            }
            Some(text) if req.target == a.UTF8_STRING || req.target == a.TEXT => {
                self.conn.change_property8(
                    PropMode::REPLACE,
                    req.requestor,
                    property,
                    a.UTF8_STRING,
                    text.as_bytes(),
                )?;
                true
            }
            Some(text) if req.target == Atom::from(AtomEnum::STRING) => {
                // STRING is Latin-1: what it cannot hold becomes '?'.
                let latin1: Vec<u8> = text
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                    .collect();
                self.conn.change_property8(
                    PropMode::REPLACE,
                    req.requestor,
                    property,
                    AtomEnum::STRING,
                    &latin1,
                )?;
                true
            }
            _ => false,
        };
        let notify = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: req.time,
            requestor: req.requestor,
            selection: req.selection,
            target: req.target,
            property: if served { property } else { NONE },
        };
        self.conn
            .send_event(false, req.requestor, EventMask::NO_EVENT, notify)?;
        self.conn.flush()?;
        Ok(())
    }
}
