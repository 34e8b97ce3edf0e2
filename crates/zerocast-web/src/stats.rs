//! `/api/stats`: the streams, the viewers' own reports and their input,
//! and whatever the frame source adds.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::gateway::Gateway;
use crate::protocol::ViewerReport;

#[derive(Serialize)]
struct ScanoutStats {
    id: u32,
    pipeline: String,
    subscribers: usize,
    frames: u64,
    keyframes: u64,
    bytes: u64,
    unwatched: u64,
    lagged_frames: u64,
    encode_errors: u64,
    /// Still pictures refined at the refresh quality.
    refinements: u64,
    encode_p50_us: Option<u32>,
    encode_p99_us: Option<u32>,
    encode_cpu_p50_us: Option<u32>,
    /// The shared encoder's settings (streams encoded here only).
    fps: Option<f32>,
    bitrate_bps: Option<u32>,
}

/// One `control` viewer's input so far.
#[derive(Serialize)]
struct ViewerInputStats {
    viewer: u64,
    /// Input messages from the viewer.
    received: u64,
    /// Events handed to the desktop (a coalesced pointer move counts once).
    sent: u64,
    /// Over the viewer's budget, dropped (see [`crate::input_budget`]).
    dropped: u64,
}

#[derive(Serialize)]
pub(crate) struct Stats {
    scanouts: Vec<ScanoutStats>,
    viewers: Vec<ViewerReport>,
    /// Input messages from every viewer.
    input_events: u64,
    input_dropped: u64,
    /// Video frames not sent to viewers past their backlog budget.
    viewer_skipped_frames: u64,
    input_viewers: Vec<ViewerInputStats>,
    source: Option<serde_json::Value>,
}

pub(crate) async fn stats(State(g): State<Arc<Gateway>>) -> Json<Stats> {
    let scanouts = g
        .registry
        .ids()
        .into_iter()
        .filter_map(|id| g.registry.stream(id))
        .map(|p| {
            let s = p.stats();
            ScanoutStats {
                id: p.id(),
                pipeline: p.describe().to_owned(),
                subscribers: p.subscribers(),
                frames: s.frames,
                keyframes: s.keyframes,
                bytes: s.bytes,
                unwatched: s.unwatched,
                lagged_frames: s.lagged,
                encode_errors: s.encode_errors,
                refinements: s.refinements,
                encode_p50_us: s.encode.percentile_us(50.0),
                encode_p99_us: s.encode.percentile_us(99.0),
                encode_cpu_p50_us: s.encode_cpu.percentile_us(50.0),
                fps: p.as_encoded().map(|e| e.settings().fps.as_f32()),
                bitrate_bps: p.as_encoded().map(|e| e.settings().bitrate_bps),
            }
        })
        .collect();
    Json(Stats {
        scanouts,
        viewers: g.viewer_reports(),
        input_events: g.input_events.load(Ordering::Relaxed),
        input_dropped: g.input_dropped.load(Ordering::Relaxed),
        viewer_skipped_frames: g.skipped_frames.load(Ordering::Relaxed),
        input_viewers: g
            .input_viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&viewer, c)| ViewerInputStats {
                viewer,
                received: c.received.load(Ordering::Relaxed),
                sent: c.sent.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
            })
            .collect(),
        source: g.source_stats.as_ref().map(|f| f()),
    })
}
