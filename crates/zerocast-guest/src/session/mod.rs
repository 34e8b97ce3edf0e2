//! `--session true`: the agent inside the guest's desktop session. It
//! connects to the host's session channel and carries out what viewers with
//! control ask: a screen mode ([`display`]), the clipboard ([`clipboard`])
//! and typed text ([`typing`]); the session's clipboard goes back to the
//! host whenever another program takes it. It exits when the host goes
//! (the session's start script starts it again).

mod clipboard;
mod display;
mod typing;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result};
use zerocast_session::message::{MAX_NOTE, VERSION};
use zerocast_session::{wire, AgentMessage, Decoder, HostMessage};

use crate::args::Args;
use crate::transport::{self, Writer};

use clipboard::Clipboard;
use typing::Typist;

pub fn run(args: &Args) -> Result<()> {
    let clipboard =
        Arc::new(Clipboard::connect().context("connecting to the X display ($DISPLAY)")?);
    let typist = Typist::connect().context("connecting to the X display ($DISPLAY) for XTest")?;
    let target = args.session_target();
    let (mut reader, writer) = transport::connect(&target, Instant::now() + args.timeout())?;
    println!("zerocast-guest: session agent connected to {target}");
    let writer = Arc::new(Mutex::new(writer));
    let display = std::env::var("DISPLAY").unwrap_or_default();
    send(
        &writer,
        &AgentMessage::Hello {
            version: VERSION,
            display,
        },
    )?;

    // X's events on their own thread: other programs taking the clipboard,
    // and requests for the text this agent holds.
    {
        let (clipboard, writer) = (clipboard.clone(), writer.clone());
        thread::spawn(move || {
            let result = clipboard.run(|text| send(&writer, &AgentMessage::Clipboard(text)));
            if let Err(e) = result {
                eprintln!("zerocast-guest: session clipboard stopped: {e:#}");
            }
        });
    }

    let mut decoder = Decoder::<HostMessage>::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).context("reading from the host")?;
        if n == 0 {
            println!("zerocast-guest: the host closed the session channel");
            return Ok(());
        }
        decoder.push(&buf[..n]);
        while let Some(msg) = decoder
            .next_message()
            .context("a bad message from the host")?
        {
            if let Some(answer) = carry_out(&clipboard, &typist, msg) {
                send(&writer, &answer)?;
            }
        }
    }
}

/// Does what the host asked; the answer to send, if any.
fn carry_out(clipboard: &Clipboard, typist: &Typist, msg: HostMessage) -> Option<AgentMessage> {
    let (what, result) = match msg {
        HostMessage::Resize { width, height } => match display::resize(width, height) {
            Ok(()) => return Some(AgentMessage::Mode { width, height }),
            Err(e) => (format!("resize to {width}x{height}"), Err(e)),
        },
        HostMessage::Clipboard(text) => ("taking the clipboard".into(), clipboard.set(text)),
        HostMessage::Type(text) => ("typing text".into(), typist.type_text(&text)),
    };
    let e = result.err()?;
    let mut why = format!("{what}: {e:#}");
    if why.len() > MAX_NOTE {
        let mut end = MAX_NOTE;
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        why.truncate(end);
    }
    eprintln!("zerocast-guest: {why}");
    Some(AgentMessage::Failed(why))
}

fn send(writer: &Mutex<Writer>, msg: &AgentMessage) -> Result<()> {
    let mut out = Vec::new();
    wire::encode(msg, &mut out);
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    w.write_all(&out).context("writing to the host")?;
    w.flush().context("writing to the host")
}
