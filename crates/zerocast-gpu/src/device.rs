//! The virtio-gpu device proper, sans I/O: request bytes and guest memory
//! in, response bytes out, state changes published to readers. The vring
//! plumbing lives in `backend`; tests drive this directly.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{trace, warn};
use vm_memory::GuestMemoryMmap;
use zerocast_frame::Doorbell;

use crate::budget::Budget;
use crate::commands::{self, Command, Response};
use crate::config::GpuConfig;
use crate::edid;
use crate::flush_stamps::FlushStamps;
use crate::log_limit::LogLimiter;
use crate::mapping::MappingLimits;
use crate::refusal::Refusal;
use crate::resource::Resources;
use crate::scanout::Scanout;
use crate::stats::Stats;

/// Everything the device knows, behind one lock.
#[derive(Debug)]
pub(crate) struct GpuState {
    pub resources: Resources,
    pub scanouts: Vec<Scanout>,
    /// QEMU has gone: no more commands will come.
    pub closed: bool,
}

/// The device state shared by the vring thread and every reader.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<GpuState>,
    /// Rung when a scanout is flushed or its state changes: each reader
    /// sleeps on its own bell, so a still screen wakes nobody.
    readers: Mutex<Vec<Doorbell>>,
    pub stats: Stats,
    /// Scanout 0's flushed stamps, when a benchmark asks.
    pub flush_stamps: FlushStamps,
    /// Refused commands are logged the first of a burst, then summarised.
    refusal_log: Mutex<LogLimiter>,
}

/// At most one refusal line per this long, per device.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

impl Shared {
    pub fn new(config: &GpuConfig) -> Self {
        let scanouts = config
            .scanouts
            .iter()
            .map(|&(w, h)| Scanout::new(w, h))
            .collect();
        let hostmem = Budget::new(config.max_hostmem);
        let mappings = MappingLimits {
            per_resource: config.max_mappings_per_resource,
            budget: config.mappings.clone(),
        };
        Shared {
            state: Mutex::new(GpuState {
                resources: Resources::new(hostmem.clone(), mappings),
                scanouts,
                closed: false,
            }),
            readers: Mutex::new(Vec::new()),
            stats: Stats::new(hostmem, config.mappings.clone()),
            flush_stamps: FlushStamps::default(),
            refusal_log: Mutex::new(LogLimiter::new(REFUSAL_LOG_INTERVAL)),
        }
    }

    /// Locks the state. A panic elsewhere cannot leave it half-updated in a
    /// way that matters to readers, so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, GpuState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rings `bell` on every later change.
    pub fn add_reader(&self, bell: Doorbell) {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(bell);
    }

    /// Wakes every reader.
    pub fn notify(&self) {
        for bell in self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            bell.ring();
        }
    }

    /// Forgets all resources and scanout bindings: a new driver session
    /// (guest reboot or driver reload) starts from nothing, and readers
    /// drop every picture of the old one.
    pub fn reset(&self) {
        {
            let mut state = self.lock();
            state.resources.clear();
            for s in &mut state.scanouts {
                s.unbind();
                s.hide_cursor();
            }
        }
        self.notify();
    }

    /// QEMU has gone: readers get `Closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify();
        let left_out = self.refusal_log().take_left_out();
        if left_out > 0 {
            warn!(
                left_out,
                "{left_out} more guest commands were refused (not logged)"
            );
        }
    }

    fn refusal_log(&self) -> MutexGuard<'_, LogLimiter> {
        self.refusal_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a refused command and logs it, the first of a burst in full,
    /// then at most one line per [`REFUSAL_LOG_INTERVAL`] with how many
    /// were left out: a guest flooding junk cannot flood the log.
    fn refused(&self, command: &str, refusal: &Refusal) {
        Stats::add(&self.stats.errors, 1);
        if refusal.is_out_of_memory() {
            Stats::add(&self.stats.memory_refusals, 1);
        }
        match self.refusal_log().note(Instant::now()) {
            Some(0) => warn!(command, %refusal, "refused guest command"),
            Some(left_out) => warn!(
                command,
                %refusal,
                left_out,
                "refused guest command ({left_out} more refused since the last line, not logged)"
            ),
            None => {}
        }
    }

    /// Runs one control-queue request; returns the response bytes.
    pub fn control(&self, request: &[u8], mem: &GuestMemoryMmap) -> Vec<u8> {
        Stats::add(&self.stats.commands, 1);
        let hdr = commands::decode_header(request).unwrap_or_default();
        match self.run_control(request, mem) {
            Ok(response) => response.encode(&hdr),
            Err((command, refusal)) => {
                self.refused(command, &refusal);
                commands::encode_error(&hdr, refusal.response_type())
            }
        }
    }

    fn run_control(
        &self,
        request: &[u8],
        mem: &GuestMemoryMmap,
    ) -> Result<Response, (&'static str, Refusal)> {
        let cmd = commands::decode(request).map_err(|e| ("undecodable", Refusal::from(e)))?;
        let name = cmd.name();
        // Also every command that takes pages back: a reader may hold a
        // picture of them, shown or not, and must drop it.
        let wakes_readers = matches!(
            cmd,
            Command::ResourceFlush { .. }
                | Command::SetScanout { .. }
                | Command::ResourceUnref { .. }
                | Command::DetachBacking { .. }
        );
        trace!(?cmd, "control command");
        let response = self
            .lock()
            .execute(cmd, mem, (&self.stats, &self.flush_stamps))
            .map_err(|refusal| (name, refusal))?;
        if wakes_readers {
            self.notify();
        }
        Ok(response)
    }

    /// Runs one cursor-queue request (the cursor queue has no responses).
    pub fn cursor(&self, request: &[u8]) {
        Stats::add(&self.stats.commands, 1);
        let result = commands::decode(request)
            .map_err(Refusal::from)
            .and_then(|cmd| self.lock().cursor(&cmd));
        if let Err(refusal) = result {
            self.refused("cursor queue", &refusal);
        }
    }
}

