//! [`Peer`]: one HXFR peer's protocol state, sans I/O. Packets go in;
//! [`Output`]s come out for the connection's I/O loop to carry out (send a
//! reply, start pushing a stream, encode a requested resource). Nothing
//! here awaits a socket.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;
use zerocast_encode::{EncoderSettings, Fps};
use zerocast_frame::frame::MAX_DIMENSION;
use zerocast_frame::Cursor;
use zerocast_hxfr::{
    ConfigReq, DecodeError, ErrorCode, ErrorMsg, FrameRequest, FrameResponse, Message, Packet,
    ScanoutResp, SubscribeResp,
};
use zerocast_pipeline::{PublishedFrame, Registry, ScanoutError, Stream, Subscription};

use crate::budget::EncoderMemory;
use crate::session::{EncodedReply, ErrorReply, Session};

/// Encoder sessions one connection may open.
pub const MAX_SESSIONS: usize = 16;

/// Malformed or forbidden messages in a row after which a peer is cut off.
pub const MAX_STRIKES: u32 = 16;

/// A request/response session unused for this long is closed, giving its
/// encoder's memory back.
pub const SESSION_IDLE: Duration = Duration::from_secs(60);

/// What a listener's peers may do, chosen by how the listener was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    /// Watchers (`--hxfr`): PING, SUBSCRIBE and KEYFRAME_REQ for the stream
    /// they watch; they cannot change what others see.
    Subscriber,
    /// A VM's own guest (its vsock endpoint, `--hxfr-guest`): FRAME_REQUEST
    /// for that VM's resources, its own sessions' CONFIG_REQ and
    /// KEYFRAME_REQ, and publishing its own stream.
    Guest,
    /// The operator (`--hxfr-admin`, a Unix socket only): everything,
    /// including the shared encoder's settings and switching displays.
    Admin,
}

impl ListenerRole {
    pub fn name(self) -> &'static str {
        match self {
            ListenerRole::Subscriber => "subscriber",
            ListenerRole::Guest => "guest",
            ListenerRole::Admin => "admin",
        }
    }

    /// What this role may send, for error messages.
    fn may(self) -> &'static str {
        match self {
            ListenerRole::Subscriber => "PING, SUBSCRIBE and KEYFRAME_REQ",
            ListenerRole::Guest => "PING, FRAME_REQUEST, CONFIG_REQ and KEYFRAME_REQ for its own sessions, and FRAME_RESPONSE on its published stream",
            ListenerRole::Admin => "anything a client sends",
        }
    }

    fn allows(self, m: &Message) -> bool {
        use Message as M;
        match (self, m) {
            (_, M::Ping) => true,
            (ListenerRole::Subscriber, M::Subscribe { .. } | M::KeyframeReq) => true,
            (ListenerRole::Subscriber, _) => false,
            (
                ListenerRole::Guest,
                M::FrameRequest(_) | M::ConfigReq(_) | M::KeyframeReq | M::FrameResponse(_),
            ) => true,
            (ListenerRole::Guest, _) => false,
            (ListenerRole::Admin, M::FrameResponse(_)) => false,
            (ListenerRole::Admin, _) => true,
        }
    }
}

/// What the I/O loop must do next for this peer.
pub enum Output {
    /// Send this message.
    Send(Packet),
    /// Send this access unit as a FRAME_RESPONSE (one entry).
    Frame {
        session_id: u16,
        pts_ns: i64,
        reply: EncodedReply,
    },
    /// From now on, also push this stream's frames, and its cursor when the
    /// subscriber asked for it ([`zerocast_hxfr::FLAG_CURSOR`]) and the
    /// stream has one.
    Subscribe {
        subscription: Subscription,
        cursor: Option<watch::Receiver<Cursor>>,
    },
    /// Encode the resource `request` names with `session`, off the async
    /// threads, and hand both back through [`Peer::encoded`].
    Encode {
        session_id: u16,
        request: FrameRequest,
        session: Session,
    },
}

/// A published stream this peer feeds: its picture as announced by CONFIG_REQ.
#[derive(Debug, Clone, Copy)]
struct Publishing {
    width: u32,
    height: u32,
    fps: u32,
}

