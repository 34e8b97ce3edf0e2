//! Zero-copy mode: the host encodes. The agent never touches a pixel: it
//! watches which framebuffer is on screen and, after each flip, sends a
//! FRAME_REQUEST naming that framebuffer's virtio-gpu resource; the host
//! encodes the resource straight from guest memory and answers with the
//! access unit (FRAME_RESPONSE) or an ERROR.
//!
//! Start: CONFIG_REQ (bitrate, frame rate), waiting a bounded time for
//! CONFIG_RESP (helix's host may not answer one), then KEYFRAME_REQ. Every
//! keyframe is asked for twice, by KEYFRAME_REQ and by `force_keyframe` in
//! the next request: helix's host only reads the latter.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use zerocast_hxfr::{ConfigReq, ErrorCode, ErrorMsg, FrameRequest, FrameResponse, Message, Packet};

use crate::args::Args;
use crate::in_flight::{self, InFlight, Pending};
use crate::link::Link;
use crate::publish::{Publisher, Reply};
use crate::screen::{Framebuffer, Screen};
use crate::sink::Sink;
use crate::transport;
use crate::watch::Watch;

/// How long to wait for an answer to CONFIG_REQ before going on without one.
const CONFIG_WAIT: Duration = Duration::from_secs(2);
/// H.264 profile asked for: constrained baseline, as helix's clients use.
const PROFILE_BASELINE: u8 = 66;
/// ERRORs printed in full before only every `ERROR_LOG_EVERY`th is.
const ERRORS_LOGGED: u64 = 5;
const ERROR_LOG_EVERY: u64 = 100;

pub fn run(args: &Args, screen: Screen, sink: Sink) -> Result<()> {
    let target = args.target();
    let (reader, writer) = transport::connect(&target, Instant::now() + args.timeout())?;
    println!("zerocast-guest: connected to {target}, the host encodes");
    let mut stream = Stream {
        link: Link::new(reader, writer)?,
        screen,
        sink,
        pending: InFlight::new(in_flight::DEPTH),
        watch: Watch::new(args.refresh(), args.frame()),
        start: Instant::now(),
        keyframe_due: true,
        errors: 0,
        publisher: args.publisher(),
        size: (0, 0),
    };
    stream.configure(args)?;
    stream.run(args)
}

struct Stream {
    link: Link,
    screen: Screen,
    sink: Sink,
    pending: InFlight,
    watch: Watch,
    start: Instant,
    /// Whether the next request asks for a keyframe.
    keyframe_due: bool,
    errors: u64,
    publisher: Option<Publisher>,
    /// Size of the picture last asked for.
    size: (u32, u32),
}

/// Whether the stream has delivered all the frames asked for.
#[derive(PartialEq, Eq)]
enum Flow {
    More,
    Done,
}

impl Stream {
    fn configure(&mut self, args: &Args) -> Result<()> {
        let fb = self.screen.wait_for_scanout(self.start + args.timeout())?;
        self.link.send(Message::ConfigReq(ConfigReq {
            width: fb.width,
            height: fb.height,
            bitrate_bps: args.bitrate,
            fps_num: args.fps,
            fps_den: 1,
            profile: PROFILE_BASELINE,
            level: 0,
            realtime: true,
        }))?;
        match self.link.recv_timeout(CONFIG_WAIT)?.map(|p| p.message) {
            Some(Message::ConfigResp) => println!(
                "zerocast-guest: host configured: {} bit/s at {} fps",
                args.bitrate, args.fps
            ),
            Some(Message::Error(e)) => bail!("the host refused CONFIG_REQ: {}", describe(&e)),
            Some(other) => bail!("the host answered CONFIG_REQ with {:?}", other.msg_type()),
            None => {
                println!("zerocast-guest: no answer to CONFIG_REQ in {CONFIG_WAIT:?}; going on")
            }
        }
        self.link.send(Message::KeyframeReq)
    }

