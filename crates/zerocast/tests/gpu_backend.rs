//! The vhost-user backend program libvirt starts (`zerocast-vhost-user-gpu`,
//! `zerocast gpu-backend`) against QEMU's backend program conventions, as
//! real processes: capabilities, refused invocations, the descriptor
//! `zerocast install-libvirt` writes, and the test guest booted by a real
//! QEMU whose display is served from `--socket-path` and from `--fd`.

mod harness;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::{assert_frames_advance, guest, record, require, wait_for_text, BIN};
use zerocast_qemu::{Gpu, Vm, VmConfig};

const BACKEND: &str = env!("CARGO_BIN_EXE_zerocast-vhost-user-gpu");

/// Runs to the end within 30 s (the conventions want failures early).
fn run(program: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the backend");
    let status = wait(&mut child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{program} {args:?} still running after 30 s"));
    let out = child.wait_with_output().unwrap();
    (
        status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn capabilities_are_a_gpu_that_claims_no_3d() {
    let both = [(BACKEND, vec![]), (BIN, vec!["gpu-backend"])];
    for (program, first) in both {
        // Other options are ignored, as the conventions ask.
        for extra in [&[][..], &["--fd=3", "--socket-path=/nonexistent/x"][..]] {
            let mut args = first.clone();
            args.push("--print-capabilities");
            args.extend_from_slice(extra);
            let (status, out, err) = run(program, &args);
            assert!(status.success(), "{args:?}: {status} {err}");
            let caps: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
            // Only what QEMU's vhost-user.json lists for gpu (render-node,
            // virgl) may appear, and neither is something we do.
            assert_eq!(caps, serde_json::json!({"type": "gpu", "features": []}));
        }
    }
}

#[test]
fn bad_invocations_fail_at_once_with_a_reason() {
    let cases: &[(&[&str], &str)] = &[
        (&["--fd=3", "--socket-path=/tmp/x.sock"], "both given"),
        (&[], "no vhost-user connection"),
        (&["--bogus"], "unexpected argument '--bogus'"),
        (&["--socket-path=/tmp/x.sock", "--virgl"], "2D only"),
        (&["--fd=3", "--render-node=/dev/dri/renderD128"], "2D only"),
        // Standard input (/dev/null here) is no socket.
        (&["--fd=0"], "not an open socket"),
        (&["--fd=-1"], "--fd"),
    ];
    for (args, reason) in cases {
        let (status, out, err) = run(BACKEND, args);
        assert!(!status.success(), "{args:?} succeeded");
        assert!(out.is_empty(), "{args:?}: nothing on stdout: {out}");
        assert!(err.contains(reason), "{args:?}: {reason:?} not in {err}");
    }
}

#[test]
fn install_writes_a_descriptor_libvirt_picks_first() {
    let dir = harness::tmp("vhost-user");
    let (status, out, err) = run(BIN, &["install-libvirt", "--dir", dir.to_str().unwrap()]);
    assert!(status.success(), "{err}");
    let path = dir.join("40-zerocast-gpu.json");
    assert!(
        "40-zerocast-gpu.json" < "50-qemu-gpu.json",
        "sorts before Debian's"
    );
    let descriptor: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let binary = Path::new(BACKEND).canonicalize().unwrap();
    assert_eq!(descriptor["type"], "gpu");
    assert_eq!(descriptor["binary"], binary.to_str().unwrap());
    assert!(descriptor["description"]
        .as_str()
        .unwrap()
        .contains("zerocast"));
    assert_eq!(descriptor.as_object().unwrap().len(), 3, "{descriptor}");
    for xml in [
        "<driver name='vhostuser'/>",
        "<model type='virtio' heads='1'/>",
        "<source type='memfd'/>",
        "<access mode='shared'/>",
        "<acpi/>",
    ] {
        assert!(out.contains(xml), "{xml} not in:\n{out}");
    }
    assert!(out.contains(path.to_str().unwrap()), "says what it wrote");

    // A binary that is no gpu backend is refused, and nothing is written.
    let other = harness::tmp("vhost-user-other");
    let (status, _, err) = run(
        BIN,
        &[
            "install-libvirt",
            "--dir",
            other.to_str().unwrap(),
            "--binary",
            "/bin/true",
        ],
    );
    assert!(!status.success());
    assert!(err.contains("not a vhost-user gpu backend"), "{err}");
    assert!(!other.join("40-zerocast-gpu.json").exists());
}

/// A running backend: its announced endpoints, read from its stderr.
struct Backend {
    child: Child,
    hxfr: String,
}

impl Backend {
    fn start(mut command: Command) -> Backend {
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--hxfr", "tcp:127.0.0.1:0"])
            .args(["--fps", "30"])
            // Not root's /run/zerocast/vms: a failed test leaves nothing there.
            .arg(format!(
                "--announce-dir={}",
                harness::tmp("announce").display()
            ))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the backend");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("backend: {line}");
                let _ = tx.send(line);
            }
        });
        let (mut hxfr, mut viewer) = (String::new(), String::new());
        while viewer.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the backend announces its viewer on stderr within 60 s");
            if let Some(a) = line.strip_prefix("hxfr: ") {
                hxfr = a.to_owned();
            }
            if let Some(u) = line.strip_prefix("viewer: ") {
                viewer = u.to_owned();
            }
        }
        assert!(viewer.starts_with("http://127.0.0.1:"), "{viewer}");
        assert!(viewer.contains("token="), "{viewer}");
        Backend { child, hxfr }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vm_config(dir: &Path, socket: PathBuf) -> VmConfig {
    let (kernel, initrd) = guest();
    let mut config = VmConfig::new(
        Gpu::VhostUser { socket },
        dir.join("qmp.sock"),
        dir.join("serial.log"),
    );
    config.kernel = Some(kernel);
    config.initrd = Some(initrd);
    config.append = "zerocast.fps=30 drm_kms_helper.fbdev_emulation=0".into();
    config
}

/// The guest boots, its flipper draws, and an HXFR subscriber decodes
/// advancing frames from the backend.
fn assert_guest_streams(serial: &Path, hxfr: &str, name: &str) {
    wait_for_text(serial, "zerocast-flipper: frame", Duration::from_secs(120));
    let (out, p) = record(&["--connect", hxfr, "--frames", "20"], name);
    assert_eq!((p.width, p.height), (1280, 800), "the guest's mode");
    assert_frames_advance(&out, 1280, 800);
}

/// A folder with a short path, for the sockets.
fn socket_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zc-gb-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_path_serves_a_booting_guest_and_ends_with_it() {
    require("qemu-system-x86_64");
    let dir = socket_dir("path");
    let socket = dir.join("gpu.sock");
    let mut command = Command::new(BACKEND);
    command.arg(format!("--socket-path={}", socket.display()));
    let mut backend = Backend::start(command);

    let mut vm = Vm::spawn(&vm_config(&dir, socket)).expect("start QEMU");
    assert_guest_streams(&dir.join("serial.log"), &backend.hxfr, "backend-path.h264");

    // QEMU going away ends the backend, cleanly.
    vm.kill().await.unwrap();
    let status = wait(&mut backend.child, Duration::from_secs(10))
        .expect("the backend ends once QEMU has gone");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fd_serves_a_connection_made_elsewhere_and_sigterm_ends_it() {
    require("qemu-system-x86_64");
    let dir = socket_dir("fd");
    // QEMU connects to us, as to a backend; the accepted socket is what the
    // backend gets as fd 3, in the place of libvirt's socket pair.
    let socket = dir.join("gpu.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let mut vm = Vm::spawn(&vm_config(&dir, socket)).expect("start QEMU");
    let (conn, _) = listener.accept().expect("QEMU connects");
    drop(listener);

    let mut command = Command::new(BACKEND);
    command.arg("--fd=3");
    let fd = conn.as_raw_fd();
    // SAFETY: between fork and exec only dup2, which is async-signal-safe,
    // is called; the new fd 3 is made without close-on-exec, so the
    // backend inherits it, as from libvirt.
    unsafe {
        command.pre_exec(move || match libc::dup2(fd, 3) {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    let mut backend = Backend::start(command);
    drop(conn);
    assert_guest_streams(&dir.join("serial.log"), &backend.hxfr, "backend-fd.h264");

    // SIGTERM ends the backend at once (the conventions).
    let pid = libc::pid_t::try_from(backend.child.id()).unwrap();
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let t = Instant::now();
    let status = wait(&mut backend.child, Duration::from_secs(5)).expect("ends within 5 s");
    assert!(status.success(), "{status}");
    eprintln!("backend ended {:?} after SIGTERM", t.elapsed());
    vm.kill().await.unwrap();
}
