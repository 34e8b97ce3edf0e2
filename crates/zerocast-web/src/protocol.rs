//! helix's browser stream protocol (helix `api/pkg/desktop/ws_stream.go`).
//! Byte 0 is the message type; multi-byte fields are big-endian except the
//! wheel's floats, which are little-endian (as helix's client sends them).
//! The full layout is in `docs/browser-protocol.md`. Text messages are
//! JSON: `{"type":"init"}` and `{"type":"stats",...}` ([`ViewerReport`]).
//! Cursor messages (0x50, 0x51) and the session's (0x60 clipboard, 0x61
//! text, 0x62 resize) are zerocast's extension: helix's client ignores
//! types it does not know.

use serde::{Deserialize, Serialize};
use zerocast_frame::{CursorImage, CursorUpdate};
use zerocast_input::{Button, InputEvent, KEY_MAX};
use zerocast_pipeline::Layout;
use zerocast_session::{MAX_CLIPBOARD, MAX_TYPED};

pub const VIDEO_FRAME: u8 = 0x01;
/// zerocast's extension, for viewers that connect with `stripes=1`: the
/// video frame header, then stripe records (`zerocast_encode::stripes`).
pub const VIDEO_STRIPES: u8 = 0x02;
pub const KEYBOARD: u8 = 0x10;
pub const MOUSE_CLICK: u8 = 0x11;
pub const MOUSE_ABSOLUTE: u8 = 0x12;
pub const MOUSE_RELATIVE: u8 = 0x13;
pub const CONTROL: u8 = 0x20;
pub const STREAM_INIT: u8 = 0x30;
pub const PING: u8 = 0x40;
pub const PONG: u8 = 0x41;
pub const CURSOR_IMAGE: u8 = 0x50;
pub const CURSOR_POSITION: u8 = 0x51;
pub const CLIPBOARD: u8 = 0x60;
pub const TEXT: u8 = 0x61;
pub const RESIZE: u8 = 0x62;

/// Length of a cursor image message's header before the pixels.
pub const CURSOR_IMAGE_HEADER_LEN: usize = 9;
/// Length of a cursor position message.
pub const CURSOR_POSITION_LEN: usize = 10;

/// Codec byte for H.264 (helix's `0x01`).
pub const CODEC_H264: u8 = 0x01;
/// Length of a video frame's header before the access unit.
pub const VIDEO_HEADER_LEN: usize = 15;
const FLAG_KEYFRAME: u8 = 0x01;

/// A message from a viewer.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Ping {
        seq: u32,
        client_time: u64,
    },
    Input(InputEvent),
    /// For the guest session's clipboard (the viewer pasted).
    Clipboard(String),
    /// Text to type that no key produces (an IME's composition).
    Text(String),
    /// The viewer's picture area in device pixels: the mode it would like.
    Resize {
        width: u32,
        height: u32,
    },
    /// Messages helix's client sends that carry nothing for us (control, pong).
    Ignored,
}

/// Why a viewer's message was refused; becomes the WebSocket close reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty message")]
    Empty,
    #[error("message type {kind:#04x} needs {need} bytes, got {got}")]
    Length { kind: u8, need: usize, got: usize },
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("bad value in message {kind:#04x}: {what}")]
    Value { kind: u8, what: &'static str },
    #[error("bad text message: {0}")]
    Text(String),
}

/// What a viewer page reports about itself once a second.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ViewerReport {
    #[serde(default)]
    pub decoded: u64,
    #[serde(default)]
    pub keyframes: u64,
    #[serde(default)]
    pub dropped: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub fps: f64,
    #[serde(default)]
    pub latency_p50_ms: f64,
    #[serde(default)]
    pub latency_p95_ms: f64,
    #[serde(default)]
    pub bitrate_bps: f64,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

/// A JSON text message from a viewer.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TextMessage {
    /// The viewer's decoder is (re)starting: it needs a keyframe.
    Init,
    Stats(ViewerReport),
}

/// Parses one text message from a viewer.
pub fn parse_text(t: &str) -> Result<TextMessage, ProtocolError> {
    serde_json::from_str(t).map_err(|e| ProtocolError::Text(e.to_string()))
}

