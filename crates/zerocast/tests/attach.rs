//! A VM that keeps QEMU's own GPU (`virtio-vga`), with QEMU's D-Bus display
//! on a private bus, attached with `zerocast attach`: the guest's stamped
//! frames are decoded by ffmpeg, and a key sent through the gateway reaches
//! the guest.

mod harness;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use harness::{assert_frames_advance, guest, record, require, wait_for_text, Zerocast};

/// Kills what the test started, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn qemus_own_gpu_attached_through_dbus_streams_and_takes_input() {
    require("qemu-system-x86_64");
    require("dbus-daemon");
    let (kernel, initrd) = guest();
    let dir = harness::tmp("attach");
    std::fs::create_dir_all(&dir).unwrap();
    let bus = dir.join("bus");
    let serial = dir.join("serial.log");
    let address = format!("unix:path={}", bus.display());

    let _bus = Killed(
        Command::new("dbus-daemon")
            .args(["--session", "--nofork", &format!("--address={address}")])
            .spawn()
            .expect("start dbus-daemon"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !bus.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "dbus-daemon made no socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _qemu = Killed(
        Command::new("qemu-system-x86_64")
            .args([
                "-nodefaults",
                "-accel",
                "tcg",
                "-m",
                "512M",
                "-machine",
                "pc",
            ])
            .args(["-device", "virtio-vga"])
            .args([
                "-device",
                "virtio-keyboard-pci",
                "-device",
                "virtio-tablet-pci",
            ])
            .args([
                "-display",
                &format!("dbus,addr={address}"),
                "-monitor",
                "none",
            ])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args([
                "-append",
                // no_timer_check: TCG on a loaded host can fail the kernel's timer check.
                "console=ttyS0 no_timer_check zerocast.fps=30 drm_kms_helper.fbdev_emulation=0",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("start QEMU"),
    );
    // QEMU takes its name on the bus as it starts: attaching before that is
    // refused, so wait for the guest's kernel to talk first.
    wait_for_text(&serial, "Linux version", Duration::from_secs(60));
    let zc = Zerocast::run("attach", &["--dbus", &address, "--fps", "30"]);
    wait_for_text(&serial, "zerocast-flipper: frame", Duration::from_secs(120));

    // Frames: decoded by ffmpeg, the guest's stamps advancing.
    let (out, p) = record(&["--connect", &zc.hxfr, "--frames", "40"], "attach.h264");
    assert_eq!((p.width, p.height), (1280, 800), "the guest's mode");
    assert_frames_advance(&out, 1280, 800);
    // QEMU shared its surfaces (ScanoutMap): no pixel came in a message.
    let source = zc.stats()["source"].clone();
    assert!(source["map_updates"].as_u64().unwrap() > 0, "{source}");
    assert_eq!(source["bytes_received"], 0, "{source}");

    // Input: key A through the gateway reaches the guest's input log.
    let (mut ws, _) = tokio_tungstenite::connect_async(zc.ws_url("scanout=0"))
        .await
        .expect("a viewer connects");
    ws.send(Message::text(r#"{"type":"init"}"#)).await.unwrap();
    ws.send(Message::binary(vec![0x10, 0, 1, 0, 0, 30]))
        .await
        .unwrap();
    wait_for_text(
        &serial,
        "type=EV_KEY code=30 value=1",
        Duration::from_secs(30),
    );
}
