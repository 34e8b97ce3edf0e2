//! [`FramePacer`]: frames at most at a frame rate, on average, so that a
//! source faster than the stream (a guest flipping as fast as it can) is
//! captured at exactly the rate and a viewer that decodes the rate keeps
//! up, while a source paced at the rate, with jitter, has each of its frames
//! taken at once or a little later.
//!
//! The generic cell rate algorithm: each frame taken moves the time the
//! next is due one frame on (from now, if that is later), and a frame may
//! be taken a quarter of a frame before it is due. So frames are never less
//! than three quarters of a frame apart, and after a pause they do not come
//! in a burst to catch up.

use std::time::{Duration, Instant};

/// When the next frame may be taken, at one frame rate.
#[derive(Debug, Clone)]
pub struct FramePacer {
    interval: Duration,
    /// When the next frame is due if frames ran exactly at the rate.
    due: Option<Instant>,
}

impl FramePacer {
    /// Frames `interval` apart on average.
    pub fn new(interval: Duration) -> Self {
        FramePacer {
            interval,
            due: None,
        }
    }

    /// One frame of a stream of `fps` frames per second (at least 1).
    pub fn interval_at(fps: f32) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(fps.max(1.0)))
    }

    /// The earliest a frame may be taken (`now` for the first).
    pub fn slot(&self, now: Instant) -> Instant {
        self.due
            .map_or(now, |due| due.checked_sub(self.interval / 4).unwrap_or(due))
    }

    /// A frame was taken at `now`.
    pub fn took(&mut self, now: Instant) {
        self.due = Some(self.due.map_or(now, |due| due.max(now)) + self.interval);
    }

    /// A new frame rate: the last frame taken takes the new length.
    pub fn set_interval(&mut self, interval: Duration) {
        self.due = self
            .due
            .and_then(|due| due.checked_sub(self.interval))
            .map(|start| start + interval);
        self.interval = interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Frames taken from a source with a new frame every millisecond.
    fn taken_from_a_fast_source(p: &mut FramePacer, t0: Instant, ms: u32) -> usize {
        let mut taken = 0;
        for t in 0..ms {
            let now = t0 + t * MS;
            if now >= p.slot(now) {
                p.took(now);
                taken += 1;
            }
        }
        taken
    }

    #[test]
    fn a_frame_lasts_one_over_the_frame_rate() {
        assert_eq!(FramePacer::interval_at(50.0), 20 * MS);
        assert_eq!(FramePacer::interval_at(0.0), Duration::from_secs(1));
    }

    #[test]
    fn a_fast_source_is_taken_at_the_frame_rate() {
        let t0 = Instant::now();
        let mut p = FramePacer::new(16 * MS);
        // In 1.6 s: the first at once, then one every 16 ms from 12 ms on,
        // where frames 12 ms apart would make 134.
        assert_eq!(taken_from_a_fast_source(&mut p, t0, 1600), 101);
    }

    #[test]
    fn the_first_frame_goes_at_once_and_the_next_three_quarters_of_a_frame_later() {
        let t0 = Instant::now();
        let mut p = FramePacer::new(16 * MS);
        assert_eq!(p.slot(t0), t0);
        p.took(t0);
        assert_eq!(p.slot(t0 + MS), t0 + 12 * MS);
    }

    #[test]
    fn after_a_pause_frames_do_not_burst() {
        let t0 = Instant::now();
        let mut p = FramePacer::new(16 * MS);
        p.took(t0);
        let later = t0 + 1000 * MS;
        assert!(p.slot(later) <= later);
        p.took(later);
        assert_eq!(p.slot(later), later + 12 * MS);
    }

    #[test]
    fn a_source_paced_at_the_rate_with_jitter_loses_no_frame() {
        let t0 = Instant::now();
        let mut p = FramePacer::new(FramePacer::interval_at(60.0));
        // Frames every 16 ms, each up to 3 ms early or late: each is taken
        // (at once, or when its slot opens) before the next one comes.
        let arrivals: Vec<Duration> = [3i64, -3, 2, -2, 0, 3, -3, 1, 3, -3]
            .iter()
            .zip(1..)
            .map(|(j, n)| MS * u32::try_from(16 * n + j).unwrap())
            .collect();
        for (i, at) in arrivals.iter().enumerate() {
            let now = t0 + *at;
            let slot = p.slot(now).max(now);
            if let Some(next) = arrivals.get(i + 1) {
                assert!(slot < t0 + *next, "frame {i} would be replaced first");
            }
            p.took(slot);
        }
    }

    #[test]
    fn a_new_rate_applies_from_the_last_frame() {
        let t0 = Instant::now();
        let mut p = FramePacer::new(16 * MS);
        p.took(t0);
        p.set_interval(100 * MS);
        assert_eq!(p.slot(t0 + 20 * MS), t0 + 75 * MS);
    }
}
