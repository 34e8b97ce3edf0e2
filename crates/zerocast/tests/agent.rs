//! The seed's path for real: inside the VM, `zerocast-guest` finds the
//! virtio-gpu resource on screen and asks the host over vsock (rust-vmm's
//! vhost-device-vsock) to encode it (zero-copy), or encodes it itself with
//! x264 (the baseline); either way it publishes the stream to the host,
//! where ffmpeg and Chromium decode it. Hostile requests from inside the
//! guest get their ERRORs while the agent's own session keeps going. An
//! agent that disconnects and comes back resumes the stream for those
//! already watching, from a keyframe.

mod harness;

use std::io::Write;
use std::time::{Duration, Instant};

use harness::subscriber::{Event, Subscriber};
use harness::{
    assert_frames_advance, boot_test_guest, record, require, stamps, tmp, wait_for_text,
    watch_in_chromium, Zerocast,
};

/// The stream id `zerocast vm --vsock` offers to the agent.
const GUEST_STREAM: &str = "16";

fn boot_with_agent(encoder: &str, extra: &str) -> Zerocast {
    require("vhost-device-vsock");
    let append = format!(
        "zerocast.fps=30 drm_kms_helper.fbdev_emulation=0 zerocast.also=guest \
         zerocast.also.encoder={encoder} zerocast.also.publish={GUEST_STREAM} zerocast.also.fps=30 {extra}"
    );
    let vm = boot_test_guest(&append, &["--vsock"]);
    let serial = vm.serial.clone().unwrap();
    wait_for_text(&serial, "zerocast-guest: frames=", Duration::from_secs(120));
    vm
}

/// The published stream decodes in ffmpeg with advancing frame numbers, and
/// in Chromium without errors.
async fn check_published_stream(vm: &Zerocast, name: &str) {
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
    let url = format!("{}&scanout={GUEST_STREAM}", vm.url);
    let (_, stats) = watch_in_chromium(&url, 15).await;
    eprintln!("{name}: page stats {stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_copy_agent_streams_over_vsock() {
    // The agent first plays a hostile guest on a second connection.
    let vm = boot_with_agent("host", "zerocast.also.hostile-first=true");
    check_published_stream(&vm, "agent-zerocopy.h264").await;
    let serial = std::fs::read_to_string(vm.serial.as_ref().unwrap()).unwrap();
    assert!(
        serial.contains("the host encodes"),
        "zero-copy mode:\n{serial}"
    );
    let stats = vm.stats();
    assert_eq!(stats["source"]["bytes_copied"], 0, "{stats}");

    for case in [
        "unknown resource: ERROR -2 ok",
        "geometry larger than the resource: ERROR -1 ok",
        "absurd stride: ERROR -1 ok",
        "wrong format: ERROR -1 ok",
        "truncated message: ERROR -1 ok",
        "every one answered ERROR -2 ok",
        "oversized message: connection closed ok",
        "all cases answered as expected",
    ] {
        assert!(
            serial.contains(case),
            "hostile check {case:?} from inside the guest:\n{serial}"
        );
    }
    // The host went on serving the agent's own session: its stream above
    // was recorded after the hostile checks.
}

#[tokio::test(flavor = "multi_thread")]
async fn x264_baseline_agent_streams_the_same_way() {
    let vm = boot_with_agent("x264", "");
    check_published_stream(&vm, "agent-x264.h264").await;
    let serial = std::fs::read_to_string(vm.serial.as_ref().unwrap()).unwrap();
    assert!(
        serial.contains("encoding in the guest with x264"),
        "baseline mode:\n{serial}"
    );
}

#[test]
fn an_agent_that_reconnects_resumes_the_stream_with_a_keyframe() {
    // The agent exits after 45 frames and the guest's init starts it again;
    // keyframes only at its start (and when the host asks).
    let vm = boot_with_agent(
        "host",
        "zerocast.also.frames=45 zerocast.also.keyframe-every-secs=0 zerocast.also_loop=1",
    );
    let serial = vm.serial.clone().unwrap();
    let restarts = || {
        std::fs::read_to_string(&serial)
            .unwrap_or_default()
            .matches("zerocast-guest: guest exited")
            .count()
    };
    let stream: u32 = GUEST_STREAM.parse().unwrap();
    let mut sub = Subscriber::connect(vm.hxfr_addr(), stream, Duration::from_millis(500));
    // Frames across two reconnects, and some after the second.
    let (seen_before, deadline) = (restarts(), Instant::now() + Duration::from_secs(120));
    let mut frames = Vec::new();
    let mut after = None;
    while after.is_none_or(|a| frames.len() < a + 10) {
        assert!(Instant::now() < deadline, "two reconnects within 120 s");
        match sub.next() {
            Event::Frame(f) => frames.push(f),
            Event::Idle => {}
            Event::Error(e) => panic!("the subscriber got an ERROR: {e}"),
            Event::Closed => panic!("the subscriber was dropped when the agent left"),
        }
        if after.is_none() && restarts() >= seen_before + 2 {
            after = Some(frames.len());
        }
    }
    let keyframes = frames.iter().filter(|f| f.keyframe).count();
    eprintln!(
        "{} frames, {keyframes} keyframes, {} reconnects",
        frames.len(),
        restarts() - seen_before
    );
    assert!(frames[0].keyframe);
    // One at joining, one for each agent that came back.
    assert!(keyframes >= 3, "each reconnect resumes at a keyframe");
    // The whole recording decodes: nothing after a reconnect refers to
    // pictures of the agent's previous session.
    let path = tmp("agent-reconnects.h264");
    let mut file = std::fs::File::create(&path).unwrap();
    for f in &frames {
        file.write_all(&f.data).unwrap();
    }
    drop(file);
    let read: Vec<u32> = stamps(&path, 1280, 800).into_iter().flatten().collect();
    assert_eq!(read.len(), frames.len(), "every frame shows the flipper");
    // A picture of the agent's previous session would be dozens of frames
    // old. A step or two back is zero-copy itself: the host reads the
    // buffer an answer names when it encodes, and a loaded guest may have
    // redrawn it since the agent asked (seen once in three runs under load).
    let mut newest = 0;
    for &stamp in &read {
        assert!(stamp + 3 >= newest, "{stamp} after {newest}: {read:?}");
        newest = newest.max(stamp);
    }
}
