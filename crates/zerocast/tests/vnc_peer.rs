//! The peer `zerocast bench --peer qemu-vnc` measures against: the test
//! guest on QEMU's own virtio-gpu, watched through QEMU's VNC server by the
//! benchmark's RFB client (src/rfb.rs). Counts only, no timing: the
//! handshake completes, the first update covers the whole screen, and
//! later updates keep arriving and parse.

mod harness;
// The benchmark's own parser, not a copy; this test uses part of it.
#[allow(dead_code)]
#[path = "../src/rfb.rs"]
mod rfb;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use zerocast_qemu::{Gpu, Vm, VmConfig};

use harness::{guest, require, tmp};
use rfb::{Event, RfbClient, ServerInfo, Update};

/// Updates with pixels to see after the first (whole-screen) one.
const UPDATES: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn qemus_vnc_server_is_counted_update_by_update() {
    require("qemu-system-x86_64");
    let (kernel, initrd) = guest();
    let socket = tmp("vnc.sock");
    let mut config = VmConfig::new(
        Gpu::VirtioVnc {
            socket: socket.clone(),
        },
        tmp("vnc-qmp.sock"),
        tmp("vnc-serial.log"),
    );
    config.kernel = Some(kernel);
    config.initrd = Some(initrd);
    config.append = "zerocast.fps=30 drm_kms_helper.fbdev_emulation=0".into();
    let mut vm = Vm::spawn(&config).expect("QEMU starts");
    let watched = watch(&vm, &socket).await;
    let _ = vm.kill().await;
    let (info, updates) = watched.unwrap_or_else(|e| {
        panic!("{e}\nQEMU said: {}", vm.stderr_tail());
    });

    assert_eq!(
        (info.width, info.height, info.bytes_per_pixel),
        (1280, 800, 4)
    );
    assert_eq!(info.name, "QEMU");
    // The hardware cursor's shape (64x64 pixels and mask) comes as an
    // update of its own; its length parsed right is what kept us in step.
    let cursor = 16 + 64 * 64 * 4 + 8 * 64;
    assert!(
        updates
            .iter()
            .any(|u| u.pseudo_rects == 1 && u.rects == 0 && u.bytes == cursor),
        "{updates:?}"
    );
    let mut pixels = updates.iter().filter(|u| u.rects > 0);
    let first = *pixels.next().expect("an update with pixels");
    assert_eq!(first.area, 1280 * 800, "{first:?}");
    // ZRLE compresses the flipper's flat background far below raw pixels.
    assert!(first.bytes < 1280 * 800 * 4, "{first:?}");
    let later: Vec<&Update> = pixels.collect();
    assert!(later.len() >= UPDATES, "{updates:?}");
    for u in later {
        assert!(u.bytes > 4 + 12 * u64::from(u.rects), "{u:?}");
        assert!(
            u.area > 0 && u.area < first.area,
            "only what changed: {u:?}"
        );
    }
}

/// Boots, connects and collects updates until [`UPDATES`] more than the
/// first with pixels have come (or a generous limit, for a slow machine).
async fn watch(vm: &Vm, socket: &std::path::Path) -> Result<(ServerInfo, Vec<Update>), String> {
    vm.wait_for_serial("zerocast-flipper: frame", Duration::from_secs(120))
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    let mut client = RfbClient::new();
    let (mut info, mut updates) = (None, Vec::new());
    let mut buf = vec![0; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while updates.iter().filter(|u: &&Update| u.rects > 0).count() <= UPDATES {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .map_err(|_| format!("only {} updates within 60 s: {updates:?}", updates.len()))?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the VNC server closed the connection".into());
        }
        client.feed(&buf[..n]).map_err(|e| e.to_string())?;
        let out = client.take_output();
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        while let Some(event) = client.poll_event() {
            match event {
                Event::Ready(i) => info = Some(i),
                Event::Update(u) => updates.push(u),
            }
        }
    }
    Ok((info.ok_or("no ServerInit")?, updates))
}
