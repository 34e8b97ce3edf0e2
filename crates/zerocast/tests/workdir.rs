//! The VM's work folder holds the sockets that hand out the guest's memory
//! and take its keystrokes. `zerocast vm` makes it new and private (0700,
//! random name) under $XDG_RUNTIME_DIR, binds its own sockets there 0600,
//! and removes it after SIGTERM; a `--work-dir` that others could enter, or
//! a planted symlink, is refused and never followed.

mod harness;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::{guest, require, BIN};

/// `zerocast vm` with the test guest on free loopback ports, its runtime
/// folder base at `xdg`.
fn vm(xdg: &Path, duration: &str, extra: &[&str]) -> Command {
    require("qemu-system-x86_64");
    let (kernel, initrd) = guest();
    let mut c = Command::new(BIN);
    c.arg("vm")
        .args(["--kernel", kernel.to_str().unwrap()])
        .args(["--initrd", initrd.to_str().unwrap()])
        .args(["--memory", "512", "--listen", "127.0.0.1:0"])
        .args(["--hxfr", "tcp:127.0.0.1:0", "--duration", duration])
        .args(extra)
        .env("XDG_RUNTIME_DIR", xdg);
    c
}

/// A fresh private folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = harness::tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

fn refused(out: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "zerocast vm ran:\n{stderr}");
    assert!(stderr.contains(why), "no {why:?} in:\n{stderr}");
}

#[test]
fn a_work_dir_others_could_enter_or_a_symlink_is_refused() {
    let dir = scratch("workdir-refused");
    // Short, should a regression let the VM boot.
    let run = |work: &Path| {
        vm(&dir, "5", &["--work-dir", work.to_str().unwrap()])
            .output()
            .unwrap()
    };

    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    refused(&run(&open), "chmod 700");
    assert!(is_empty(&open), "nothing was made in the refused folder");

    // The target itself would pass: only the link is wrong.
    let target = dir.join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    refused(&run(&link), "symbolic link");
    assert!(is_empty(&target), "the link was not followed");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Kills the VM if the test fails before it is stopped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_work_dir_is_private_its_sockets_are_ours_and_sigterm_removes_it() {
    require("vhost-device-vsock");
    let xdg = scratch("workdir-xdg");
    // A crashed run's folder is neither reused nor in the way.
    let stale = xdg.join("zerocast-vm-0000000000000000");
    std::fs::create_dir(&stale).unwrap();

    // --vsock: zerocast binds the guest's HXFR socket in the work folder.
    let mut vm = Running(
        vm(&xdg, "120", &["--vsock"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = vm.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut serial = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("zerocast vm printed no viewer URL within 60 s");
        if let Some(p) = line.strip_prefix("serial: ") {
            serial = Some(PathBuf::from(p));
        }
        if line.starts_with("viewer: ") {
            break;
        }
    }
    let serial = serial.expect("zerocast vm prints its serial log");
    let work = serial.parent().unwrap().to_owned();

    assert_eq!(work.parent(), Some(xdg.as_path()), "under XDG_RUNTIME_DIR");
    let name = work.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("zerocast-vm-"), "{name}");
    assert_ne!(work, stale);
    let meta = std::fs::symlink_metadata(&work).unwrap();
    assert!(meta.is_dir());
    assert_eq!(
        meta.uid(),
        std::fs::metadata(&xdg).unwrap().uid(),
        "owned by us"
    );
    assert_eq!(mode(&work), 0o700, "{}", work.display());
    let hxfr = work.join("vsock_5001");
    assert!(
        std::fs::symlink_metadata(&hxfr)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false),
        "the guest's HXFR socket is in the work folder: {}",
        hxfr.display()
    );
    assert_eq!(mode(&hxfr), 0o600, "{}", hxfr.display());
    // Gone once QEMU has connected, but 0600 if it is still there.
    let gpu = work.join("gpu.sock");
    if gpu.exists() {
        assert_eq!(mode(&gpu), 0o600);
    }

    let pid = libc::pid_t::try_from(vm.0.id()).unwrap();
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = vm.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "zerocast vm ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    assert!(!work.exists(), "{} removed after SIGTERM", work.display());
    assert!(stale.is_dir(), "another run's folder is left alone");
    std::fs::remove_dir_all(&xdg).unwrap();
}
