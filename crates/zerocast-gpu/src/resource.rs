//! The resource table: resource id -> size, format, backing and pixels, with
//! every guest value checked (ids, formats, sizes, rectangles, offsets) and
//! limits on what a guest can make the host hold.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::debug;
use vm_memory::GuestMemoryMmap;
use zerocast_frame::frame::MAX_DIMENSION;
use zerocast_frame::{CursorImage, PixelFormat};

use crate::backing::Backing;
use crate::budget::{Budget, HostBuffer};
use crate::commands::{BackingEntry, Rect};
use crate::mapping::{GuestMapping, MappingLimits};
use crate::protocol;
use crate::refusal::Refusal;
use crate::snapshot::{Pixels, ResourceSnapshot, Revocation};
use crate::stats::Stats;

/// Most resources a guest may hold at once (a desktop uses tens).
pub const MAX_RESOURCES: usize = 4096;

const BYTES_PER_PIXEL: u32 = 4;

/// The side of a virtio-gpu cursor image (QEMU takes no other size).
pub const CURSOR_SIDE: u32 = 64;

/// One 2D resource.
#[derive(Debug)]
pub(crate) struct Resource {
    width: u32,
    height: u32,
    format: PixelFormat,
    /// Bytes per row: virtio-gpu 2D resources are packed.
    stride: u32,
    /// The backing, its pixels, and the flag that cuts off every snapshot
    /// of them once they are dropped.
    backing: Option<(Backing, Pixels, Revocation)>,
}

impl Resource {
    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn has_backing(&self) -> bool {
        self.backing.is_some()
    }

    fn size(&self) -> u64 {
        u64::from(self.stride) * u64::from(self.height)
    }

    /// The part `rect` of the resource (inside it: checked on SET_SCANOUT),
    /// or `None` without backing or if the backing is too short for `rect`
    /// (the bytes past a backing are never shown).
    pub fn snapshot(&self, resource_id: u32, rect: Rect) -> Option<ResourceSnapshot> {
        let (_, pixels, revocation) = self.backing.as_ref()?;
        let offset = u64::from(rect.y) * u64::from(self.stride)
            + u64::from(rect.x) * u64::from(BYTES_PER_PIXEL);
        let snapshot = ResourceSnapshot {
            resource_id,
            width: rect.width,
            height: rect.height,
            stride: self.stride,
            format: self.format,
            offset: usize::try_from(offset).ok()?,
            pixels: pixels.clone(),
            revocation: revocation.clone(),
        };
        snapshot.frame().is_some().then_some(snapshot)
    }

    /// The resource as a cursor image with hotspot `hot`, copied (16 KiB)
    /// so that it outlives the resource. Byte 3 of each pixel is alpha
    /// whatever the format says: Linux makes cursors from XRGB dumb buffers
    /// and means ARGB (QEMU reads them so too).
    pub fn cursor_image(&self, id: u32, hot: (u32, u32)) -> Result<CursorImage, Refusal> {
        if (self.width, self.height) != (CURSOR_SIDE, CURSOR_SIDE) {
            return Err(Refusal::CursorSize {
                id,
                width: self.width,
                height: self.height,
            });
        }
        // The snapshot's frame is checked against the backing's length: no
        // row read below can pass its end.
        let snapshot = self
            .snapshot(id, self.full_rect())
            .ok_or(Refusal::CursorUnreadable(id))?;
        let frame = snapshot.frame().ok_or(Refusal::CursorUnreadable(id))?;
        let (side, stride) = (CURSOR_SIDE as usize, frame.stride() as usize);
        let row_len = side * BYTES_PER_PIXEL as usize;
        let mut rgba = Vec::with_capacity(row_len * side);
        for y in 0..side {
            let row = frame
                .data()
                .get(y * stride..y * stride + row_len)
                .ok_or(Refusal::CursorUnreadable(id))?;
            for px in row.chunks_exact(4) {
                let [r, g, b] = if self.format.is_bgr_order() {
                    [px[2], px[1], px[0]]
                } else {
                    [px[0], px[1], px[2]]
                };
                rgba.extend_from_slice(&[r, g, b, px[3]]);
            }
        }
        Ok(CursorImage::new(CURSOR_SIDE, CURSOR_SIDE, hot, rgba)?)
    }

    /// The whole resource.
    pub fn full_rect(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        }
    }
}

/// All resources of one guest.
#[derive(Debug)]
pub(crate) struct Resources {
    map: HashMap<u32, Resource>,
    /// Pays for copy buffers and backing tables (the device's `max_hostmem`).
    hostmem: Budget,
    /// What zero-copy views may take.
    mappings: MappingLimits,
}

impl Resources {
    pub fn new(hostmem: Budget, mappings: MappingLimits) -> Self {
        Resources {
            map: HashMap::new(),
            hostmem,
            mappings,
        }
    }

