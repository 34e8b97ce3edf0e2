//! The fuzz target's checks (feature `fuzzing`, not API), shared by `fuzz/`
//! and the corpus replay test: any bytes a viewer sends, as a binary and as
//! a text message, must parse without panicking, and whatever is accepted
//! must hold the values the input sinks and `/api/stats` rely on.

use zerocast_input::{InputEvent, KEY_MAX};

use crate::protocol::{parse_client, parse_text, ClientMessage, TextMessage, ViewerReport};

/// Parses `data` as the gateway would if it came as a binary message and,
/// when it is UTF-8, as a text message; panics on any accepted message that
/// breaks an invariant.
pub fn check_message(data: &[u8]) {
    if let Ok(msg) = parse_client(data) {
        check_client(&msg);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(TextMessage::Stats(report)) = parse_text(text) {
            check_report(&report);
        }
    }
}

fn check_client(msg: &ClientMessage) {
    let event = match msg {
        ClientMessage::Input(event) => event,
        ClientMessage::Clipboard(t) => return assert!(t.len() <= zerocast_session::MAX_CLIPBOARD),
        ClientMessage::Text(t) => return assert!(t.len() <= zerocast_session::MAX_TYPED),
        ClientMessage::Resize { width, height } => {
            return assert!(*width <= 0xffff && *height <= 0xffff)
        }
        ClientMessage::Ping { .. } | ClientMessage::Ignored => return,
    };
    match *event {
        InputEvent::Key { code, .. } => {
            assert!((1..=KEY_MAX).contains(&code), "key code {code}")
        }
        InputEvent::MoveAbs { x, y } => {
            let unit = 0.0..=1.0;
            assert!(unit.contains(&x) && unit.contains(&y), "position {x}, {y}");
        }
        InputEvent::MoveRel { dx, dy } => {
            let i16_range = i32::from(i16::MIN)..=i32::from(i16::MAX);
            assert!(i16_range.contains(&dx) && i16_range.contains(&dy));
        }
        // Wheels come as floats clamped to 100 detents, or as an i8 each.
        InputEvent::Wheel { dx, dy } => {
            let detents = -128.0..=128.0;
            assert!(
                detents.contains(&dx) && detents.contains(&dy),
                "wheel {dx}, {dy}"
            );
        }
        InputEvent::Button { .. } => {}
    }
}

/// A report goes out again in `/api/stats`: it must be finite and read back
/// the same.
fn check_report(report: &ViewerReport) {
    let floats = [
        report.fps,
        report.latency_p50_ms,
        report.latency_p95_ms,
        report.bitrate_bps,
    ];
    assert!(floats.iter().all(|v| v.is_finite()), "{report:?}");
    let json = serde_json::to_value(report).expect("a report serializes");
    let again: ViewerReport = serde_json::from_value(json.clone()).expect("and reads back");
    assert_eq!(serde_json::to_value(&again).expect("again"), json);
}
