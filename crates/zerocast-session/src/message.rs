//! The messages of the session channel. Each side checks what it receives:
//! the guest is not trusted by the host, and the agent only acts on what
//! fits its limits.

use crate::mode;

/// Largest clipboard text either way, in bytes of UTF-8.
pub const MAX_CLIPBOARD: usize = 256 * 1024;
/// Largest text typed in one message (an IME's composition, a dead key's
/// character): typing is slow, so this is kept short.
pub const MAX_TYPED: usize = 4096;
/// Largest error text or display name an agent sends.
pub const MAX_NOTE: usize = 1024;
/// The protocol version an agent announces in its hello.
pub const VERSION: u16 = 1;

/// From zerocast to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMessage {
    /// Make the screen this size (a mode within [`mode::MIN`]..=[`mode::MAX`]).
    Resize { width: u32, height: u32 },
    /// Put this text on the session's clipboard.
    Clipboard(String),
    /// Type this text as if a keyboard produced it.
    Type(String),
}

/// From the agent to zerocast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentMessage {
    /// First message: the agent's protocol version and its display (`:0`).
    Hello { version: u16, display: String },
    /// The session's clipboard changed to this text (another program owns it now).
    Clipboard(String),
    /// The screen is now this size (after a resize, or changed in the guest).
    Mode { width: u32, height: u32 },
    /// A request could not be carried out, and why.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("unknown message kind {0:#04x}")]
    UnknownKind(u8),
    #[error("message kind {kind:#04x} needs {need} bytes, got {got}")]
    Length { kind: u8, need: usize, got: usize },
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("mode {width}x{height} is outside {}x{}..={}x{}", mode::MIN.0, mode::MIN.1, mode::MAX.0, mode::MAX.1)]
    Mode { width: u32, height: u32 },
}

/// A message kind's byte on the wire.
mod kind {
    pub const RESIZE: u8 = 0x01;
    pub const CLIPBOARD: u8 = 0x02;
    pub const TYPE: u8 = 0x03;
    pub const HELLO: u8 = 0x81;
    pub const AGENT_CLIPBOARD: u8 = 0x82;
    pub const MODE: u8 = 0x83;
    pub const FAILED: u8 = 0x84;
}

/// A message that has a wire form: a kind byte and a payload.
pub trait Message: Sized {
    /// Appends the kind byte and the payload.
    fn put(&self, out: &mut Vec<u8>);
    /// Parses and checks one payload of `kind`.
    fn parse(kind: u8, payload: &[u8]) -> Result<Self, MessageError>;
}

impl HostMessage {
    /// Whether it is within the limits (the sender's check; [`Message::parse`]
    /// makes the same one on the other side).
    pub fn check(&self) -> Result<(), MessageError> {
        match self {
            HostMessage::Resize { width, height } => check_mode(*width, *height),
            HostMessage::Clipboard(t) => check_len("clipboard text", t.len(), MAX_CLIPBOARD),
            HostMessage::Type(t) => check_len("typed text", t.len(), MAX_TYPED),
        }
    }
}

impl Message for HostMessage {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            HostMessage::Resize { width, height } => put_mode(out, kind::RESIZE, *width, *height),
            HostMessage::Clipboard(t) => put_text(out, kind::CLIPBOARD, t),
            HostMessage::Type(t) => put_text(out, kind::TYPE, t),
        }
    }

    fn parse(k: u8, payload: &[u8]) -> Result<Self, MessageError> {
        let msg = match k {
            kind::RESIZE => {
                let (width, height) = parse_mode(k, payload)?;
                HostMessage::Resize { width, height }
            }
            kind::CLIPBOARD => HostMessage::Clipboard(text("clipboard text", payload)?),
            kind::TYPE => HostMessage::Type(text("typed text", payload)?),
            other => return Err(MessageError::UnknownKind(other)),
        };
        msg.check()?;
        Ok(msg)
    }
}

impl AgentMessage {
    pub fn check(&self) -> Result<(), MessageError> {
        match self {
            AgentMessage::Hello { display, .. } => {
                check_len("display name", display.len(), MAX_NOTE)
            }
            AgentMessage::Clipboard(t) => check_len("clipboard text", t.len(), MAX_CLIPBOARD),
            AgentMessage::Mode { width, height } => check_mode(*width, *height),
            AgentMessage::Failed(t) => check_len("failure text", t.len(), MAX_NOTE),
        }
    }
}