    fn run(mut self, args: &Args) -> Result<()> {
        let mut next_keyframe = args.keyframe_every().map(|every| self.start + every);
        loop {
            let mut packet = self.link.recv_timeout(args.poll())?;
            while let Some(p) = packet {
                if self.answer(p)? == Flow::Done {
                    self.sink.finish();
                    return Ok(());
                }
                packet = self.link.try_recv()?;
            }
            let now = Instant::now();
            if let Some(waited) = self.pending.overdue(now, args.timeout()) {
                bail!("no answer from the host to a FRAME_REQUEST for {waited:?}");
            }
            if let (Some(at), Some(every)) = (next_keyframe, args.keyframe_every()) {
                if now >= at {
                    self.link.send(Message::KeyframeReq)?;
                    self.keyframe_due = true;
                    next_keyframe = Some(now + every);
                }
            }
            let Some(fb) = self.screen.current()? else {
                continue;
            };
            self.watch.observe(fb);
            if self.pending.has_room() && self.watch.due(now) {
                let info = self.screen.describe(fb)?;
                self.request(&info, now, args.frame_duration_ns())?;
            }
        }
    }

    fn request(&mut self, fb: &Framebuffer, now: Instant, duration_ns: i64) -> Result<()> {
        let pts_ns = i64::try_from(now.duration_since(self.start).as_nanos()).unwrap_or(i64::MAX);
        self.link.send(Message::FrameRequest(FrameRequest {
            resource_id: fb.resource_id,
            width: fb.width,
            height: fb.height,
            format: fb.format.fourcc(),
            stride: fb.pitch,
            pts_ns,
            duration_ns,
            force_keyframe: self.keyframe_due,
        }))?;
        self.pending.sent(Pending {
            sent_at: now,
            pts_ns,
            resource_id: fb.resource_id,
        });
        self.watch.captured(now);
        self.keyframe_due = false;
        self.size = (fb.width, fb.height);
        Ok(())
    }

    fn answer(&mut self, packet: Packet) -> Result<Flow> {
        match self.publisher.as_ref().map(|p| p.reply(&packet)) {
            Some(Reply::Keyframe) => {
                self.keyframe_due = true;
                return Ok(Flow::More);
            }
            Some(Reply::Nothing) => return Ok(Flow::More),
            Some(Reply::NotOurs) | None => {}
        }
        match packet.message {
            Message::FrameResponse(r) => self.frame(r),
            Message::Error(e) => {
                self.error(&e);
                Ok(Flow::More)
            }
            Message::ConfigResp | Message::Pong => Ok(Flow::More),
            other => {
                eprintln!(
                    "zerocast-guest: ignored {:?} from the host",
                    other.msg_type()
                );
                Ok(Flow::More)
            }
        }
    }

    fn frame(&mut self, r: FrameResponse) -> Result<Flow> {
        let latency = match self.pending.answered() {
            Some(p) => {
                if p.pts_ns != r.pts_ns {
                    eprintln!(
                        "zerocast-guest: answer for pts {} came where pts {} was expected",
                        r.pts_ns, p.pts_ns
                    );
                }
                p.sent_at.elapsed()
            }
            None => {
                eprintln!(
                    "zerocast-guest: a frame nobody asked for (pts {})",
                    r.pts_ns
                );
                Duration::ZERO
            }
        };
        let done = self.sink.frame(&r.nals, r.is_keyframe, latency)?;
        if let Some(publisher) = &mut self.publisher {
            publisher.send(&mut self.link, r.nals, r.is_keyframe, r.pts_ns, self.size)?;
        }
        Ok(if done { Flow::Done } else { Flow::More })
    }

    /// An ERROR answers the oldest request. RESOURCE_NOT_FOUND means the
    /// screen changed under us (the owner replaced its buffers): look again.
    fn error(&mut self, e: &ErrorMsg) {
        let request = self.pending.answered();
        self.errors += 1;
        if self.errors <= ERRORS_LOGGED || self.errors % ERROR_LOG_EVERY == 0 {
            let resource = request.map_or("?".to_owned(), |p| p.resource_id.to_string());
            eprintln!(
                "zerocast-guest: host ERROR for resource {resource} ({} so far): {}",
                self.errors,
                describe(e)
            );
        }
        if ErrorCode::from_code(e.code) == ErrorCode::ResourceNotFound {
            self.screen.forget();
            self.keyframe_due = true;
        }
    }
}

fn describe(e: &ErrorMsg) -> String {
    format!(
        "{} ({:?}) {}",
        e.code,
        ErrorCode::from_code(e.code),
        e.message
    )
}