    pub fn get(&self, id: u32) -> Result<&Resource, Refusal> {
        if id == 0 {
            return Err(Refusal::ZeroResourceId);
        }
        self.map.get(&id).ok_or(Refusal::UnknownResource(id))
    }

    fn get_mut(&mut self, id: u32) -> Result<&mut Resource, Refusal> {
        if id == 0 {
            return Err(Refusal::ZeroResourceId);
        }
        self.map.get_mut(&id).ok_or(Refusal::UnknownResource(id))
    }

    pub fn ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.map.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn clear(&mut self) {
        for (_, r) in self.map.drain() {
            revoke(&r.backing);
        }
    }

    pub fn create(&mut self, id: u32, format: u32, width: u32, height: u32) -> Result<(), Refusal> {
        if id == 0 {
            return Err(Refusal::ZeroResourceId);
        }
        if self.map.contains_key(&id) {
            return Err(Refusal::DuplicateResource(id));
        }
        let format = protocol::pixel_format(format).ok_or(Refusal::UnsupportedFormat(format))?;
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(Refusal::BadSize {
                width,
                height,
                max: MAX_DIMENSION,
            });
        }
        if self.map.len() >= MAX_RESOURCES {
            return Err(Refusal::TooManyResources(MAX_RESOURCES));
        }
        // Cannot overflow: 8192 * 4 fits a u32 easily.
        let stride = width * BYTES_PER_PIXEL;
        let resource = Resource {
            width,
            height,
            format,
            stride,
            backing: None,
        };
        self.map.insert(id, resource);
        Ok(())
    }

    pub fn unref(&mut self, id: u32) -> Result<(), Refusal> {
        self.get(id)?;
        if let Some(r) = self.map.remove(&id) {
            revoke(&r.backing);
        }
        Ok(())
    }

    /// Checks the guest's scatter-gather list, then maps it (zero-copy) or,
    /// if it cannot be mapped or the mapping budgets say no, gives the
    /// resource a host buffer as long as the backing to copy into.
    pub fn attach(
        &mut self,
        id: u32,
        mem: &GuestMemoryMmap,
        entries: Vec<BackingEntry>,
        stats: &Stats,
    ) -> Result<(), Refusal> {
        let resource = self.get(id)?;
        if resource.has_backing() {
            return Err(Refusal::AlreadyBacked(id));
        }
        let size = resource.size();
        let backing = Backing::new(mem, entries, &self.hostmem)?;
        let pixels = match GuestMapping::new(mem, backing.entries(), &self.mappings) {
            Ok(mapping) => {
                debug!(
                    resource = id,
                    entries = backing.entries().len(),
                    mmaps = mapping.chunks(),
                    "backing mapped without copying"
                );
                Stats::add(&stats.zero_copy_attaches, 1);
                Pixels::Mapped(Arc::new(mapping))
            }
            Err(why) => {
                debug!(resource = id, %why, "backing cannot be mapped: copying on transfer");
                let buffer = self.copy_buffer(size, &backing)?;
                if why.is_budget() {
                    Stats::add(&stats.copy_fallbacks, 1);
                }
                Stats::add(&stats.copy_attaches, 1);
                Pixels::Copied(Arc::new(buffer))
            }
        };
        self.get_mut(id)?.backing = Some((backing, pixels, Revocation::default()));
        Ok(())
    }

    /// A zeroed copy buffer for a resource of `size` bytes: as long as the
    /// backing, never longer than the resource (a 1-byte backing costs one
    /// byte, whatever the resource's size). Paid for from the budget.
    fn copy_buffer(&self, size: u64, backing: &Backing) -> Result<HostBuffer, Refusal> {
        let len = size.min(backing.len());
        // At most MAX_BACKING_BYTES: fits a usize on the 64-bit hosts we run on.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        Ok(HostBuffer::zeroed(&self.hostmem, len)?)
    }

    pub fn detach(&mut self, id: u32) -> Result<(), Refusal> {
        let backing = self.get_mut(id)?.backing.take();
        if backing.is_none() {
            return Err(Refusal::NotBacked(id));
        }
        revoke(&backing);
        Ok(())
    }

    /// `TRANSFER_TO_HOST_2D`: guest backing -> host view of `rect`. For a
    /// mapped backing the view already is the backing, so there is nothing to
    /// do unless the guest's offset disagrees with the packed layout; then the
    /// resource moves to the copy path for good.
    pub fn transfer(
        &mut self,
        id: u32,
        mem: &GuestMemoryMmap,
        rect: Rect,
        offset: u64,
        stats: &Stats,
    ) -> Result<(), Refusal> {
        let resource = self.get(id)?;
        if !rect.is_inside(resource.width, resource.height) {
            return Err(Refusal::RectOutside {
                rect,
                width: resource.width,
                height: resource.height,
            });
        }
        let Some((backing, pixels, _)) = &resource.backing else {
            return Err(Refusal::NotBacked(id));
        };
        let stride = u64::from(resource.stride);
        let row_bytes = u64::from(rect.width) * u64::from(BYTES_PER_PIXEL);
        let end = offset
            .checked_add(u64::from(rect.height - 1) * stride)
            .and_then(|v| v.checked_add(row_bytes));
        if end.is_none_or(|end| end > backing.len()) {
            return Err(Refusal::TransferOutsideBacking {
                end,
                backing: backing.len(),
            });
        }
        let packed_offset =
            u64::from(rect.y) * stride + u64::from(rect.x) * u64::from(BYTES_PER_PIXEL);
        // The host view holds the resource's bytes only as far as the
        // backing goes: a rectangle whose place lies past it has nowhere to go.
        let place_end = packed_offset + u64::from(rect.height - 1) * stride + row_bytes;
        if place_end > backing.len() {
            return Err(Refusal::TransferPastBacking {
                end: place_end,
                backing: backing.len(),
            });
        }
        if matches!(pixels, Pixels::Mapped(_)) {
            if offset == packed_offset {
                return Ok(());
            }
            debug!(
                resource = id,
                offset,
                packed_offset,
                "transfer offset is not the packed layout's: copying from now on"
            );
            self.demote(id, mem, stats)?;
        }
        self.copy_rect(id, mem, rect, offset, stats)
    }

    /// The copy path of a transfer (`rect` and `offset` already checked):
    /// rows of `rect` from backing `offset` on, `stride` apart, into the host
    /// buffer at their place in the resource.
    fn copy_rect(
        &mut self,
        id: u32,
        mem: &GuestMemoryMmap,
        rect: Rect,
        offset: u64,
        stats: &Stats,
    ) -> Result<(), Refusal> {
        let hostmem = self.hostmem.clone();
        let resource = self.get_mut(id)?;
        let (width, height) = (resource.width, resource.height);
        let stride = u64::from(resource.stride);
        let Some((backing, Pixels::Copied(buffer), _)) = &mut resource.backing else {
            return Err(Refusal::NotBacked(id));
        };
        let row_bytes = u64::from(rect.width) * u64::from(BYTES_PER_PIXEL);
        let first_row = u64::from(rect.y) * stride + u64::from(rect.x) * u64::from(BYTES_PER_PIXEL);
        // Whole rows are one run, in the backing and in the buffer.
        let (runs, run_len) = if rect.width == width {
            (1, u64::from(rect.height - 1) * stride + row_bytes)
        } else {
            (u64::from(rect.height), row_bytes)
        };
        let fill = |buffer: &mut [u8]| -> Result<(), Refusal> {
            for run in 0..runs {
                let (src, dst) = (offset + run * stride, first_row + run * stride);
                let outside = || Refusal::RectOutside {
                    rect,
                    width,
                    height,
                };
                let dst = usize::try_from(dst).map_err(|_| outside())?;
                let len = usize::try_from(run_len).map_err(|_| outside())?;
                let out = buffer
                    .get_mut(dst..dst.saturating_add(len))
                    .ok_or_else(outside)?;
                backing.read(mem, src, out)?;
                Stats::add(&stats.bytes_copied, run_len);
            }
            Ok(())
        };
        match Arc::get_mut(buffer) {
            Some(unique) => fill(unique.bytes_mut()),
            None => {
                // A reader holds the previous picture: it keeps it, and the
                // new one is paid for from the budget too.
                let old = buffer.bytes();
                let mut fresh = HostBuffer::zeroed(&hostmem, old.len())?;
                fresh.bytes_mut().copy_from_slice(old);
                Stats::add(&stats.bytes_copied, old.len() as u64);
                fill(fresh.bytes_mut())?;
                *buffer = Arc::new(fresh);
                Ok(())
            }
        }
    }

    /// Moves a mapped resource to the copy path, starting from what the
    /// mapping shows now.
    fn demote(&mut self, id: u32, mem: &GuestMemoryMmap, stats: &Stats) -> Result<(), Refusal> {
        let resource = self.get(id)?;
        let Some((backing, _, _)) = &resource.backing else {
            return Err(Refusal::NotBacked(id));
        };
        let mut buffer = self.copy_buffer(resource.size(), backing)?;
        backing.read(mem, 0, buffer.bytes_mut())?;
        Stats::add(&stats.bytes_copied, buffer.bytes().len() as u64);
        if let Some((_, pixels, _)) = &mut self.get_mut(id)?.backing {
            *pixels = Pixels::Copied(Arc::new(buffer));
        }
        Ok(())
    }
}

/// Cuts off every snapshot of a backing that is being dropped.
fn revoke(backing: &Option<(Backing, Pixels, Revocation)>) {
    if let Some((_, _, revocation)) = backing {
        revocation.revoke();
    }
}
