//! Counters and timing samples a pipeline keeps for the viewer and the benchmark.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The most recent samples are kept; older ones fall off.
const WINDOW: usize = 1024;

/// Running timing samples with percentiles.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    recent: VecDeque<u32>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent
            .push_back(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    /// The `p`-th percentile (0..=100) in microseconds, if there are samples.
    pub fn percentile_us(&self, p: f64) -> Option<u32> {
        percentile(self.recent.iter().copied().collect(), p)
    }

    pub fn len(&self) -> usize {
        self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }
}

/// Nearest-rank percentile of `values` (sorted here).
pub fn percentile(mut values: Vec<u32>, p: f64) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = nearest_rank(p, values.len());
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// `ceil(p% of n)`, for `p` in 0..=100.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn nearest_rank(p: f64, n: usize) -> usize {
    // Sample windows are far below 2^52, so `n` is exact as f64; the
    // product is clamped into 0..=n before it is cast back.
    (p.clamp(0.0, 100.0) / 100.0 * n as f64)
        .ceil()
        .clamp(0.0, n as f64) as usize
}

/// What a scanout pipeline has done so far.
#[derive(Debug, Default, Clone)]
pub struct PipelineStats {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub encode_errors: u64,
    /// Still pictures refined (counted in `frames` too).
    pub refinements: u64,
    /// Source frames seen while nobody watched (not encoded).
    pub unwatched: u64,
    /// Frames subscribers lost by falling behind.
    pub lagged: u64,
    /// Wall time to convert and encode one frame.
    pub encode: Samples,
    /// Thread CPU time to convert and encode one frame.
    pub encode_cpu: Samples,
    /// The size of the last frame published.
    pub size: Option<(u32, u32)>,
    /// When the frames of the last second were published.
    pub recent: RecentFrames,
}

/// The frames published in the last second, for a frame rate: at most
/// [`RecentFrames::MAX`] instants, kept in one buffer reused frame after frame.
#[derive(Debug, Default, Clone)]
pub struct RecentFrames(VecDeque<Instant>);

impl RecentFrames {
    pub const MAX: usize = 256;

    pub fn push(&mut self, now: Instant) {
        self.forget_before(now);
        if self.0.len() == Self::MAX {
            self.0.pop_front();
        }
        self.0.push_back(now);
    }

    /// Frames published in the second before `now`.
    pub fn per_second(&mut self, now: Instant) -> usize {
        self.forget_before(now);
        self.0.len()
    }

    fn forget_before(&mut self, now: Instant) {
        let cutoff = now.checked_sub(Duration::from_secs(1));
        while let (Some(&t), Some(cutoff)) = (self.0.front(), cutoff) {
            if t > cutoff {
                break;
            }
            self.0.pop_front();
        }
    }
}

/// CPU time this thread has used so far.
pub fn thread_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time all of this process's threads have used so far: what an
/// encoder with worker threads (x264's slices) costs, when measured around
/// its calls while nothing else in the process runs.
pub fn process_cpu_time() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec, and both CPU-time clocks
    // passed here are supported on every Linux this runs on; on failure
    // `ts` stays zero.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec.clamp(0, 999_999_999)).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(v.clone(), 50.0), Some(50));
        assert_eq!(percentile(v.clone(), 99.0), Some(99));
        assert_eq!(percentile(v, 100.0), Some(100));
        assert_eq!(percentile(vec![], 50.0), None);
        let mut s = Samples::default();
        for ms in 0..2000u64 {
            s.push(Duration::from_micros(ms));
        }
        assert_eq!(s.len(), WINDOW);
        assert_eq!(s.percentile_us(0.0), Some(2000 - 1024));
    }

    #[test]
    fn recent_frames_count_the_last_second_only() {
        let mut r = RecentFrames::default();
        let t0 = Instant::now();
        for i in 0..300u64 {
            r.push(t0 + Duration::from_millis(i * 10));
        }
        // 3 s of frames every 10 ms: the last second's 100 remain.
        assert_eq!(r.per_second(t0 + Duration::from_millis(2_990)), 100);
        assert_eq!(r.per_second(t0 + Duration::from_secs(10)), 0);
    }

    #[test]
    fn thread_cpu_time_moves_forward() {
        let a = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() > a);
    }
}
