//! The seed's path for real: inside the VM, `zerocast-guest` finds the
//! virtio-gpu resource on screen and asks the host over vsock (rust-vmm's
//! vhost-device-vsock) to encode it (zero-copy), or encodes it itself with
//! x264 (the baseline); either way it publishes the stream to the host,
//! where ffmpeg and Chromium decode it. Hostile requests on the same vsock
//! listener get their ERRORs while the agent's session keeps going.

mod harness;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::BytesMut;
use harness::{
    assert_frames_advance, guest, record, require, wait_for_text, watch_in_chromium, Demo,
};
use zerocast_hxfr::{encode, Decoder, ErrorCode, FrameRequest, Limits, Message, Packet};

/// The stream id `zerocast vm --vsock` offers to the agent.
const GUEST_STREAM: &str = "16";

fn boot_with_agent(encoder: &str) -> Demo {
    require("qemu-system-x86_64");
    require("vhost-device-vsock");
    let (kernel, initrd) = guest();
    let append = format!(
        "zerocast.fps=30 drm_kms_helper.fbdev_emulation=0 zerocast.also=guest \
         zerocast.also.encoder={encoder} zerocast.also.publish={GUEST_STREAM} zerocast.also.fps=30"
    );
    let vm = Demo::run(
        "vm",
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
            "--append",
            &append,
            "--memory",
            "512",
            "--vsock",
        ],
    );
    let serial = vm.serial.clone().unwrap();
    wait_for_text(&serial, "zerocast-guest: frames=", Duration::from_secs(120));
    vm
}

/// The published stream decodes in ffmpeg with advancing frame numbers, and
/// in Chromium without errors.
async fn check_published_stream(vm: &Demo, name: &str) {
    let (out, p) = record(
        &[
            "--connect",
            &vm.hxfr,
            "--scanout",
            GUEST_STREAM,
            "--frames",
            "20",
        ],
        name,
    );
    assert_eq!((p.width, p.height), (1280, 800));
    assert_eq!(p.keyframes.len(), 20);
    assert!(p.keyframes[0], "the published stream starts at a keyframe");
    assert_frames_advance(&out, 1280, 800);
    let url = format!("{}?scanout={GUEST_STREAM}", vm.url);
    let (_, stats) = watch_in_chromium(&url, 15).await;
    eprintln!("{name}: page stats {stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_copy_agent_streams_over_vsock() {
    let vm = boot_with_agent("host");
    check_published_stream(&vm, "agent-zerocopy.h264").await;
    let serial = std::fs::read_to_string(vm.serial.as_ref().unwrap()).unwrap();
    assert!(
        serial.contains("the host encodes"),
        "zero-copy mode:\n{serial}"
    );
    let stats = vm.stats();
    assert_eq!(stats["source"]["bytes_copied"], 0, "{stats}");

    // Hostile peers on the same vsock listener the guest uses.
    let listener = vm.serial.as_ref().unwrap().with_file_name("vsock_5001");
    hostile_requests_get_errors(&listener);
    // The agent's session went on meanwhile.
    let before = vm.stats()["scanouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 16)
        .unwrap()["frames"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let after = vm.stats()["scanouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == 16)
        .unwrap()["frames"]
        .as_u64()
        .unwrap();
    assert!(
        after > before,
        "the agent's stream kept flowing: {before} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn x264_baseline_agent_streams_the_same_way() {
    let vm = boot_with_agent("x264");
    check_published_stream(&vm, "agent-x264.h264").await;
    let serial = std::fs::read_to_string(vm.serial.as_ref().unwrap()).unwrap();
    assert!(
        serial.contains("encoding in the guest with x264"),
        "baseline mode:\n{serial}"
    );
}

fn send(s: &mut UnixStream, session: u16, m: Message) {
    let mut b = BytesMut::new();
    encode(&Packet::new(session, m), &mut b);
    s.write_all(&b).unwrap();
}

fn recv(s: &mut UnixStream, buf: &mut BytesMut) -> Option<Packet> {
    let d = Decoder::new(Limits::CLIENT);
    loop {
        if let Some(p) = d.decode(buf).unwrap() {
            return Some(p);
        }
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn expect_error(s: &mut UnixStream, buf: &mut BytesMut, code: ErrorCode, case: &str) {
    match recv(s, buf).map(|p| p.message) {
        Some(Message::Error(e)) => {
            assert_eq!(ErrorCode::from_code(e.code), code, "{case}: {}", e.message)
        }
        other => panic!("{case}: expected ERROR {code:?}, got {other:?}"),
    }
}

fn hostile_requests_get_errors(listener: &std::path::Path) {
    let mut s = UnixStream::connect(listener).expect("the vsock listener");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = BytesMut::new();
    let req = |resource_id, width, height, stride, format| {
        Message::FrameRequest(FrameRequest {
            resource_id,
            width,
            height,
            stride,
            format,
            ..FrameRequest::default()
        })
    };
    let xr24 = 0x3432_5258;
    send(&mut s, 7, req(0xDEAD, 1280, 800, 5120, xr24));
    expect_error(
        &mut s,
        &mut buf,
        ErrorCode::ResourceNotFound,
        "unknown resource",
    );
    // Resource ids the guest uses are small; find one that exists by its error.
    let mut real = None;
    for id in 1..64 {
        send(&mut s, 7, req(id, 1, 1, 4, xr24));
        if let Some(Message::Error(e)) = recv(&mut s, &mut buf).map(|p| p.message) {
            if ErrorCode::from_code(e.code) == ErrorCode::InvalidMessage {
                real = Some(id);
                break;
            }
        }
    }
    let id = real.expect("a guest resource answers a bad geometry with INVALID_MESSAGE");
    for (case, m) in [
        (
            "geometry larger than the resource",
            req(id, 4096, 4096, 16384, xr24),
        ),
        ("absurd stride", req(id, 1280, 800, u32::MAX, xr24)),
        ("wrong format", req(id, 1280, 800, 5120, 0x3231_564E)),
    ] {
        send(&mut s, 7, m);
        expect_error(&mut s, &mut buf, ErrorCode::InvalidMessage, case);
    }
    // A truncated FRAME_REQUEST.
    s.write_all(b"HXFR\x01\x00\x07\x00\x04\x00\x00\x00\x01\x00\x00\x00")
        .unwrap();
    expect_error(&mut s, &mut buf, ErrorCode::InvalidMessage, "truncated");
    // A flood: every request is answered, in order, and nothing else breaks.
    for _ in 0..200 {
        send(&mut s, 7, req(0xDEAD, 1280, 800, 5120, xr24));
    }
    for _ in 0..200 {
        expect_error(&mut s, &mut buf, ErrorCode::ResourceNotFound, "flood");
    }
    // Oversized: refused and the connection closed.
    s.write_all(b"HXFR\x01\x00\x07\x00\xff\xff\xff\x7f")
        .unwrap();
    expect_error(&mut s, &mut buf, ErrorCode::InvalidMessage, "oversized");
    assert!(
        recv(&mut s, &mut buf).is_none(),
        "closed after an oversized message"
    );
}