impl Message for AgentMessage {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            AgentMessage::Hello { version, display } => {
                out.push(kind::HELLO);
                out.extend_from_slice(&version.to_be_bytes());
                out.extend_from_slice(display.as_bytes());
            }
            AgentMessage::Clipboard(t) => put_text(out, kind::AGENT_CLIPBOARD, t),
            AgentMessage::Mode { width, height } => put_mode(out, kind::MODE, *width, *height),
            AgentMessage::Failed(t) => put_text(out, kind::FAILED, t),
        }
    }

    fn parse(k: u8, payload: &[u8]) -> Result<Self, MessageError> {
        let msg = match k {
            kind::HELLO => {
                let (version, display) = split_at_checked(k, payload, 2)?;
                AgentMessage::Hello {
                    version: u16::from_be_bytes([version[0], version[1]]),
                    display: text("display name", display)?,
                }
            }
            kind::AGENT_CLIPBOARD => AgentMessage::Clipboard(text("clipboard text", payload)?),
            kind::MODE => {
                let (width, height) = parse_mode(k, payload)?;
                AgentMessage::Mode { width, height }
            }
            kind::FAILED => AgentMessage::Failed(text("failure text", payload)?),
            other => return Err(MessageError::UnknownKind(other)),
        };
        msg.check()?;
        Ok(msg)
    }
}

/// The largest payload any message has (clipboard text), with its kind byte.
pub const MAX_MESSAGE: usize = 1 + MAX_CLIPBOARD;

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), MessageError> {
    if len > max {
        return Err(MessageError::TooLong { what, len, max });
    }
    Ok(())
}

fn check_mode(width: u32, height: u32) -> Result<(), MessageError> {
    let ok = (mode::MIN.0..=mode::MAX.0).contains(&width)
        && (mode::MIN.1..=mode::MAX.1).contains(&height);
    if !ok {
        return Err(MessageError::Mode { width, height });
    }
    Ok(())
}

fn put_text(out: &mut Vec<u8>, k: u8, t: &str) {
    out.push(k);
    out.extend_from_slice(t.as_bytes());
}

fn put_mode(out: &mut Vec<u8>, k: u8, width: u32, height: u32) {
    out.push(k);
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
}

fn text(what: &'static str, payload: &[u8]) -> Result<String, MessageError> {
    String::from_utf8(payload.to_vec()).map_err(|_| MessageError::NotUtf8(what))
}

fn split_at_checked(k: u8, payload: &[u8], at: usize) -> Result<(&[u8], &[u8]), MessageError> {
    payload.split_at_checked(at).ok_or(MessageError::Length {
        kind: k,
        need: at,
        got: payload.len(),
    })
}

fn parse_mode(k: u8, payload: &[u8]) -> Result<(u32, u32), MessageError> {
    let fields: &[u8; 8] = payload.try_into().map_err(|_| MessageError::Length {
        kind: k,
        need: 8,
        got: payload.len(),
    })?;
    let [w0, w1, w2, w3, h0, h1, h2, h3] = *fields;
    Ok((
        u32::from_be_bytes([w0, w1, w2, w3]),
        u32::from_be_bytes([h0, h1, h2, h3]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<M: Message + std::fmt::Debug + PartialEq>(msg: M) {
        let mut out = Vec::new();
        msg.put(&mut out);
        assert_eq!(M::parse(out[0], &out[1..]).unwrap(), msg);
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(HostMessage::Resize {
            width: 1920,
            height: 1080,
        });
        round_trip(HostMessage::Clipboard("héllo\nwörld".into()));
        round_trip(HostMessage::Type("é".into()));
        round_trip(AgentMessage::Hello {
            version: VERSION,
            display: ":0".into(),
        });
        round_trip(AgentMessage::Clipboard(String::new()));
        round_trip(AgentMessage::Mode {
            width: 640,
            height: 480,
        });
        round_trip(AgentMessage::Failed("xrandr: no output".into()));
    }

    #[test]
    fn bad_payloads_are_refused() {
        assert_eq!(
            HostMessage::parse(kind::CLIPBOARD, &[0xff, 0xfe]),
            Err(MessageError::NotUtf8("clipboard text"))
        );
        assert!(matches!(
            HostMessage::parse(kind::TYPE, &vec![b'a'; MAX_TYPED + 1]),
            Err(MessageError::TooLong { .. })
        ));
        assert!(matches!(
            HostMessage::parse(kind::RESIZE, &[0; 7]),
            Err(MessageError::Length {
                need: 8,
                got: 7,
                ..
            })
        ));
        let mut huge = Vec::new();
        HostMessage::Resize {
            width: 100_000,
            height: 1080,
        }
        .put(&mut huge);
        assert_eq!(
            HostMessage::parse(huge[0], &huge[1..]),
            Err(MessageError::Mode {
                width: 100_000,
                height: 1080
            })
        );
        assert_eq!(
            AgentMessage::parse(0x02, b"x"),
            Err(MessageError::UnknownKind(0x02))
        );
        assert!(matches!(
            AgentMessage::parse(kind::HELLO, &[1]),
            Err(MessageError::Length { .. })
        ));
    }
}
