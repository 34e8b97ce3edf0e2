//! One viewer's WebSocket: its init, its place among the viewers, the
//! stream's frames and cursor going out, and its input coming in through
//! its budget (see [`crate::input_budget`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::watch;
use zerocast_frame::{Cursor, CursorFeed};
use zerocast_input::{Held, InputEvent, InputSink};
use zerocast_pipeline::EncodedFrame;
use zerocast_session::HostMessage;

use crate::access::Role;
use crate::gateway::Gateway;
use crate::input_budget::InputBudget;
use crate::outbox::{Backlog, Decision, Outbox};
use crate::protocol::{self, ClientMessage, TextMessage};

/// How long a viewer has to send its init message.
const INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// The bitrate a published stream is budgeted at (its producer's is not known here).
const DEFAULT_BITRATE: u32 = 8_000_000;
/// WebSocket close codes (RFC 6455).
pub(crate) mod close {
    pub const NORMAL: u16 = 1000;
    pub const UNSUPPORTED: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TRY_LATER: u16 = 1013;
}

pub(crate) async fn close_with(mut socket: WebSocket, code: u16, reason: &str) {
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

/// One viewer's input counts (see `/api/stats`).
#[derive(Debug, Default)]
pub(crate) struct InputCounts {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
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

/// Serves one viewer of `scanout`, in stripes if it asked for them.
pub(crate) async fn viewer(
    mut socket: WebSocket,
    g: Arc<Gateway>,
    (scanout, stripes): (u32, bool),
    role: Role,
) {
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
    let mut sub = if stripes {
        stream.subscribe_striped()
    } else {
        stream.subscribe()
    };
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
    let mut cursor_feed = CursorFeed::default();
    // The guest's clipboard, for control viewers: each change as it comes.
    let mut clipboard = match (&g.session, role) {
        (Some(session), Role::Control) => Some(session.clipboard()),
        _ => None,
    };
    // Writing happens in its own task: a slow link fills this viewer's
    // queue, and past its budget the viewer skips to a fresh keyframe.
    let bitrate = stream
        .as_encoded()
        .map_or(DEFAULT_BITRATE, |p| p.settings().bitrate_bps);
    let mut backlog = Backlog::for_bitrate(bitrate);
    let (sink, mut incoming) = socket.split();
    let outbox = Outbox::start(sink);
    let binary = |b: Bytes| Message::Binary(b);
    loop {
        tokio::select! {
            latest = next_cursor(&mut cursor) => {
                let Some(latest) = latest else {
                    cursor = None;
                    continue;
                };
                for update in cursor_feed.update(&latest) {
                    let msg = protocol::cursor_message(&update);
                    if !outbox.push(binary(Bytes::from(msg))) {
                        return outbox.finish().await;
                    }
                }
            }
            text = next_clipboard(&mut clipboard) => {
                let Some(text) = text else {
                    clipboard = None;
                    continue;
                };
                if !outbox.push(binary(Bytes::from(protocol::clipboard(&text)))) {
                    return outbox.finish().await;
                }
            }
            frame = sub.next() => {
                let Some(frame) = frame else {
                    return outbox.close(close::NORMAL, sub.end_reason()).await;
                };
                let message = g.video_message(scanout, &frame);
                let decision = backlog.offer(Instant::now(), frame.keyframe, message.len(), outbox.queued());
                if decision != Decision::Send {
                    g.skipped_frames.fetch_add(1, Ordering::Relaxed);
                    if decision == Decision::SkipAndAsk {
                        sub.request_keyframe();
                    }
                    continue;
                }
                if (frame.width, frame.height, frame.fps) != shape {
                    shape = (frame.width, frame.height, frame.fps);
                    let init = protocol::stream_init(shape.0, shape.1, shape.2);
                    if !outbox.push(binary(Bytes::copy_from_slice(&init))) {
                        return outbox.finish().await;
                    }
                }
                if !outbox.push(binary(message)) {
                    return outbox.finish().await;
                }
            }
            msg = incoming.next() => {
                let Some(Ok(msg)) = msg else { return outbox.finish().await };
                if let Err((code, reason)) = handle_client(&outbox, &g, (id, role), msg, (&sub, &mut input)) {
                    return outbox.close(code, &reason).await;
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

/// The guest's clipboard once it changed to a text; `None` once the
/// session has gone; never without a session.
async fn next_clipboard(rx: &mut Option<watch::Receiver<Option<Arc<str>>>>) -> Option<Arc<str>> {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    loop {
        rx.changed().await.ok()?;
        if let Some(text) = rx.borrow_and_update().clone() {
            return Some(text);
        }
    }
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

pub(crate) fn video_message(frame: &EncodedFrame) -> Bytes {
    let au = &frame.access_unit;
    let pts_us = u64::try_from(frame.captured_unix_ns / 1000).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(protocol::VIDEO_HEADER_LEN + au.len());
    buf.put_slice(&protocol::video_frame_header(
        frame.layout,
        frame.keyframe,
        pts_us,
        frame.width,
        frame.height,
    ));
    buf.put_slice(au);
    buf.freeze()
}

/// Hands a viewer's request to the guest session, if there is one.
fn session_request(g: &Gateway, msg: HostMessage) {
    match &g.session {
        Some(session) => session.request(msg),
        None => tracing::debug!("no guest session: a viewer's session request is dropped"),
    }
}

fn handle_client(
    outbox: &Outbox,
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
                if !outbox.push(Message::Binary(Bytes::copy_from_slice(&reply))) {
                    return Err((close::NORMAL, "viewer gone".into()));
                }
            }
            // A view-only page asks for its size like any other; only a
            // viewer with control decides the guest's mode.
            Ok(ClientMessage::Resize { .. }) if role == Role::View => {}
            Ok(ClientMessage::Input(_) | ClientMessage::Clipboard(_) | ClientMessage::Text(_))
                if role == Role::View =>
            {
                return Err((
                    close::POLICY,
                    "view-only: this viewer's link does not allow input".into(),
                ))
            }
            Ok(ClientMessage::Resize { width, height }) => {
                let (width, height) = zerocast_session::fit_mode(width, height);
                session_request(g, HostMessage::Resize { width, height });
            }
            Ok(ClientMessage::Clipboard(text)) => session_request(g, HostMessage::Clipboard(text)),
            Ok(ClientMessage::Text(text)) => session_request(g, HostMessage::Type(text)),
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
