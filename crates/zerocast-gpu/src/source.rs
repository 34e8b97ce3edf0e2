//! [`ScanoutSource`]: the [`FrameSource`] that hands a scanout's pictures,
//! as the guest flushes them, to a pipeline, and a "no signal" picture once
//! the guest's is no longer valid.

use std::sync::Arc;
use std::time::Instant;

use tracing::debug;
use zerocast_frame::{CursorSink, Damage, Doorbell, Frame, FrameSource, PixelFormat, SourceEvent};

use crate::device::Shared;
use crate::snapshot::ResourceSnapshot;

/// What a source shows.
#[derive(Debug)]
enum Showing {
    /// Nothing has happened on the scanout yet.
    Nothing,
    /// The guest's pages (held mapped while shown).
    Guest(ResourceSnapshot),
    /// The guest's picture was taken away: [`NoSignal`].
    NoSignal,
}

/// The neutral picture shown instead of pages the guest has taken back or a
/// scanout switched off: flat dark grey, XRGB8888. Its buffer is kept and
/// only remade when the scanout's size changes.
#[derive(Debug, Default)]
struct NoSignal {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl NoSignal {
    const FORMAT: PixelFormat = PixelFormat::Xrgb8888;
    /// Every byte, X included: grey is the same in any byte order.
    const GREY: u8 = 0x20;

    /// Makes the picture `width` x `height`; false if it already was.
    fn resize(&mut self, width: u32, height: u32) -> bool {
        if (width, height) == (self.width, self.height) {
            return false;
        }
        let len = u64::from(width) * u64::from(height) * u64::from(Self::FORMAT.bytes_per_pixel());
        // The scanout's mode was checked at start; a size that does not fit
        // gives no picture rather than a panic.
        self.pixels = vec![Self::GREY; usize::try_from(len).unwrap_or(0)];
        (self.width, self.height) = (width, height);
        true
    }

    fn frame(&self) -> Option<Frame<'_>> {
        let stride = self.width.checked_mul(Self::FORMAT.bytes_per_pixel())?;
        Frame::new(self.width, self.height, stride, Self::FORMAT, &self.pixels).ok()
    }
}

/// The pictures of one scanout, as the guest flushes them.
///
/// `wait` returns `Changed` once per batch of flushes (only the latest
/// matters), `Idle` at the deadline, `Closed` when QEMU has gone. `frame`
/// borrows the guest's pages directly when the backing is mapped. Once the
/// guest takes those pages back (UNREF, DETACH_BACKING, device reset, a
/// SET_SCANOUT to resource 0) or the host switches the scanout off, the next
/// poll drops them and reports `Changed` with a "no signal" picture of the
/// scanout's size, until the guest flushes a valid picture again.
#[derive(Debug)]
pub struct ScanoutSource {
    shared: Arc<Shared>,
    index: u32,
    seen_changes: u64,
    showing: Showing,
    no_signal: NoSignal,
}

impl ScanoutSource {
    pub(crate) fn new(shared: Arc<Shared>, index: u32) -> Self {
        ScanoutSource {
            shared,
            index,
            seen_changes: 0,
            showing: Showing::Nothing,
            no_signal: NoSignal::default(),
        }
    }

