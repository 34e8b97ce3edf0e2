//! [`FlushStamps`]: when the guest flushed each stamped picture
//! (`zerocast_frame::stamp`), for benchmarks that measure from the guest's
//! commit to the viewer's decode whatever path the frame took (the host's
//! encoder, or the guest agent's own). Off unless a benchmark turns it on:
//! then each flush of scanout 0 reads 34 pixels of the flushed picture.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use zerocast_frame::{stamp, Frame};

/// Entries kept: a minute of frames at 60 fps, and more.
const KEPT: usize = 8192;

/// (stamp, flush time in ns since the Unix epoch), oldest first.
#[derive(Debug, Default)]
pub struct FlushStamps {
    on: AtomicBool,
    entries: Mutex<VecDeque<(u32, i64)>>,
}

impl FlushStamps {
    /// Starts (or stops) recording.
    pub fn record(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Notes `frame`'s stamp, flushed at `at`; a picture without a stamp
    /// is not noted. The first flush of a stamp is kept (the guest's commit).
    pub(crate) fn flushed(&self, frame: &Frame<'_>, at: SystemTime) {
        let Some(n) = stamp::read_frame(frame) else {
            return;
        };
        let ns = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.back().is_some_and(|&(last, _)| last == n) {
            return;
        }
        if entries.len() == KEPT {
            entries.pop_front();
        }
        entries.push_back((n, ns));
    }

    /// What was noted, oldest first.
    pub fn entries(&self) -> Vec<(u32, i64)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use zerocast_frame::PixelFormat;

    fn stamped(n: u32) -> Vec<u8> {
        let (w, h) = (stamp::WIDTH, stamp::BLOCK);
        let mut px = vec![0x80u8; (w * h * 4) as usize];
        stamp::draw(&mut px, w, h, (w * 4) as usize, n);
        px
    }

    #[test]
    fn notes_each_stamp_once_with_its_first_flush_and_stays_bounded() {
        let log = FlushStamps::default();
        let (w, h) = (stamp::WIDTH, stamp::BLOCK);
        let t = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        for (n, ms) in [(1, 10), (1, 12), (2, 20)] {
            let px = stamped(n);
            let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
            log.flushed(&frame, t(ms));
        }
        let blank = vec![0u8; (w * h * 4) as usize];
        log.flushed(
            &Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &blank).unwrap(),
            t(30),
        );
        assert_eq!(log.entries(), [(1, 10_000_000), (2, 20_000_000)]);
        let px = stamped(3);
        let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
        for _ in 0..KEPT {
            log.flushed(&frame, t(40));
            log.flushed(
                &Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &stamped(4)).unwrap(),
                t(41),
            );
        }
        assert_eq!(log.entries().len(), KEPT);
    }
}
