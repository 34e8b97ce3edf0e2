//! Faults a VM host meets, each tried for real: QEMU killed under
//! zerocast (its viewers are told why), and zerocast killed under QEMU.

mod harness;

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use harness::subscriber::{Event, Subscriber};
use harness::{boot_test_guest, wait_for_text, Zerocast};

/// The command name of a process, if it still runs.
fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_owned())
}

/// Whether `pid` is gone (or a zombie) within `timeout`.
fn gone(pid: u32, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.is_empty() || state.contains(") Z ") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn qemu_of(z: &Zerocast) -> u32 {
    z.children()
        .into_iter()
        .find(|&p| comm(p).is_some_and(|c| c.starts_with("qemu-system")))
        .expect("zerocast vm runs QEMU as its child")
}

#[tokio::test(flavor = "multi_thread")]
async fn qemu_killed_ends_zerocast_with_an_error_and_its_folder() {
    let mut z = boot_test_guest("zerocast.fps=10", &[]);
    let serial = z.serial.clone().expect("serial log");
    wait_for_text(&serial, "zerocast-flipper: frame", Duration::from_secs(120));
    // A browser-protocol viewer and an HXFR subscriber, both receiving.
    let (mut ws, _) = tokio_tungstenite::connect_async(z.ws_url("scanout=0"))
        .await
        .expect("a raw viewer connects");
    ws.send(Message::text(r#"{"type":"init"}"#)).await.unwrap();
    let video = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_binary() {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(video, Ok(true), "the viewer streams");
    let mut sub = Subscriber::connect(z.hxfr_addr(), 0, Duration::from_secs(30));
    assert!(
        matches!(sub.next(), Event::Frame(_)),
        "the subscriber streams"
    );
    let work = z
        .serial
        .clone()
        .expect("serial log")
        .parent()
        .unwrap()
        .to_owned();
    assert!(work.is_dir());
    let qemu = qemu_of(&z);
    // SAFETY: kill(2) on a pid read from our child's /proc children list.
    unsafe { libc::kill(libc::pid_t::try_from(qemu).unwrap(), libc::SIGKILL) };

    // Both hear why before the process goes.
    let reason = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(frame) = m {
                return frame.map(|f| f.reason.to_string());
            }
        }
        None
    })
    .await
    .expect("the viewer's socket ends within 30 s");
    assert_eq!(reason.as_deref(), Some("the VM stopped"), "close reason");
    let told = std::thread::spawn(move || loop {
        match sub.next() {
            Event::Frame(_) => continue,
            Event::Error(e) => return Some(e),
            Event::Closed | Event::Idle => return None,
        }
    })
    .join()
    .unwrap();
    assert!(
        told.as_deref()
            .is_some_and(|e| e.contains("the VM stopped")),
        "the subscriber gets an ERROR saying why: {told:?}"
    );
    let status = z
        .wait_exit(Duration::from_secs(30))
        .expect("zerocast exits when its VM is gone");
    assert!(!status.success(), "a VM that died is an error: {status}");
    assert!(
        !Path::new(&work).exists(),
        "work folder removed: {}",
        work.display()
    );
}

#[test]
fn zerocast_killed_takes_qemu_and_vsock_with_it() {
    let z = boot_test_guest("zerocast.fps=10", &["--vsock"]);
    let children = z.children();
    let named: Vec<(u32, String)> = children
        .iter()
        .filter_map(|&p| Some((p, comm(p)?)))
        .collect();
    assert!(
        named.iter().any(|(_, c)| c.starts_with("qemu-system"))
            && named.iter().any(|(_, c)| c.starts_with("vhost-device")),
        "QEMU and vhost-device-vsock run: {named:?}"
    );
    z.signal(libc::SIGKILL);
    for (pid, name) in named {
        assert!(
            gone(pid, Duration::from_secs(10)),
            "{name} ({pid}) outlived zerocast and keeps the guest's RAM"
        );
    }
}