/// 0x30: (re)starts the viewer's decoder. 13 bytes.
pub fn stream_init(width: u32, height: u32, fps: u32) -> [u8; 13] {
    let mut b = [0u8; 13];
    b[0] = STREAM_INIT;
    b[1] = CODEC_H264;
    b[2..4].copy_from_slice(&clamp_u16(width).to_be_bytes());
    b[4..6].copy_from_slice(&clamp_u16(height).to_be_bytes());
    b[6] = u8::try_from(fps).unwrap_or(u8::MAX);
    b[12] = 1; // touch supported, as helix sends it
    b
}

/// 0x01: header of a video frame; the Annex B access unit follows it.
pub fn video_frame_header(
    layout: Layout,
    keyframe: bool,
    pts_us: u64,
    width: u32,
    height: u32,
) -> [u8; VIDEO_HEADER_LEN] {
    let mut b = [0u8; VIDEO_HEADER_LEN];
    b[0] = match layout {
        Layout::Whole => VIDEO_FRAME,
        Layout::Stripes => VIDEO_STRIPES,
    };
    b[1] = CODEC_H264;
    b[2] = if keyframe { FLAG_KEYFRAME } else { 0 };
    b[3..11].copy_from_slice(&pts_us.to_be_bytes());
    b[11..13].copy_from_slice(&clamp_u16(width).to_be_bytes());
    b[13..15].copy_from_slice(&clamp_u16(height).to_be_bytes());
    b
}

/// 0x41: answer to a ping, 29 bytes: echoes, server time (µs since the Unix
/// epoch, for the viewer's clock offset) and the encoder's latency.
pub fn pong(seq: u32, client_time: u64, server_time_us: u64, encode_ms: u16) -> [u8; 29] {
    let mut b = [0u8; 29];
    b[0] = PONG;
    b[1..5].copy_from_slice(&seq.to_be_bytes());
    b[5..13].copy_from_slice(&client_time.to_be_bytes());
    b[13..21].copy_from_slice(&server_time_us.to_be_bytes());
    b[21..23].copy_from_slice(&encode_ms.to_be_bytes());
    b
}

/// 0x50: a new cursor image: hotspot, size, then straight-alpha RGBA rows.
pub fn cursor_image(image: &CursorImage) -> Vec<u8> {
    let (hot_x, hot_y) = image.hotspot();
    let mut b = Vec::with_capacity(CURSOR_IMAGE_HEADER_LEN + image.rgba().len());
    b.push(CURSOR_IMAGE);
    for v in [hot_x, hot_y, image.width(), image.height()] {
        // A cursor image is at most 128x128: every value fits.
        b.extend_from_slice(&clamp_u16(v).to_be_bytes());
    }
    b.extend_from_slice(image.rgba());
    b
}

/// 0x51: whether the guest shows a hardware cursor and where its hotspot
/// is, in picture pixels.
pub fn cursor_position(visible: bool, x: i32, y: i32) -> [u8; CURSOR_POSITION_LEN] {
    let mut b = [0u8; CURSOR_POSITION_LEN];
    b[0] = CURSOR_POSITION;
    b[1] = u8::from(visible);
    b[2..6].copy_from_slice(&x.to_be_bytes());
    b[6..10].copy_from_slice(&y.to_be_bytes());
    b
}

/// A cursor message as a viewer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorMessage {
    Image(CursorImage),
    Position { visible: bool, x: i32, y: i32 },
}

/// Parses a cursor message (what a viewer receives), every length checked.
pub fn parse_cursor(b: &[u8]) -> Result<CursorMessage, ProtocolError> {
    let kind = *b.first().ok_or(ProtocolError::Empty)?;
    let be32 = |at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    match kind {
        CURSOR_IMAGE => {
            need(b, CURSOR_IMAGE_HEADER_LEN)?;
            let [hot_x, hot_y, width, height] = [1, 3, 5, 7].map(|at| u32::from(be16(b, at)));
            let pixels = b[CURSOR_IMAGE_HEADER_LEN..].to_vec();
            CursorImage::new(width, height, (hot_x, hot_y), pixels)
                .map(CursorMessage::Image)
                .map_err(|_| ProtocolError::Value {
                    kind,
                    what: "cursor size, hotspot or pixel count",
                })
        }
        CURSOR_POSITION => {
            need(b, CURSOR_POSITION_LEN)?;
            Ok(CursorMessage::Position {
                visible: b[1] != 0,
                x: be32(2),
                y: be32(6),
            })
        }
        other => Err(ProtocolError::UnknownType(other)),
    }
}

