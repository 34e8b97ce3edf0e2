//! End to end over real sockets: `zerocast demo` serves, real HXFR clients
//! read, ffprobe/ffmpeg decode what they wrote.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use harness::{record, stamps, tmp, Zerocast, HEAVY_STREAM};
use zerocast_encode::EncoderKind;
use zerocast_hxfr::{encode, Decoder, ErrorCode, FrameRequest, Limits, Message, Packet};

const SMALL: &[&str] = &["--width", "640", "--height", "360", "--fps", "30"];

fn assert_advancing(stamps: &[Option<u32>], consecutive: bool) {
    let read: Vec<u32> = stamps
        .iter()
        .map(|s| s.expect("every frame carries a readable stamp"))
        .collect();
    for w in read.windows(2) {
        if consecutive {
            assert_eq!(w[1], w[0] + 1, "frames must follow one another: {read:?}");
        } else {
            assert!(w[1] > w[0], "frame numbers must advance: {read:?}");
        }
    }
}

#[test]
fn subscriber_writes_a_stream_that_decodes() {
    for encoder in EncoderKind::ALL {
        let name = encoder.to_string();
        let demo = Zerocast::demo(&[SMALL, &["--encoder", &name]].concat());
        let (out, p) = record(
            &["--connect", &demo.hxfr, "--frames", "45"],
            &format!("subscribe-{name}.h264"),
        );
        assert_eq!((p.width, p.height), (640, 360), "{name}");
        assert_eq!(p.keyframes.len(), 45, "{name}");
        assert!(
            p.keyframes[0],
            "{name}: a new subscriber starts with a keyframe"
        );
        assert_advancing(&stamps(&out, 640, 360), false);
    }
}

#[test]
fn request_response_mode_encodes_the_named_resource() {
    let demo = Zerocast::demo(SMALL);
    let (out, p) = record(
        &[
            "--connect",
            &demo.hxfr_guest,
            "--resource",
            "1",
            "--width",
            "640",
            "--height",
            "360",
            "--frames",
            "8",
        ],
        "request.h264",
    );
    assert_eq!((p.width, p.height, p.keyframes.len()), (640, 360, 8));
    assert!(p.keyframes[0]);
    assert_advancing(&stamps(&out, 640, 360), true);
}

/// A raw HXFR peer for the error cases.
struct Peer {
    s: TcpStream,
    buf: BytesMut,
}

impl Peer {
    fn connect(addr: &str) -> Peer {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Peer {
            s,
            buf: BytesMut::new(),
        }
    }

    fn send(&mut self, session: u16, m: Message) {
        let mut b = BytesMut::new();
        encode(&Packet::new(session, m), &mut b);
        self.s.write_all(&b).unwrap();
    }

