//! The HTTP side of the gateway: the viewer page, `/api/stats`, and the
//! upgrade to one WebSocket per viewer (`/ws?scanout=N`, served by
//! [`crate::viewer`]), every request checked by the access guard first.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use tokio::task::JoinHandle;
use zerocast_input::InputSink;
use zerocast_pipeline::{EncodedFrame, Layout, Registry};

use crate::access::{Access, Role, Token};
use crate::directory::Directory;
pub use crate::protocol::ViewerReport;
use crate::session::GuestSession;
use crate::tls::Tls;
use crate::viewer::{self, close, InputCounts};

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

/// Largest message a viewer may send: input messages are a few bytes, a
/// pasted clipboard (0x60) is at most the session's limit.
const MAX_CLIENT_MESSAGE: usize = 1 + zerocast_session::MAX_CLIPBOARD;
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
    pub(crate) registry: Arc<Registry>,
    pub(crate) access_config: AccessConfig,
    /// Set when the listen address is known.
    pub(crate) access: Option<Access>,
    pub(crate) input: Option<Arc<dyn InputSink>>,
    /// The guest's desktop session (resize, clipboard, typed text), when an
    /// agent can be reached.
    pub(crate) session: Option<Arc<dyn GuestSession>>,
    pub(crate) source_stats: Option<SourceStats>,
    /// With a directory, `/` lists the VMs and viewers are at `/view`.
    pub(crate) directory: Option<Arc<dyn Directory>>,
    pub(crate) max_viewers: usize,
    pub(crate) viewers: AtomicUsize,
    pub(crate) next_viewer: AtomicU64,
    pub(crate) reports: Mutex<BTreeMap<u64, ViewerReport>>,
    pub(crate) input_events: AtomicU64,
    /// Input events over their viewer's budget, dropped.
    pub(crate) input_dropped: AtomicU64,
    /// Video frames not sent to viewers whose links fell behind.
    pub(crate) skipped_frames: AtomicU64,
    /// Input counts of every connected `control` viewer, by viewer id.
    pub(crate) input_viewers: Mutex<BTreeMap<u64, Arc<InputCounts>>>,
    /// The last video message built per scanout and layout, shared by
    /// every viewer of it: one copy of an access unit per frame, not one
    /// per viewer.
    pub(crate) framed: Mutex<HashMap<(u32, Layout), (u64, Bytes)>>,
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
            session: None,
            source_stats: None,
            directory: None,
            max_viewers: 64,
            viewers: AtomicUsize::new(0),
            next_viewer: AtomicU64::new(1),
            reports: Mutex::new(BTreeMap::new()),
            input_events: AtomicU64::new(0),
            input_dropped: AtomicU64::new(0),
            skipped_frames: AtomicU64::new(0),
            input_viewers: Mutex::new(BTreeMap::new()),
            framed: Mutex::new(HashMap::new()),
        }
    }

    /// Adds the frame source's own numbers to `/api/stats` (as `source`).
    pub fn with_source_stats(mut self, stats: SourceStats) -> Self {
        self.source_stats = Some(stats);
        self
    }

    /// Lets `control` viewers resize the guest's screen, share its
    /// clipboard and type text through its desktop session.
    pub fn with_session(mut self, session: Arc<dyn GuestSession>) -> Self {
        self.session = Some(session);
        self
    }

    /// Serves many VMs: `/` lists them (and `/api/vms`), the viewer is at
    /// `/view?scanout=N`.
    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    fn router(self: Arc<Self>) -> Router {
        let viewer = get(|| async {
            (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    // The URL holds the token: never hand it on.
                    (header::REFERRER_POLICY, "no-referrer"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                PAGE.as_str(),
            )
        });
        let router = if self.directory.is_some() {
            Router::new()
                .route("/", get(crate::directory::index))
                .route("/view", viewer)
                .route("/api/vms", get(crate::directory::vms))
        } else {
            Router::new().route("/", viewer)
        };
        router
            .route("/api/stats", get(crate::stats::stats))
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
            Some(tls) => tokio::spawn(crate::tls::serve(listener, app, tls)),
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
    pub(crate) fn video_message(&self, scanout: u32, frame: &EncodedFrame) -> Bytes {
        let mut framed = self.framed.lock().unwrap_or_else(|e| e.into_inner());
        let key = (scanout, frame.layout);
        match framed.get(&key) {
            Some((seq, msg)) if *seq == frame.seq => msg.clone(),
            _ => {
                let msg = viewer::video_message(frame);
                framed.insert(key, (frame.seq, msg.clone()));
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
    // zerocast's page decodes stripes; helix's client, which does not say
    // so, gets the whole picture.
    let stripes = q.get("stripes").is_some_and(|v| v == "1");
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            match scanout {
                Ok(id) => viewer::viewer(socket, g, (id, stripes), role).await,
                Err(_) => {
                    viewer::close_with(socket, close::POLICY, "scanout must be a number").await
                }
            }
        })
        .into_response()
}
