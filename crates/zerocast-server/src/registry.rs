//! What a server exposes: scanout pipelines by id (scanout mode) and a
//! resource table (request/response mode).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use zerocast_encode::{EncoderKind, EncoderSettings};
use zerocast_frame::Frame;

use crate::ScanoutPipeline;

/// Why a resource cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("resource {0} not found")]
    NotFound(u32),
    #[error("resource {0} has no pixels yet (no backing attached)")]
    NoPixels(u32),
}

/// Resources a FRAME_REQUEST can name: a GPU's resource table, or the
/// synthetic desktop's render target.
pub trait ResourceTable: Send + Sync {
    /// Calls `f` with the resource's current picture, read where it lives.
    fn read(&self, id: u32, f: &mut dyn FnMut(Frame<'_>)) -> Result<(), ResourceError>;
}

/// Turns displays on and off (HXFR ENABLE_SCANOUT / DISABLE_SCANOUT): a GPU
/// backend's hot-plug.
pub trait ScanoutControl: Send + Sync {
    /// Connects display `id` with the given mode; an error says why not.
    fn enable(&self, id: u32, width: u32, height: u32) -> Result<(), String>;
    /// Disconnects display `id`.
    fn disable(&self, id: u32) -> Result<(), String>;
}

/// Scanouts and resources of one server, and the encoder new sessions get.
pub struct Registry {
    scanouts: RwLock<BTreeMap<u32, Arc<ScanoutPipeline>>>,
    resources: Option<Arc<dyn ResourceTable>>,
    control: Option<Arc<dyn ScanoutControl>>,
    encoder: EncoderKind,
    settings: EncoderSettings,
}

impl Registry {
    pub fn new(encoder: EncoderKind, settings: EncoderSettings) -> Self {
        Registry {
            scanouts: RwLock::default(),
            resources: None,
            control: None,
            encoder,
            settings,
        }
    }

    pub fn with_resources(mut self, table: Arc<dyn ResourceTable>) -> Self {
        self.resources = Some(table);
        self
    }

    pub fn with_scanout_control(mut self, control: Arc<dyn ScanoutControl>) -> Self {
        self.control = Some(control);
        self
    }

    /// Handles ENABLE_SCANOUT / DISABLE_SCANOUT (`mode` is `Some` to enable).
    /// Without a [`ScanoutControl`] the scanouts are fixed: enabling one that
    /// exists succeeds, and disabling is refused.
    pub fn set_scanout(&self, id: u32, mode: Option<(u32, u32)>) -> Result<(), String> {
        match (&self.control, mode) {
            (Some(c), Some((w, h))) => c.enable(id, w, h),
            (Some(c), None) => c.disable(id),
            (None, Some(_)) if self.scanout(id).is_some() => Ok(()),
            (None, Some(_)) => Err(format!("scanout {id} does not exist")),
            (None, None) => Err(format!("scanout {id} cannot be switched off here")),
        }
    }

    pub fn add_scanout(&self, pipeline: Arc<ScanoutPipeline>) {
        self.scanouts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pipeline.scanout_id(), pipeline);
    }

    pub fn remove_scanout(&self, id: u32) -> Option<Arc<ScanoutPipeline>> {
        self.scanouts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }

    pub fn scanout(&self, id: u32) -> Option<Arc<ScanoutPipeline>> {
        self.scanouts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn scanout_ids(&self) -> Vec<u32> {
        self.scanouts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    pub fn resources(&self) -> Option<&Arc<dyn ResourceTable>> {
        self.resources.as_ref()
    }

    pub fn encoder(&self) -> EncoderKind {
        self.encoder
    }

    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }
}
