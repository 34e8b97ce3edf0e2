//! Scanouts (the guest's virtual monitors): which resource each shows, when
//! it was last flushed, where its cursor is; and [`ScanoutSource`], the
//! [`FrameSource`] that hands a scanout's pictures to the encoder.

use std::sync::Arc;
use std::time::Instant;

use zerocast_frame::{Frame, FrameSource, SourceEvent};

use crate::commands::{CursorCommand, DisplayMode, Rect};
use crate::device::Shared;
use crate::resource::Resources;
use crate::snapshot::ResourceSnapshot;

/// The guest's cursor on one scanout, as its last cursor commands set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorState {
    /// Cursor image resource (0: hidden).
    pub resource_id: u32,
    pub x: u32,
    pub y: u32,
    pub hot_x: u32,
    pub hot_y: u32,
}

/// One scanout's state.
#[derive(Debug)]
pub(crate) struct Scanout {
    /// The mode offered to the guest.
    mode: (u32, u32),
    /// Offered as connected (host-side hot-plug state).
    enabled: bool,
    /// The resource shown (0: none) and the part of it shown.
    resource_id: u32,
    rect: Rect,
    /// Flushes of the shown resource that touched the shown part.
    flushes: u64,
    flushed_at: Option<Instant>,
    cursor: CursorState,
}

impl Scanout {
    pub fn new(width: u32, height: u32) -> Self {
        Scanout {
            mode: (width, height),
            enabled: true,
            resource_id: 0,
            rect: Rect::default(),
            flushes: 0,
            flushed_at: None,
            cursor: CursorState::default(),
        }
    }

    pub fn mode(&self) -> (u32, u32) {
        self.mode
    }

    pub fn display_mode(&self) -> DisplayMode {
        DisplayMode {
            width: self.mode.0,
            height: self.mode.1,
            enabled: self.enabled,
        }
    }

    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    pub fn resource_id(&self) -> u32 {
        self.resource_id
    }

    /// Shows `rect` of `resource_id` (0 turns the scanout off).
    pub fn show(&mut self, resource_id: u32, rect: Rect) {
        self.resource_id = resource_id;
        self.rect = rect;
    }

    /// Notes a flush of the shown resource; true if it touched the shown part.
    pub fn flushed(&mut self, resource_id: u32, rect: &Rect, now: Instant) -> bool {
        let hit =
            resource_id != 0 && resource_id == self.resource_id && rect.intersects(&self.rect);
        if hit {
            self.flushes += 1;
            self.flushed_at = Some(now);
        }
        hit
    }

    pub fn cursor(&self) -> CursorState {
        self.cursor
    }

    pub fn update_cursor(&mut self, c: &CursorCommand) {
        self.cursor = CursorState {
            resource_id: c.resource_id,
            x: c.x,
            y: c.y,
            hot_x: c.hot_x,
            hot_y: c.hot_y,
        };
    }

    pub fn move_cursor(&mut self, c: &CursorCommand) {
        self.cursor.x = c.x;
        self.cursor.y = c.y;
    }

    /// The shown part of the shown resource, if it has backing.
    pub fn snapshot(&self, resources: &Resources) -> Option<ResourceSnapshot> {
        let resource = resources.get(self.resource_id).ok()?;
        resource.snapshot(self.resource_id, self.rect)
    }
}

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
    fn wait(&mut self, deadline: Instant) -> SourceEvent {
        // The last picture stays current until a new one replaces it, so a
        // keyframe for a new viewer can be encoded from a still screen.
        let mut state = self.shared.lock();
        loop {
            if state.closed {
                return SourceEvent::Closed;
            }
            if let Some(s) = state.scanouts.get(self.index as usize) {
                if s.enabled && s.flushes != self.seen_flushes {
                    self.seen_flushes = s.flushes;
                    self.current = s.snapshot(&state.resources);
                    let captured_at = s.flushed_at.unwrap_or_else(Instant::now);
                    return SourceEvent::Changed { captured_at };
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return SourceEvent::Idle;
            }
            state = self.shared.wait_changed(state, deadline - now);
        }
    }

    fn frame(&self) -> Option<Frame<'_>> {
        self.current.as_ref()?.frame()
    }

    fn describe(&self) -> String {
        let state = self.shared.lock();
        match state.scanouts.get(self.index as usize) {
            Some(s) => format!(
                "virtio-gpu scanout {} {}x{} (vhost-user)",
                self.index, s.mode.0, s.mode.1
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
    use std::time::Duration;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(20)
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
        assert_eq!(source.wait(soon()), SourceEvent::Idle);
        assert!(source.frame().is_none());
        mem.write_slice(&[7u8; 256], GuestAddress(256)).unwrap();
        for _ in 0..3 {
            shared.control(&build::flush(1, rect(0, 0, 64, 16)), &mem);
        }
        assert!(matches!(source.wait(soon()), SourceEvent::Changed { .. }));
        let frame = source.frame().unwrap();
        assert_eq!(
            (frame.width(), frame.height(), frame.stride()),
            (64, 16, 256)
        );
        assert_eq!(&frame.data()[256..512], &[7u8; 256][..]);
        assert!(source.snapshot().unwrap().is_zero_copy());
        // Three flushes, one change.
        assert_eq!(source.wait(soon()), SourceEvent::Idle);
        // A flush of another resource or outside the shown part is no change.
        shared.control(&build::create_2d(2, XRGB, 8, 8), &mem);
        shared.control(&build::flush(2, rect(0, 0, 8, 8)), &mem);
        assert_eq!(source.wait(soon()), SourceEvent::Idle);
        // A late source sees the latest picture at once.
        let mut late = ScanoutSource::new(shared.clone(), 0);
        assert!(matches!(late.wait(soon()), SourceEvent::Changed { .. }));
        shared.close();
        assert_eq!(source.wait(soon()), SourceEvent::Closed);
    }

    #[test]
    fn shown_part_of_a_resource_is_offset_into_it() {
        let (shared, mem) = showing();
        shared.control(&build::set_scanout(0, 1, rect(8, 2, 16, 4)), &mem);
        mem.write_slice(&[9u8; 4], GuestAddress(2 * 256 + 8 * 4))
            .unwrap();
        shared.control(&build::flush(1, rect(0, 0, 64, 16)), &mem);
        let mut source = ScanoutSource::new(shared, 0);
        assert!(matches!(source.wait(soon()), SourceEvent::Changed { .. }));
        let frame = source.frame().unwrap();
        assert_eq!(
            (frame.width(), frame.height(), frame.stride()),
            (16, 4, 256)
        );
        assert_eq!(&frame.data()[..4], &[9u8; 4]);
    }

    #[test]
    fn a_waiting_reader_wakes_on_flush() {
        let (shared, mem) = showing();
        let mut source = ScanoutSource::new(shared.clone(), 0);
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            let event = source.wait(Instant::now() + Duration::from_secs(10));
            (event, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        shared.control(&build::flush(1, rect(0, 0, 1, 1)), &mem);
        let (event, took) = waiter.join().unwrap();
        assert!(matches!(event, SourceEvent::Changed { .. }));
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn disabled_scanouts_report_nothing_until_enabled() {
        let (shared, mem) = showing();
        shared.lock().scanouts[0].set_enabled(false);
        shared.control(&build::flush(1, rect(0, 0, 64, 16)), &mem);
        let mut source = ScanoutSource::new(shared.clone(), 0);
        assert_eq!(source.wait(soon()), SourceEvent::Idle);
        shared.lock().scanouts[0].set_enabled(true);
        assert!(matches!(source.wait(soon()), SourceEvent::Changed { .. }));
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
