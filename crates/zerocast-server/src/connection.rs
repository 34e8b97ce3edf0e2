//! One HXFR peer. The reader decodes requests and answers them in order; a
//! writer task sends replies and, once subscribed, the scanout's frames. A
//! peer that stops reading only stalls its own writer: the pipeline keeps
//! going and the subscription skips ahead to the next keyframe.

use std::collections::HashMap;
use std::future::pending;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use zerocast_encode::{EncoderSettings, Fps};
use zerocast_hxfr::{
    encode, ConfigReq, Decoder, ErrorCode, ErrorMsg, FrameRequest, FrameResponse, Limits, Message,
    Packet, ScanoutResp, SubscribeResp,
};

use crate::session::{Refusal, Session};
use crate::{EncodedFrame, Registry, ScanoutPipeline, Subscription};

/// A write that makes no progress for this long ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Encoder sessions one connection may open.
const MAX_SESSIONS: usize = 16;

enum Outgoing {
    Bytes(Bytes),
    Subscribe(Subscription),
}

/// Serves one peer until it disconnects or breaks the protocol.
pub async fn serve<S>(stream: S, registry: Arc<Registry>, peer: String)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(16);
    let writer = tokio::spawn(write_loop(wr, rx, peer.clone()));
    let mut conn = Connection {
        registry,
        tx: Replies(tx),
        sessions: HashMap::new(),
        subscribed: None,
        publishing: HashMap::new(),
    };
    let decoder = Decoder::new(Limits::HOST);
    let mut buf = BytesMut::with_capacity(4096);
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    if conn.handle(packet).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, "bad HXFR input: {e}");
                    let reply = conn
                        .tx
                        .refuse(0, Refusal::new(ErrorCode::InvalidMessage, e.to_string()));
                    if reply.await.is_err() || e.is_fatal() {
                        break 'read;
                    }
                }
            }
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(conn);
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
}

struct Connection {
    registry: Arc<Registry>,
    tx: Replies,
    sessions: HashMap<u16, Session>,
    subscribed: Option<Arc<ScanoutPipeline>>,
    /// Picture sizes of the published streams this peer feeds, by session id.
    publishing: HashMap<u16, (u32, u32)>,
}

/// The writer is gone: stop reading too.
struct Closed;

/// The queue to the writer task.
struct Replies(mpsc::Sender<Outgoing>);

impl Replies {
    async fn push(&self, item: Outgoing) -> Result<(), Closed> {
        self.0.send(item).await.map_err(|_| Closed)
    }

    async fn send(&self, session_id: u16, message: Message) -> Result<(), Closed> {
        let mut b = BytesMut::new();
        encode(&Packet::new(session_id, message), &mut b);
        self.push(Outgoing::Bytes(b.freeze())).await
    }

    async fn scanout_resp(&self, sid: u16, scanout_id: u32, success: bool) -> Result<(), Closed> {
        let connector = format!("Virtual-{}", scanout_id.saturating_add(1));
        let resp = ScanoutResp {
            scanout_id,
            success,
            connector,
        };
        self.send(sid, Message::ScanoutResp(resp)).await
    }

    async fn scanout_changed(
        &self,
        sid: u16,
        id: u32,
        result: Result<(), String>,
    ) -> Result<(), Closed> {
        if let Err(why) = &result {
            tracing::info!(scanout = id, "scanout change refused: {why}");
        }
        self.scanout_resp(sid, id, result.is_ok()).await
    }

    async fn refuse(&self, session_id: u16, r: Refusal) -> Result<(), Closed> {
        let message = Message::Error(ErrorMsg {
            code: r.code.code(),
            message: r.message,
        });
        self.send(session_id, message).await
    }
}