    /// The next packet, or None when the server closed the connection.
    fn recv(&mut self) -> Option<Packet> {
        let d = Decoder::new(Limits::CLIENT);
        loop {
            if let Some(p) = d.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn expect_error(&mut self, code: ErrorCode) -> String {
        match self.recv().map(|p| p.message) {
            Some(Message::Error(e)) => {
                assert_eq!(ErrorCode::from_code(e.code), code, "{}", e.message);
                e.message
            }
            other => panic!("expected ERROR {code:?}, got {other:?}"),
        }
    }
}

fn request(resource_id: u32, width: u32, height: u32, stride: u32) -> Message {
    Message::FrameRequest(FrameRequest {
        resource_id,
        width,
        height,
        stride,
        format: 0x3432_5241,
        ..FrameRequest::default()
    })
}

#[test]
fn bad_requests_get_the_right_error_codes() {
    let demo = Zerocast::demo(SMALL);
    let mut peer = Peer::connect(demo.hxfr_guest_addr());
    peer.send(3, Message::Ping);
    let pong = peer.recv().unwrap();
    assert_eq!((pong.session_id, pong.message), (3, Message::Pong));

    peer.send(1, Message::KeyframeReq);
    peer.expect_error(ErrorCode::NotConfigured);
    peer.send(1, request(7, 640, 360, 2560));
    peer.expect_error(ErrorCode::ResourceNotFound);
    peer.send(1, request(1, 1920, 1080, 7680));
    let why = peer.expect_error(ErrorCode::InvalidMessage);
    assert!(
        why.contains("640x360"),
        "the error names the real geometry: {why}"
    );
    peer.send(1, request(1, 640, 360, u32::MAX));
    peer.expect_error(ErrorCode::InvalidMessage);
    let mut watcher = Peer::connect(demo.hxfr_addr());
    watcher.send(2, Message::Subscribe { scanout_id: 9 });
    match watcher.recv().unwrap().message {
        Message::SubscribeResp(r) => assert!(!r.success && r.scanout_id == 9),
        m => panic!("expected SUBSCRIBE_RESP, got {m:?}"),
    }
    // A message only the host sends, then a truncated one: refused, connection kept.
    peer.send(1, Message::Pong);
    peer.expect_error(ErrorCode::InvalidMessage);
    let mut short = BytesMut::from(&b"HXFR\x01\x00\x01\x00\x04\x00\x00\x00\x01\x00\x00\x00"[..]);
    peer.s.write_all(&short.split()).unwrap();
    peer.expect_error(ErrorCode::InvalidMessage);
    // The session still works after all that.
    peer.send(1, request(1, 640, 360, 2560));
    assert!(matches!(peer.recv().unwrap().message, Message::FrameResponse(r) if r.is_keyframe));

    // An oversized payload is refused before anything is buffered, and the
    // stream is closed because it can no longer be followed.
    let mut huge = Peer::connect(demo.hxfr_addr());
    huge.s
        .write_all(b"HXFR\x01\x00\x01\x00\xff\xff\xff\x7f")
        .unwrap();
    huge.expect_error(ErrorCode::InvalidMessage);
    assert!(
        huge.recv().is_none(),
        "connection closed after a fatal error"
    );
    // Not HXFR at all.
    let mut http = Peer::connect(demo.hxfr_addr());
    http.s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    http.expect_error(ErrorCode::InvalidMessage);
    assert!(http.recv().is_none());
}

#[test]
fn a_subscriber_that_never_reads_does_not_hold_back_another() {
    // All-keyframe 1080p: a few MB a second, so a peer that does not read
    // fills the kernel's socket buffers within seconds.
    let demo = Zerocast::demo(HEAVY_STREAM);
    // Subscribes, then stops reading: its writer stalls while the encoder and
    // the other subscriber go on.
    let mut stalled = Peer::connect(demo.hxfr_addr());
    stalled.send(0, Message::Subscribe { scanout_id: 0 });
    let frames = || demo.stats()["scanouts"][0]["frames"].as_u64().unwrap_or(0);
    let start = frames();

    let hxfr = demo.hxfr.clone();
    let other = std::thread::spawn(move || {
        record(
            &["--connect", &hxfr, "--frames", "150"],
            "beside-stalled.h264",
        )
    });
    // 100 all-keyframe 1080p frames are well over what the socket buffers
    // and the 32-frame backlog hold: by then the stalled one has fallen behind.
    // Counted in frames, not seconds, so a slow machine only takes longer.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while frames() < start + 100 {
        assert!(std::time::Instant::now() < deadline, "the encoder stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The stalled one, once it reads again, skipped ahead to a keyframe:
    // its stream has a gap yet decodes without a single error.
    let mut frames = Vec::new();
    stalled
        .s
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // What the kernel buffered before the stall, a gap, then some more.
    while frames.len() < 120 {
        match stalled.recv().map(|p| p.message) {
            Some(Message::FrameResponse(r)) => frames.push(r),
            Some(_) => {}
            None => break,
        }
    }
    let file = tmp("stalled.h264");
    let bytes: Vec<u8> = frames
        .iter()
        .flat_map(|r| r.nals.iter().flat_map(|n| n.to_vec()))
        .collect();
    std::fs::write(&file, bytes).unwrap();
    let read: Vec<u32> = stamps(&file, 1920, 1080)
        .into_iter()
        .map(|s| s.unwrap())
        .collect();
    let gap = read.windows(2).position(|w| w[1] > w[0] + 1);
    let gap = gap.unwrap_or_else(|| panic!("the stalled subscriber never fell behind: {read:?}"));
    assert!(
        frames[gap + 1].is_keyframe,
        "after a gap the stream resumes at a keyframe"
    );
    eprintln!(
        "stalled subscriber skipped from frame {} to {}",
        read[gap],
        read[gap + 1]
    );

    let lagged = demo.stats()["scanouts"][0]["lagged_frames"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        lagged > 0,
        "the server counted the frames the stalled subscriber lost"
    );

    // Meanwhile the other subscriber got everything.
    let (out, p) = other.join().expect("the other subscriber");
    assert_eq!(p.keyframes.len(), 150);
    assert!(p.keyframes[0]);
    // Every picture the desktop drew reached this subscriber, in order.
    assert_advancing(&stamps(&out, 1920, 1080), true);
}

#[test]
fn a_still_screen_costs_nothing_but_a_new_viewer_gets_a_picture() {
    let demo = Zerocast::demo(&["--width", "640", "--height", "360", "--static"]);
    for round in 0..2 {
        let name = format!("static-{round}.h264");
        let (_, p) = record(&["--connect", &demo.hxfr, "--frames", "1"], &name);
        assert_eq!(p.keyframes, vec![true], "the first picture is a keyframe");
    }
    // Watching a still screen for a while encodes nothing new.
    let mut peer = Peer::connect(demo.hxfr_addr());
    peer.send(0, Message::Subscribe { scanout_id: 0 });
    assert!(matches!(peer.recv().unwrap().message, Message::SubscribeResp(r) if r.success));
    assert!(matches!(peer.recv().unwrap().message, Message::FrameResponse(r) if r.is_keyframe));
    let before = demo.stats()["scanouts"][0]["frames"].as_u64().unwrap();
    // Nor does it wake up: no thread polls (a 10 ms tick would show as
    // hundreds of switches here).
    let switches = demo.context_switches();
    std::thread::sleep(Duration::from_secs(3));
    let woke = demo.context_switches() - switches;
    let after = demo.stats()["scanouts"][0]["frames"].as_u64().unwrap();
    assert_eq!(before, after, "a static desktop encodes no frames");
    assert!(
        woke < 30,
        "a still screen with a subscriber woke zerocast {woke} times in 3 s"
    );

    // A flood of keyframe requests (500 over about 2 s) on the still screen:
    // they coalesce to one keyframe per 300 ms, not one encode each.
    let flooded = demo.stats()["scanouts"][0]["frames"].as_u64().unwrap();
    for _ in 0..500 {
        peer.send(0, Message::KeyframeReq);
        std::thread::sleep(Duration::from_millis(4));
    }
    std::thread::sleep(Duration::from_millis(400));
    let encoded = demo.stats()["scanouts"][0]["frames"].as_u64().unwrap() - flooded;
    assert!(
        (1..=10).contains(&encoded),
        "500 keyframe requests in about 2 s made {encoded} encodes"
    );
}

#[test]
fn sessions_on_one_connection_get_their_own_streams() {
    let demo = Zerocast::demo(SMALL);
    let mut peer = Peer::connect(demo.hxfr_guest_addr());
    let mut streams: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for round in 0..6 {
        for (i, session) in [5u16, 9].into_iter().enumerate() {
            peer.send(session, request(1, 640, 360, 2560));
            let p = peer.recv().expect("an answer");
            assert_eq!(
                p.session_id, session,
                "answers carry the request's session id"
            );
            match p.message {
                Message::FrameResponse(r) => {
                    assert_eq!(
                        r.is_keyframe,
                        round == 0,
                        "each session's encoder starts with a keyframe"
                    );
                    streams[i].extend(r.nals.iter().flat_map(|n| n.to_vec()));
                }
                m => panic!("expected a frame, got {m:?}"),
            }
        }
    }
    // Each session's stream decodes on its own.
    for (i, bytes) in streams.iter().enumerate() {
        let file = tmp(&format!("session-{i}.h264"));
        std::fs::write(&file, bytes).unwrap();
        assert_advancing(&stamps(&file, 640, 360), false);
    }
}
