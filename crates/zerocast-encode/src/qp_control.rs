//! [`QpControl`]: quality-driven rate control with a bitrate ceiling, for a
//! desktop. Every picture is coded at the quality's QP while the stream stays
//! under the ceiling; only a stream that runs above it for a while (video,
//! a long scroll) gets coarser, and it comes back as soon as it is under again.
//!
//! Why not the encoder's constant bitrate: a desktop sends nothing while still
//! and bursts when something moves. A bitrate target spreads the same bits
//! over every picture whatever it shows, so a few typed characters get a fine
//! QP and a scroll is starved; a constant QP gives every picture the same
//! quality and the bits it needs, and the ceiling keeps a flood bounded.
//!
//! Sans I/O: the caller passes the time.

use std::time::Instant;

use crate::{EncoderSettings, RateControl};

/// H.264's coarsest QP.
pub const MAX_QP: u8 = 51;

/// How far above the ceiling the stream may run before the QP rises: the
/// bits of this many milliseconds at the ceiling. Half a second absorbs one large
/// picture (a keyframe, a window opening) without any change in quality.
pub(crate) const BURST_MS: u32 = 500;

/// The QP rises by this much per picture while over budget: fast enough to
/// catch a full-screen video within a few frames.
const RAISE_STEP: u8 = 2;

/// Chooses each picture's QP. See the module docs.
#[derive(Debug, Clone)]
pub struct QpControl {
    base: u8,
    qp: u8,
    ceiling_bps: f64,
    /// Bits sent above what the ceiling allowed since then (a leaky bucket
    /// draining at the ceiling's rate).
    level_bits: f64,
    last: Option<Instant>,
}

impl QpControl {
    /// Pictures at `base` (clamped to H.264's 0..=51) while the stream stays
    /// under `ceiling_bps`.
    pub fn new(base: u8, ceiling_bps: u32) -> Self {
        let base = base.min(MAX_QP);
        QpControl {
            base,
            qp: base,
            ceiling_bps: f64::from(ceiling_bps.max(1)),
            level_bits: 0.0,
            last: None,
        }
    }

    /// The controller for `settings`' quality and ceiling.
    pub fn for_settings(settings: &EncoderSettings) -> Self {
        let qp = match settings.rate_control {
            RateControl::Quality { qp, .. } => qp,
            // Unused: the encoder's own rate control picks the QP.
            RateControl::Bitrate => MAX_QP / 2,
        };
        QpControl::new(qp, settings.bitrate_bps)
    }

    /// The QP for the next picture.
    pub fn qp(&self) -> u8 {
        self.qp
    }

    /// A new quality or ceiling; what was sent still counts.
    pub fn reconfigure(&mut self, base: u8, ceiling_bps: u32) {
        self.base = base.min(MAX_QP);
        self.ceiling_bps = f64::from(ceiling_bps.max(1));
        // A stream still over budget keeps its coarser QP until it drains.
        self.qp = if self.level_bits < self.burst_bits() / 4.0 {
            self.base
        } else {
            self.qp.max(self.base)
        };
    }

    fn burst_bits(&self) -> f64 {
        f64::from(BURST_MS) / 1000.0 * self.ceiling_bps
    }

    /// Accounts a picture of `bytes` sent at `now`, and picks the QP of the
    /// next one.
    pub fn sent(&mut self, now: Instant, bytes: usize) {
        let drained = self.last.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64() * self.ceiling_bps
        });
        self.last = Some(now);
        let burst = self.burst_bits();
        let drained_level = self.level_bits - drained;
        if drained_level <= 0.0 {
            // The link had time to carry everything: a new burst starts at
            // full quality (the screen was still, or changes are small).
            self.qp = self.base;
        }
        // Capped, so that the memory of a flood is a second at most.
        self.level_bits = (drained_level.max(0.0) + bytes as f64 * 8.0).min(2.0 * burst);
        if self.level_bits > burst {
            self.qp = self.qp.saturating_add(RAISE_STEP).min(MAX_QP);
        } else if self.level_bits < burst / 4.0 && self.qp > self.base {
            self.qp -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Feeds `frames` pictures of `bytes` each at 60 fps from `t`; returns
    /// the time after the last.
    fn feed(c: &mut QpControl, t: Instant, frames: u32, bytes: usize) -> Instant {
        let mut now = t;
        for _ in 0..frames {
            c.sent(now, bytes);
            now += Duration::from_micros(16_667);
        }
        now
    }

    #[test]
    fn a_stream_under_the_ceiling_keeps_the_base_quality() {
        let mut c = QpControl::new(24, 8_000_000);
        // 4 Mbit/s at 60 fps, with a 200 kB keyframe among them.
        let t = feed(&mut c, Instant::now(), 1, 200_000);
        feed(&mut c, t, 600, 8_000);
        assert_eq!(c.qp(), 24);
    }

    #[test]
    fn a_flood_raises_the_qp_and_quiet_brings_it_back() {
        let mut c = QpControl::new(24, 8_000_000);
        // 24 Mbit/s: three times the ceiling.
        let t = feed(&mut c, Instant::now(), 120, 50_000);
        let raised = c.qp();
        assert!(raised > 30, "the QP rose to {raised}");
        // The screen goes still for a second, then a small change.
        let t = t + Duration::from_secs(1);
        let t = feed(&mut c, t, 8, 2_000);
        assert_eq!(c.qp(), 24, "back to the base quality after the flood");
        let _ = t;
    }

    #[test]
    fn the_qp_never_leaves_h264s_range() {
        let mut c = QpControl::new(200, 50_000);
        assert_eq!(c.qp(), MAX_QP);
        feed(&mut c, Instant::now(), 100, 1_000_000);
        assert_eq!(c.qp(), MAX_QP);
        c.reconfigure(10, 200_000_000);
        assert!(c.qp() <= MAX_QP);
    }

    #[test]
    fn reconfiguring_applies_the_new_base_at_once_when_under_the_ceiling() {
        let mut c = QpControl::new(30, 8_000_000);
        feed(&mut c, Instant::now(), 10, 1_000);
        c.reconfigure(20, 8_000_000);
        assert_eq!(c.qp(), 20);
        c.reconfigure(34, 8_000_000);
        assert_eq!(c.qp(), 34);
    }
}
