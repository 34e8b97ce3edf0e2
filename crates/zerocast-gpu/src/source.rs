//! [`ScanoutSource`]: the [`FrameSource`] that hands a scanout's pictures,
//! as the guest flushes them, to a pipeline.

use std::sync::Arc;
use std::time::Instant;

use zerocast_frame::{Doorbell, Frame, FrameSource, SourceEvent};

use crate::device::Shared;
use crate::snapshot::ResourceSnapshot;

/// The pictures of one scanout, as the guest flushes them.
///
/// `wait` returns `Changed` once per batch of flushes (only the latest
/// matters), `Idle` at the deadline, `Closed` when QEMU has gone. `frame`
/// borrows the guest's pages directly when the backing is mapped.
#[derive(Debug)]
pub struct ScanoutSource {
    shared: Arc<Shared>,
    index: u32,
    seen_flushes: u64,
    current: Option<ResourceSnapshot>,
}

impl ScanoutSource {
    pub(crate) fn new(shared: Arc<Shared>, index: u32) -> Self {
        ScanoutSource {
            shared,
            index,
            seen_flushes: 0,
            current: None,
        }
    }

    /// The scanout's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The resource shown at the last `Changed` (id, zero-copy or not).
    pub fn snapshot(&self) -> Option<&ResourceSnapshot> {
        self.current.as_ref()
    }
}

impl FrameSource for ScanoutSource {
    fn attach(&mut self, bell: Doorbell) {
        self.shared.add_reader(bell);
    }

    fn poll(&mut self, now: Instant) -> SourceEvent {
        // The last picture stays current until a new one replaces it, so a
        // keyframe for a new viewer can be encoded from a still screen.
        let state = self.shared.lock();
        if state.closed {
            return SourceEvent::Closed;
        }
        if let Some(s) = state.scanouts.get(self.index as usize) {
            let (flushes, flushed_at) = s.flushes();
            if s.enabled() && flushes != self.seen_flushes {
                self.seen_flushes = flushes;
                self.current = s.snapshot(&state.resources);
                let captured_at = flushed_at.unwrap_or(now);
                return SourceEvent::Changed { captured_at };
            }
        }
        SourceEvent::Idle { wake_at: None }
    }

    fn frame(&self) -> Option<Frame<'_>> {
        self.current.as_ref()?.frame()
    }

    fn describe(&self) -> String {
        let state = self.shared.lock();
        match state.scanouts.get(self.index as usize) {
            Some(s) => format!(
                "virtio-gpu scanout {} {}x{} (vhost-user)",
                self.index,
                s.mode().0,
                s.mode().1
            ),
            None => format!("virtio-gpu scanout {} (none)", self.index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::build;
    use crate::config::GpuConfig;
    use crate::table::ResourceTable;
    use crate::testutil::{memfd_memory, rect, XRGB};
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    fn now() -> Instant {
        Instant::now()
    }

    fn idle() -> SourceEvent {
        SourceEvent::Idle { wake_at: None }
    }

    /// A device showing a 64x16 resource 1 (guest 0..4 KiB) on scanout 0.
    fn showing() -> (Arc<Shared>, GuestMemoryMmap) {
        let shared = Arc::new(Shared::new(&GpuConfig::default()));
        let mem = memfd_memory(1 << 20);
        for request in [
            build::create_2d(1, XRGB, 64, 16),
            build::attach(1, &[(0, 4096)]),
            build::set_scanout(0, 1, rect(0, 0, 64, 16)),
        ] {
            shared.control(&request, &mem);
        }
        assert_eq!(shared.stats.snapshot().errors, 0);
        (shared, mem)
    }

    #[test]
    fn reports_the_latest_flush_once_with_the_guest_pages() {
        let (shared, mem) = showing();
        let mut source = ScanoutSource::new(shared.clone(), 0);
        assert_eq!(source.poll(now()), idle());
        assert!(source.frame().is_none());
        mem.write_slice(&[7u8; 256], GuestAddress(256)).unwrap();
        for _ in 0..3 {
            shared.control(&build::flush(1, rect(0, 0, 64, 16)), &mem);
        }
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
        let frame = source.frame().unwrap();
        assert_eq!(
            (frame.width(), frame.height(), frame.stride()),
            (64, 16, 256)
        );
        assert_eq!(&frame.data()[256..512], &[7u8; 256][..]);
        assert!(source.snapshot().unwrap().is_zero_copy());
        // Three flushes, one change.
        assert_eq!(source.poll(now()), idle());
        // A flush of another resource or outside the shown part is no change.
        shared.control(&build::create_2d(2, XRGB, 8, 8), &mem);
        shared.control(&build::flush(2, rect(0, 0, 8, 8)), &mem);
        assert_eq!(source.poll(now()), idle());
        // A late source sees the latest picture at once.
        let mut late = ScanoutSource::new(shared.clone(), 0);
        assert!(matches!(late.poll(now()), SourceEvent::Changed { .. }));
        shared.close();
        assert_eq!(source.poll(now()), SourceEvent::Closed);
    }

    #[test]
    fn shown_part_of_a_resource_is_offset_into_it() {
        let (shared, mem) = showing();
        shared.control(&build::set_scanout(0, 1, rect(8, 2, 16, 4)), &mem);
        mem.write_slice(&[9u8; 4], GuestAddress(2 * 256 + 8 * 4))
            .unwrap();
        shared.control(&build::flush(1, rect(0, 0, 64, 16)), &mem);
        let mut source = ScanoutSource::new(shared, 0);
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
        let frame = source.frame().unwrap();
        assert_eq!(
            (frame.width(), frame.height(), frame.stride()),
            (16, 4, 256)
        );
        assert_eq!(&frame.data()[..4], &[9u8; 4]);
    }

    #[test]
    fn a_flush_rings_the_readers_bell_and_a_still_screen_does_not() {
        let (shared, mem) = showing();
        let mut source = ScanoutSource::new(shared.clone(), 0);
        let bell = Doorbell::new();
        source.attach(bell.clone());
        let no_wait = Some(Instant::now());
        assert!(!bell.wait(no_wait));
        shared.control(&build::flush(1, rect(0, 0, 1, 1)), &mem);
        assert!(bell.wait(no_wait));
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
        // Other commands that change no scanout ring nobody.
        shared.control(&build::create_2d(2, XRGB, 8, 8), &mem);
        assert!(!bell.wait(no_wait));
        shared.close();
        assert!(bell.wait(no_wait));
        assert_eq!(source.poll(now()), SourceEvent::Closed);
    }

    #[test]
    fn disabled_scanouts_report_nothing_until_enabled() {
        let (shared, mem) = showing();
        shared.lock().scanouts[0].set_enabled(false);
        shared.control(&build::flush(1, rect(0, 0, 64, 16)), &mem);
        let mut source = ScanoutSource::new(shared.clone(), 0);
        assert_eq!(source.poll(now()), idle());
        shared.lock().scanouts[0].set_enabled(true);
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
    }

    #[test]
    fn a_held_picture_outlives_unref() {
        let (shared, mem) = showing();
        mem.write_slice(&[5u8; 16], GuestAddress(0)).unwrap();
        let table = ResourceTable::new(shared.clone());
        let held = table.get(1).unwrap();
        assert_eq!(table.on_scanout(0), 1);
        shared.control(&build::unref(1), &mem);
        assert!(table.get(1).is_none());
        assert_eq!(table.on_scanout(0), 0);
        assert_eq!(&held.frame().unwrap().data()[..16], &[5u8; 16]);
        assert_eq!(shared.stats.snapshot().errors, 0);
    }
}
