//! HXFR listener roles over real sockets: a subscriber cannot change what
//! others see, a guest endpoint cannot watch or switch displays, and the
//! admin socket (Unix, 0600) can do both.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::BytesMut;
use harness::{tmp, Zerocast, BIN};
use zerocast_hxfr::{
    encode, ConfigReq, Decoder, EnableScanout, FrameRequest, Limits, Message, Packet,
};

/// One HXFR connection, TCP or Unix.
struct Peer<S> {
    s: S,
    buf: BytesMut,
}

impl<S: Read + Write> Peer<S> {
    fn send(&mut self, session: u16, m: Message) {
        let mut b = BytesMut::new();
        encode(&Packet::new(session, m), &mut b);
        self.s.write_all(&b).unwrap();
    }

    fn recv(&mut self) -> Message {
        let d = Decoder::new(Limits::CLIENT);
        loop {
            if let Some(p) = d.decode(&mut self.buf).unwrap() {
                return p.message;
            }
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).expect("an answer within 20 s");
            assert_ne!(n, 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next message that is not a pushed frame.
    fn answer(&mut self) -> Message {
        loop {
            match self.recv() {
                Message::FrameResponse(_) => continue,
                m => return m,
            }
        }
    }

    fn refused_as(&mut self, role: &str) {
        match self.answer() {
            Message::Error(e) => assert!(
                e.code == -1 && e.message.contains(role),
                "the refusal names the role: {e:?}"
            ),
            m => panic!("expected ERROR naming {role}, got {m:?}"),
        }
    }
}

fn tcp(addr: &str) -> Peer<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    Peer {
        s,
        buf: BytesMut::new(),
    }
}

fn slow_and_cheap() -> Message {
    Message::ConfigReq(ConfigReq {
        bitrate_bps: 100_000,
        fps_num: 2,
        fps_den: 1,
        ..ConfigReq::default()
    })
}

fn enable() -> Message {
    Message::EnableScanout(EnableScanout {
        scanout_id: 0,
        width: 640,
        height: 360,
        refresh: 60,
    })
}

fn settings(z: &Zerocast) -> (f64, u64) {
    let s = &z.stats()["scanouts"][0];
    (
        s["fps"].as_f64().unwrap(),
        s["bitrate_bps"].as_u64().unwrap(),
    )
}

#[test]
fn each_endpoint_does_what_its_role_allows_and_nothing_else() {
    let admin_path = tmp("roles-admin.sock");
    let admin_arg = format!("unix:{}", admin_path.display());
    let z = Zerocast::demo(&[
        "--width",
        "320",
        "--height",
        "240",
        "--fps",
        "30",
        "--hxfr-admin",
        &admin_arg,
    ]);
    let before = settings(&z);
    assert_eq!(before, (30.0, 8_000_000));

    // A subscriber watches, and can change nothing for the others.
    let mut watcher = tcp(z.hxfr_addr());
    watcher.send(0, Message::Subscribe { scanout_id: 0 });
    assert!(matches!(watcher.answer(), Message::SubscribeResp(r) if r.success));
    for m in [
        slow_and_cheap(),
        enable(),
        Message::DisableScanout { scanout_id: 0 },
        Message::FrameRequest(FrameRequest::default()),
    ] {
        watcher.send(0, m);
        watcher.refused_as("subscriber");
    }
    assert_eq!(settings(&z), before, "the shared encoder is untouched");
    watcher.send(0, Message::Ping);
    assert_eq!(watcher.answer(), Message::Pong);

    // The guest endpoint requests resources but cannot watch or switch displays.
    let mut guest = tcp(z.hxfr_guest_addr());
    for m in [Message::Subscribe { scanout_id: 0 }, enable()] {
        guest.send(1, m);
        guest.refused_as("guest");
    }
    guest.send(
        1,
        Message::FrameRequest(FrameRequest {
            resource_id: 1,
            width: 320,
            height: 240,
            stride: 1280,
            format: 0x3432_5241,
            ..FrameRequest::default()
        }),
    );
    assert!(matches!(guest.recv(), Message::FrameResponse(r) if r.is_keyframe));
    guest.send(1, slow_and_cheap());
    assert_eq!(guest.answer(), Message::ConfigResp, "its own session");
    assert_eq!(settings(&z), before, "a guest's session is its own");

    // The admin socket is the operator's only: 0600. It may reconfigure
    // the shared encoder.
    let mode = std::fs::metadata(&admin_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "admin socket mode {mode:o}");
    let s = UnixStream::connect(&admin_path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut admin = Peer {
        s,
        buf: BytesMut::new(),
    };
    admin.send(0, Message::Subscribe { scanout_id: 0 });
    assert!(matches!(admin.answer(), Message::SubscribeResp(r) if r.success));
    admin.send(0, slow_and_cheap());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while settings(&z) == before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(settings(&z), (2.0, 100_000), "the admin changed it");
}

#[test]
fn the_admin_role_is_refused_on_tcp() {
    let out = std::process::Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--hxfr",
            "tcp:127.0.0.1:0",
            "--hxfr-admin",
            "tcp:127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unix socket only"), "{err}");
}