    /// The scanout's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The guest's resource shown at the last `Changed` (id, zero-copy or
    /// not); `None` before any or while showing "no signal".
    pub fn snapshot(&self) -> Option<&ResourceSnapshot> {
        match &self.showing {
            Showing::Guest(snapshot) => Some(snapshot),
            Showing::Nothing | Showing::NoSignal => None,
        }
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
        let idle = SourceEvent::Idle { wake_at: None };
        let Some(s) = state.scanouts.get(self.index as usize) else {
            return idle;
        };
        let (changes, flushed_at) = s.changes();
        // Pages can be taken back while not shown any more (the scanout
        // moved to another resource since): the held picture goes too.
        let revoked = matches!(&self.showing, Showing::Guest(p) if p.is_revoked());
        if changes == self.seen_changes && !revoked {
            return idle;
        }
        // What changed since the picture this reader last had: only the
        // guest's own pages carry over from one picture to the next.
        let damage = match &self.showing {
            Showing::Guest(_) if !revoked => s.damage_since(self.seen_changes),
            _ => Damage::full(),
        };
        self.seen_changes = changes;
        if let Some(picture) = s.picture(&state.resources) {
            // After "no signal" (a reset, a reboot, a scanout off) the
            // guest's picture starts afresh.
            let fresh = matches!(self.showing, Showing::NoSignal);
            self.showing = Showing::Guest(picture);
            let captured_at = flushed_at.unwrap_or(now);
            if fresh {
                return SourceEvent::Restarted { captured_at };
            }
            return SourceEvent::Changed {
                captured_at,
                damage,
            };
        }
        // Replacing the held picture unmaps it (unless the device still
        // holds the resource).
        let was_no_signal = matches!(self.showing, Showing::NoSignal);
        self.showing = Showing::NoSignal;
        let (width, height) = s.mode();
        if self.no_signal.resize(width, height) || !was_no_signal {
            debug!(scanout = self.index, width, height, "no signal");
            SourceEvent::Changed {
                captured_at: now,
                damage: Damage::full(),
            }
        } else {
            // The same grey again: nothing to encode.
            idle
        }
    }

    /// The guest's hardware cursor on this scanout: published by the
    /// device as the cursor queue changes it, never through this reader.
    fn attach_cursor(&mut self, sink: Arc<dyn CursorSink>) -> bool {
        let mut state = self.shared.lock();
        match state.scanouts.get_mut(self.index as usize) {
            Some(s) => {
                s.add_cursor_sink(&sink);
                true
            }
            None => false,
        }
    }

