//! What a host exposes: streams by id (scanouts and published streams), the
//! resources a FRAME_REQUEST can name, and the switch for displays.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use zerocast_encode::{EncoderKind, EncoderSettings};
use zerocast_frame::Frame;

use crate::Stream;

/// Why a resource cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("resource {0} not found")]
    NotFound(u32),
    #[error("resource {0} has no pixels yet (no backing attached)")]
    NoPixels(u32),
}

/// Reads resources by id: a GPU's guest resources, or the synthetic
/// desktop's render target.
pub trait ResourceReader: Send + Sync {
    /// Calls `f` with the resource's current picture, read where it lives.
    fn read(&self, id: u32, f: &mut dyn FnMut(Frame<'_>)) -> Result<(), ResourceError>;
}

/// Why a display was not switched.
#[derive(Debug, thiserror::Error)]
pub enum ScanoutError {
    #[error("scanout {0} does not exist")]
    NoSuchScanout(u32),
    #[error("scanout {0} cannot be switched off here")]
    Fixed(u32),
    #[error("the display device refused: {0}")]
    Device(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Turns displays on and off (HXFR ENABLE_SCANOUT / DISABLE_SCANOUT): a GPU
/// backend's hot-plug.
pub trait ScanoutControl: Send + Sync {
    /// Connects display `id` with the given mode.
    fn enable(&self, id: u32, width: u32, height: u32) -> Result<(), ScanoutError>;
    /// Disconnects display `id`.
    fn disable(&self, id: u32) -> Result<(), ScanoutError>;
}

/// Streams and resources of one host, and the encoder new sessions get.
pub struct Registry {
    streams: RwLock<BTreeMap<u32, Arc<Stream>>>,
    resources: Option<Arc<dyn ResourceReader>>,
    control: Option<Arc<dyn ScanoutControl>>,
    encoder: EncoderKind,
    settings: EncoderSettings,
}

impl Registry {
    pub fn new(encoder: EncoderKind, settings: EncoderSettings) -> Self {
        Registry {
            streams: RwLock::default(),
            resources: None,
            control: None,
            encoder,
            settings,
        }
    }

    pub fn with_resources(mut self, reader: Arc<dyn ResourceReader>) -> Self {
        self.resources = Some(reader);
        self
    }

    pub fn with_scanout_control(mut self, control: Arc<dyn ScanoutControl>) -> Self {
        self.control = Some(control);
        self
    }

    /// Handles ENABLE_SCANOUT / DISABLE_SCANOUT (`mode` is `Some` to enable).
    /// Without a [`ScanoutControl`] the scanouts are fixed: enabling one that
    /// exists succeeds, and disabling is refused.
    pub fn set_scanout(&self, id: u32, mode: Option<(u32, u32)>) -> Result<(), ScanoutError> {
        match (&self.control, mode) {
            (Some(c), Some((w, h))) => c.enable(id, w, h),
            (Some(c), None) => c.disable(id),
            (None, Some(_)) if self.stream(id).is_some() => Ok(()),
            (None, Some(_)) => Err(ScanoutError::NoSuchScanout(id)),
            (None, None) => Err(ScanoutError::Fixed(id)),
        }
    }

    /// Adds a stream under its id, replacing one with the same id.
    pub fn add(&self, stream: Stream) -> Arc<Stream> {
        let stream = Arc::new(stream);
        self.streams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(stream.id(), stream.clone());
        stream
    }

    /// Takes a stream out (its VM went away); subscribers keep theirs until
    /// it ends.
    pub fn remove(&self, id: u32) -> Option<Arc<Stream>> {
        self.streams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    pub fn stream(&self, id: u32) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    pub fn ids(&self) -> Vec<u32> {
        self.streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    pub fn resources(&self) -> Option<&Arc<dyn ResourceReader>> {
        self.resources.as_ref()
    }

    pub fn encoder(&self) -> EncoderKind {
        self.encoder
    }

    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PublishedStream;

    #[test]
    fn fixed_scanouts_can_be_enabled_if_they_exist_but_never_disabled() {
        let r = Registry::new(EncoderKind::OpenH264, EncoderSettings::default());
        r.add(Stream::Published(PublishedStream::new(16, "agent")));
        assert!(r.set_scanout(16, Some((640, 480))).is_ok());
        assert!(matches!(
            r.set_scanout(3, Some((640, 480))),
            Err(ScanoutError::NoSuchScanout(3))
        ));
        assert!(matches!(
            r.set_scanout(16, None),
            Err(ScanoutError::Fixed(16))
        ));
        assert_eq!(r.ids(), vec![16]);
        assert!(r.stream(16).unwrap().as_published().is_some());
        assert!(r.stream(16).unwrap().as_encoded().is_none());
    }
}