pub struct Peer {
    registry: Arc<Registry>,
    role: ListenerRole,
    memory: Arc<EncoderMemory>,
    sessions: HashMap<u16, Session>,
    /// When each session was last used.
    used: HashMap<u16, Instant>,
    subscribed: Option<Arc<Stream>>,
    publishing: HashMap<u16, Publishing>,
    out: VecDeque<Output>,
    /// Malformed or forbidden messages since the last good one.
    strikes: u32,
}

impl Peer {
    pub fn new(registry: Arc<Registry>, role: ListenerRole, memory: Arc<EncoderMemory>) -> Self {
        Peer {
            registry,
            role,
            memory,
            sessions: HashMap::new(),
            used: HashMap::new(),
            subscribed: None,
            publishing: HashMap::new(),
            out: VecDeque::new(),
            strikes: 0,
        }
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn send(&mut self, session_id: u16, message: Message) {
        self.out
            .push_back(Output::Send(Packet::new(session_id, message)));
    }

    fn refuse(&mut self, session_id: u16, r: ErrorReply) {
        let message = Message::Error(ErrorMsg {
            code: r.code.code(),
            message: r.message,
        });
        self.send(session_id, message);
    }

    /// Bytes that did not decode: an ERROR, and true when the stream
    /// cannot be resynchronised and the connection must end.
    pub fn bad_input(&mut self, e: &DecodeError) -> bool {
        self.strikes += 1;
        self.refuse(0, ErrorReply::new(ErrorCode::InvalidMessage, e.to_string()));
        e.is_fatal()
    }

    /// True once the peer sent [`MAX_STRIKES`] malformed or forbidden
    /// messages in a row: it is not a client that went astray once.
    pub fn struck_out(&self) -> bool {
        self.strikes >= MAX_STRIKES
    }

    /// Whether the peer watches a stream (it need not send anything more).
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.is_some()
    }

    /// Handles one packet that arrived at `now`.
    pub fn handle(&mut self, now: Instant, p: Packet) {
        let sid = p.session_id;
        self.expire_sessions(now);
        let session_message = matches!(
            p.message,
            Message::ConfigReq(_) | Message::FrameRequest(_) | Message::KeyframeReq
        );
        if !is_from_client(&p.message) {
            self.strikes += 1;
            let msg = format!("{:?} is sent by the host, not to it", p.message.msg_type());
            return self.refuse(sid, ErrorReply::new(ErrorCode::InvalidMessage, msg));
        }
        if !self.role.allows(&p.message) {
            self.strikes += 1;
            let msg = format!(
                "{:?} is not allowed on a {} endpoint (it may send {})",
                p.message.msg_type(),
                self.role.name(),
                self.role.may()
            );
            return self.refuse(sid, ErrorReply::new(ErrorCode::InvalidMessage, msg));
        }
        self.strikes = 0;
        if session_message {
            // Opened or used now (a session lent out for an encode included).
            self.used.insert(sid, now);
        }
        match p.message {
            Message::Ping => self.send(sid, Message::Pong),
            Message::Subscribe { scanout_id } => {
                let cursor = p.flags & zerocast_hxfr::FLAG_CURSOR != 0;
                self.subscribe(sid, scanout_id, cursor);
            }
            Message::KeyframeReq => self.keyframe_request(sid),
            Message::ConfigReq(c) => self.configure(sid, &c),
            Message::FrameRequest(req) => self.frame_request(sid, req),
            Message::EnableScanout(e) => {
                let result = self
                    .registry
                    .set_scanout(e.scanout_id, Some((e.width, e.height)));
                self.scanout_changed(sid, e.scanout_id, result);
            }
            Message::DisableScanout { scanout_id } => {
                // helix's manager waits for an answer here too.
                let result = self.registry.set_scanout(scanout_id, None);
                self.scanout_changed(sid, scanout_id, result);
            }
            Message::FrameResponse(r) => self.publish(sid, r),
            // Refused above.
            Message::ConfigResp
            | Message::Pong
            | Message::ScanoutResp(_)
            | Message::SubscribeResp(_)
            | Message::CursorImage(_)
            | Message::CursorPosition(_)
            | Message::Error(_) => {}
        }
    }

