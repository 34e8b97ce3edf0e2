//! `zerocast serve`, the host daemon, with real parts: two QEMU guests, each
//! on its own GPU backend process that registers with the daemon; the
//! daemon lists both, relays their frames to an HXFR subscriber and to
//! Chromium, passes a key typed in the page to the right guest (QMP), and
//! drops a VM when its QEMU goes. Hostile registrations are refused.

mod harness;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{
    assert_frames_advance, guest, record, require, type_a_and_click, wait_for_text,
    watch_in_chromium, Zerocast,
};
use zerocast_qemu::{Gpu, Vm, VmConfig};

const BACKEND: &str = env!("CARGO_BIN_EXE_zerocast-vhost-user-gpu");

/// A folder with a short path, for the sockets.
fn socket_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zc-sv-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One VM: its backend (registered with the daemon) and its QEMU, whose
/// QMP socket is where the daemon looks for `NAME.qmp`.
struct Guest {
    backend: Child,
    vm: Option<Vm>,
    serial: PathBuf,
}

impl Guest {
    fn start(name: &str, registration: &Path, qmp_dir: &Path) -> Guest {
        let dir = socket_dir(name);
        let socket = dir.join("gpu.sock");
        let backend = Command::new(BACKEND)
            .arg(format!("--socket-path={}", socket.display()))
            .args(["--serve", registration.to_str().unwrap(), "--name", name])
            .args(["--fps", "30"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start the backend");
        let mut guest_vm = Guest {
            backend,
            vm: None,
            serial: dir.join("serial.log"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "the backend made no socket in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (kernel, initrd) = guest();
        let mut config = VmConfig::new(
            Gpu::VhostUser { socket },
            qmp_dir.join(format!("{name}.qmp")),
            dir.join("serial.log"),
        );
        config.kernel = Some(kernel);
        config.initrd = Some(initrd);
        config.append = "zerocast.fps=30 drm_kms_helper.fbdev_emulation=0".into();
        guest_vm.vm = Some(Vm::spawn(&config).expect("start QEMU"));
        guest_vm
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.backend.kill();
        let _ = self.backend.wait();
    }
}

fn stream_of(vms: &serde_json::Value, name: &str) -> u32 {
    let vm = vms
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap();
    u32::try_from(vm["scanouts"][0]["id"].as_u64().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_serves_two_vms_and_forgets_one_that_stops() {
    require("qemu-system-x86_64");
    let dir = socket_dir("daemon");
    let registration = dir.join("run/serve.sock");
    let qmp_dir = dir.join("qmp");
    let daemon = Zerocast::serve(&registration, &qmp_dir);
    // Nothing registered yet: an empty list, and the index page.
    assert_eq!(daemon.json("/api/vms"), serde_json::json!([]));
    let (status, page) = daemon.get(&format!("/?token={}", daemon.token()));
    assert_eq!(status, 200);
    assert!(page.contains("VMs on this host"), "{page}");
    assert_eq!(daemon.get("/api/vms").0, 401, "no token, no list");

    let mut one = Guest::start("vm-one", &registration, &qmp_dir);
    let two = Guest::start("vm-two", &registration, &qmp_dir);
    // Input comes once QEMU's QMP socket is there (after the registration).
    let vms = daemon.wait_for_vms(&["vm-one", "vm-two"], true);
    let (id_one, id_two) = (stream_of(&vms, "vm-one"), stream_of(&vms, "vm-two"));
    assert_ne!(id_one, id_two);

    // Each guest's frames, through the daemon's HXFR endpoint.
    for (guest, id) in [(&one, id_one), (&two, id_two)] {
        wait_for_text(
            &guest.serial,
            "zerocast-flipper: frame",
            Duration::from_secs(120),
        );
        let scanout = id.to_string();
        let (out, p) = record(
            &[
                "--connect",
                &daemon.hxfr,
                "--scanout",
                &scanout,
                "--frames",
                "20",
            ],
            &format!("serve-{id}.h264"),
        );
        assert_eq!((p.width, p.height), (1280, 800), "the guest's mode");
        assert_frames_advance(&out, 1280, 800);
    }
    let vms = daemon.json("/api/vms");
    let listed = &vms.as_array().unwrap()[0]["scanouts"][0];
    assert_eq!(
        (listed["width"].as_u64(), listed["height"].as_u64()),
        (Some(1280), Some(800))
    );

    // Chromium watches vm-two through the index's link; a key and a click
    // in the page reach vm-two's guest, and not vm-one's.
    let base = daemon.url.split("/?").next().unwrap();
    let url = format!("{base}/view?scanout={id_two}&token={}", daemon.token());
    let (mut c, _) = watch_in_chromium(&url, 20).await;
    type_a_and_click(&mut c, 200, 200).await;
    wait_for_text(&two.serial, "EV_KEY code=30", Duration::from_secs(30));
    let quiet = std::fs::read_to_string(&one.serial).unwrap();
    assert!(!quiet.contains("EV_KEY code=30"), "vm-one got vm-two's key");

    // vm-one's QEMU goes: its backend ends, and the daemon drops it.
    one.vm.take().unwrap().kill().await.unwrap();
    daemon.wait_for_vms(&["vm-two"], false);
    drop(two);
    daemon.wait_for_vms(&[], false);
}

#[test]
fn hostile_registrations_are_refused_with_a_reason() {
    let dir = socket_dir("hostile");
    let registration = dir.join("run/serve.sock");
    let daemon = Zerocast::run("serve", &["--socket", registration.to_str().unwrap()]);
    let ask = |line: &[u8]| {
        let mut conn = UnixStream::connect(&registration).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The daemon may hang up before taking all of a long line.
        let _ = conn.write_all(line);
        let mut answer = String::new();
        let _ = BufReader::new(conn).read_line(&mut answer);
        answer
    };
    let refused = ask(b"{\"version\":1,\"name\":\"x\",\"uuid\":\"\",\"hxfr\":\"relative\",\"scanouts\":1,\"fps\":60}\n");
    assert!(
        refused.contains("\"ok\":false") && refused.contains("absolute"),
        "{refused}"
    );
    let refused = ask(b"{\"version\":1,\"name\":\"x\",\"uuid\":\"\",\"hxfr\":\"/x\",\"scanouts\":64,\"fps\":60}\n");
    assert!(refused.contains("scanouts"), "{refused}");
    assert!(ask(b"not json\n").contains("not a registration"));
    // A line past 4 KiB gets no answer, only the end of the connection.
    let mut long = vec![b'{'; 8192];
    long.push(b'\n');
    assert_eq!(ask(&long), "");
    assert_eq!(
        daemon.json("/api/vms"),
        serde_json::json!([]),
        "none of them listed"
    );
}
