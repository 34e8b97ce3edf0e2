//! What a reader holds: a resource's geometry plus a shared handle to its
//! pixels, kept alive (mapping included) for as long as the reader wants,
//! but readable only until the guest takes the backing back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use zerocast_frame::{Frame, PixelFormat};

use crate::budget::HostBuffer;
use crate::mapping::GuestMapping;

/// Where a resource's pixels are.
#[derive(Debug, Clone)]
pub(crate) enum Pixels {
    /// The guest's pages, mapped contiguously (zero-copy).
    Mapped(Arc<GuestMapping>),
    /// A host copy filled on `TRANSFER_TO_HOST_2D` (backing that cannot be
    /// mapped), as long as the backing (it holds the resource's first bytes;
    /// those past it are never shown). Copy-on-write: a transfer while a
    /// reader holds the old buffer copies it first.
    Copied(Arc<HostBuffer>),
}

impl Pixels {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Pixels::Mapped(m) => m.bytes(),
            Pixels::Copied(v) => v.bytes(),
        }
    }
}

/// Shared by one backing and every snapshot of it. Set when the guest takes
/// the backing back (UNREF, DETACH_BACKING, device reset): from then on the
/// pages may hold anything of the guest's, so no snapshot of them may be
/// read again.
#[derive(Debug, Clone, Default)]
pub(crate) struct Revocation(Arc<AtomicBool>);

impl Revocation {
    pub fn revoke(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_revoked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A resource (or the rectangle of it a scanout shows) as of one moment.
/// Holding it keeps its pixels mapped, but once the guest unrefs the
/// resource or detaches its backing, [`ResourceSnapshot::frame`] gives
/// nothing: hold it no longer than one read (one encode), and drop it then
/// so the mapping goes too.
#[derive(Debug, Clone)]
pub struct ResourceSnapshot {
    pub(crate) resource_id: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) stride: u32,
    pub(crate) format: PixelFormat,
    /// Byte offset of the first pixel shown.
    pub(crate) offset: usize,
    pub(crate) pixels: Pixels,
    pub(crate) revocation: Revocation,
}

impl ResourceSnapshot {
    /// The virtio-gpu resource id.
    pub fn resource_id(&self) -> u32 {
        self.resource_id
    }

    /// True when the pixels are the guest's own pages (no copy).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.pixels, Pixels::Mapped(_))
    }

    /// True once the guest has taken the backing back.
    pub fn is_revoked(&self) -> bool {
        self.revocation.is_revoked()
    }

    /// The picture, or `None` if the guest has taken the backing back or it
    /// is too short for the geometry. A picture borrowed before the guest
    /// takes the backing back stays readable until the borrow ends: the
    /// device cannot stop a read in progress, only every later one.
    pub fn frame(&self) -> Option<Frame<'_>> {
        if self.is_revoked() {
            return None;
        }
        let data = self.pixels.bytes().get(self.offset..)?;
        Frame::new(self.width, self.height, self.stride, self.format, data).ok()
    }
}