    /// Closes the sessions unused for [`SESSION_IDLE`]; one lent out for an
    /// encode is in use.
    fn expire_sessions(&mut self, now: Instant) {
        let stale: Vec<u16> = self
            .used
            .iter()
            .filter(|(_, &t)| now.saturating_duration_since(t) > SESSION_IDLE)
            .map(|(&sid, _)| sid)
            .collect();
        for sid in stale {
            if self.sessions.remove(&sid).is_some() {
                tracing::debug!(session = sid, "idle session closed");
            }
            self.used.remove(&sid);
        }
    }

    fn scanout_changed(&mut self, sid: u16, scanout_id: u32, result: Result<(), ScanoutError>) {
        if let Err(why) = &result {
            tracing::info!(scanout = scanout_id, "scanout change refused: {why}");
        }
        let resp = ScanoutResp {
            scanout_id,
            success: result.is_ok(),
            connector: format!("Virtual-{}", scanout_id.saturating_add(1)),
        };
        self.send(sid, Message::ScanoutResp(resp));
    }

    fn keyframe_request(&mut self, sid: u16) {
        if let Some(stream) = &self.subscribed {
            stream.request_keyframe();
        } else if let Some(session) = self.sessions.get_mut(&sid) {
            session.request_keyframe();
        } else {
            let msg = format!("session {sid} has no encoder yet: send CONFIG_REQ or FRAME_REQUEST first, or SUBSCRIBE");
            self.refuse(sid, ErrorReply::new(ErrorCode::NotConfigured, msg));
        }
    }

    fn subscribe(&mut self, sid: u16, scanout_id: u32, with_cursor: bool) {
        let stream = self.registry.stream(scanout_id);
        let resp = SubscribeResp {
            scanout_id,
            success: stream.is_some(),
        };
        self.send(sid, Message::SubscribeResp(resp));
        if let Some(stream) = stream {
            let cursor = if with_cursor { stream.cursor() } else { None };
            self.out.push_back(Output::Subscribe {
                subscription: stream.subscribe(),
                cursor,
            });
            self.subscribed = Some(stream);
        }
    }

    /// A guest agent hands in a frame of its published stream (session id =
    /// stream id): zerocast's extension of HXFR, see docs/hxfr.md.
    fn publish(&mut self, sid: u16, r: FrameResponse) {
        let Some(stream) = self.registry.stream(u32::from(sid)) else {
            return self.not_published(sid);
        };
        let Some(published) = stream.as_published() else {
            return self.not_published(sid);
        };
        let Some(p) = self.publishing.get(&sid).copied() else {
            let msg = format!(
                "stream {sid}: send CONFIG_REQ with the picture's width and height before frames"
            );
            return self.refuse(sid, ErrorReply::new(ErrorCode::NotConfigured, msg));
        };
        let access_unit = match r.nals.as_slice() {
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        };
        // The publisher's pts is on its own clock: viewers measure latency
        // from the frame's arrival here.
        let arrived = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let wants_keyframe = published.publish(PublishedFrame {
            access_unit,
            keyframe: r.is_keyframe,
            captured_unix_ns: arrived,
            width: p.width,
            height: p.height,
            fps: p.fps,
        });
        if wants_keyframe {
            self.send(sid, Message::KeyframeReq);
        }
    }

    fn not_published(&mut self, sid: u16) {
        let msg =
            format!("FRAME_RESPONSE is sent by the host; session {sid} is not a published stream");
        self.refuse(sid, ErrorReply::new(ErrorCode::InvalidMessage, msg));
    }