impl Connection {
    async fn handle(&mut self, p: Packet) -> Result<(), Closed> {
        let sid = p.session_id;
        match p.message {
            Message::Ping => self.tx.send(sid, Message::Pong).await,
            Message::Subscribe { scanout_id } => self.subscribe(sid, scanout_id).await,
            Message::KeyframeReq => match (&self.subscribed, self.sessions.get_mut(&sid)) {
                (Some(pipeline), _) => {
                    pipeline.request_keyframe();
                    Ok(())
                }
                (None, Some(session)) => {
                    session.request_keyframe();
                    Ok(())
                }
                (None, None) => {
                    let msg = format!("session {sid} has no encoder yet: send CONFIG_REQ or FRAME_REQUEST first, or SUBSCRIBE");
                    self.tx
                        .refuse(sid, Refusal::new(ErrorCode::NotConfigured, msg))
                        .await
                }
            },
            Message::ConfigReq(c) => self.configure(sid, c).await,
            Message::FrameRequest(req) => self.frame_request(sid, req).await,
            Message::EnableScanout(e) => {
                let mode = Some((e.width, e.height));
                let result = self.registry.set_scanout(e.scanout_id, mode);
                self.tx.scanout_changed(sid, e.scanout_id, result).await
            }
            Message::DisableScanout { scanout_id } => {
                // helix's manager waits for an answer here too.
                let result = self.registry.set_scanout(scanout_id, None);
                self.tx.scanout_changed(sid, scanout_id, result).await
            }
            Message::FrameResponse(r) => self.publish(sid, r).await,
            m @ (Message::ConfigResp
            | Message::Pong
            | Message::ScanoutResp(_)
            | Message::SubscribeResp(_)
            | Message::Error(_)) => {
                let msg = format!("{:?} is sent by the host, not to it", m.msg_type());
                self.tx
                    .refuse(sid, Refusal::new(ErrorCode::InvalidMessage, msg))
                    .await
            }
        }
    }

    async fn subscribe(&mut self, sid: u16, scanout_id: u32) -> Result<(), Closed> {
        let Some(pipeline) = self.registry.scanout(scanout_id) else {
            let resp = SubscribeResp {
                scanout_id,
                success: false,
            };
            return self.tx.send(sid, Message::SubscribeResp(resp)).await;
        };
        let resp = SubscribeResp {
            scanout_id,
            success: true,
        };
        self.tx.send(sid, Message::SubscribeResp(resp)).await?;
        let sub = pipeline.subscribe();
        self.subscribed = Some(pipeline);
        self.tx.push(Outgoing::Subscribe(sub)).await
    }

    /// A guest agent hands in a frame of its published stream (session id =
    /// stream id): zerocast's extension of HXFR, see docs/hxfr.md.
    async fn publish(&mut self, sid: u16, r: FrameResponse) -> Result<(), Closed> {
        let Some(stream) = self
            .registry
            .scanout(u32::from(sid))
            .filter(|p| p.is_published())
        else {
            let msg = format!(
                "FRAME_RESPONSE is sent by the host; session {sid} is not a published stream"
            );
            return self
                .tx
                .refuse(sid, Refusal::new(ErrorCode::InvalidMessage, msg))
                .await;
        };
        let Some(&size) = self.publishing.get(&sid) else {
            let msg = format!(
                "stream {sid}: send CONFIG_REQ with the picture's width and height before frames"
            );
            return self
                .tx
                .refuse(sid, Refusal::new(ErrorCode::NotConfigured, msg))
                .await;
        };
        let access_unit = match r.nals.as_slice() {
            [one] => one.clone(),
            many => many.concat().into(),
        };
        // The publisher's pts is on its own clock: viewers measure latency
        // from the frame's arrival here.
        let arrived = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        if stream.publish(&access_unit, r.is_keyframe, arrived, size) {
            return self.tx.send(sid, Message::KeyframeReq).await;
        }
        Ok(())
    }

    async fn configure(&mut self, sid: u16, c: ConfigReq) -> Result<(), Closed> {
        if self
            .registry
            .scanout(u32::from(sid))
            .is_some_and(|p| p.is_published())
        {
            if c.width == 0 || c.height == 0 || c.width > 8192 || c.height > 8192 {
                let msg = format!(
                    "stream {sid}: CONFIG_REQ needs the picture's size (1..=8192), got {}x{}",
                    c.width, c.height
                );
                return self
                    .tx
                    .refuse(sid, Refusal::new(ErrorCode::InvalidMessage, msg))
                    .await;
            }
            self.publishing.insert(sid, (c.width, c.height));
            return self.tx.send(sid, Message::ConfigResp).await;
        }
        let base = match (&self.subscribed, self.sessions.get(&sid)) {
            (Some(p), _) => p.settings(),
            (None, Some(s)) => s.settings(),
            (None, None) => self.registry.settings(),
        };
        let settings = settings_from(base, &c);
        if let Some(pipeline) = &self.subscribed {
            // No reply: helix's scanout client treats any non-frame message as fatal.
            pipeline.reconfigure(settings);
            return Ok(());
        }
        let result = match self.sessions.get_mut(&sid) {
            Some(session) => session.reconfigure(settings),
            None => self.open_session(sid, settings),
        };
        match result {
            Ok(()) => self.tx.send(sid, Message::ConfigResp).await,
            Err(r) => self.tx.refuse(sid, r).await,
        }
    }

