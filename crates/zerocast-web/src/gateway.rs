//! HTTP and WebSocket: the viewer page, `/api/stats`, and one WebSocket per
//! viewer (`/ws?scanout=N`) fed from that scanout's subscription and, when
//! the scanout has a hardware cursor, its cursor channel.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::{BufMut, Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zerocast_frame::Cursor;
use zerocast_input::{Held, InputEvent, InputSink};
use zerocast_pipeline::{EncodedFrame, Registry};

use crate::access::{Access, Role, Token};
use crate::input_budget::InputBudget;
pub use crate::protocol::ViewerReport;
use crate::protocol::{self, ClientMessage, TextMessage};
use crate::tls::Tls;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const VIEWER_JS: &str = include_str!("../assets/viewer.js");

/// The viewer page with its script inline: the page is the only request a
/// browser makes with the token in its URL.
static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    INDEX_HTML.replace(
        r#"<script src="viewer.js"></script>"#,
        &format!("<script>\n{VIEWER_JS}</script>"),
    )
});

/// How long a viewer has to send its init message.
const INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// A send that takes longer ends the viewer (it vanished or is hopelessly slow).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a viewer may send; input messages are a few bytes.
const MAX_CLIENT_MESSAGE: usize = 4096;
/// How long a new connection has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// WebSocket close codes (RFC 6455).
mod close {
    pub const NORMAL: u16 = 1000;
    pub const UNSUPPORTED: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TRY_LATER: u16 = 1013;
}

/// Extra numbers for `/api/stats` from whatever feeds the scanouts (a GPU
/// backend's flushes and bytes copied, say).
pub type SourceStats = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Who may use the gateway: the two roles' tokens, and the Hosts and
/// Origins allowed besides the listen address and `localhost`.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub control: Token,
    pub view: Token,
    pub hosts: Vec<String>,
    pub origins: Vec<String>,
}

/// The web gateway for one server's scanouts.
pub struct Gateway {
    registry: Arc<Registry>,
    access_config: AccessConfig,
    /// Set when the listen address is known.
    access: Option<Access>,
    input: Option<Arc<dyn InputSink>>,
    source_stats: Option<SourceStats>,
    max_viewers: usize,
    viewers: AtomicUsize,
    next_viewer: AtomicU64,
    reports: Mutex<BTreeMap<u64, ViewerReport>>,
    input_events: AtomicU64,
    /// Input events over their viewer's budget, dropped.
    input_dropped: AtomicU64,
    /// Input counts of every connected `control` viewer, by viewer id.
    input_viewers: Mutex<BTreeMap<u64, Arc<InputCounts>>>,
    /// The last video message built per scanout, shared by every viewer of
    /// it: one copy of an access unit per frame, not one per viewer.
    framed: Mutex<HashMap<u32, (u64, Bytes)>>,
}

impl Gateway {
    pub fn new(
        registry: Arc<Registry>,
        input: Option<Arc<dyn InputSink>>,
        access_config: AccessConfig,
    ) -> Self {
        Gateway {
            registry,
            access_config,
            access: None,
            input,
            source_stats: None,
            max_viewers: 64,
            viewers: AtomicUsize::new(0),
            next_viewer: AtomicU64::new(1),
            reports: Mutex::new(BTreeMap::new()),
            input_events: AtomicU64::new(0),
            input_dropped: AtomicU64::new(0),
            input_viewers: Mutex::new(BTreeMap::new()),
            framed: Mutex::new(HashMap::new()),
        }
    }

    /// Adds the frame source's own numbers to `/api/stats` (as `source`).
    pub fn with_source_stats(mut self, stats: SourceStats) -> Self {
        self.source_stats = Some(stats);
        self
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(
                "/",
                get(|| async {
                    (
                        [
                            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                            // The URL holds the token: never hand it on.
                            (header::REFERRER_POLICY, "no-referrer"),
                            (header::CACHE_CONTROL, "no-store"),
                        ],
                        PAGE.as_str(),
                    )
                }),
            )
            .route("/api/stats", get(stats))
            .route("/ws", get(upgrade))
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self)
    }

    /// Binds `addr` and serves in the background, over TLS (HTTPS and WSS
    /// only) when `tls` is given; returns the bound address and the access
    /// rules in force there.
    pub async fn serve(
        mut self,
        addr: SocketAddr,
        tls: Option<Tls>,
    ) -> std::io::Result<(SocketAddr, Access, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let c = &self.access_config;
        let access = Access::new(
            c.control.clone(),
            c.view.clone(),
            bound,
            &c.hosts,
            &c.origins,
        );
        self.access = Some(access.clone());
        let app = Arc::new(self).router();
        let task = match tls {
            Some(tls) => tokio::spawn(serve_tls(listener, app, tls)),
            None => tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("web gateway stopped: {e}");
                }
            }),
        };
        Ok((bound, access, task))
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
    /// Over the viewer's budget, dropped (see [`InputBudget`]).
    dropped: u64,
}

