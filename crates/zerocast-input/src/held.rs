//! [`Held`]: the keys and buttons one viewer holds down, so that they can
//! be let go in the desktop when the viewer vanishes mid-press (no stuck
//! Ctrl in the guest after a closed tab).

use std::collections::BTreeSet;

use crate::{Button, InputEvent};

/// Bounds what one viewer can make the host remember: every evdev key and
/// every button at once, no more.
#[derive(Debug, Default)]
pub struct Held {
    keys: BTreeSet<u16>,
    buttons: Vec<Button>,
}

impl Held {
    /// Notes what `event` presses or lets go.
    pub fn track(&mut self, event: &InputEvent) {
        match *event {
            InputEvent::Key { code, down: true } => {
                self.keys.insert(code);
            }
            InputEvent::Key { code, down: false } => {
                self.keys.remove(&code);
            }
            InputEvent::Button { button, down: true } => {
                if !self.buttons.contains(&button) {
                    self.buttons.push(button);
                }
            }
            InputEvent::Button {
                button,
                down: false,
            } => self.buttons.retain(|b| *b != button),
            InputEvent::MoveAbs { .. } | InputEvent::MoveRel { .. } | InputEvent::Wheel { .. } => {}
        }
    }

    /// The events that let go of everything still held, and forgets it.
    pub fn release_all(&mut self) -> Vec<InputEvent> {
        let keys = std::mem::take(&mut self.keys)
            .into_iter()
            .map(|code| InputEvent::Key { code, down: false });
        let buttons =
            std::mem::take(&mut self.buttons)
                .into_iter()
                .map(|button| InputEvent::Button {
                    button,
                    down: false,
                });
        keys.chain(buttons).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: u16, down: bool) -> InputEvent {
        InputEvent::Key { code, down }
    }

    #[test]
    fn what_is_still_down_is_let_go_once() {
        let mut h = Held::default();
        for e in [
            key(29, true), // Ctrl
            key(30, true),
            key(30, false),
            key(29, true), // repeat: still one Ctrl
            InputEvent::Button {
                button: Button::Left,
                down: true,
            },
            InputEvent::MoveAbs { x: 0.5, y: 0.5 },
        ] {
            h.track(&e);
        }
        assert_eq!(
            h.release_all(),
            vec![
                key(29, false),
                InputEvent::Button {
                    button: Button::Left,
                    down: false
                }
            ]
        );
        assert!(h.release_all().is_empty());
    }
}