    fn configure(&mut self, sid: u16, c: &ConfigReq) {
        let stream = self.registry.stream(u32::from(sid));
        if stream
            .as_deref()
            .is_some_and(|s| s.as_published().is_some())
        {
            return self.announce(sid, c);
        }
        if let Some(pipeline) = self.subscribed.as_deref().and_then(Stream::as_encoded) {
            // No reply: helix's scanout client treats any non-frame message as fatal.
            pipeline.reconfigure(settings_from(pipeline.settings(), c));
            return;
        }
        let result = match self.sessions.get_mut(&sid) {
            Some(session) => {
                let settings = settings_from(session.settings(), c);
                session.reconfigure(settings)
            }
            None => self.open_session(sid, settings_from(self.registry.settings(), c)),
        };
        match result {
            Ok(()) => self.send(sid, Message::ConfigResp),
            Err(r) => self.refuse(sid, r),
        }
    }

    /// CONFIG_REQ on a published stream announces its picture.
    fn announce(&mut self, sid: u16, c: &ConfigReq) {
        let valid = 1..=MAX_DIMENSION;
        if !valid.contains(&c.width) || !valid.contains(&c.height) {
            let msg = format!(
                "stream {sid}: CONFIG_REQ needs the picture's size (1..={MAX_DIMENSION}), got {}x{}",
                c.width, c.height
            );
            return self.refuse(sid, ErrorReply::new(ErrorCode::InvalidMessage, msg));
        }
        let fps = settings_from(self.registry.settings(), c).fps;
        let publishing = Publishing {
            width: c.width,
            height: c.height,
            fps: fps.num / fps.den.max(1),
        };
        self.publishing.insert(sid, publishing);
        self.send(sid, Message::ConfigResp);
    }

    fn open_session(&mut self, sid: u16, settings: EncoderSettings) -> Result<(), ErrorReply> {
        if self.sessions.len() >= MAX_SESSIONS {
            return Err(ErrorReply::new(
                ErrorCode::Internal,
                format!("at most {MAX_SESSIONS} sessions per connection"),
            ));
        }
        let session = Session::new(self.registry.encoder(), settings, self.memory.clone())?;
        self.sessions.insert(sid, session);
        Ok(())
    }

    fn frame_request(&mut self, sid: u16, request: FrameRequest) {
        if self.registry.resources().is_none() {
            let r = ErrorReply::new(
                ErrorCode::ResourceNotFound,
                "this server has no resources to request; use SUBSCRIBE",
            );
            return self.refuse(sid, r);
        }
        if !self.sessions.contains_key(&sid) {
            if let Err(r) = self.open_session(sid, self.registry.settings()) {
                return self.refuse(sid, r);
            }
        }
        if let Some(session) = self.sessions.remove(&sid) {
            self.out.push_back(Output::Encode {
                session_id: sid,
                request,
                session,
            });
        }
    }

    /// An [`Output::Encode`] is done: the session comes back, the answer goes out.
    pub fn encoded(
        &mut self,
        sid: u16,
        request: &FrameRequest,
        session: Session,
        result: Result<EncodedReply, ErrorReply>,
    ) {
        self.sessions.insert(sid, session);
        match result {
            Ok(reply) => self.out.push_back(Output::Frame {
                session_id: sid,
                pts_ns: request.pts_ns,
                reply,
            }),
            Err(r) => {
                tracing::debug!(session = sid, "FRAME_REQUEST refused: {}", r.message);
                self.refuse(sid, r);
            }
        }
    }

    /// The encoder task died: the session is lost, the peer told why.
    pub fn encode_lost(&mut self, sid: u16, why: &str) {
        let r = ErrorReply::new(ErrorCode::Internal, format!("encoder task failed: {why}"));
        self.refuse(sid, r);
    }

    /// The registry requests resolve against.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

/// Messages a client may send at all (the rest are the host's answers).
fn is_from_client(m: &Message) -> bool {
    !matches!(
        m,
        Message::ConfigResp
            | Message::Pong
            | Message::ScanoutResp(_)
            | Message::SubscribeResp(_)
            | Message::CursorImage(_)
            | Message::CursorPosition(_)
            | Message::Error(_)
    )
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
        ..base
    }
    .sanitized()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_encode::EncoderKind;
    use zerocast_pipeline::PublishedStream;

    fn peer_as(role: ListenerRole) -> Peer {
        let registry = Registry::new(EncoderKind::OpenH264, EncoderSettings::default());
        registry.add(Stream::Published(PublishedStream::new(16, "agent")));
        Peer::new(Arc::new(registry), role, EncoderMemory::new(1 << 30))
    }

