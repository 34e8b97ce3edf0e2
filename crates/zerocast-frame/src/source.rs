//! Where a scanout pipeline gets its pictures from, and the [`Doorbell`]
//! that wakes the pipeline when there is something to do.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use crate::{CursorSink, Damage, Frame};

/// What a source has for its pipeline right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEvent {
    /// New content is ready, captured at the given instant (the moment the
    /// picture was complete: a renderer's last write, a guest's RESOURCE_FLUSH).
    /// `damage` is what changed since the previous `Changed` (all changes
    /// in between coalesced); [`Damage::full`] when the source cannot tell.
    Changed {
        captured_at: Instant,
        damage: Damage,
    },
    /// New content that continues nothing shown before it (a guest that
    /// booted again, a display switched back on): the whole picture
    /// changed, and viewers start it at a keyframe rather than from
    /// pictures of a screen that is gone.
    Restarted { captured_at: Instant },
    /// Nothing new. A source driven by a timer says when to ask again; a
    /// source driven by damage says `None` and rings the doorbell instead.
    Idle { wake_at: Option<Instant> },
    /// The source is gone for good (the VM powered off).
    Closed,
}

/// A producer of pictures for one scanout, driven by damage: it reports
/// `Changed` only when there is something new to show, so a still screen
/// costs no encoding, and it rings its [`Doorbell`] instead of being polled,
/// so a still screen costs no wake-ups either.
pub trait FrameSource: Send {
    /// The doorbell to ring whenever [`FrameSource::poll`] may have news
    /// (new content, or closed). Called once, before the first poll.
    fn attach(&mut self, bell: Doorbell);

    /// Never blocks: what happened since the last call.
    fn poll(&mut self, now: Instant) -> SourceEvent;

    /// The latest picture, if the source has one yet. The borrow ends before
    /// the next [`FrameSource::poll`], so a source may reuse its buffers.
    fn frame(&self) -> Option<Frame<'_>>;

    /// One line for logs and the viewer, e.g. `synthetic desktop 1920x1080@60`.
    fn describe(&self) -> String;

    /// A source with a hardware cursor publishes it to `sink` (at once, then
    /// on every change, from the thread that changes it: not through the
    /// encoder thread, so a moving pointer never waits for a frame) and
    /// returns true. Called at most once, before the first poll. By default
    /// there is none: a picture that draws its own pointer needs none.
    fn attach_cursor(&mut self, sink: Arc<dyn CursorSink>) -> bool {
        let _ = sink;
        false
    }

    /// After [`SourceEvent::Closed`]: why, in words for viewers (the
    /// stream's end reason).
    fn closed_reason(&self) -> &'static str {
        "the source stopped"
    }
}

/// Wakes one sleeping thread: rung by whoever has news for it, waited on by
/// the thread. Rings are not counted: any number of rings before a wait wake
/// it once, so a burst of guest flushes costs one wake-up.
#[derive(Debug, Clone, Default)]
pub struct Doorbell(Arc<Bell>);

#[derive(Debug, Default)]
struct Bell {
    rung: Mutex<bool>,
    wake: Condvar,
}

impl Doorbell {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn ring(&self) {
        *self.0.rung.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.wake.notify_one();
    }

    /// Sleeps until the bell rings or `deadline` passes (`None`: no deadline).
    /// Returns true if it was rung; a ring that came before the call counts.
    pub fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut rung = self.0.rung.lock().unwrap_or_else(PoisonError::into_inner);
        while !*rung {
            match deadline {
                None => {
                    rung = self
                        .0
                        .wake
                        .wait(rung)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    rung = self
                        .0
                        .wake
                        .wait_timeout(rung, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        *rung = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ring_before_the_wait_counts_once() {
        let bell = Doorbell::new();
        bell.ring();
        bell.ring();
        assert!(bell.wait(None));
        assert!(!bell.wait(Some(Instant::now() + Duration::from_millis(5))));
    }

    #[test]
    fn a_ring_from_another_thread_wakes_a_wait_without_deadline() {
        let bell = Doorbell::new();
        let ringer = bell.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            ringer.ring();
        });
        assert!(bell.wait(None));
        t.join().unwrap();
    }

    #[test]
    fn a_past_deadline_returns_at_once() {
        let bell = Doorbell::new();
        assert!(!bell.wait(Some(Instant::now())));
    }
}
