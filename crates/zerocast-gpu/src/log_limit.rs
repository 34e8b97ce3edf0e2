//! [`LogLimiter`]: repeated log lines summarised. A guest that sends junk as
//! fast as it can must not fill the host's disk with one line per command:
//! the first of a burst is written, then at most one line per interval,
//! saying how many were left out since. Pure: the caller passes the time.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    /// When the last line was written.
    last: Option<Instant>,
    /// Events since then that were not written.
    left_out: u64,
}

impl LogLimiter {
    pub const fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last: None,
            left_out: 0,
        }
    }

    /// Notes one event at `now`. `Some(n)`: write a line for it now, saying
    /// that `n` events before it were left out; `None`: leave it out.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.left_out += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.left_out))
            }
        }
    }

    /// Events left out and not told yet, now told (for a last line when
    /// the source goes quiet for good).
    pub fn take_left_out(&mut self) -> u64 {
        std::mem::take(&mut self.left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_written_then_one_summary_per_interval() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut limiter = LogLimiter::new(Duration::from_secs(1));
        assert_eq!(limiter.note(at(0)), Some(0));
        // A flood: 1,000 events in the next second are only counted.
        for ms in 1..=999 {
            assert_eq!(limiter.note(at(ms)), None);
        }
        assert_eq!(limiter.note(at(999)), None);
        // The second is over: one line for 1,000 left out.
        assert_eq!(limiter.note(at(1000)), Some(1000));
        assert_eq!(limiter.note(at(1500)), None);
        assert_eq!(limiter.note(at(1999)), None);
        assert_eq!(limiter.note(at(2000)), Some(2));
        // After a quiet spell the next one is written at once, with nothing left out.
        assert_eq!(limiter.note(at(60_000)), Some(0));
        assert_eq!(limiter.take_left_out(), 0);
        assert_eq!(limiter.note(at(60_001)), None);
        assert_eq!(limiter.take_left_out(), 1);
        assert_eq!(limiter.take_left_out(), 0);
        // A clock that goes back never panics; it counts as within the interval.
        assert_eq!(limiter.note(start), None);
    }
}