    fn peer() -> Peer {
        peer_as(ListenerRole::Guest)
    }

    fn packet(session_id: u16, message: Message) -> Packet {
        Packet::new(session_id, message)
    }

    /// The messages queued for sending, in order (other outputs dropped).
    fn sent(p: &mut Peer) -> Vec<Message> {
        std::iter::from_fn(|| p.poll_output())
            .filter_map(|o| match o {
                Output::Send(packet) => Some(packet.message),
                _ => None,
            })
            .collect()
    }

    fn error_code(m: &Message) -> Option<i32> {
        match m {
            Message::Error(e) => Some(e.code),
            _ => None,
        }
    }

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

    #[test]
    fn ping_subscribe_and_unknown_streams() {
        let mut p = peer_as(ListenerRole::Subscriber);
        p.handle(Instant::now(), packet(3, Message::Ping));
        p.handle(
            Instant::now(),
            packet(0, Message::Subscribe { scanout_id: 7 }),
        );
        let replies = sent(&mut p);
        assert!(matches!(replies[0], Message::Pong));
        assert!(matches!(
            replies[1],
            Message::SubscribeResp(SubscribeResp {
                scanout_id: 7,
                success: false
            })
        ));
        p.handle(
            Instant::now(),
            packet(16, Message::Subscribe { scanout_id: 16 }),
        );
        assert!(matches!(p.poll_output(), Some(Output::Send(_))));
        assert!(matches!(p.poll_output(), Some(Output::Subscribe { .. })));
    }

    #[test]
    fn host_messages_sent_to_the_host_are_refused() {
        let mut p = peer();
        p.handle(Instant::now(), packet(1, Message::Pong));
        p.handle(Instant::now(), packet(1, Message::ConfigResp));
        let codes: Vec<_> = sent(&mut p).iter().map(error_code).collect();
        assert_eq!(codes, vec![Some(-1), Some(-1)]);
    }

    #[test]
    fn a_peer_that_keeps_sending_junk_strikes_out_and_one_good_message_resets() {
        let mut p = peer_as(ListenerRole::Subscriber);
        for _ in 0..MAX_STRIKES - 1 {
            p.handle(Instant::now(), packet(1, Message::Pong));
        }
        assert!(!p.struck_out());
        p.handle(Instant::now(), packet(1, Message::Ping));
        p.handle(
            Instant::now(),
            packet(1, Message::ConfigReq(ConfigReq::default())),
        );
        assert!(
            !p.struck_out(),
            "a good message in between resets the count"
        );
        for _ in 0..MAX_STRIKES {
            p.handle(
                Instant::now(),
                packet(1, Message::FrameRequest(FrameRequest::default())),
            );
        }
        assert!(p.struck_out());
    }

    #[test]
    fn idle_sessions_are_closed_and_give_their_memory_back() {
        let mut p = peer_as(ListenerRole::Guest);
        let t0 = Instant::now();
        p.handle(t0, packet(4, Message::ConfigReq(ConfigReq::default())));
        assert!(matches!(sent(&mut p)[..], [Message::ConfigResp]));
        p.handle(t0 + SESSION_IDLE, packet(4, Message::KeyframeReq));
        assert!(sent(&mut p).is_empty(), "still open at the limit");
        p.handle(
            t0 + SESSION_IDLE * 2 + Duration::from_secs(1),
            packet(9, Message::Ping),
        );
        sent(&mut p);
        p.handle(
            t0 + SESSION_IDLE * 2 + Duration::from_secs(1),
            packet(4, Message::KeyframeReq),
        );
        assert_eq!(error_code(&sent(&mut p)[0]), Some(-6), "closed once idle");
    }

    #[test]
    fn keyframe_requests_need_an_encoder() {
        let mut p = peer();
        p.handle(Instant::now(), packet(2, Message::KeyframeReq));
        assert_eq!(error_code(&sent(&mut p)[0]), Some(-6));
    }

