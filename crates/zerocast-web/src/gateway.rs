//! HTTP and WebSocket: the viewer page, `/api/stats`, and one WebSocket per
//! viewer (`/ws?scanout=N`) fed from that scanout's subscription.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use zerocast_input::InputSink;
use zerocast_pipeline::{EncodedFrame, Registry};

use crate::protocol::{self, ClientMessage};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const VIEWER_JS: &str = include_str!("../assets/viewer.js");

/// How long a viewer has to send its init message.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// A send that takes longer ends the viewer (it vanished or is hopelessly slow).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a viewer may send; input messages are a few bytes.
const MAX_CLIENT_MESSAGE: usize = 4096;

/// WebSocket close codes (RFC 6455).
mod close {
    pub const NORMAL: u16 = 1000;
    pub const UNSUPPORTED: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TRY_LATER: u16 = 1013;
}

/// What a viewer page reports about itself once a second.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ViewerReport {
    #[serde(default)]
    pub decoded: u64,
    #[serde(default)]
    pub keyframes: u64,
    #[serde(default)]
    pub dropped: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub fps: f64,
    #[serde(default)]
    pub latency_p50_ms: f64,
    #[serde(default)]
    pub latency_p95_ms: f64,
    #[serde(default)]
    pub bitrate_bps: f64,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TextMessage {
    Init,
    Stats(ViewerReport),
}

/// Extra numbers for `/api/stats` from whatever feeds the scanouts (a GPU
/// backend's flushes and bytes copied, say).
pub type SourceStats = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The web gateway for one server's scanouts.
pub struct Gateway {
    registry: Arc<Registry>,
    input: Option<Arc<dyn InputSink>>,
    source_stats: Option<SourceStats>,
    max_viewers: usize,
    viewers: AtomicUsize,
    next_viewer: AtomicU64,
    reports: Mutex<BTreeMap<u64, ViewerReport>>,
    input_events: AtomicU64,
    /// The last video message built per scanout, shared by every viewer of
    /// it: one copy of an access unit per frame, not one per viewer.
    framed: Mutex<HashMap<u32, (u64, Bytes)>>,
}

impl Gateway {
    pub fn new(registry: Arc<Registry>, input: Option<Arc<dyn InputSink>>) -> Self {
        Gateway {
            registry,
            input,
            source_stats: None,
            max_viewers: 64,
            viewers: AtomicUsize::new(0),
            next_viewer: AtomicU64::new(1),
            reports: Mutex::new(BTreeMap::new()),
            input_events: AtomicU64::new(0),
            framed: Mutex::new(HashMap::new()),
        }
    }

    /// Adds the frame source's own numbers to `/api/stats` (as `source`).
    pub fn with_source_stats(mut self, stats: SourceStats) -> Self {
        self.source_stats = Some(stats);
        self
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(
                "/",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        INDEX_HTML,
                    )
                }),
            )
            .route(
                "/viewer.js",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                        VIEWER_JS,
                    )
                }),
            )
            .route("/api/stats", get(stats))
            .route("/ws", get(upgrade))
            .with_state(self)
    }

    /// Binds `addr` and serves in the background; returns the bound address.
    pub async fn serve(
        self: Arc<Self>,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("web gateway stopped: {e}");
            }
        });
        Ok((bound, task))
    }

    /// The WebSocket message for `frame` of `scanout`, built by the first
    /// viewer that needs it.
    fn video_message(&self, scanout: u32, frame: &EncodedFrame) -> Bytes {
        let mut framed = self.framed.lock().unwrap_or_else(|e| e.into_inner());
        match framed.get(&scanout) {
            Some((seq, msg)) if *seq == frame.seq => msg.clone(),
            _ => {
                let msg = video_message(frame);
                framed.insert(scanout, (frame.seq, msg.clone()));
                msg
            }
        }
    }

    /// The latest report of every connected viewer.
    pub fn viewer_reports(&self) -> Vec<ViewerReport> {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

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
    encode_p50_us: Option<u32>,
    encode_p99_us: Option<u32>,
    encode_cpu_p50_us: Option<u32>,
}

#[derive(Serialize)]
struct Stats {
    scanouts: Vec<ScanoutStats>,
    viewers: Vec<ViewerReport>,
    input_events: u64,
    source: Option<serde_json::Value>,
}

async fn stats(State(g): State<Arc<Gateway>>) -> Json<Stats> {
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
                encode_p50_us: s.encode.percentile_us(50.0),
                encode_p99_us: s.encode.percentile_us(99.0),
                encode_cpu_p50_us: s.encode_cpu.percentile_us(50.0),
            }
        })
        .collect();
    Json(Stats {
        scanouts,
        viewers: g.viewer_reports(),
        input_events: g.input_events.load(Ordering::Relaxed),
        source: g.source_stats.as_ref().map(|f| f()),
    })
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(q): Query<HashMap<String, String>>,
    State(g): State<Arc<Gateway>>,
) -> Response {
    let scanout = q.get("scanout").map_or(Ok(0), |s| s.parse::<u32>());
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            match scanout {
                Ok(id) => viewer(socket, g, id).await,
                Err(_) => close_with(socket, close::POLICY, "scanout must be a number").await,
            }
        })
        .into_response()
}