impl GpuState {
    fn scanout_index(&self, id: u32) -> Result<usize, Refusal> {
        let index = id as usize;
        if index < self.scanouts.len() {
            Ok(index)
        } else {
            Err(Refusal::BadScanout {
                id,
                count: self.scanouts.len(),
            })
        }
    }

    /// Checks and applies one control command.
    fn execute(
        &mut self,
        cmd: Command,
        mem: &GuestMemoryMmap,
        (stats, flush_stamps): (&Stats, &FlushStamps),
    ) -> Result<Response, Refusal> {
        match cmd {
            Command::GetDisplayInfo => Ok(Response::DisplayInfo(
                self.scanouts.iter().map(Scanout::display_mode).collect(),
            )),
            Command::GetEdid { scanout_id } => {
                let index = self.scanout_index(scanout_id)?;
                let (w, h) = self.scanouts[index].mode();
                Ok(Response::Edid(edid::generate(scanout_id, w, h).to_vec()))
            }
            Command::ResourceCreate2d {
                resource_id,
                format,
                width,
                height,
            } => {
                self.resources.create(resource_id, format, width, height)?;
                Ok(Response::NoData)
            }
            Command::ResourceUnref { resource_id } => {
                self.resources.unref(resource_id)?;
                for s in &mut self.scanouts {
                    if s.resource_id() == resource_id {
                        s.unbind();
                    }
                }
                Ok(Response::NoData)
            }
            Command::SetScanout {
                scanout_id,
                resource_id,
                rect,
            } => {
                let index = self.scanout_index(scanout_id)?;
                if resource_id != 0 {
                    let r = self.resources.get(resource_id)?;
                    if !rect.is_inside(r.width(), r.height()) {
                        return Err(Refusal::RectOutside {
                            rect,
                            width: r.width(),
                            height: r.height(),
                        });
                    }
                    if !r.has_backing() {
                        return Err(Refusal::NotBacked(resource_id));
                    }
                }
                if resource_id == 0 {
                    self.scanouts[index].unbind();
                } else {
                    self.scanouts[index].show(resource_id, rect);
                }
                Ok(Response::NoData)
            }
            Command::ResourceFlush { resource_id, rect } => {
                let r = self.resources.get(resource_id)?;
                if !rect.is_inside(r.width(), r.height()) {
                    return Err(Refusal::RectOutside {
                        rect,
                        width: r.width(),
                        height: r.height(),
                    });
                }
                Stats::add(&stats.flushes, 1);
                let now = Instant::now();
                for s in &mut self.scanouts {
                    s.flushed(resource_id, &rect, now);
                }
                if flush_stamps.is_on() {
                    let picture = self
                        .scanouts
                        .first()
                        .and_then(|s| s.picture(&self.resources));
                    if let Some(frame) = picture.as_ref().and_then(|p| p.frame()) {
                        flush_stamps.flushed(&frame, std::time::SystemTime::now());
                    }
                }
                Ok(Response::NoData)
            }
            Command::TransferToHost2d {
                resource_id,
                rect,
                offset,
            } => {
                self.resources
                    .transfer(resource_id, mem, rect, offset, stats)?;
                Stats::add(&stats.transfers, 1);
                Ok(Response::NoData)
            }
            Command::AttachBacking {
                resource_id,
                entries,
            } => {
                self.resources.attach(resource_id, mem, entries, stats)?;
                Ok(Response::NoData)
            }
            Command::DetachBacking { resource_id } => {
                self.resources.detach(resource_id)?;
                for s in &mut self.scanouts {
                    if s.resource_id() == resource_id {
                        s.invalidate();
                    }
                }
                Ok(Response::NoData)
            }
            Command::UpdateCursor(_) | Command::MoveCursor(_) => {
                Err(Refusal::WrongQueue(cmd.name()))
            }
        }
    }

    /// Checks and applies one cursor command.
    fn cursor(&mut self, cmd: &Command) -> Result<(), Refusal> {
        match cmd {
            Command::UpdateCursor(c) => {
                let index = self.scanout_index(c.scanout_id)?;
                let image = match c.resource_id {
                    0 => None,
                    id => {
                        let resource = self.resources.get(id)?;
                        Some(Arc::new(resource.cursor_image(id, (c.hot_x, c.hot_y))?))
                    }
                };
                self.scanouts[index].update_cursor(c, image);
                Ok(())
            }
            Command::MoveCursor(c) => {
                let index = self.scanout_index(c.scanout_id)?;
                self.scanouts[index].move_cursor(c);
                Ok(())
            }
            other => Err(Refusal::WrongQueue(other.name())),
        }
    }
}