    #[test]
    fn requests_without_resources_are_refused_before_any_encoder_is_made() {
        let mut p = peer();
        p.handle(
            Instant::now(),
            packet(
                1,
                Message::FrameRequest(FrameRequest {
                    resource_id: 1,
                    ..FrameRequest::default()
                }),
            ),
        );
        assert_eq!(error_code(&sent(&mut p)[0]), Some(-2));
        assert!(p.sessions.is_empty());
    }

    #[test]
    fn each_role_may_send_only_its_own_messages() {
        let config = || Message::ConfigReq(ConfigReq::default());
        let request = || Message::FrameRequest(FrameRequest::default());
        let enable = || {
            Message::EnableScanout(zerocast_hxfr::EnableScanout {
                scanout_id: 0,
                width: 64,
                height: 64,
                refresh: 60,
            })
        };
        let refused = |role, m: Message| {
            let mut p = peer_as(role);
            p.handle(Instant::now(), packet(1, m));
            matches!(&sent(&mut p)[..], [Message::Error(e)] if e.message.contains(role.name()))
        };
        for m in [config(), request(), enable()] {
            assert!(
                refused(ListenerRole::Subscriber, m.clone()),
                "subscriber: {m:?}"
            );
        }
        assert!(refused(
            ListenerRole::Subscriber,
            Message::DisableScanout { scanout_id: 0 }
        ));
        assert!(refused(ListenerRole::Guest, enable()));
        assert!(refused(
            ListenerRole::Guest,
            Message::Subscribe { scanout_id: 16 }
        ));
        assert!(refused(
            ListenerRole::Admin,
            Message::FrameResponse(FrameResponse::default())
        ));
        // What each may do is answered, not refused for its role.
        for (role, m) in [
            (
                ListenerRole::Subscriber,
                Message::Subscribe { scanout_id: 16 },
            ),
            (ListenerRole::Subscriber, Message::Ping),
            (ListenerRole::Guest, config()),
            (ListenerRole::Admin, enable()),
            (ListenerRole::Admin, Message::Subscribe { scanout_id: 16 }),
        ] {
            assert!(!refused(role, m.clone()), "{role:?}: {m:?}");
        }
    }

    #[test]
    fn fixed_scanouts_answer_with_scanout_resp() {
        let mut p = peer_as(ListenerRole::Admin);
        p.handle(
            Instant::now(),
            packet(0, Message::DisableScanout { scanout_id: 16 }),
        );
        match &sent(&mut p)[0] {
            Message::ScanoutResp(r) => {
                assert_eq!((r.scanout_id, r.success), (16, false));
                assert_eq!(r.connector, "Virtual-17");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_published_stream_needs_its_size_first_then_takes_frames() {
        let mut p = peer();
        let frame = |keyframe| {
            Message::FrameResponse(FrameResponse {
                pts_ns: 1,
                dts_ns: 1,
                is_keyframe: keyframe,
                nals: vec![Bytes::from_static(&[0, 0, 0, 1, 0x65])],
            })
        };
        p.handle(Instant::now(), packet(16, frame(true)));
        p.handle(Instant::now(), packet(5, frame(true)));
        let bad_size = ConfigReq {
            width: MAX_DIMENSION + 1,
            height: 10,
            ..ConfigReq::default()
        };
        p.handle(Instant::now(), packet(16, Message::ConfigReq(bad_size)));
        let codes: Vec<_> = sent(&mut p).iter().map(error_code).collect();
        assert_eq!(codes, vec![Some(-6), Some(-1), Some(-1)]);
        let size = ConfigReq {
            width: 64,
            height: 32,
            fps_num: 30,
            fps_den: 1,
            ..ConfigReq::default()
        };
        p.handle(Instant::now(), packet(16, Message::ConfigReq(size)));
        assert!(matches!(sent(&mut p)[..], [Message::ConfigResp]));
        let stream = p.registry().stream(16).unwrap();
        let _viewer = stream.subscribe();
        p.handle(Instant::now(), packet(16, frame(false)));
        assert!(
            matches!(sent(&mut p)[..], [Message::KeyframeReq]),
            "a viewer waits for a keyframe: the producer is asked for one"
        );
        assert_eq!(stream.stats().frames, 1);
    }
}
