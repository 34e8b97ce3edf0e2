//! Counters for the stats line: frames, keyframes and bytes so far; frame
//! rate, median request-to-answer time and guest CPU per frame over the
//! frames since the last line.
//!
//! CPU is the whole process's (all threads, user + system, from
//! getrusage): in the baseline that is capture, conversion and x264; in
//! zero-copy mode it is polling, requests and receiving.

use std::time::{Duration, Instant};

/// Totals and the current reporting interval.
#[derive(Debug)]
pub struct Stats {
    every: u64,
    frames: u64,
    keyframes: u64,
    bytes: u64,
    started: (Instant, Duration),
    interval: (Instant, Duration),
    interval_frames: u64,
    latencies: Vec<Duration>,
}

impl Stats {
    /// A line every `every` frames (0 = none), counting from `now` and
    /// process CPU time `cpu`.
    pub fn new(every: u64, now: Instant, cpu: Duration) -> Self {
        Stats {
            every,
            frames: 0,
            keyframes: 0,
            bytes: 0,
            started: (now, cpu),
            interval: (now, cpu),
            interval_frames: 0,
            latencies: Vec::new(),
        }
    }

    /// Counts one access unit; `latency` is from request (or capture) to answer.
    pub fn record(&mut self, bytes: usize, keyframe: bool, latency: Duration) {
        self.frames += 1;
        self.keyframes += u64::from(keyframe);
        self.bytes += bytes as u64;
        self.interval_frames += 1;
        self.latencies.push(latency);
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The stats line if one is due after the last frame, and starts a new
    /// interval.
    pub fn report(&mut self, now: Instant, cpu: Duration) -> Option<String> {
        if self.every == 0 || self.frames == 0 || self.frames % self.every != 0 {
            return None;
        }
        let (since, cpu_since) = self.interval;
        let n = self.interval_frames.max(1);
        let line = format!(
            "zerocast-guest: frames={} keyframes={} bytes={} fps={:.1} req_to_resp_p50_ms={:.2} cpu_ms_per_frame={:.2}",
            self.frames,
            self.keyframes,
            self.bytes,
            self.interval_frames as f64 / secs(now.duration_since(since)),
            millis(median(&mut self.latencies)),
            millis(cpu.saturating_sub(cpu_since)) / n as f64,
        );
        self.interval = (now, cpu);
        self.interval_frames = 0;
        self.latencies.clear();
        Some(line)
    }

    /// The closing line, over the whole run.
    pub fn summary(&self, now: Instant, cpu: Duration) -> String {
        let (start, cpu_start) = self.started;
        let elapsed = secs(now.duration_since(start));
        format!(
            "zerocast-guest: done frames={} keyframes={} bytes={} in {:.2} s fps={:.1} cpu_ms_per_frame={:.2}",
            self.frames,
            self.keyframes,
            self.bytes,
            elapsed,
            self.frames as f64 / elapsed,
            millis(cpu.saturating_sub(cpu_start)) / self.frames.max(1) as f64,
        )
    }
}

/// This process's CPU time so far, all threads, user + system.
pub fn process_cpu() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, exclusively borrowed rusage for the kernel
    // to fill; RUSAGE_SELF cannot fail with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// A `timeval` as a duration; negative fields (never seen from
/// getrusage) count as zero.
fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

/// The median (lower middle for an even count); zero for none.
fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&mut [3 * MS, MS, 2 * MS]), 2 * MS);
        assert_eq!(median(&mut [4 * MS, MS, 3 * MS, 2 * MS]), 2 * MS);
        assert_eq!(median(&mut []), Duration::ZERO);
    }

    #[test]
    fn reports_every_n_frames_over_the_interval() {
        let t0 = Instant::now();
        let mut s = Stats::new(2, t0, Duration::ZERO);
        s.record(100, true, 10 * MS);
        assert_eq!(s.report(t0 + 50 * MS, 5 * MS), None);
        s.record(50, false, 30 * MS);
        // 2 frames in 100 ms, 20 ms of CPU.
        let line = s.report(t0 + 100 * MS, 20 * MS).unwrap();
        assert_eq!(
            line,
            "zerocast-guest: frames=2 keyframes=1 bytes=150 fps=20.0 req_to_resp_p50_ms=10.00 cpu_ms_per_frame=10.00"
        );
        s.record(10, false, 5 * MS);
        s.record(10, false, 7 * MS);
        // The next interval starts where the last line left off.
        let line = s.report(t0 + 300 * MS, 24 * MS).unwrap();
        assert!(
            line.contains("frames=4 keyframes=1 bytes=170 fps=10.0"),
            "{line}"
        );
        assert!(
            line.ends_with("req_to_resp_p50_ms=5.00 cpu_ms_per_frame=2.00"),
            "{line}"
        );
        assert_eq!(
            s.summary(t0 + 400 * MS, 24 * MS),
            "zerocast-guest: done frames=4 keyframes=1 bytes=170 in 0.40 s fps=10.0 cpu_ms_per_frame=6.00"
        );
    }

    #[test]
    fn no_lines_when_disabled() {
        let t0 = Instant::now();
        let mut s = Stats::new(0, t0, Duration::ZERO);
        s.record(1, false, MS);
        assert_eq!(s.report(t0 + MS, MS), None);
    }

    #[test]
    fn cpu_time_moves_forward() {
        let before = process_cpu();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = process_cpu();
        assert!(after >= before && after > Duration::ZERO);
    }
}
