//! Connection floods over real sockets: idle sockets on one HXFR endpoint
//! neither lock out another endpoint nor hold their places for long, one
//! address cannot take a whole listener, and a peer that sends only junk is
//! cut off.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use harness::Zerocast;
use zerocast_hxfr::{encode, Decoder, Limits, Message, Packet};

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// PING, and whether PONG came back.
fn pings(s: &mut TcpStream) -> bool {
    let mut b = BytesMut::new();
    encode(&Packet::new(7, Message::Ping), &mut b);
    if s.write_all(&b).is_err() {
        return false;
    }
    let d = Decoder::new(Limits::CLIENT);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some(p)) = d.decode(&mut buf) {
            return p.message == Message::Pong;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the server closed `s` (read gives end of stream).
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut one = [0u8; 1];
    matches!(s.read(&mut one), Ok(0))
}

#[test]
fn idle_sockets_on_one_endpoint_lock_out_nothing_and_are_let_go() {
    let z = Zerocast::demo(&["--width", "160", "--height", "120", "--static"]);
    // One address fills its share of the subscriber listener with silent sockets.
    let mut idle: Vec<TcpStream> = (0..16).map(|_| connect(z.hxfr_addr())).collect();
    // The guest's endpoint is another listener: untouched by that flood.
    assert!(
        pings(&mut connect(z.hxfr_guest_addr())),
        "guest endpoint answers"
    );
    // A 17th from the same address is turned away at once.
    let mut extra = connect(z.hxfr_addr());
    assert!(!pings(&mut extra), "past the per-address share");
    // Silent sockets are closed by the handshake timeout (5 s); their
    // places are free again.
    let started = Instant::now();
    for s in &mut idle {
        assert!(closed_by_server(s), "a silent socket is closed");
    }
    eprintln!("silent sockets closed after {:?}", started.elapsed());
    assert!(pings(&mut connect(z.hxfr_addr())), "a new peer gets in");
}

#[test]
fn a_peer_sending_only_junk_is_cut_off() {
    let z = Zerocast::demo(&["--width", "160", "--height", "120", "--static"]);
    let mut s = connect(z.hxfr_addr());
    // Well-formed messages this role may not send, over and over.
    let mut b = BytesMut::new();
    for _ in 0..64 {
        encode(
            &Packet::new(1, Message::DisableScanout { scanout_id: 0 }),
            &mut b,
        );
    }
    s.write_all(&b).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let errors = got
        .windows(5)
        .filter(|w| w[..4] == *b"HXFR" && w[4] == 0xFF)
        .count();
    assert!(
        (1..64).contains(&errors),
        "cut off before answering all 64 (answered {errors})"
    );
}

/// Resident memory of the zerocast process, in MiB.
fn rss_mib(z: &Zerocast) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", z.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024
}

#[test]
fn encoder_sessions_cannot_take_the_host_memory() {
    // 64 sessions at 720p once grew zerocast by 1.2 GiB. With a 128 MiB
    // budget (about 7 such sessions) the rest are refused.
    let z = Zerocast::demo(&[
        "--width",
        "1280",
        "--height",
        "720",
        "--static",
        "--encoder-memory-mib",
        "128",
    ]);
    let before = rss_mib(&z);
    let request = Message::FrameRequest(zerocast_hxfr::FrameRequest {
        resource_id: 1,
        width: 1280,
        height: 720,
        stride: 1280 * 4,
        format: 0x3432_5241,
        ..zerocast_hxfr::FrameRequest::default()
    });
    let (mut frames, mut refused) = (0, 0);
    // The connections stay open to the end: their sessions hold their memory.
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = connect(z.hxfr_guest_addr());
        let mut out = BytesMut::new();
        for session in 0..16u16 {
            encode(&Packet::new(session, request.clone()), &mut out);
        }
        s.write_all(&out).unwrap();
        let d = Decoder::new(Limits::CLIENT);
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 65536];
        let mut answers = 0;
        while answers < 16 {
            match d.decode(&mut buf).unwrap() {
                Some(p) => {
                    answers += 1;
                    match p.message {
                        Message::FrameResponse(_) => frames += 1,
                        Message::Error(e) => {
                            assert!(e.message.contains("memory budget"), "{e:?}");
                            refused += 1;
                        }
                        m => panic!("unexpected {m:?}"),
                    }
                }
                None => {
                    let n = s.read(&mut chunk).unwrap();
                    assert_ne!(n, 0, "closed before answering");
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
        open.push(s);
    }
    let grown = rss_mib(&z).saturating_sub(before);
    eprintln!("64 sessions asked: {frames} encoded, {refused} refused; RSS grew {grown} MiB");
    assert!((1..64).contains(&frames) && frames + refused == 64);
    assert!(grown < 300, "RSS grew {grown} MiB past a 128 MiB budget");
}