#[derive(Serialize)]
struct Stats {
    scanouts: Vec<ScanoutStats>,
    viewers: Vec<ViewerReport>,
    /// Input messages from every viewer.
    input_events: u64,
    input_dropped: u64,
    input_viewers: Vec<ViewerInputStats>,
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

/// Accepts TCP connections and serves each over TLS in a task of its own,
/// so that a peer slow to finish its handshake holds up nobody else.
async fn serve_tls(listener: tokio::net::TcpListener, app: Router, tls: Tls) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.0);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!("web gateway: accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                // Plain HTTP to this port ends here too, with nothing served.
                Ok(Err(e)) => {
                    tracing::info!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                    return;
                }
            };
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

/// Every request passes the access rules first (see [`crate::access`]);
/// the role it was granted travels with it.
async fn guard(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
    next: Next,
) -> Response {
    // Owned: the request is not Sync, so no borrow of it may live across an await.
    let (host, origin) = {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (header(header::HOST), header(header::ORIGIN))
    };
    let Some(access) = &g.access else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    match access.check(
        host.as_deref(),
        origin.as_deref(),
        q.get("token").map(String::as_str),
    ) {
        Ok(role) => {
            req.extensions_mut().insert(role);
            next.run(req).await
        }
        Err(denied) => {
            tracing::info!(
                status = denied.status,
                host = host.as_deref().unwrap_or("-"),
                origin = origin.as_deref().unwrap_or("-"),
                "refused {} {}: {}",
                req.method(),
                req.uri().path(),
                denied.reason
            );
            let status = StatusCode::from_u16(denied.status).unwrap_or(StatusCode::FORBIDDEN);
            (status, denied.reason).into_response()
        }
    }
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(q): Query<HashMap<String, String>>,
    Extension(role): Extension<Role>,
    State(g): State<Arc<Gateway>>,
) -> Response {
    let scanout = q.get("scanout").map_or(Ok(0), |s| s.parse::<u32>());
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            match scanout {
                Ok(id) => viewer(socket, g, id, role).await,
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

/// Lets go of a viewer's held keys and buttons when it goes, however it goes.
struct LetGoOnDrop {
    held: Held,
    sink: Option<Arc<dyn InputSink>>,
    scanout: u32,
}

impl Drop for LetGoOnDrop {
    fn drop(&mut self) {
        let Some(sink) = &self.sink else { return };
        for event in self.held.release_all() {
            sink.send(self.scanout, event);
        }
    }
}

/// One viewer's input counts (see [`ViewerInputStats`]).
#[derive(Debug, Default)]
struct InputCounts {
    received: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// A viewer's input on its way to the desktop: its budget, what it holds,
/// its counts.
struct ViewerInput {
    budget: InputBudget,
    held: LetGoOnDrop,
    counts: Arc<InputCounts>,
}

impl ViewerInput {
    /// Takes one event from viewer `id` and hands on what its budget lets
    /// through.
    fn take(&mut self, g: &Gateway, id: u64, event: InputEvent) {
        self.counts.received.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let dropped_before = self.budget.dropped();
        for passed in self.budget.admit(now, event) {
            self.hand_on(passed);
        }
        let dropped = self.budget.dropped() - dropped_before;
        if dropped > 0 {
            self.counts.dropped.fetch_add(dropped, Ordering::Relaxed);
            g.input_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if let Some(n) = self.budget.drops_to_log(now) {
            tracing::warn!(
                viewer = id,
                dropped = n,
                "viewer sends more input than its budget ({} events at once, {}/s): dropped",
                InputBudget::BURST,
                InputBudget::PER_SECOND
            );
        }
    }

    /// Hands on the pending pointer move if its time has come.
    fn poll(&mut self) {
        if let Some(moved) = self.budget.poll(Instant::now()) {
            self.hand_on(moved);
        }
    }

    fn hand_on(&mut self, event: InputEvent) {
        let Some(sink) = &self.held.sink else { return };
        self.held.held.track(&event);
        sink.send(self.held.scanout, event);
        self.counts.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// Resolves at `at`; never when there is no `at`.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
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
        self.0
            .input_viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

async fn viewer(mut socket: WebSocket, g: Arc<Gateway>, scanout: u32, role: Role) {
    let Some(stream) = g.registry.stream(scanout) else {
        return close_with(socket, close::POLICY, &format!("no scanout {scanout}")).await;
    };
    // helix's client speaks first with a JSON init; wait for it, briefly,
    // before the viewer takes one of the places.
    match tokio::time::timeout(INIT_TIMEOUT, wait_init(&mut socket)).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return close_with(socket, close::POLICY, &reason).await,
        Err(_) => return close_with(socket, close::POLICY, "no init message within 5 s").await,
    }
    if g.viewers.fetch_add(1, Ordering::AcqRel) >= g.max_viewers {
        g.viewers.fetch_sub(1, Ordering::AcqRel);
        return close_with(socket, close::TRY_LATER, "too many viewers").await;
    }
    let id = g.next_viewer.fetch_add(1, Ordering::Relaxed);
    let _slot = ViewerSlot(&g, id);
    let mut sub = stream.subscribe();
    let mut input = ViewerInput {
        budget: InputBudget::new(Instant::now()),
        // Whatever this viewer still holds when it goes is let go in the desktop.
        held: LetGoOnDrop {
            held: Held::default(),
            sink: g.input.clone(),
            scanout,
        },
        counts: Arc::default(),
    };
    if role == Role::Control {
        g.input_viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, input.counts.clone());
    }
    // Sent again whenever the picture size or the frame rate changes.
    let mut shape = (0, 0, 0);
    // The hardware cursor, if the stream has one: its current state at
    // once, then the latest whenever the viewer gets to it.
    let mut cursor = stream.cursor();
    if let Some(rx) = &mut cursor {
        rx.mark_changed();
    }
    let mut cursor_feed = protocol::CursorFeed::default();
    loop {
        tokio::select! {
            latest = next_cursor(&mut cursor) => {
                let Some(latest) = latest else {
                    cursor = None;
                    continue;
                };
                for msg in cursor_feed.update(&latest) {
                    if !send(&mut socket, Bytes::from(msg)).await {
                        return;
                    }
                }
            }
            frame = sub.next() => {
                let Some(frame) = frame else {
                    return close_with(socket, close::NORMAL, sub.end_reason()).await;
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
                if let Err((code, reason)) = handle_client(&mut socket, &g, (id, role), msg, (&sub, &mut input)).await {
                    return close_with(socket, code, &reason).await;
                }
            }
            () = until(input.budget.ready_at()) => input.poll(),
        }
    }
}

/// The cursor's latest state once it changed; `None` once its stream has
/// gone; never without a cursor.
async fn next_cursor(cursor: &mut Option<watch::Receiver<Cursor>>) -> Option<Cursor> {
    let Some(rx) = cursor else {
        return std::future::pending().await;
    };
    rx.changed().await.ok()?;
    let latest = rx.borrow_and_update().clone();
    Some(latest)
}

/// Reads messages until the JSON init; pings before it are answered.
async fn wait_init(socket: &mut WebSocket) -> Result<(), String> {
    while let Some(msg) = socket.recv().await {
        match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => match protocol::parse_text(&t) {
                Ok(TextMessage::Init) => return Ok(()),
                Ok(TextMessage::Stats(_)) => {}
                Err(e) => return Err(e.to_string()),
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
    (viewer, role): (u64, Role),
    msg: Message,
    (sub, input): (&zerocast_pipeline::Subscription, &mut ViewerInput),
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
            Ok(ClientMessage::Input(_)) if role == Role::View => {
                return Err((
                    close::POLICY,
                    "view-only: this viewer's link does not allow input".into(),
                ))
            }
            Ok(ClientMessage::Input(ev)) => {
                g.input_events.fetch_add(1, Ordering::Relaxed);
                input.take(g, viewer, ev);
            }
            Ok(ClientMessage::Ignored) => {}
            Err(e) => return Err((close::UNSUPPORTED, e.to_string())),
        },
        Message::Text(t) => match protocol::parse_text(&t) {
            Ok(TextMessage::Stats(r)) => {
                g.reports
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(viewer, r);
            }
            // A second init: the viewer reset its decoder and needs a keyframe.
            Ok(TextMessage::Init) => sub.request_keyframe(),
            Err(e) => return Err((close::UNSUPPORTED, e.to_string())),
        },
        Message::Close(_) => return Err((close::NORMAL, "bye".into())),
        Message::Ping(_) | Message::Pong(_) => {}
    }
    Ok(())
}
