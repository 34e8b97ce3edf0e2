//! Input from a viewer, on its way into a desktop.
//!
//! Events use Linux's evdev numbering for keys (what helix's browser
//! protocol carries and what QEMU and guests understand) and positions
//! normalised to the scanout, so no part needs to know the viewer's window.
//!
//! Design map:
//! - [`InputEvent`] / [`Button`]: one user action.
//! - [`InputSink`]: where a viewer's events go (a synthetic desktop, QEMU).
//! - [`held`]: what one viewer holds down, to let go when it vanishes.

#![forbid(unsafe_code)]

use std::sync::Mutex;

pub mod held;

pub use held::Held;

/// A mouse button, numbered like evdev's `BTN_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Button {
    Left,
    Right,
    Middle,
    Side,
    Extra,
}

impl Button {
    /// From helix's browser numbering: 1 left, 2 middle, 3 right, 4 side, 5 extra.
    pub fn from_browser(n: u8) -> Option<Self> {
        Some(match n {
            1 => Button::Left,
            2 => Button::Middle,
            3 => Button::Right,
            4 => Button::Side,
            5 => Button::Extra,
            _ => return None,
        })
    }

    /// The evdev code (`BTN_LEFT` = 0x110 ...).
    pub fn evdev_code(self) -> u16 {
        match self {
            Button::Left => 0x110,
            Button::Right => 0x111,
            Button::Middle => 0x112,
            Button::Side => 0x113,
            Button::Extra => 0x114,
        }
    }
}

/// One input event for one scanout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputEvent {
    /// A key, by Linux evdev code (`KEY_A` = 30, `KEY_ENTER` = 28).
    Key {
        code: u16,
        down: bool,
    },
    Button {
        button: Button,
        down: bool,
    },
    /// Absolute pointer position, 0.0..=1.0 across the scanout.
    MoveAbs {
        x: f32,
        y: f32,
    },
    /// Relative pointer motion in scanout pixels.
    MoveRel {
        dx: i32,
        dy: i32,
    },
    /// Wheel motion in detents; positive `dy` scrolls down.
    Wheel {
        dx: f32,
        dy: f32,
    },
}

/// Highest evdev key code (`KEY_MAX`).
pub const KEY_MAX: u16 = 0x2FF;

/// Where input goes. Implementations must not block for long: they are
/// called from the network edge.
pub trait InputSink: Send + Sync {
    fn send(&self, scanout: u32, event: InputEvent);
}

/// A sink that keeps what it gets, for tests and for sources that read it
/// when they are woken.
#[derive(Default)]
pub struct InputLog {
    events: Mutex<Vec<(u32, InputEvent)>>,
    /// Called after each event is logged, so the reader can sleep until input comes.
    on_event: Mutex<Option<Notify>>,
}

/// What [`InputLog`] calls when an event arrives.
type Notify = Box<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for InputLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputLog")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl InputLog {
    /// Removes and returns the events received so far.
    pub fn take(&self) -> Vec<(u32, InputEvent)> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Calls `notify` after every event from now on (replacing an earlier one).
    pub fn notify_with(&self, notify: impl Fn() + Send + Sync + 'static) {
        *self.on_event.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(notify));
    }
}

impl InputSink for InputLog {
    fn send(&self, scanout: u32, event: InputEvent) {
        // Bounded: a source that stopped polling must not grow memory forever.
        const MAX: usize = 4096;
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() < MAX {
            events.push((scanout, event));
        }
        drop(events);
        if let Some(notify) = &*self.on_event.lock().unwrap_or_else(|e| e.into_inner()) {
            notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_buttons_map_to_evdev() {
        assert_eq!(Button::from_browser(1).unwrap().evdev_code(), 0x110);
        assert_eq!(Button::from_browser(3).unwrap().evdev_code(), 0x111);
        assert_eq!(Button::from_browser(2).unwrap().evdev_code(), 0x112);
        assert_eq!(Button::from_browser(0), None);
        assert_eq!(Button::from_browser(9), None);
    }

    #[test]
    fn log_is_bounded_and_drains() {
        let log = InputLog::default();
        for _ in 0..5000 {
            log.send(
                0,
                InputEvent::Key {
                    code: 30,
                    down: true,
                },
            );
        }
        assert_eq!(log.take().len(), 4096);
        assert!(log.take().is_empty());
    }

    #[test]
    fn log_calls_its_notifier_per_event() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        let log = InputLog::default();
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        log.notify_with(move || {
            c.fetch_add(1, Ordering::Relaxed);
        });
        log.send(0, InputEvent::MoveAbs { x: 0.5, y: 0.5 });
        log.send(0, InputEvent::MoveAbs { x: 0.1, y: 0.5 });
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
}
