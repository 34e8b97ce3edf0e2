//! A real VM: QEMU boots the test guest (Debian's kernel, our initramfs,
//! zerocast-flipper page-flipping stamped frames) with our vhost-user-gpu
//! backend as its display. Frames are encoded from guest memory, decoded by
//! ffmpeg and by Chromium; input typed in the page reaches the guest, and
//! what a vanished viewer held is let go. The guest's DRM lists the modes
//! our EDID offers.

mod harness;

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use harness::{
    assert_frames_advance, boot_test_guest, record, require, type_a_and_click, wait_for_text,
    watch_in_chromium,
};

#[tokio::test(flavor = "multi_thread")]
async fn guest_screen_streams_from_guest_memory_and_input_reaches_the_guest() {
    require("chromium");
    let vm = boot_test_guest(
        "zerocast.fps=30 drm_kms_helper.fbdev_emulation=0",
        &["--fps", "30"],
    );
    let serial = vm
        .serial
        .clone()
        .expect("zerocast vm prints its serial log");
    let log = wait_for_text(&serial, "zerocast-flipper: frame", Duration::from_secs(120));

    // The guest's DRM offers the usual modes from our EDID, the configured
    // one first (preferred), not that one alone.
    let modes = log
        .lines()
        .find_map(|l| l.split_once("-Virtual-1 modes: ").map(|(_, m)| m))
        .unwrap_or_else(|| panic!("the guest lists its connector's modes:\n{log}"));
    let modes: Vec<&str> = modes.split_whitespace().collect();
    assert_eq!(modes.first(), Some(&"1280x800"), "{modes:?}");
    for mode in ["1920x1080", "1366x768", "1024x768", "640x480"] {
        assert!(modes.contains(&mode), "{mode} offered: {modes:?}");
    }

    // HXFR: the guest's scanout, decoded by ffmpeg, frame numbers advancing.
    let (out, p) = record(&["--connect", &vm.hxfr, "--frames", "40"], "guest.h264");
    assert_eq!((p.width, p.height), (1280, 800), "the guest's mode");
    assert_eq!(p.keyframes.len(), 40);
    assert!(p.keyframes[0]);
    assert_frames_advance(&out, 1280, 800);

    // Zero copy: the frames came straight out of guest memory.
    let source = vm.stats()["source"].clone();
    assert!(source["flushes"].as_u64().unwrap() > 0, "{source}");
    assert_eq!(source["bytes_copied"], 0, "no pixel was copied: {source}");
    assert!(
        source["zero_copy_attaches"].as_u64().unwrap() > 0,
        "{source}"
    );

    // The browser: decodes the guest's screen; keys and a click reach the guest.
    let (mut c, stats) = watch_in_chromium(&vm.url, 30).await;
    let shot = harness::tmp("vm-viewer.png");
    c.screenshot(&shot).await.expect("screenshot");
    eprintln!("the viewer, as Chromium shows it: {}", shot.display());
    assert_eq!(
        (stats["width"].as_u64(), stats["height"].as_u64()),
        (Some(1280), Some(800))
    );

    type_a_and_click(&mut c, 300, 200).await;
    let log = wait_for_text(&serial, "code=272 value=1", Duration::from_secs(30));
    assert!(
        log.contains("type=EV_KEY code=30 value=1"),
        "key A reached the guest:\n{log}"
    );
    assert!(
        log.contains("type=EV_KEY code=30 value=0"),
        "key A released in the guest"
    );
    assert!(
        log.contains("type=EV_ABS"),
        "the pointer moved in the guest"
    );

    // A viewer that vanishes holding Ctrl: the key is let go in the guest.
    let (mut ws, _) = tokio_tungstenite::connect_async(vm.ws_url("scanout=0"))
        .await
        .expect("a raw viewer connects");
    ws.send(Message::text(r#"{"type":"init"}"#)).await.unwrap();
    ws.send(Message::binary(vec![0x10, 0, 1, 0, 0, 29]))
        .await
        .unwrap();
    wait_for_text(&serial, "code=29 value=1", Duration::from_secs(30));
    drop(ws);
    wait_for_text(
        &serial,
        "type=EV_KEY code=29 value=0",
        Duration::from_secs(30),
    );
}