async fn close_with(mut socket: WebSocket, code: u16, reason: &str) {
    tracing::info!("closing viewer: {reason}");
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Counts a viewer for as long as it is alive.
struct ViewerSlot<'a>(&'a Gateway, u64);

impl Drop for ViewerSlot<'_> {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::AcqRel);
        self.0
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

async fn viewer(mut socket: WebSocket, g: Arc<Gateway>, scanout: u32) {
    if g.viewers.fetch_add(1, Ordering::AcqRel) >= g.max_viewers {
        g.viewers.fetch_sub(1, Ordering::AcqRel);
        return close_with(socket, close::TRY_LATER, "too many viewers").await;
    }
    let id = g.next_viewer.fetch_add(1, Ordering::Relaxed);
    let _slot = ViewerSlot(&g, id);
    let Some(stream) = g.registry.stream(scanout) else {
        return close_with(socket, close::POLICY, &format!("no scanout {scanout}")).await;
    };
    // helix's client speaks first with a JSON init; wait for it.
    match tokio::time::timeout(INIT_TIMEOUT, wait_init(&mut socket)).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return close_with(socket, close::POLICY, &reason).await,
        Err(_) => return close_with(socket, close::POLICY, "no init message within 30 s").await,
    }
    let mut sub = stream.subscribe();
    // Sent again whenever the picture size or the frame rate changes.
    let mut shape = (0, 0, 0);
    loop {
        tokio::select! {
            frame = sub.next() => {
                let Some(frame) = frame else {
                    return close_with(socket, close::NORMAL, "scanout stopped").await;
                };
                if (frame.width, frame.height, frame.fps) != shape {
                    shape = (frame.width, frame.height, frame.fps);
                    let init = protocol::stream_init(shape.0, shape.1, shape.2);
                    if !send(&mut socket, Bytes::copy_from_slice(&init)).await {
                        return;
                    }
                }
                if !send(&mut socket, g.video_message(scanout, &frame)).await {
                    return;
                }
            }
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { return };
                if let Err((code, reason)) = handle_client(&mut socket, &g, scanout, id, msg, &sub).await {
                    return close_with(socket, code, &reason).await;
                }
            }
        }
    }
}

/// Reads messages until the JSON init; pings before it are answered.
async fn wait_init(socket: &mut WebSocket) -> Result<(), String> {
    while let Some(msg) = socket.recv().await {
        match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => match serde_json::from_str::<TextMessage>(&t) {
                Ok(TextMessage::Init) => return Ok(()),
                Ok(TextMessage::Stats(_)) => {}
                Err(e) => return Err(format!("bad text message: {e}")),
            },
            Message::Close(_) => return Err("closed before init".into()),
            _ => {}
        }
    }
    Err("closed before init".into())
}

fn video_message(frame: &EncodedFrame) -> Bytes {
    let au = &frame.access_unit;
    let pts_us = u64::try_from(frame.captured_unix_ns / 1000).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(protocol::VIDEO_HEADER_LEN + au.len());
    buf.put_slice(&protocol::video_frame_header(
        frame.keyframe,
        pts_us,
        frame.width,
        frame.height,
    ));
    buf.put_slice(au);
    buf.freeze()
}

async fn send(socket: &mut WebSocket, b: Bytes) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Binary(b))).await,
        Ok(Ok(()))
    )
}

async fn handle_client(
    socket: &mut WebSocket,
    g: &Gateway,
    scanout: u32,
    viewer: u64,
    msg: Message,
    sub: &zerocast_pipeline::Subscription,
) -> Result<(), (u16, String)> {
    match msg {
        Message::Binary(b) => match protocol::parse_client(&b) {
            Ok(ClientMessage::Ping { seq, client_time }) => {
                let now_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
                let reply = protocol::pong(seq, client_time, now_us, 0);
                if !send(socket, Bytes::copy_from_slice(&reply)).await {
                    return Err((close::NORMAL, "viewer gone".into()));
                }
            }
            Ok(ClientMessage::Input(ev)) => {
                g.input_events.fetch_add(1, Ordering::Relaxed);
                if let Some(sink) = &g.input {
                    sink.send(scanout, ev);
                }
            }
            Ok(ClientMessage::Ignored) => {}
            Err(e) => return Err((close::UNSUPPORTED, e.to_string())),
        },
        Message::Text(t) => match serde_json::from_str::<TextMessage>(&t) {
            Ok(TextMessage::Stats(r)) => {
                g.reports
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(viewer, r);
            }
            // A second init: the viewer reset its decoder and needs a keyframe.
            Ok(TextMessage::Init) => sub.request_keyframe(),
            Err(e) => return Err((close::UNSUPPORTED, format!("bad text message: {e}"))),
        },
        Message::Close(_) => return Err((close::NORMAL, "bye".into())),
        Message::Ping(_) | Message::Pong(_) => {}
    }
    Ok(())
}