    fn open_session(&mut self, sid: u16, settings: EncoderSettings) -> Result<(), Refusal> {
        if self.sessions.len() >= MAX_SESSIONS {
            return Err(Refusal::new(
                ErrorCode::Internal,
                format!("at most {MAX_SESSIONS} sessions per connection"),
            ));
        }
        let session = Session::new(self.registry.encoder(), settings)?;
        self.sessions.insert(sid, session);
        Ok(())
    }

    async fn frame_request(&mut self, sid: u16, req: FrameRequest) -> Result<(), Closed> {
        let Some(table) = self.registry.resources().cloned() else {
            let r = Refusal::new(
                ErrorCode::ResourceNotFound,
                "this server has no resources to request; use SUBSCRIBE",
            );
            return self.tx.refuse(sid, r).await;
        };
        if !self.sessions.contains_key(&sid) {
            if let Err(r) = self.open_session(sid, self.registry.settings()) {
                return self.tx.refuse(sid, r).await;
            }
        }
        let Some(mut session) = self.sessions.remove(&sid) else {
            return Ok(());
        };
        // Encoding is CPU work: off the async threads. One request at a time
        // per connection, so a flood only fills this peer's own socket.
        let job = tokio::task::spawn_blocking(move || {
            let result = session.encode(sid, &req, table.as_ref());
            (session, result)
        });
        let (session, result) = match job.await {
            Ok(done) => done,
            Err(e) => {
                let r = Refusal::new(ErrorCode::Internal, format!("encoder task failed: {e}"));
                return self.tx.refuse(sid, r).await;
            }
        };
        self.sessions.insert(sid, session);
        match result {
            Ok(msg) => self.tx.push(Outgoing::Bytes(msg)).await,
            Err(r) => {
                tracing::debug!(session = sid, "FRAME_REQUEST refused: {}", r.message);
                self.tx.refuse(sid, r).await
            }
        }
    }
}

/// Applies a CONFIG_REQ onto the settings in force; zero fields keep.
fn settings_from(base: EncoderSettings, c: &ConfigReq) -> EncoderSettings {
    EncoderSettings {
        bitrate_bps: if c.bitrate_bps == 0 {
            base.bitrate_bps
        } else {
            c.bitrate_bps
        },
        fps: if c.fps_num == 0 {
            base.fps
        } else {
            Fps {
                num: c.fps_num,
                den: c.fps_den.max(1),
            }
        },
        keyframe_interval: base.keyframe_interval,
    }
    .sanitized()
}

async fn write_loop<W: AsyncWrite>(wr: W, mut rx: mpsc::Receiver<Outgoing>, peer: String) {
    tokio::pin!(wr);
    let mut sub: Option<Subscription> = None;
    loop {
        let bytes = tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(Outgoing::Bytes(b)) => b,
                Some(Outgoing::Subscribe(s)) => {
                    sub = Some(s);
                    continue;
                }
                None => break,
            },
            f = next_frame(&mut sub) => match f {
                Some(frame) => frame.hxfr.clone(),
                None => {
                    sub = None;
                    continue;
                }
            },
        };
        match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, "write failed: {e}");
                break;
            }
            Err(_) => {
                tracing::warn!(%peer, "peer stopped reading for {WRITE_TIMEOUT:?}; closing");
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
}

async fn next_frame(sub: &mut Option<Subscription>) -> Option<Arc<EncodedFrame>> {
    match sub {
        Some(s) => s.next().await,
        None => pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_zero_fields_keep_and_values_are_sanitized() {
        let base = EncoderSettings::default();
        let keep = settings_from(base, &ConfigReq::default());
        assert_eq!(keep, base);
        let c = ConfigReq {
            bitrate_bps: 3_000_000,
            fps_num: 30,
            fps_den: 0,
            ..ConfigReq::default()
        };
        let s = settings_from(base, &c);
        assert_eq!((s.bitrate_bps, s.fps), (3_000_000, Fps::new(30)));
        let huge = ConfigReq {
            bitrate_bps: u32::MAX,
            fps_num: u32::MAX,
            ..ConfigReq::default()
        };
        let s = settings_from(base, &huge);
        assert!(s.bitrate_bps <= 200_000_000 && s.fps.as_f32() <= 240.0);
    }
}