/// The header type of a response, for tests.
#[cfg(test)]
pub(crate) fn response_type(response: &[u8]) -> u32 {
    commands::decode_header(response).map_or(0, |h| h.type_.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::MappingBudget;
    use crate::commands::{build, MAX_BACKING_ENTRIES};
    use crate::config::{DEFAULT_MAX_HOSTMEM, DEFAULT_PROCESS_MAPPINGS};
    use crate::protocol::*;
    use crate::source::ScanoutSource;
    use crate::table::ResourceTable;
    use crate::testutil::{memfd_memory, rect, HIGH_REGION, XRGB};
    use std::sync::Arc;
    use vm_memory::{Bytes, GuestAddress};
    use zerocast_frame::{FrameSource, SourceEvent};

    fn anon_memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    fn device(scanouts: Vec<(u32, u32)>) -> Shared {
        Shared::new(&GpuConfig {
            scanouts,
            ..GpuConfig::default()
        })
    }

    /// Sends one request and returns the response type.
    fn send(dev: &Shared, mem: &GuestMemoryMmap, request: Vec<u8>) -> u32 {
        response_type(&dev.control(&request, mem))
    }

    /// A 64x16 resource 1 backed by the first 4 KiB of guest memory.
    fn backed_resource(dev: &Shared, mem: &GuestMemoryMmap) {
        assert_eq!(
            send(dev, mem, build::create_2d(1, XRGB, 64, 16)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(dev, mem, build::attach(1, &[(0, 4096)])),
            RESP_OK_NODATA
        );
    }

    #[test]
    fn display_info_and_edid_describe_the_configured_scanouts() {
        let dev = device(vec![(1280, 800), (1920, 1080)]);
        let mem = anon_memory();
        let info = dev.control(&build::get_display_info(), &mem);
        assert_eq!(response_type(&info), RESP_OK_DISPLAY_INFO);
        let one = |i: usize, field: usize| {
            let at = 24 + i * 24 + field * 4;
            u32::from_le_bytes(info[at..at + 4].try_into().unwrap())
        };
        assert_eq!((one(0, 2), one(0, 3), one(0, 4)), (1280, 800, 1));
        assert_eq!((one(1, 2), one(1, 3), one(1, 4)), (1920, 1080, 1));
        assert_eq!(one(2, 4), 0);

        dev.lock().scanouts[1].set_enabled(false);
        let info = dev.control(&build::get_display_info(), &mem);
        assert_eq!(
            u32::from_le_bytes(info[24 + 24 + 16..][..4].try_into().unwrap()),
            0
        );

        let edid = dev.control(&build::get_edid(1), &mem);
        assert_eq!(response_type(&edid), RESP_OK_EDID);
        assert_eq!(u32::from_le_bytes(edid[24..28].try_into().unwrap()), 128);
        assert_eq!(
            send(&dev, &mem, build::get_edid(2)),
            RESP_ERR_INVALID_SCANOUT_ID
        );
    }

    #[test]
    fn create_refuses_bad_ids_formats_and_sizes() {
        let dev = device(vec![(1280, 800)]);
        let mem = anon_memory();
        assert_eq!(
            send(&dev, &mem, build::create_2d(0, XRGB, 64, 64)),
            RESP_ERR_INVALID_RESOURCE_ID
        );
        assert_eq!(
            send(&dev, &mem, build::create_2d(1, XRGB, 64, 64)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::create_2d(1, XRGB, 64, 64)),
            RESP_ERR_INVALID_RESOURCE_ID
        );
        assert_eq!(
            send(&dev, &mem, build::create_2d(2, 3, 64, 64)),
            RESP_ERR_INVALID_PARAMETER
        );
        assert_eq!(
            send(&dev, &mem, build::create_2d(2, 9999, 64, 64)),
            RESP_ERR_INVALID_PARAMETER
        );
        for (w, h) in [
            (0, 64),
            (64, 0),
            (8193, 64),
            (64, 8193),
            (u32::MAX, u32::MAX),
        ] {
            assert_eq!(
                send(&dev, &mem, build::create_2d(2, XRGB, w, h)),
                RESP_ERR_INVALID_PARAMETER
            );
        }
        assert_eq!(
            send(&dev, &mem, build::create_2d(2, XRGB, 8192, 8192)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::unref(3)),
            RESP_ERR_INVALID_RESOURCE_ID
        );
        assert_eq!(send(&dev, &mem, build::unref(2)), RESP_OK_NODATA);
        assert_eq!(
            send(&dev, &mem, build::unref(2)),
            RESP_ERR_INVALID_RESOURCE_ID
        );
    }

    #[test]
    fn attach_refuses_hostile_backing() {
        let dev = device(vec![(1280, 800)]);
        let mem = anon_memory();
        assert_eq!(
            send(&dev, &mem, build::attach(1, &[(0, 4096)])),
            RESP_ERR_INVALID_RESOURCE_ID
        );
        assert_eq!(
            send(&dev, &mem, build::create_2d(1, XRGB, 64, 16)),
            RESP_OK_NODATA
        );
        let bad = [
            vec![],                       // no entries
            vec![(0, 0)],                 // empty entry
            vec![(1 << 20, 4096)],        // just past the end of guest memory
            vec![((1 << 20) - 8, 4096)],  // straddling the end
            vec![(u64::MAX - 100, 4096)], // wrapping around
        ];
        for entries in bad {
            let resp = send(&dev, &mem, build::attach(1, &entries));
            assert_eq!(resp, RESP_ERR_INVALID_PARAMETER, "{entries:?}");
        }
        let too_many = vec![(0, 16); MAX_BACKING_ENTRIES as usize + 1];
        assert_eq!(
            send(&dev, &mem, build::attach(1, &too_many)),
            RESP_ERR_INVALID_PARAMETER
        );
        assert_eq!(send(&dev, &mem, build::detach(1)), RESP_ERR_UNSPEC);
        assert_eq!(
            send(&dev, &mem, build::attach(1, &[(0, 4096)])),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::attach(1, &[(0, 4096)])),
            RESP_ERR_UNSPEC
        );
        assert_eq!(send(&dev, &mem, build::detach(1)), RESP_OK_NODATA);
        assert_eq!(dev.stats.snapshot().errors, 9);
    }

    #[test]
    fn scanout_and_flush_check_ids_and_rectangles() {
        let dev = device(vec![(1280, 800)]);
        let mem = anon_memory();
        assert_eq!(
            send(&dev, &mem, build::create_2d(1, XRGB, 64, 16)),
            RESP_OK_NODATA
        );
        // No backing yet.
        assert_eq!(
            send(&dev, &mem, build::set_scanout(0, 1, rect(0, 0, 64, 16))),
            RESP_ERR_UNSPEC
        );
        assert_eq!(
            send(&dev, &mem, build::attach(1, &[(0, 4096)])),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::set_scanout(1, 1, rect(0, 0, 64, 16))),
            RESP_ERR_INVALID_SCANOUT_ID
        );
        assert_eq!(
            send(
                &dev,
                &mem,
                build::set_scanout(u32::MAX, 1, rect(0, 0, 64, 16))
            ),
            RESP_ERR_INVALID_SCANOUT_ID
        );
        assert_eq!(
            send(&dev, &mem, build::set_scanout(0, 9, rect(0, 0, 64, 16))),
            RESP_ERR_INVALID_RESOURCE_ID
        );
        for r in [
            rect(1, 0, 64, 16),
            rect(0, 0, 65, 16),
            rect(0, 0, 0, 16),
            rect(u32::MAX, 0, 2, 2),
        ] {
            assert_eq!(
                send(&dev, &mem, build::set_scanout(0, 1, r)),
                RESP_ERR_INVALID_PARAMETER
            );
            assert_eq!(
                send(&dev, &mem, build::flush(1, r)),
                RESP_ERR_INVALID_PARAMETER
            );
        }
        assert_eq!(
            send(&dev, &mem, build::set_scanout(0, 1, rect(0, 0, 64, 16))),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::flush(2, rect(0, 0, 1, 1))),
            RESP_ERR_INVALID_RESOURCE_ID
        );
        assert_eq!(
            send(&dev, &mem, build::flush(1, rect(0, 0, 1, 1))),
            RESP_OK_NODATA
        );
        // Disabling a scanout with resource 0 is fine; unknown scanouts are not.
        assert_eq!(
            send(&dev, &mem, build::set_scanout(0, 0, rect(0, 0, 0, 0))),
            RESP_OK_NODATA
        );
        assert_eq!(dev.stats.snapshot().flushes, 1);
    }

    #[test]
    fn transfer_checks_rectangle_offset_and_backing() {
        let dev = device(vec![(1280, 800)]);
        let mem = anon_memory();
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 0, 1, 1), 0)),
            RESP_ERR_INVALID_RESOURCE_ID
        );
        assert_eq!(
            send(&dev, &mem, build::create_2d(1, XRGB, 64, 16)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 0, 64, 16), 0)),
            RESP_ERR_UNSPEC
        );
        assert_eq!(
            send(&dev, &mem, build::attach(1, &[(0, 4096)])),
            RESP_OK_NODATA
        );
        let refused = [
            (rect(0, 0, 65, 16), 0),             // wider than the resource
            (rect(0, 15, 64, 2), 0),             // below its bottom
            (rect(u32::MAX, u32::MAX, 2, 2), 0), // wrapping coordinates
            (rect(0, 0, 64, 16), 1),             // one byte past the backing
            (rect(0, 0, 64, 16), u64::MAX),      // offset overflow
            (rect(0, 0, 1, 1), u64::MAX - 2),    // offset + row overflow
        ];
        for (r, offset) in refused {
            let resp = send(&dev, &mem, build::transfer(1, r, offset));
            assert_eq!(resp, RESP_ERR_INVALID_PARAMETER, "{r:?} at {offset}");
        }
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 0, 64, 16), 0)),
            RESP_OK_NODATA
        );
        assert_eq!(dev.stats.snapshot().transfers, 1);
    }

    /// A 64x64 cursor resource 2 (`format`) backed by 16 KiB at 64 KiB,
    /// each pixel's bytes 1, 2, 3 and its row as byte 3.
    fn cursor_resource(dev: &Shared, mem: &GuestMemoryMmap, format: u32) {
        let mut pixels = Vec::new();
        for y in 0..64u8 {
            for _ in 0..64 {
                pixels.extend_from_slice(&[1, 2, 3, y]);
            }
        }
        mem.write_slice(&pixels, GuestAddress(0x10000)).unwrap();
        for request in [
            build::create_2d(2, format, 64, 64),
            build::attach(2, &[(0x10000, 16384)]),
        ] {
            assert_eq!(send(dev, mem, request), RESP_OK_NODATA);
        }
    }

    #[test]
    fn flushed_stamps_are_noted_only_once_asked() {
        let dev = device(vec![(1280, 800)]);
        let mem = memfd_memory(1 << 20);
        let (w, h) = (zerocast_frame::stamp::WIDTH, zerocast_frame::stamp::BLOCK);
        let stamped = |n| {
            let mut px = vec![0x80u8; (w * h * 4) as usize];
            zerocast_frame::stamp::draw(&mut px, w, h, (w * 4) as usize, n);
            px
        };
        mem.write_slice(&stamped(7), GuestAddress(0x10000)).unwrap();
        for request in [
            build::create_2d(1, XRGB, w, h),
            build::attach(1, &[(0x10000, w * h * 4)]),
            build::set_scanout(0, 1, rect(0, 0, w, h)),
            build::flush(1, rect(0, 0, w, h)),
        ] {
            assert_eq!(send(&dev, &mem, request), RESP_OK_NODATA);
        }
        assert!(dev.flush_stamps.entries().is_empty(), "off by default");
        dev.flush_stamps.record(true);
        mem.write_slice(&stamped(8), GuestAddress(0x10000)).unwrap();
        assert_eq!(
            send(&dev, &mem, build::flush(1, rect(0, 0, w, h))),
            RESP_OK_NODATA
        );
        let noted: Vec<u32> = dev.flush_stamps.entries().iter().map(|e| e.0).collect();
        assert_eq!(noted, [8]);
    }

    #[test]
    fn cursor_commands_track_position_and_refuse_bad_ids() {
        let dev = device(vec![(1280, 800)]);
        let mem = anon_memory();
        cursor_resource(&dev, &mem, XRGB);
        dev.cursor(&build::update_cursor(0, (10, 20), 2, (3, 4)));
        dev.cursor(&build::cursor(CMD_MOVE_CURSOR, 0, 30, 40, 0));
        let c = dev.lock().scanouts[0].cursor();
        assert!(c.image.is_some());
        assert_eq!(
            (c.x, c.y, c.hot_x, c.hot_y, c.generation),
            (30, 40, 3, 4, 1)
        );
        dev.cursor(&build::cursor(CMD_MOVE_CURSOR, 5, 1, 1, 0));
        dev.cursor(&build::cursor(CMD_UPDATE_CURSOR, 0, 1, 1, 77));
        dev.cursor(&build::get_display_info());
        dev.cursor(&[1, 2, 3]);
        assert_eq!(dev.stats.snapshot().errors, 4);
        // Cursor commands on the control queue are refused too.
        assert_eq!(
            send(&dev, &mem, build::cursor(CMD_MOVE_CURSOR, 0, 1, 1, 0)),
            RESP_ERR_UNSPEC
        );
        assert_eq!(send(&dev, &mem, vec![0; 3]), RESP_ERR_UNSPEC);
        // Resource 0 hides it.
        dev.cursor(&build::cursor(CMD_UPDATE_CURSOR, 0, 1, 1, 0));
        let c = dev.lock().scanouts[0].cursor();
        assert!(c.image.is_none());
        assert_eq!(c.generation, 2);
    }

    #[test]
    fn the_cursor_image_is_copied_once_as_rgba_and_outlives_its_resource() {
        const RGBA: u32 = 67; // VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM
        for (format, want) in [(XRGB, [3, 2, 1]), (RGBA, [1, 2, 3])] {
            let dev = device(vec![(1280, 800)]);
            let mem = memfd_memory(1 << 20);
            cursor_resource(&dev, &mem, format);
            dev.cursor(&build::update_cursor(0, (100, 50), 2, (63, 0)));
            assert_eq!(dev.stats.snapshot().errors, 0);
            let image = dev.lock().scanouts[0].cursor().image.unwrap();
            assert_eq!(
                (image.width(), image.height(), image.hotspot()),
                (64, 64, (63, 0))
            );
            let rgba = image.rgba();
            assert_eq!(rgba.len(), 64 * 64 * 4);
            // Byte 3 is alpha even in an X format; row 9's pixels carry 9.
            assert_eq!(&rgba[..4], &[want[0], want[1], want[2], 0]);
            assert_eq!(
                &rgba[9 * 256 + 4..9 * 256 + 8],
                &[want[0], want[1], want[2], 9]
            );
            // The guest frees and reuses the pages: the image stays.
            assert_eq!(send(&dev, &mem, build::unref(2)), RESP_OK_NODATA);
            mem.write_slice(&[0xEE; 16384], GuestAddress(0x10000))
                .unwrap();
            let kept = dev.lock().scanouts[0].cursor().image.unwrap();
            assert_eq!(kept.rgba(), rgba);
        }
    }

    #[test]
    fn hostile_cursor_updates_are_refused_counted_and_change_nothing() {
        let dev = device(vec![(1280, 800)]);
        let mem = memfd_memory(1 << 20);
        cursor_resource(&dev, &mem, XRGB);
        dev.cursor(&build::update_cursor(0, (1, 1), 2, (0, 0)));
        let before = dev.lock().scanouts[0].cursor();
        // Resource 1 is 64x16: not a cursor. Resource 3 has no backing,
        // resource 4 a backing of one page for four.
        backed_resource(&dev, &mem);
        for request in [
            build::create_2d(3, XRGB, 64, 64),
            build::create_2d(4, XRGB, 64, 64),
            build::attach(4, &[(0x20000, 4096)]),
        ] {
            assert_eq!(send(&dev, &mem, request), RESP_OK_NODATA);
        }
        let hostile = [
            build::update_cursor(0, (5, 5), 1, (0, 0)),
            build::update_cursor(0, (5, 5), 3, (0, 0)),
            build::update_cursor(0, (5, 5), 4, (0, 0)),
            build::update_cursor(0, (5, 5), 9, (0, 0)),
            build::update_cursor(0, (5, 5), 2, (64, 0)),
            build::update_cursor(0, (5, 5), 2, (0, u32::MAX)),
            build::update_cursor(1, (5, 5), 2, (0, 0)),
        ];
        let n = hostile.len();
        for request in hostile {
            dev.cursor(&request);
        }
        assert_eq!(dev.stats.snapshot().errors, u64::try_from(n).unwrap());
        let after = dev.lock().scanouts[0].cursor();
        assert_eq!((after.x, after.generation), (before.x, before.generation));
        assert_eq!(after.image, before.image);
    }

    #[test]
    fn unaligned_backing_is_copied_on_transfer_and_counted() {
        let dev = device(vec![(1280, 800)]);
        let mem = memfd_memory(1 << 20);
        // 16x2 pixels = 128 bytes, backed by two unaligned 64-byte chunks in reverse order.
        mem.write_slice(&[0xAA; 64], GuestAddress(0x2010)).unwrap();
        mem.write_slice(&[0xBB; 64], GuestAddress(0x1010)).unwrap();
        assert_eq!(
            send(&dev, &mem, build::create_2d(1, XRGB, 16, 2)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::attach(1, &[(0x2010, 64), (0x1010, 64)])),
            RESP_OK_NODATA
        );
        assert_eq!(dev.stats.snapshot().copy_attaches, 1);
        // A transfer of the second row only, then the whole resource.
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 1, 16, 1), 64)),
            RESP_OK_NODATA
        );
        let snap = dev
            .lock()
            .resources
            .get(1)
            .unwrap()
            .snapshot(1, rect(0, 0, 16, 2))
            .unwrap();
        assert!(!snap.is_zero_copy());
        let data = snap.frame().unwrap().data().to_vec();
        assert_eq!(
            (&data[..64], &data[64..]),
            (&[0u8; 64][..], &[0xBB; 64][..])
        );
        // The reader still holds `snap`: the transfer copies the buffer first.
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 0, 16, 2), 0)),
            RESP_OK_NODATA
        );
        assert_eq!(snap.frame().unwrap().data()[0], 0);
        let snap = dev
            .lock()
            .resources
            .get(1)
            .unwrap()
            .snapshot(1, rect(0, 0, 16, 2))
            .unwrap();
        assert_eq!(snap.frame().unwrap().data()[0], 0xAA);
        assert_eq!(dev.stats.snapshot().bytes_copied, 64 + 128 + 128);
        // A column transfer copies row by row.
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(8, 0, 8, 2), 32)),
            RESP_OK_NODATA
        );
        assert_eq!(dev.stats.snapshot().bytes_copied, 64 + 128 + 128 + 128 + 64);
    }

    #[test]
    fn page_aligned_backing_is_mapped_and_transfers_copy_nothing() {
        let dev = device(vec![(1280, 800)]);
        let mem = memfd_memory(1 << 20);
        backed_resource(&dev, &mem);
        assert_eq!(dev.stats.snapshot().zero_copy_attaches, 1);
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 0, 64, 16), 0)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(
                &dev,
                &mem,
                build::transfer(1, rect(4, 2, 8, 8), 2 * 256 + 16)
            ),
            RESP_OK_NODATA
        );
        assert_eq!(dev.stats.snapshot().bytes_copied, 0);
        // An offset that disagrees with the packed layout moves it to the copy path.
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 0, 64, 1), 256)),
            RESP_OK_NODATA
        );
        assert_eq!(dev.stats.snapshot().bytes_copied, 4096 + 256);
        let snap = dev
            .lock()
            .resources
            .get(1)
            .unwrap()
            .snapshot(1, rect(0, 0, 64, 16))
            .unwrap();
        assert!(!snap.is_zero_copy());
    }

    const PAGE: u64 = 4096;

    /// A device with budgets of its own: tests run in parallel in one
    /// process, so none may count against the process-wide one.
    fn budgeted(max_hostmem: u64, per_resource: usize, mappings: u64) -> Shared {
        Shared::new(&GpuConfig {
            max_hostmem,
            max_mappings_per_resource: per_resource,
            mappings: MappingBudget::new(mappings),
            ..GpuConfig::default()
        })
    }

    /// Guest address of page `n` of `memfd_memory(size)`: the low half's
    /// pages, then the high region's.
    fn page_addr(n: u64, size: u64) -> u64 {
        let low_pages = size / 2 / PAGE;
        if n < low_pages {
            n * PAGE
        } else {
            HIGH_REGION + (n - low_pages) * PAGE
        }
    }

    /// Backing of `pages` pages, every other one from page `first` on: no
    /// two touch, so each needs a mapping of its own.
    fn alternating(first: u64, pages: u64, size: u64) -> Vec<(u64, u32)> {
        (0..pages)
            .map(|i| (page_addr(first + 2 * i, size), 4096))
            .collect()
    }

    /// What scanout 0 of `dev` shows now: the guest's picture (zero-copy or
    /// not, its bytes) or `None` for "no signal".
    fn shown(dev: &Arc<Shared>) -> Option<(bool, Vec<u8>)> {
        let mut source = ScanoutSource::new(dev.clone(), 0);
        assert!(matches!(
            source.poll(Instant::now()),
            SourceEvent::Changed { .. }
        ));
        let zero_copy = source.snapshot()?.is_zero_copy();
        Some((zero_copy, source.frame()?.data().to_vec()))
    }

    #[test]
    fn the_scattered_pages_attack_takes_no_mappings_and_stays_within_hostmem() {
        // As tried against the old device: 4 resources (4096x4096) of 16,384
        // alternating pages each, 65,536 mappings in all, past the default
        // vm.max_map_count. Default budgets, the process one a private copy.
        let size = 4 * 16_384 * 2 * PAGE;
        let mem = memfd_memory(size);
        let dev = budgeted(
            DEFAULT_MAX_HOSTMEM,
            crate::config::DEFAULT_MAX_MAPPINGS_PER_RESOURCE,
            DEFAULT_PROCESS_MAPPINGS,
        );
        let mut attached = Vec::new();
        for r in 0..4u32 {
            let first = u64::from(r) * 2 * 16_384;
            assert_eq!(
                send(&dev, &mem, build::create_2d(r + 1, XRGB, 4096, 4096)),
                RESP_OK_NODATA
            );
            let entries = alternating(first, 16_384, size);
            attached.push(send(&dev, &mem, build::attach(r + 1, &entries)));
        }
        // Three copy buffers of 64 MiB fit the 256 MiB budget, a fourth not.
        assert_eq!(
            attached,
            [
                RESP_OK_NODATA,
                RESP_OK_NODATA,
                RESP_OK_NODATA,
                RESP_ERR_OUT_OF_MEMORY
            ]
        );
        let s = dev.stats.snapshot();
        assert_eq!(
            s.mappings_in_use, 0,
            "16,384 mappings pass 1,024 per resource"
        );
        assert_eq!((s.copy_fallbacks, s.copy_attaches), (3, 3));
        assert_eq!(s.memory_refusals, 1);
        let table = 16_384 * 24;
        assert_eq!(s.host_bytes_in_use, 3 * (64 << 20) + 3 * table);
        assert!(s.host_bytes_in_use <= DEFAULT_MAX_HOSTMEM);
        dev.reset();
        assert_eq!(dev.stats.snapshot().host_bytes_in_use, 0);
    }

    #[test]
    fn scattered_backings_map_within_the_budget_and_later_ones_are_copied_correctly() {
        // 64 mappings per resource, 256 for the process: four resources of 64
        // alternating pages map, the fifth and sixth are copied.
        let size = 8 << 20;
        let mem = memfd_memory(size);
        let dev = Arc::new(budgeted(DEFAULT_MAX_HOSTMEM, 64, 256));
        for r in 0..6u32 {
            let first = u64::from(r) * 2 * 64;
            // Each page of the backing holds its own number in every byte.
            for (i, (addr, _)) in alternating(first, 64, size).into_iter().enumerate() {
                let fill = vec![u8::try_from(i).unwrap() + 1; 4096];
                mem.write_slice(&fill, GuestAddress(addr)).unwrap();
            }
            // 256x256 XRGB: 64 pages.
            assert_eq!(
                send(&dev, &mem, build::create_2d(r + 1, XRGB, 256, 256)),
                RESP_OK_NODATA
            );
            let entries = alternating(first, 64, size);
            assert_eq!(
                send(&dev, &mem, build::attach(r + 1, &entries)),
                RESP_OK_NODATA
            );
        }
        let s = dev.stats.snapshot();
        assert_eq!(s.mappings_in_use, 256);
        assert_eq!((s.zero_copy_attaches, s.copy_fallbacks), (4, 2));
        // A copied one shows the guest's pixels once transferred.
        for request in [
            build::set_scanout(0, 6, rect(0, 0, 256, 256)),
            build::transfer(6, rect(0, 0, 256, 256), 0),
            build::flush(6, rect(0, 0, 256, 256)),
        ] {
            assert_eq!(send(&dev, &mem, request), RESP_OK_NODATA);
        }
        let (zero_copy, pixels) = shown(&dev).unwrap();
        assert!(!zero_copy);
        for (i, page) in pixels.chunks(4096).enumerate() {
            let want = u8::try_from(i).unwrap() + 1;
            assert!(page.iter().all(|&b| b == want), "page {i}");
        }
        assert_eq!(dev.stats.snapshot().bytes_copied, 256 * 256 * 4);
        // Freeing a mapped one gives its mappings back: the next one maps.
        assert_eq!(send(&dev, &mem, build::unref(1)), RESP_OK_NODATA);
        assert_eq!(dev.stats.snapshot().mappings_in_use, 192);
        assert_eq!(send(&dev, &mem, build::detach(6)), RESP_OK_NODATA);
        let entries = alternating(0, 64, size);
        assert_eq!(send(&dev, &mem, build::attach(6, &entries)), RESP_OK_NODATA);
        let s = dev.stats.snapshot();
        assert_eq!((s.mappings_in_use, s.zero_copy_attaches), (256, 5));
        assert_eq!(s.errors, 0);
    }

    #[test]
    fn a_one_byte_unaligned_backing_costs_bytes_and_shows_nothing() {
        let mem = memfd_memory(1 << 20);
        let dev = Arc::new(budgeted(DEFAULT_MAX_HOSTMEM, 1024, 16));
        // 8192x8192: a 256 MiB resource, and one byte of backing.
        assert_eq!(
            send(&dev, &mem, build::create_2d(1, XRGB, 8192, 8192)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::attach(1, &[(0x1001, 1)])),
            RESP_OK_NODATA
        );
        let s = dev.stats.snapshot();
        assert_eq!(s.copy_attaches, 1);
        assert_eq!(s.host_bytes_in_use, 1 + 24, "the byte and its table entry");
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 0, 1, 1), 0)),
            RESP_ERR_INVALID_PARAMETER
        );
        for request in [
            build::set_scanout(0, 1, rect(0, 0, 1280, 800)),
            build::flush(1, rect(0, 0, 1280, 800)),
        ] {
            assert_eq!(send(&dev, &mem, request), RESP_OK_NODATA);
        }
        assert_eq!(shown(&dev), None, "no signal, never bytes past the backing");
        assert!(ResourceTable::new(dev.clone()).get(1).is_none());
        assert_eq!(dev.stats.snapshot().bytes_copied, 0);
    }

    #[test]
    fn a_backing_shorter_than_the_resource_shows_only_the_part_it_holds() {
        let mem = memfd_memory(1 << 20);
        mem.write_slice(&[0x33; 4096], GuestAddress(0)).unwrap();
        let dev = Arc::new(budgeted(DEFAULT_MAX_HOSTMEM, 1024, 16));
        // 64x32 is two pages; the guest gives one, mapped.
        for request in [
            build::create_2d(1, XRGB, 64, 32),
            build::attach(1, &[(0, 4096)]),
            build::set_scanout(0, 1, rect(0, 0, 64, 32)),
            build::flush(1, rect(0, 0, 64, 32)),
        ] {
            assert_eq!(send(&dev, &mem, request), RESP_OK_NODATA);
        }
        assert_eq!(shown(&dev), None);
        // A transfer whose rows lie past the backing is refused, mapped or not.
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 16, 64, 1), 0)),
            RESP_ERR_INVALID_PARAMETER
        );
        assert_eq!(
            send(&dev, &mem, build::transfer(1, rect(0, 0, 64, 32), 0)),
            RESP_ERR_INVALID_PARAMETER
        );
        // The top half is all the backing holds: that is shown.
        for request in [
            build::set_scanout(0, 1, rect(0, 0, 64, 16)),
            build::flush(1, rect(0, 0, 64, 16)),
        ] {
            assert_eq!(send(&dev, &mem, request), RESP_OK_NODATA);
        }
        assert_eq!(shown(&dev), Some((true, vec![0x33; 4096])));
    }

    #[test]
    fn the_hostmem_budget_refuses_copies_and_clones_past_it() {
        let mem = memfd_memory(8 << 20);
        let dev = budgeted(1 << 20, 1024, 16);
        // 1024x512 (2 MiB), unaligned so copied: past the 1 MiB budget.
        assert_eq!(
            send(&dev, &mem, build::create_2d(1, XRGB, 1024, 512)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::attach(1, &[(0x10, 2 << 20)])),
            RESP_ERR_OUT_OF_MEMORY
        );
        let s = dev.stats.snapshot();
        assert_eq!((s.host_bytes_in_use, s.memory_refusals), (0, 1));
        assert_eq!(
            send(&dev, &mem, build::set_scanout(0, 1, rect(0, 0, 64, 64))),
            RESP_ERR_UNSPEC,
            "resource 1 has no backing"
        );
        // 512x256 (512 KiB) fits, once.
        assert_eq!(
            send(&dev, &mem, build::create_2d(2, XRGB, 512, 256)),
            RESP_OK_NODATA
        );
        assert_eq!(
            send(&dev, &mem, build::attach(2, &[(0x10, 512 << 10)])),
            RESP_OK_NODATA
        );
        assert_eq!(dev.stats.snapshot().host_bytes_in_use, (512 << 10) + 24);
        let full = rect(0, 0, 512, 256);
        assert_eq!(
            send(&dev, &mem, build::transfer(2, full, 0)),
            RESP_OK_NODATA
        );
        // A reader holds the picture: a new one would need a second buffer,
        // past the budget.
        let held = dev.lock().resources.get(2).unwrap().snapshot(2, full);
        assert_eq!(
            send(&dev, &mem, build::transfer(2, full, 0)),
            RESP_ERR_OUT_OF_MEMORY
        );
        assert_eq!(dev.stats.snapshot().memory_refusals, 2);
        drop(held);
        assert_eq!(
            send(&dev, &mem, build::transfer(2, full, 0)),
            RESP_OK_NODATA
        );
        assert_eq!(send(&dev, &mem, build::unref(2)), RESP_OK_NODATA);
        assert_eq!(dev.stats.snapshot().host_bytes_in_use, 0);
    }
}
