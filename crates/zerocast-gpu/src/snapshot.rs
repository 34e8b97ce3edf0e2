//! What a reader holds: a resource's geometry plus a shared handle to its
//! pixels, kept alive (mapping included) for as long as the reader wants.

use std::sync::Arc;

use zerocast_frame::{Frame, PixelFormat};

use crate::mapping::GuestMapping;

/// Where a resource's pixels are.
#[derive(Debug, Clone)]
pub(crate) enum Pixels {
    /// The guest's pages, mapped contiguously (zero-copy).
    Mapped(Arc<GuestMapping>),
    /// A host copy filled on `TRANSFER_TO_HOST_2D` (backing that cannot be
    /// mapped). Copy-on-write: a transfer while a reader holds the old
    /// buffer copies it first.
    Copied(Arc<Vec<u8>>),
}

impl Pixels {
    fn bytes(&self) -> &[u8] {
        match self {
            Pixels::Mapped(m) => m.bytes(),
            Pixels::Copied(v) => v,
        }
    }
}

/// A resource (or the rectangle of it a scanout shows) as of one moment.
/// Holding it keeps its pixels mapped even if the guest unrefs the resource;
/// the pages stay the guest's, so at worst they show what the guest put
/// there since.
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

    /// The picture, or `None` if the backing is too short for the geometry.
    pub fn frame(&self) -> Option<Frame<'_>> {
        let data = self.pixels.bytes().get(self.offset..)?;
        Frame::new(self.width, self.height, self.stride, self.format, data).ok()
    }
}
