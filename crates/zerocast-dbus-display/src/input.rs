//! Viewers' input to the console's `Keyboard` and `Mouse` (ui/dbus-console.c).
//! Keys go as QEMU's key "numbers" (qnum: XT scancode set 1, with the 0xE0
//! prefix folded into bit 7), which QEMU turns back into Linux codes with
//! `qemu_input_key_number_to_linux`.

use std::sync::Arc;

use tokio::sync::mpsc;
use zerocast_input::{Button, InputEvent, InputSink};

use crate::source::Shared;

/// Events waiting for QEMU; past this the newest are dropped.
const QUEUE: usize = 256;

/// Linux evdev code → qnum, from keycodemapdb's keymaps.csv ("Linux
/// Keycode" and "XT KBD" columns) for the keys a browser sends. Codes
/// 1..=83 are the same in both sets.
const EXTENDED: &[(u16, u32)] = &[
    (86, 0x56),  // KEY_102ND
    (87, 0x57),  // KEY_F11
    (88, 0x58),  // KEY_F12
    (96, 0x9c),  // KEY_KPENTER
    (97, 0x9d),  // KEY_RIGHTCTRL
    (98, 0xb5),  // KEY_KPSLASH
    (99, 0xb7),  // KEY_SYSRQ
    (100, 0xb8), // KEY_RIGHTALT
    (102, 0xc7), // KEY_HOME
    (103, 0xc8), // KEY_UP
    (104, 0xc9), // KEY_PAGEUP
    (105, 0xcb), // KEY_LEFT
    (106, 0xcd), // KEY_RIGHT
    (107, 0xcf), // KEY_END
    (108, 0xd0), // KEY_DOWN
    (109, 0xd1), // KEY_PAGEDOWN
    (110, 0xd2), // KEY_INSERT
    (111, 0xd3), // KEY_DELETE
    (113, 0xa0), // KEY_MUTE
    (114, 0xae), // KEY_VOLUMEDOWN
    (115, 0xb0), // KEY_VOLUMEUP
    (119, 0xc6), // KEY_PAUSE
    (125, 0xdb), // KEY_LEFTMETA
    (126, 0xdc), // KEY_RIGHTMETA
    (127, 0xdd), // KEY_COMPOSE
];

/// The qnum of evdev key `code`, if the console's keyboard has it.
pub fn qnum(code: u16) -> Option<u32> {
    match code {
        1..=83 => Some(u32::from(code)),
        _ => EXTENDED.iter().find(|(c, _)| *c == code).map(|(_, q)| *q),
    }
}

/// The D-Bus display's button number (dbus-display1.xml's "Button values").
fn button(b: Button) -> u32 {
    match b {
        Button::Left => 0,
        Button::Middle => 1,
        Button::Right => 2,
        Button::Side => 5,
        Button::Extra => 6,
    }
}

const WHEEL_UP: u32 = 3;
const WHEEL_DOWN: u32 = 4;

/// One D-Bus call.
#[derive(Debug, PartialEq)]
enum Call {
    Key(&'static str, u32),
    Mouse(&'static str, u32),
    Abs(u32, u32),
    Rel(i32, i32),
}

fn press(down: bool) -> &'static str {
    if down {
        "Press"
    } else {
        "Release"
    }
}

/// The calls for `event` on a `size` picture.
fn calls(event: InputEvent, size: Option<(u32, u32)>) -> Vec<Call> {
    match event {
        InputEvent::Key { code, down } => qnum(code)
            .map(|q| Call::Key(press(down), q))
            .into_iter()
            .collect(),
        InputEvent::Button { button: b, down } => vec![Call::Mouse(press(down), button(b))],
        InputEvent::MoveAbs { x, y } => {
            // QEMU refuses a position outside the console (x < width).
            let Some((w, h)) = size else {
                return Vec::new();
            };
            // Clamped to 0..=1 first, so the product fits in 0..=n.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let at = |f: f32, n: u32| ((f.clamp(0.0, 1.0) * n as f32) as u32).min(n - 1);
            vec![Call::Abs(at(x, w), at(y, h))]
        }
        InputEvent::MoveRel { dx, dy } => vec![Call::Rel(dx, dy)],
        InputEvent::Wheel { dy, .. } if dy != 0.0 => {
            let b = if dy > 0.0 { WHEEL_DOWN } else { WHEEL_UP };
            vec![Call::Mouse("Press", b), Call::Mouse("Release", b)]
        }
        InputEvent::Wheel { .. } => Vec::new(),
    }
}

/// Input into the console, queued to a task that makes the calls in order.
pub struct DbusInput {
    queue: mpsc::Sender<InputEvent>,
}

impl DbusInput {
    pub(crate) fn start(
        keyboard: zbus::Proxy<'static>,
        mouse: zbus::Proxy<'static>,
        shared: Arc<Shared>,
    ) -> DbusInput {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(keyboard, mouse, rx, shared));
        DbusInput { queue }
    }
}

async fn deliver(
    keyboard: zbus::Proxy<'static>,
    mouse: zbus::Proxy<'static>,
    mut rx: mpsc::Receiver<InputEvent>,
    shared: Arc<Shared>,
) {
    while let Some(event) = rx.recv().await {
        for call in calls(event, shared.size()) {
            let done: zbus::Result<()> = match call {
                Call::Key(method, q) => keyboard.call(method, &(q,)).await,
                Call::Mouse(method, b) => mouse.call(method, &(b,)).await,
                Call::Abs(x, y) => mouse.call("SetAbsPosition", &(x, y)).await,
                Call::Rel(dx, dy) => mouse.call("RelMotion", &(dx, dy)).await,
            };
            // A refused call (a relative mouse asked for a position) costs
            // that event only.
            if let Err(e) = done {
                tracing::debug!(?event, "QEMU refused input: {e}");
            }
        }
    }
}

impl InputSink for DbusInput {
    fn send(&self, _scanout: u32, event: InputEvent) {
        if self.queue.try_send(event).is_err() {
            tracing::debug!(?event, "input queue to QEMU full; dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_qnum() {
        assert_eq!(qnum(30), Some(30)); // KEY_A
        assert_eq!(qnum(103), Some(0xc8)); // KEY_UP: 0xE0 0x48
        assert_eq!(qnum(0x110), None); // BTN_LEFT is not a key here
        let mut codes: Vec<u16> = EXTENDED.iter().map(|(c, _)| *c).collect();
        codes.dedup();
        assert_eq!(codes.len(), EXTENDED.len());
    }

    #[test]
    fn pointer_positions_stay_inside_the_console() {
        assert_eq!(
            calls(InputEvent::MoveAbs { x: 1.0, y: 0.5 }, Some((640, 480))),
            vec![Call::Abs(639, 240)]
        );
        assert!(calls(InputEvent::MoveAbs { x: 0.5, y: 0.5 }, None).is_empty());
        assert_eq!(
            calls(InputEvent::Wheel { dx: 0.0, dy: 1.0 }, None),
            vec![
                Call::Mouse("Press", WHEEL_DOWN),
                Call::Mouse("Release", WHEEL_DOWN)
            ]
        );
    }
}