/// A cursor update as a browser message (0x50 or 0x51).
pub fn cursor_message(update: &CursorUpdate) -> Vec<u8> {
    match update {
        CursorUpdate::Image(image) => cursor_image(image),
        CursorUpdate::Position { visible, x, y } => cursor_position(*visible, *x, *y).to_vec(),
    }
}

fn clamp_u16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

fn need(b: &[u8], n: usize) -> Result<(), ProtocolError> {
    if b.len() < n {
        return Err(ProtocolError::Length {
            kind: b[0],
            need: n,
            got: b.len(),
        });
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn le_f32(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses one binary message from a viewer.
pub fn parse_client(b: &[u8]) -> Result<ClientMessage, ProtocolError> {
    let kind = *b.first().ok_or(ProtocolError::Empty)?;
    let bad = |what| ProtocolError::Value { kind, what };
    Ok(match kind {
        PING => {
            need(b, 13)?;
            ClientMessage::Ping {
                seq: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
                client_time: u64::from_be_bytes(b[5..13].try_into().map_err(|_| bad("time"))?),
            }
        }
        KEYBOARD => {
            need(b, 6)?;
            if b[1] != 0 {
                // Keysym sub-types: helix's own WebSocket client never sends them.
                return Err(bad("only evdev key codes (sub-type 0) are supported"));
            }
            let code = be16(b, 4);
            if code == 0 || code > KEY_MAX {
                return Err(bad("key code outside evdev's range"));
            }
            ClientMessage::Input(InputEvent::Key {
                code,
                down: b[2] != 0,
            })
        }
        MOUSE_CLICK => {
            need(b, 2)?;
            match b[1] {
                2 => {
                    need(b, 4)?;
                    let button = Button::from_browser(b[3]).ok_or(bad("button must be 1..=5"))?;
                    ClientMessage::Input(InputEvent::Button {
                        button,
                        down: b[2] != 0,
                    })
                }
                3 => {
                    need(b, 10)?;
                    let (dx, dy) = (le_f32(b, 2), le_f32(b, 6));
                    if !dx.is_finite() || !dy.is_finite() {
                        return Err(bad("wheel delta is not a number"));
                    }
                    // Browsers report about 100 pixels per wheel detent.
                    let notch = |v: f32| (v / 100.0).clamp(-100.0, 100.0);
                    ClientMessage::Input(InputEvent::Wheel {
                        dx: notch(dx),
                        dy: notch(dy),
                    })
                }
                4 => {
                    need(b, 4)?;
                    ClientMessage::Input(InputEvent::Wheel {
                        dx: f32::from(i8::from_be_bytes([b[2]])),
                        dy: f32::from(i8::from_be_bytes([b[3]])),
                    })
                }
                _ => return Err(bad("unknown mouse sub-type")),
            }
        }
        MOUSE_ABSOLUTE => {
            need(b, 10)?;
            let (x, y) = (be_i16(b, 2), be_i16(b, 4));
            let (rw, rh) = (be_i16(b, 6), be_i16(b, 8));
            if rw <= 0 || rh <= 0 {
                return Err(bad("reference size must be positive"));
            }
            let norm = |v: i16, r: i16| (f32::from(v) / f32::from(r)).clamp(0.0, 1.0);
            ClientMessage::Input(InputEvent::MoveAbs {
                x: norm(x, rw),
                y: norm(y, rh),
            })
        }
        MOUSE_RELATIVE => {
            need(b, 6)?;
            ClientMessage::Input(InputEvent::MoveRel {
                dx: i32::from(be_i16(b, 2)),
                dy: i32::from(be_i16(b, 4)),
            })
        }
        CLIPBOARD => ClientMessage::Clipboard(session_text(b, MAX_CLIPBOARD)?),
        TEXT => ClientMessage::Text(session_text(b, MAX_TYPED)?),
        RESIZE => {
            need(b, 5)?;
            ClientMessage::Resize {
                width: u32::from(be16(b, 1)),
                height: u32::from(be16(b, 3)),
            }
        }
        CONTROL | PONG => ClientMessage::Ignored,
        other => return Err(ProtocolError::UnknownType(other)),
    })
}

/// 0x60 and 0x61's UTF-8 text, within `max` bytes.
fn session_text(b: &[u8], max: usize) -> Result<String, ProtocolError> {
    let kind = b[0];
    let text = &b[1..];
    if text.len() > max {
        return Err(ProtocolError::Value {
            kind,
            what: "text longer than the session takes",
        });
    }
    String::from_utf8(text.to_vec()).map_err(|_| ProtocolError::Value {
        kind,
        what: "text is not UTF-8",
    })
}

/// 0x60 to a viewer: the guest's clipboard changed to `text`.
pub fn clipboard(text: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + text.len());
    b.push(CLIPBOARD);
    b.extend_from_slice(text.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_messages_are_checked() {
        assert_eq!(
            parse_client(&[RESIZE, 0x07, 0x80, 0x04, 0x38]),
            Ok(ClientMessage::Resize {
                width: 1920,
                height: 1080
            })
        );
        assert!(matches!(
            parse_client(&[RESIZE, 1, 2]),
            Err(ProtocolError::Length { .. })
        ));
        assert_eq!(
            parse_client(&clipboard("grüß")),
            Ok(ClientMessage::Clipboard("grüß".into()))
        );
        assert!(matches!(
            parse_client(&[CLIPBOARD, 0xc3]),
            Err(ProtocolError::Value { .. })
        ));
        let mut long = vec![TEXT];
        long.extend(std::iter::repeat_n(b'a', MAX_TYPED + 1));
        assert!(matches!(
            parse_client(&long),
            Err(ProtocolError::Value { .. })
        ));
        assert_eq!(
            parse_client(&[TEXT]),
            Ok(ClientMessage::Text(String::new()))
        );
    }

    #[test]
    fn server_messages_have_helix_layout() {
        let init = stream_init(1920, 1080, 60);
        assert_eq!(init[..7], [0x30, 0x01, 0x07, 0x80, 0x04, 0x38, 60]);
        assert_eq!(init.len(), 13);
        let v = video_frame_header(Layout::Whole, true, 0x0102030405060708, 1280, 800);
        assert_eq!(
            v,
            [0x01, 0x01, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x05, 0x00, 0x03, 0x20]
        );
        assert_eq!(video_frame_header(Layout::Whole, false, 0, 0, 0)[2], 0);
        // The striped frame's header differs in its type only.
        let s = video_frame_header(Layout::Stripes, true, 0x0102030405060708, 1280, 800);
        assert_eq!((s[0], &s[1..]), (VIDEO_STRIPES, &v[1..]));
        let p = pong(7, 9, 11, 3);
        assert_eq!(p[0], 0x41);
        assert_eq!(p[1..5], [0, 0, 0, 7]);
        assert_eq!(p[12], 9);
        assert_eq!(p[20], 11);
        assert_eq!(p[22], 3);
    }

    fn image(serial: u64, x: i32, y: i32) -> zerocast_frame::Cursor {
        let rgba = (0..=255u8).cycle().take(64 * 64 * 4).collect();
        let image = CursorImage::new(64, 64, (3, 60), rgba).unwrap();
        zerocast_frame::Cursor {
            serial,
            x,
            y,
            image: Some(std::sync::Arc::new(image)),
        }
    }

    #[test]
    fn cursor_messages_round_trip_with_their_layout() {
        let cursor = image(1, 0, 0);
        let b = cursor_image(cursor.image.as_deref().unwrap());
        assert_eq!(b.len(), 9 + 64 * 64 * 4);
        assert_eq!(b[..9], [0x50, 0, 3, 0, 60, 0, 64, 0, 64]);
        assert_eq!(
            parse_cursor(&b),
            Ok(CursorMessage::Image(
                cursor.image.as_deref().unwrap().clone()
            ))
        );
        let p = cursor_position(true, -2, 800);
        assert_eq!(p, [0x51, 1, 0xFF, 0xFF, 0xFF, 0xFE, 0, 0, 3, 0x20]);
        assert_eq!(
            parse_cursor(&p),
            Ok(CursorMessage::Position {
                visible: true,
                x: -2,
                y: 800
            })
        );
    }

    #[test]
    fn bad_cursor_messages_are_refused() {
        assert_eq!(parse_cursor(&[]), Err(ProtocolError::Empty));
        assert!(matches!(
            parse_cursor(&[0x51, 1, 0, 0]),
            Err(ProtocolError::Length { need: 10, .. })
        ));
        assert!(matches!(
            parse_cursor(&[0x50, 0, 0]),
            Err(ProtocolError::Length { need: 9, .. })
        ));
        // Pixels missing, a hotspot outside, an empty image.
        let mut short = cursor_image(image(1, 0, 0).image.as_deref().unwrap());
        short.pop();
        let mut hot = cursor_image(image(1, 0, 0).image.as_deref().unwrap());
        hot[2] = 64;
        for bad in [short, hot, vec![0x50, 0, 0, 0, 0, 0, 0, 0, 0]] {
            assert!(matches!(
                parse_cursor(&bad),
                Err(ProtocolError::Value { kind: 0x50, .. })
            ));
        }
        assert_eq!(parse_cursor(&[0x01]), Err(ProtocolError::UnknownType(1)));
    }

    #[test]
    fn input_parses_like_helix_sends_it() {
        assert_eq!(
            parse_client(&[0x10, 0, 1, 0, 0, 30]),
            Ok(ClientMessage::Input(InputEvent::Key {
                code: 30,
                down: true
            }))
        );
        assert_eq!(
            parse_client(&[0x11, 2, 1, 3]),
            Ok(ClientMessage::Input(InputEvent::Button {
                button: Button::Right,
                down: true
            }))
        );
        let mut abs = vec![0x12, 1];
        for v in [2048i16, 1024, 4096, 4096] {
            abs.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(
            parse_client(&abs),
            Ok(ClientMessage::Input(InputEvent::MoveAbs {
                x: 0.5,
                y: 0.25
            }))
        );
        let mut wheel = vec![0x11, 3];
        wheel.extend_from_slice(&0f32.to_le_bytes());
        wheel.extend_from_slice(&200f32.to_le_bytes());
        assert_eq!(
            parse_client(&wheel),
            Ok(ClientMessage::Input(InputEvent::Wheel { dx: 0.0, dy: 2.0 }))
        );
        assert_eq!(
            parse_client(&[0x13, 0, 0xFF, 0xFF, 0, 5]),
            Ok(ClientMessage::Input(InputEvent::MoveRel { dx: -1, dy: 5 }))
        );
        let mut ping = vec![0x40, 0, 0, 0, 3];
        ping.extend_from_slice(&77u64.to_be_bytes());
        assert_eq!(
            parse_client(&ping),
            Ok(ClientMessage::Ping {
                seq: 3,
                client_time: 77
            })
        );
        assert_eq!(parse_client(b"\x20{}"), Ok(ClientMessage::Ignored));
    }

    #[test]
    fn hostile_input_is_refused_with_a_reason() {
        assert_eq!(parse_client(&[]), Err(ProtocolError::Empty));
        assert!(matches!(
            parse_client(&[0x10, 0, 1]),
            Err(ProtocolError::Length { need: 6, .. })
        ));
        assert!(matches!(
            parse_client(&[0x10, 0, 1, 0, 0xFF, 0xFF]),
            Err(ProtocolError::Value { .. })
        ));
        assert!(matches!(
            parse_client(&[0x10, 2, 1, 0, 0, 30]),
            Err(ProtocolError::Value { .. })
        ));
        assert!(matches!(
            parse_client(&[0x11, 2, 1, 9]),
            Err(ProtocolError::Value { .. })
        ));
        assert!(matches!(
            parse_client(&[0x11, 9]),
            Err(ProtocolError::Value { .. })
        ));
        let mut nan = vec![0x11, 3];
        nan.extend_from_slice(&f32::NAN.to_le_bytes());
        nan.extend_from_slice(&0f32.to_le_bytes());
        assert!(matches!(
            parse_client(&nan),
            Err(ProtocolError::Value { .. })
        ));
        assert!(matches!(
            parse_client(&[0x12, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::Value { .. })
        ));
        assert_eq!(parse_client(&[0x99]), Err(ProtocolError::UnknownType(0x99)));
        assert_eq!(
            parse_client(&[0x11, 4, 0xFF, 0x01]),
            Ok(ClientMessage::Input(InputEvent::Wheel {
                dx: -1.0,
                dy: 1.0
            }))
        );
    }

    #[test]
    fn text_messages_are_init_or_stats() {
        assert!(matches!(
            parse_text(r#"{"type":"init"}"#),
            Ok(TextMessage::Init)
        ));
        let Ok(TextMessage::Stats(r)) = parse_text(r#"{"type":"stats","fps":59.5,"width":1280}"#)
        else {
            panic!("stats refused");
        };
        assert_eq!((r.fps, r.width, r.decoded), (59.5, 1280, 0));
        for bad in [
            r#"{"type":"hello"}"#,
            "{}",
            "init",
            r#"{"type":"stats","fps":1e999}"#,
        ] {
            assert!(
                matches!(parse_text(bad), Err(ProtocolError::Text(_))),
                "{bad}"
            );
        }
    }
}
