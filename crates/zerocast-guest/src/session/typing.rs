//! Typing text no key of the session's keymap makes (an IME's é, a €):
//! each character's keysym is put on a spare keycode, and XTest presses it.
//! X clients fetch a changed keymap only after their MappingNotify, so the
//! keys wait until they had time to (`xdotool type` does not, and its
//! first character was seen lost).

use std::thread;
use std::time::Duration;

use anyhow::{bail, Result};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, Keycode, Keysym, KEY_PRESS_EVENT, KEY_RELEASE_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{CURRENT_TIME, NONE};

/// Time for clients to take a keymap change before and after the keys.
const SETTLE: Duration = Duration::from_millis(60);

pub struct Typist {
    conn: RustConnection,
    root: u32,
}

impl Typist {
    /// Connects to `$DISPLAY`; the server needs XTest.
    pub fn connect() -> Result<Typist> {
        let (conn, screen) = RustConnection::connect(None)?;
        let root = conn.setup().roots[screen].root;
        conn.xtest_get_version(2, 2)?.reply()?;
        Ok(Typist { conn, root })
    }

    /// Types `text` into the focused window.
    pub fn type_text(&self, text: &str) -> Result<()> {
        let setup = self.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let map = self
            .conn
            .get_keyboard_mapping(min, max - min + 1)?
            .reply()?;
        let per = usize::from(map.keysyms_per_keycode);
        // Keycodes with no keysym at all: free for a while.
        let spare: Vec<Keycode> = map
            .keysyms
            .chunks(per.max(1))
            .zip(min..=max)
            .filter(|(syms, _)| syms.iter().all(|&s| s == NONE))
            .map(|(_, code)| code)
            .collect();
        if spare.is_empty() {
            bail!("the keymap has no spare keycode to type with");
        }
        let chars: Vec<char> = text.chars().collect();
        for batch in chars.chunks(spare.len()) {
            for (&code, &ch) in spare.iter().zip(batch) {
                // Every column: the character whatever modifiers are down.
                let syms = vec![keysym(ch); per];
                self.conn
                    .change_keyboard_mapping(1, code, map.keysyms_per_keycode, &syms)?;
            }
            self.conn.sync()?;
            thread::sleep(SETTLE);
            for &code in spare.iter().take(batch.len()) {
                for kind in [KEY_PRESS_EVENT, KEY_RELEASE_EVENT] {
                    self.conn
                        .xtest_fake_input(kind, code, CURRENT_TIME, self.root, 0, 0, 0)?;
                }
            }
            self.conn.sync()?;
            thread::sleep(SETTLE);
            for &code in spare.iter().take(batch.len()) {
                let none = vec![NONE; per];
                self.conn
                    .change_keyboard_mapping(1, code, map.keysyms_per_keycode, &none)?;
            }
            self.conn.sync()?;
        }
        Ok(())
    }
}

/// X's keysym for `ch`: Latin-1 as it is, the rest of Unicode at
/// 0x0100_0000 + its code point.
fn keysym(ch: char) -> Keysym {
    let c = u32::from(ch);
    if (0x20..=0x7e).contains(&c) || (0xa0..=0xff).contains(&c) {
        c
    } else {
        0x0100_0000 + c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keysyms_of_latin1_and_beyond() {
        assert_eq!(keysym('a'), 0x61);
        assert_eq!(keysym('é'), 0xe9);
        assert_eq!(keysym('€'), 0x0100_20ac);
        assert_eq!(keysym('😀'), 0x0101_f600);
    }
}
