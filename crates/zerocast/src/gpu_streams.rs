//! A running GPU backend's scanouts as streams: the registry (resources
//! read by id where they live in guest memory, scanouts switched on and
//! off), one encoding pipeline per scanout, the GPU's counters for
//! `/api/stats`, and the totals logged at the end. Shared by `zerocast vm`
//! and `zerocast gpu-backend`, which differ only in who started QEMU.

use std::sync::Arc;

use zerocast_frame::Frame;
use zerocast_gpu::{GpuBackendHandle, GpuError};
use zerocast_pipeline::{
    Registry, ResourceError, ResourceReader, ScanoutControl, ScanoutError, ScanoutPipeline, Stream,
};

use crate::options::VideoArgs;

/// ENABLE_SCANOUT / DISABLE_SCANOUT switch the GPU's displays. The guest
/// sees the change at its next display query (QEMU does not forward a
/// vhost-user backend's hot-plug event).
struct GpuScanouts(Arc<GpuBackendHandle>);

impl ScanoutControl for GpuScanouts {
    fn enable(&self, id: u32, width: u32, height: u32) -> Result<(), ScanoutError> {
        tracing::info!(
            scanout = id,
            "enabling ({width}x{height} requested; the mode is the GPU's)"
        );
        self.0
            .set_scanout_enabled(id, true)
            .map_err(|e| scanout_error(id, e))
    }

    fn disable(&self, id: u32) -> Result<(), ScanoutError> {
        self.0
            .set_scanout_enabled(id, false)
            .map_err(|e| scanout_error(id, e))
    }
}

fn scanout_error(id: u32, e: GpuError) -> ScanoutError {
    match e {
        GpuError::NoSuchScanout { .. } => ScanoutError::NoSuchScanout(id),
        other => ScanoutError::Device(Box::new(other)),
    }
}

/// Resources by id, read where they live in guest memory.
struct GpuResources(zerocast_gpu::ResourceTable);

impl ResourceReader for GpuResources {
    fn read(&self, id: u32, f: &mut dyn FnMut(Frame<'_>)) -> Result<(), ResourceError> {
        let snapshot = self.0.get(id).ok_or(ResourceError::NotFound(id))?;
        let frame = snapshot.frame().ok_or(ResourceError::NoPixels(id))?;
        f(frame);
        Ok(())
    }
}

/// The registry over `gpu` and scanouts `0..count`, each encoded on flush.
pub struct GpuStreams {
    pub registry: Arc<Registry>,
    pub scanouts: Vec<Arc<Stream>>,
}

impl GpuStreams {
    pub fn start(
        gpu: &Arc<GpuBackendHandle>,
        count: u32,
        video: &VideoArgs,
    ) -> anyhow::Result<GpuStreams> {
        let registry = Arc::new(
            Registry::new(video.encoder, video.settings())
                .with_resources(Arc::new(GpuResources(gpu.resources())))
                .with_scanout_control(Arc::new(GpuScanouts(gpu.clone()))),
        );
        let mut scanouts = Vec::new();
        for id in 0..count {
            let source = gpu.scanout(id)?;
            let config = video.pipeline(id);
            let stream = registry.add(Stream::Encoded(ScanoutPipeline::start(
                Box::new(source),
                config,
            )?));
            tracing::info!("scanout {id}: {}", stream.describe());
            scanouts.push(stream);
        }
        Ok(GpuStreams { registry, scanouts })
    }
}

/// The GPU's counters, as `/api/stats` shows them under `source`.
pub fn source_stats(
    gpu: Arc<GpuBackendHandle>,
) -> Box<dyn Fn() -> serde_json::Value + Send + Sync> {
    Box::new(move || {
        let s = gpu.stats();
        serde_json::json!({
            "gpu_commands": s.commands, "gpu_errors": s.errors, "flushes": s.flushes,
            "transfers": s.transfers, "bytes_copied": s.bytes_copied,
            "zero_copy_attaches": s.zero_copy_attaches, "copy_attaches": s.copy_attaches,
            "copy_fallbacks": s.copy_fallbacks, "memory_refusals": s.memory_refusals,
            "mappings_in_use": s.mappings_in_use, "host_bytes_in_use": s.host_bytes_in_use,
        })
    })
}

/// Logs what the encoders and the GPU did, at the end of a session.
pub fn log_totals(gpu: &GpuBackendHandle, scanouts: &[Arc<Stream>]) {
    for p in scanouts {
        let ps = p.stats();
        tracing::info!(
            "scanout {}: {} frames encoded, {} keyframes",
            p.id(),
            ps.frames,
            ps.keyframes
        );
    }
    let s = gpu.stats();
    tracing::info!(
        "GPU: {} flushes, {} bytes copied, {} zero-copy backings, {} copied backings, {} refused commands",
        s.flushes, s.bytes_copied, s.zero_copy_attaches, s.copy_attaches, s.errors
    );
}