    /// Sources close when QEMU (the vhost-user frontend) has gone.
    fn closed_reason(&self) -> &'static str {
        "the VM stopped"
    }

    fn frame(&self) -> Option<Frame<'_>> {
        match &self.showing {
            Showing::Nothing => None,
            Showing::Guest(snapshot) => snapshot.frame(),
            Showing::NoSignal => self.no_signal.frame(),
        }
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
    use crate::snapshot::Pixels;
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

    fn damage(event: SourceEvent) -> Damage {
        match event {
            SourceEvent::Changed { damage, .. } => damage,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn reports_what_the_guest_flushed_coalesced_between_polls() {
        let (shared, mem) = showing();
        let mut source = ScanoutSource::new(shared.clone(), 0);
        let flush = |r| shared.control(&build::flush(1, r), &mem);
        flush(rect(0, 0, 64, 16));
        assert!(
            damage(source.poll(now())).is_full(),
            "a reader's first picture"
        );
        flush(rect(8, 2, 4, 4));
        let one = zerocast_frame::Rect::new(8, 2, 4, 4);
        assert_eq!(damage(source.poll(now())).rects(), &[one]);
        flush(rect(8, 2, 4, 4));
        flush(rect(40, 10, 2, 2));
        let two = zerocast_frame::Rect::new(40, 10, 2, 2);
        assert_eq!(damage(source.poll(now())).rects(), &[one, two]);
        // Flushes add up while the reader is away; past the scanout's log,
        // it reads everything.
        for x in 0..40u32 {
            flush(rect(x, 0, 1, 1));
        }
        let d = damage(source.poll(now()));
        let row = |d: &Damage, x: u32| d.rects().iter().any(|r| r.x <= x && x < r.x + r.width);
        assert!(!d.is_full() && (0..40).all(|x| row(&d, x)), "{d:?}");
        for x in 0..100u32 {
            flush(rect(x % 64, 0, 1, 1));
        }
        assert!(damage(source.poll(now())).is_full());
        // Another part shown (a flip): everything, whatever was flushed; the
        // flush is then in the shown part's own pixels.
        shared.control(&build::set_scanout(0, 1, rect(8, 2, 16, 4)), &mem);
        flush(rect(10, 3, 2, 1));
        assert!(damage(source.poll(now())).is_full());
        flush(rect(0, 0, 10, 4));
        let part = zerocast_frame::Rect::new(0, 0, 2, 2);
        assert_eq!(damage(source.poll(now())).rects(), &[part]);
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

    /// Keeps what a source publishes.
    #[derive(Default)]
    struct Sink(std::sync::Mutex<Vec<zerocast_frame::Cursor>>);

    impl CursorSink for Sink {
        fn publish(&self, cursor: zerocast_frame::Cursor) {
            self.0.lock().unwrap().push(cursor);
        }
    }

    impl Sink {
        fn take(&self) -> Vec<(u64, i32, i32, bool)> {
            std::mem::take(&mut *self.0.lock().unwrap())
                .into_iter()
                .map(|c| (c.serial, c.x, c.y, c.image.is_some()))
                .collect()
        }
    }

    #[test]
    fn cursor_changes_are_pushed_to_the_sink_and_never_ring_the_encoder() {
        use crate::protocol::CMD_MOVE_CURSOR;
        let (shared, mem) = showing();
        mem.write_slice(&[0x80; 16384], GuestAddress(0x10000))
            .unwrap();
        for request in [
            build::create_2d(2, XRGB, 64, 64),
            build::attach(2, &[(0x10000, 16384)]),
        ] {
            shared.control(&request, &mem);
        }
        let mut source = ScanoutSource::new(shared.clone(), 0);
        let bell = Doorbell::new();
        source.attach(bell.clone());
        let sink = Arc::new(Sink::default());
        assert!(source.attach_cursor(sink.clone()));
        // At once: no cursor yet.
        assert_eq!(sink.take(), [(0, 0, 0, false)]);
        let no_wait = Some(Instant::now());
        shared.cursor(&build::update_cursor(0, (100, 200), 2, (4, 6)));
        shared.cursor(&build::cursor(CMD_MOVE_CURSOR, 0, 110, 210, 0));
        // The hotspot's position: the image's corner plus the hotspot.
        assert_eq!(sink.take(), [(1, 104, 206, true), (1, 114, 216, true)]);
        // A plane partly off the top-left: the guest's u32s are signed.
        shared.cursor(&build::cursor(CMD_MOVE_CURSOR, 0, u32::MAX - 9, 0, 0));
        assert_eq!(sink.take(), [(1, -6, 6, true)]);
        assert!(
            !bell.wait(no_wait),
            "the encoder is not woken by the cursor"
        );
        // A new driver session starts without one.
        shared.reset();
        assert_eq!(sink.take(), [(2, 0, 0, false)]);
        // A sink whose stream has gone is dropped.
        let weak = Arc::downgrade(&sink);
        drop(sink);
        shared.cursor(&build::cursor(CMD_MOVE_CURSOR, 0, 1, 1, 0));
        assert!(weak.upgrade().is_none());
        assert!(shared.lock().scanouts[0].cursor_sinks_is_empty());
        // No such scanout: no cursor.
        let mut other = ScanoutSource::new(shared, 7);
        assert!(!other.attach_cursor(Arc::new(Sink::default())));
        assert_eq!(other.poll(now()), idle());
    }

    /// The bytes the guest draws in the tests below.
    const GUEST: u8 = 0x5A;

    /// Asserts `source` shows the grey "no signal" picture of the default
    /// 1280x800 scanout and nothing of the guest's.
    fn assert_no_signal(source: &ScanoutSource) {
        assert!(source.snapshot().is_none());
        let frame = source.frame().unwrap();
        assert_eq!(
            (frame.width(), frame.height(), frame.stride()),
            (1280, 800, 1280 * 4)
        );
        assert_eq!(frame.format(), PixelFormat::Xrgb8888);
        assert!(frame.data().iter().all(|&b| b == NoSignal::GREY));
    }

    /// Fills resource 1's backing with `GUEST` and flushes it.
    fn draw(shared: &Shared, mem: &GuestMemoryMmap) {
        mem.write_slice(&[GUEST; 4096], GuestAddress(0)).unwrap();
        shared.control(&build::flush(1, rect(0, 0, 64, 16)), mem);
    }

    /// Asserts `source` shows resource 1 with the guest's bytes, mapped.
    fn assert_guest_picture(source: &ScanoutSource) {
        let frame = source.frame().unwrap();
        assert_eq!((frame.width(), frame.height()), (64, 16));
        assert!(frame.data()[..4096].iter().all(|&b| b == GUEST));
        assert!(source.snapshot().unwrap().is_zero_copy());
    }

    /// The ways a scanout's picture is taken from its readers.
    #[derive(Debug, Clone, Copy)]
    enum TakeBack {
        Unref,
        Detach,
        Reset,
        /// The guest's DISABLE_SCANOUT: SET_SCANOUT to resource 0.
        GuestDisable,
        /// The host's `GpuBackendHandle::set_scanout_enabled(0, false)`.
        HostDisable,
    }

    impl TakeBack {
        fn run(self, shared: &Shared, mem: &GuestMemoryMmap) {
            match self {
                TakeBack::Unref => {
                    shared.control(&build::unref(1), mem);
                }
                TakeBack::Detach => {
                    shared.control(&build::detach(1), mem);
                }
                TakeBack::Reset => shared.reset(),
                TakeBack::GuestDisable => {
                    shared.control(&build::set_scanout(0, 0, rect(0, 0, 0, 0)), mem);
                }
                TakeBack::HostDisable => {
                    // As `GpuBackendHandle::set_scanout_enabled` does.
                    shared.lock().scanouts[0].set_enabled(false);
                    shared.notify();
                }
            }
        }

        /// Whether resource 1 and its backing outlive it.
        fn keeps_the_resource(self) -> bool {
            matches!(self, TakeBack::GuestDisable | TakeBack::HostDisable)
        }

        /// What the guest (or host) does to show resource 1 again.
        fn undo(self, shared: &Shared, mem: &GuestMemoryMmap) {
            let mut requests = Vec::new();
            match self {
                TakeBack::Unref | TakeBack::Reset => {
                    requests.push(build::create_2d(1, XRGB, 64, 16));
                    requests.push(build::attach(1, &[(0, 4096)]));
                }
                TakeBack::Detach => requests.push(build::attach(1, &[(0, 4096)])),
                TakeBack::GuestDisable => {}
                TakeBack::HostDisable => shared.lock().scanouts[0].set_enabled(true),
            }
            requests.push(build::set_scanout(0, 1, rect(0, 0, 64, 16)));
            for request in requests {
                shared.control(&request, mem);
            }
            draw(shared, mem);
        }
    }

    #[test]
    fn pages_taken_back_are_dropped_for_a_no_signal_picture() {
        let no_wait = Some(Instant::now());
        for way in [
            TakeBack::Unref,
            TakeBack::Detach,
            TakeBack::Reset,
            TakeBack::GuestDisable,
            TakeBack::HostDisable,
        ] {
            let (shared, mem) = showing();
            let mut source = ScanoutSource::new(shared.clone(), 0);
            let bell = Doorbell::new();
            source.attach(bell.clone());
            draw(&shared, &mem);
            assert!(bell.wait(no_wait));
            assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
            assert_guest_picture(&source);
            let Pixels::Mapped(mapping) = &source.snapshot().unwrap().pixels else {
                panic!("{way:?}: resource 1 is not mapped");
            };
            let mapping = Arc::downgrade(mapping);
            // Held by the device and the source.
            assert_eq!(mapping.strong_count(), 2, "{way:?}");

            way.run(&shared, &mem);
            assert!(bell.wait(no_wait), "{way:?}: no ring");
            assert!(
                matches!(source.poll(now()), SourceEvent::Changed { .. }),
                "{way:?}"
            );
            assert_no_signal(&source);
            let device_holds = usize::from(way.keeps_the_resource());
            assert_eq!(
                mapping.strong_count(),
                device_holds,
                "{way:?}: still mapped"
            );
            // Grey once: nothing more to encode.
            assert_eq!(source.poll(now()), idle(), "{way:?}");
            // A new subscriber never sees the old pages either.
            let mut late = ScanoutSource::new(shared.clone(), 0);
            assert!(matches!(late.poll(now()), SourceEvent::Changed { .. }));
            assert_no_signal(&late);

            // Back from "no signal": a picture to start afresh.
            way.undo(&shared, &mem);
            assert!(bell.wait(no_wait), "{way:?}: no ring");
            assert!(
                matches!(source.poll(now()), SourceEvent::Restarted { .. }),
                "{way:?}"
            );
            assert_guest_picture(&source);
            assert!(matches!(late.poll(now()), SourceEvent::Restarted { .. }));
            assert_guest_picture(&late);
            assert_eq!(shared.stats.snapshot().errors, 0, "{way:?}");
        }
    }

    #[test]
    fn the_no_signal_buffer_is_made_once_per_size() {
        let (shared, mem) = showing();
        let mut source = ScanoutSource::new(shared.clone(), 0);
        shared.control(&build::set_scanout(0, 0, rect(0, 0, 0, 0)), &mem);
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
        let buffer = source.frame().unwrap().data().as_ptr();
        shared.control(&build::set_scanout(0, 1, rect(0, 0, 64, 16)), &mem);
        draw(&shared, &mem);
        assert!(matches!(source.poll(now()), SourceEvent::Restarted { .. }));
        assert_guest_picture(&source);
        shared.reset();
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
        assert_no_signal(&source);
        assert_eq!(source.frame().unwrap().data().as_ptr(), buffer);
    }

    #[test]
    fn a_held_picture_is_dropped_when_its_pages_go_even_if_no_longer_shown() {
        let (shared, mem) = showing();
        let mut source = ScanoutSource::new(shared.clone(), 0);
        draw(&shared, &mem);
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
        let Pixels::Mapped(mapping) = &source.snapshot().unwrap().pixels else {
            panic!("resource 1 is not mapped");
        };
        let mapping = Arc::downgrade(mapping);
        // The guest moves the scanout to resource 2 but has not flushed it
        // yet, then frees resource 1.
        for request in [
            build::create_2d(2, XRGB, 64, 16),
            build::attach(2, &[(8192, 4096)]),
            build::set_scanout(0, 2, rect(0, 0, 64, 16)),
            build::unref(1),
        ] {
            shared.control(&request, &mem);
        }
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
        assert_eq!(mapping.strong_count(), 0);
        assert_eq!(source.snapshot().unwrap().resource_id(), 2);
        assert!(source.frame().unwrap().data().iter().all(|&b| b != GUEST));
        assert_eq!(shared.stats.snapshot().errors, 0);
    }

    #[test]
    fn a_disabled_scanout_shows_no_signal_until_enabled() {
        let (shared, mem) = showing();
        shared.lock().scanouts[0].set_enabled(false);
        let mut source = ScanoutSource::new(shared.clone(), 0);
        assert!(matches!(source.poll(now()), SourceEvent::Changed { .. }));
        assert_no_signal(&source);
        // The guest is not told, so it keeps flushing: nothing to encode.
        draw(&shared, &mem);
        assert_eq!(source.poll(now()), idle());
        assert_no_signal(&source);
        // On again: its latest picture at once.
        shared.lock().scanouts[0].set_enabled(true);
        assert!(matches!(source.poll(now()), SourceEvent::Restarted { .. }));
        assert_guest_picture(&source);
    }

    #[test]
    fn a_table_snapshot_reads_nothing_once_unrefd() {
        let (shared, mem) = showing();
        mem.write_slice(&[5u8; 16], GuestAddress(0)).unwrap();
        let table = ResourceTable::new(shared.clone());
        let held = table.get(1).unwrap();
        assert_eq!(&held.frame().unwrap().data()[..16], &[5u8; 16]);
        assert_eq!(table.on_scanout(0), 1);
        shared.control(&build::unref(1), &mem);
        assert!(table.get(1).is_none());
        assert_eq!(table.on_scanout(0), 0);
        assert!(held.is_revoked());
        assert!(held.frame().is_none());
        assert_eq!(shared.stats.snapshot().errors, 0);
    }
}
