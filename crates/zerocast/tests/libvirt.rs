//! libvirt starts zerocast's GPU backend: Debian's libvirtd, run by the
//! test itself (no systemd), in a private mount namespace whose
//! /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
//! /var/cache/libvirt and /etc/qemu are folders of the test, so the host's
//! libvirt is neither used nor changed. The descriptor comes from
//! `zerocast install-libvirt`; a domain booting the test guest with the
//! vhostuser video device streams its frames over HXFR, and `virsh
//! destroy` ends the backend.

mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use harness::{assert_frames_advance, guest, record, require, wait_for_text, BIN};

/// What libvirt's QEMU driver needs here: run QEMU and the backend as
/// root (the test's files stay readable), no security driver, cgroups or
/// /dev namespace (a container may not allow them), logs as plain files.
const QEMU_CONF: &str = r#"user = "root"
group = "root"
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
"#;

/// Host folders bind-mounted over by the test's own, in libvirtd's namespace.
const MOUNTS: [(&str, &str); 6] = [
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("qemu-etc", "/etc/qemu"),
];

/// A libvirtd of the test's own, and the domain it runs; all torn down on drop.
struct Libvirt {
    base: PathBuf,
    daemon: Child,
    domain: String,
}

impl Libvirt {
    fn start(base: &Path) -> Libvirt {
        let _ = std::fs::remove_dir_all(base);
        for (dir, mount_point) in MOUNTS {
            std::fs::create_dir_all(base.join(dir)).unwrap();
            // An empty folder where the host has none, to mount over.
            std::fs::create_dir_all(mount_point).unwrap();
        }
        std::fs::create_dir_all(base.join("log/qemu")).unwrap();
        std::fs::write(base.join("etc/qemu.conf"), QEMU_CONF).unwrap();

        let mut script = String::from("set -e\n");
        for (dir, mount_point) in MOUNTS {
            script += &format!("mount --bind {} {mount_point}\n", base.join(dir).display());
        }
        script += "exec libvirtd\n";
        let daemon = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            // libvirtd's environment reaches the backends it starts.
            .env("ZEROCAST_BACKEND_ANNOUNCE_DIR", base.join("announce"))
            .env("ZEROCAST_BACKEND_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(base.join("libvirtd.log")).unwrap())
            .spawn()
            .expect("start libvirtd");
        let libvirt = Libvirt {
            base: base.to_owned(),
            daemon,
            domain: format!("zerocast-test-{}", std::process::id()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !libvirt.virsh(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "libvirtd did not answer within 30 s:\n{}",
                std::fs::read_to_string(base.join("libvirtd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        libvirt
    }

    fn virsh(&self, args: &[&str]) -> Output {
        let uri = format!(
            "qemu:///system?socket={}",
            self.base.join("run/libvirt-sock").display()
        );
        Command::new("virsh")
            .args(["-c", &uri])
            .args(args)
            .output()
            .expect("run virsh")
    }

    fn virsh_ok(&self, args: &[&str]) {
        let out = self.virsh(args);
        assert!(
            out.status.success(),
            "virsh {args:?}: {}{}\nlibvirtd: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.base.join("libvirtd.log")).unwrap_or_default()
        );
    }
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        let _ = self.virsh(&["destroy", &self.domain]);
        let _ = self.virsh(&["undefine", &self.domain]);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// The test guest as a libvirt domain with zerocast's GPU, as
/// `install-libvirt` says to write it.
fn domain_xml(name: &str, base: &Path) -> String {
    let (kernel, initrd) = guest();
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{}</kernel>
    <initrd>{}</initrd>
    <cmdline>console=ttyS0 zerocast.fps=30 drm_kms_helper.fbdev_emulation=0</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <serial type='file'><source path='{}'/><target port='0'/></serial>
    <video><driver name='vhostuser'/><model type='virtio' heads='1'/></video>
    <memballoon model='none'/>
  </devices>
</domain>",
        kernel.display(),
        initrd.display(),
        base.join("serial.log").display()
    )
}

/// Waits for the one announcement file a backend writes; returns its path and text.
fn announcement(dir: &Path) -> (PathBuf, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                text.contains("viewer: ").then(|| (e.path(), text))
            });
        if let Some(found) = found {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no backend announced itself in {} within 60 s",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `pid` runs (a zombie no longer does).
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{text}"))
}

#[test]
fn libvirt_starts_the_backend_and_its_frames_stream() {
    require("libvirtd");
    require("virsh");
    require("qemu-system-x86_64");
    let base = PathBuf::from(format!("/tmp/zc-libvirt-test-{}", std::process::id()));
    let libvirt = Libvirt::start(&base);

    // The descriptor, where libvirt looks (the test's /etc/qemu).
    let install = Command::new(BIN)
        .args(["install-libvirt", "--dir"])
        .arg(base.join("qemu-etc/vhost-user"))
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );

    let xml = base.join("domain.xml");
    std::fs::write(&xml, domain_xml(&libvirt.domain, &base)).unwrap();
    libvirt.virsh_ok(&["define", xml.to_str().unwrap()]);
    libvirt.virsh_ok(&["start", &libvirt.domain]);

    let (file, text) = announcement(&base.join("announce"));
    let name = file.file_name().unwrap().to_str().unwrap();
    let short: String = libvirt.domain.chars().take(20).collect();
    assert!(
        name.contains(&short) && name.ends_with("-video0.txt"),
        "named after the domain (cut to 20 characters by libvirt) and its video device: {name}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "its URLs carry tokens");
    let pid: u32 = line(&text, "pid: ").parse().unwrap();

    wait_for_text(
        &base.join("serial.log"),
        "zerocast-flipper: frame",
        Duration::from_secs(120),
    );
    let (out, p) = record(
        &["--connect", line(&text, "hxfr: "), "--frames", "20"],
        "libvirt.h264",
    );
    assert_eq!((p.width, p.height), (1280, 800), "the guest's mode");
    assert_frames_advance(&out, 1280, 800);

    // Stopping the domain ends the backend, which takes its announcement along.
    libvirt.virsh_ok(&["destroy", &libvirt.domain]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(Instant::now() < deadline, "the backend outlived its domain");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!file.exists(), "the announcement is removed");
    drop(libvirt);
    let _ = std::fs::remove_dir_all(&base);
}
