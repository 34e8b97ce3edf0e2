//! When to capture: after a flip, or when a refresh is due.
//!
//! The agent cannot see another process's flips: DRM delivers a page-flip
//! event only to the file that asked for the flip, and virtio-gpu has no
//! vblank interrupt to wait on. So the agent polls which framebuffer the
//! CRTC shows (one cheap GETCRTC every `--poll-ms`) and captures when the
//! id changes. A program that draws into the buffer on screen without
//! flipping changes no id; `--refresh-ms` captures it now and then anyway.
//! Captures run at most at `--fps` ([`FramePacer`]): a guest flipping faster
//! is captured at that rate, its latest picture each time, so the stream
//! never outruns viewers that decode the frame rate.

use std::time::{Duration, Instant};

use zerocast_frame::FramePacer;

/// Remembers the framebuffer last seen and whether it changed since the
/// last capture.
#[derive(Debug)]
pub struct Watch {
    seen: Option<u32>,
    dirty: bool,
    last_capture: Option<Instant>,
    refresh: Option<Duration>,
    pacer: FramePacer,
}

impl Watch {
    /// `refresh`: capture at least this often even without a flip;
    /// `frame`: captures are this far apart on average, at least.
    pub fn new(refresh: Option<Duration>, frame: Duration) -> Self {
        Watch {
            seen: None,
            dirty: false,
            last_capture: None,
            refresh,
            pacer: FramePacer::new(frame),
        }
    }

    /// Records the framebuffer on screen now. A change marks a capture as
    /// due, and stays marked until [`Watch::captured`] even if the screen
    /// flips back meanwhile (new content in an old buffer).
    pub fn observe(&mut self, fb: u32) {
        if self.seen != Some(fb) {
            self.seen = Some(fb);
            self.dirty = true;
        }
    }

    /// Whether a capture is due at `now`: the first one, after a flip, or a
    /// refresh.
    pub fn due(&self, now: Instant) -> bool {
        if now < self.pacer.slot(now) {
            return false;
        }
        match (self.last_capture, self.refresh) {
            (None, _) => true,
            _ if self.dirty => true,
            (Some(last), Some(refresh)) => now.duration_since(last) >= refresh,
            (Some(_), None) => false,
        }
    }

    /// Records a capture made at `now`.
    pub fn captured(&mut self, now: Instant) {
        self.dirty = false;
        self.last_capture = Some(now);
        self.pacer.took(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    /// Frames of 16 ms: a capture may follow the one before after 12 ms.
    const FRAME: Duration = Duration::from_millis(16);

    #[test]
    fn captures_first_frame_then_only_flips() {
        let t0 = Instant::now();
        let mut w = Watch::new(None, FRAME);
        w.observe(10);
        assert!(w.due(t0));
        w.captured(t0);
        w.observe(10);
        assert!(
            !w.due(t0 + 500 * MS),
            "same buffer, no refresh: nothing to do"
        );
        w.observe(11);
        assert!(w.due(t0 + 501 * MS));
        w.captured(t0 + 501 * MS);
        assert!(!w.due(t0 + 502 * MS));
    }

    #[test]
    fn a_flip_seen_while_busy_is_not_lost() {
        let t0 = Instant::now();
        let mut w = Watch::new(None, FRAME);
        w.observe(1);
        w.captured(t0);
        // Flips 1 -> 2 -> 1 while no request could be sent.
        w.observe(2);
        w.observe(1);
        assert!(w.due(t0 + 12 * MS));
    }

    #[test]
    fn flips_faster_than_the_frame_rate_are_captured_at_the_frame_rate() {
        let t0 = Instant::now();
        let mut w = Watch::new(None, FRAME);
        w.observe(1);
        w.captured(t0);
        w.observe(2);
        assert!(!w.due(t0 + 11 * MS), "a capture 11 ms after the last");
        assert!(w.due(t0 + 12 * MS));
    }

    #[test]
    fn refresh_captures_a_static_screen() {
        let t0 = Instant::now();
        let mut w = Watch::new(Some(100 * MS), FRAME);
        w.observe(7);
        w.captured(t0);
        assert!(!w.due(t0 + 99 * MS));
        assert!(w.due(t0 + 100 * MS));
    }
}
