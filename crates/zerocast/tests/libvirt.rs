//! libvirt starts zerocast's GPU backend: Debian's libvirtd, run by the
//! test itself (no systemd), in a private mount namespace whose
//! /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
//! /var/cache/libvirt and /etc/qemu are folders of the test, so the host's
//! libvirt is neither used nor changed. The descriptor comes from
//! `zerocast install-libvirt`; a domain booting the test guest with the
//! vhostuser video device streams its frames over HXFR, and `virsh
//! destroy` ends the backend. Then two such domains under `zerocast serve`.

mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use harness::{
    assert_frames_advance, guest, record, require, type_a_and_click, wait_for_text,
    watch_in_chromium, Zerocast, BIN,
};

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

/// A libvirtd of the test's own, and the domains it runs; all torn down on drop.
struct Libvirt {
    base: PathBuf,
    daemon: Child,
    domains: Vec<String>,
}

impl Libvirt {
    /// libvirtd with `env` (which reaches the backends it starts), for
    /// `domains` domains of the test.
    fn start(base: &Path, env: &[(&str, PathBuf)], domains: usize) -> Libvirt {
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
        // Its own pid file: two tests' libvirtds may run at once.
        script += &format!(
            "exec libvirtd --pid-file {}\n",
            base.join("libvirtd.pid").display()
        );
        let daemon = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(base.join("libvirtd.log")).unwrap())
            .spawn()
            .expect("start libvirtd");
        let libvirt = Libvirt {
            base: base.to_owned(),
            daemon,
            domains: (0..domains)
                .map(|i| format!("zerocast-test-{}-{i}", std::process::id()))
                .collect(),
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
        for domain in &self.domains {
            let _ = self.virsh(&["destroy", domain]);
            let _ = self.virsh(&["undefine", domain]);
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// How a test domain shows its display.
enum Display<'a> {
    /// zerocast's GPU, as `install-libvirt` says to write it (shared memfd
    /// RAM, the vhostuser video); with a folder, the domain offers
    /// `FOLDER/NAME.qmp` for input.
    VhostUser { qmp_dir: Option<&'a Path> },
    /// QEMU's own GPU, its D-Bus display on the bus at this address.
    Dbus { address: &'a str },
}

/// The test guest as a libvirt domain; its serial log is `serial-NAME.log`.
fn domain_xml(name: &str, base: &Path, display: &Display<'_>) -> String {
    let (kernel, initrd) = guest();
    let (memory, video, extra) = match display {
        Display::VhostUser { qmp_dir } => (
            "\n  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>",
            "<video><driver name='vhostuser'/><model type='virtio' heads='1'/></video>".to_owned(),
            qmp_dir.map_or(String::new(), |dir| {
                format!(
                    "  <qemu:commandline>
    <qemu:arg value='-qmp'/>
    <qemu:arg value='unix:{}/{name}.qmp,server=on,wait=off'/>
  </qemu:commandline>\n",
                    dir.display()
                )
            }),
        ),
        Display::Dbus { address } => (
            "",
            format!(
                "<graphics type='dbus' address='{address}'/>
    <video><model type='virtio' heads='1'/></video>"
            ),
            String::new(),
        ),
    };
    // no_timer_check: on a loaded host, TCG can make the kernel's IO-APIC
    // timer check fail, and the guest panics at boot (seen in CI).
    format!(
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>{memory}
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{}</kernel>
    <initrd>{}</initrd>
    <cmdline>console=ttyS0 no_timer_check zerocast.fps=30 drm_kms_helper.fbdev_emulation=0</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <serial type='file'><source path='{}'/><target port='0'/></serial>
    {video}
    <input type='tablet' bus='virtio'/>
    <input type='keyboard' bus='virtio'/>
    <memballoon model='none'/>
  </devices>
{extra}</domain>",
        kernel.display(),
        initrd.display(),
        serial_log(base, name).display()
    )
}

fn serial_log(base: &Path, domain: &str) -> PathBuf {
    base.join(format!("serial-{domain}.log"))
}

/// The descriptor, where libvirt looks (the test's /etc/qemu).
fn install_descriptor(base: &Path) {
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
    let env = [
        ("ZEROCAST_BACKEND_ANNOUNCE_DIR", base.join("announce")),
        ("ZEROCAST_BACKEND_LISTEN", "127.0.0.1:0".into()),
    ];
    let libvirt = Libvirt::start(&base, &env, 1);
    install_descriptor(&base);
    let domain = &libvirt.domains[0];
    let xml = base.join("domain.xml");
    std::fs::write(
        &xml,
        domain_xml(domain, &base, &Display::VhostUser { qmp_dir: None }),
    )
    .unwrap();
    libvirt.virsh_ok(&["define", xml.to_str().unwrap()]);
    libvirt.virsh_ok(&["start", domain]);

    let (file, text) = announcement(&base.join("announce"));
    let name = file.file_name().unwrap().to_str().unwrap();
    let short: String = domain.chars().take(20).collect();
    assert!(
        name.contains(&short) && name.ends_with("-video0.txt"),
        "named after the domain (cut to 20 characters by libvirt) and its video device: {name}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "its URLs carry tokens");
    let pid: u32 = line(&text, "pid: ").parse().unwrap();

    wait_for_text(
        &serial_log(&base, domain),
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
    libvirt.virsh_ok(&["destroy", domain]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(Instant::now() < deadline, "the backend outlived its domain");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!file.exists(), "the announcement is removed");
    drop(libvirt);
    let _ = std::fs::remove_dir_all(&base);
}

/// Two domains whose backends libvirt starts register with `zerocast
/// serve`: listed under their names and UUIDs, each display streamed by the
/// daemon, a key typed in the page of one reaching that guest through its
/// domain's QMP socket, and `virsh destroy` dropping it from the list.
#[tokio::test(flavor = "multi_thread")]
async fn libvirt_domains_register_with_the_daemon() {
    require("libvirtd");
    require("virsh");
    require("qemu-system-x86_64");
    let base = PathBuf::from(format!("/tmp/zc-libvirt-serve-{}", std::process::id()));
    let registration = base.join("serve/serve.sock");
    // libvirtd starts first (afresh in `base`); the daemon makes its folders.
    let libvirt = Libvirt::start(&base, &[("ZEROCAST_SERVE_SOCKET", registration.clone())], 2);
    let qmp_dir = base.join("qmp");
    let daemon = Zerocast::serve(&registration, &qmp_dir);
    install_descriptor(&base);
    for domain in &libvirt.domains {
        let xml = base.join(format!("{domain}.xml"));
        std::fs::write(
            &xml,
            domain_xml(
                domain,
                &base,
                &Display::VhostUser {
                    qmp_dir: Some(&qmp_dir),
                },
            ),
        )
        .unwrap();
        libvirt.virsh_ok(&["define", xml.to_str().unwrap()]);
        libvirt.virsh_ok(&["start", domain]);
    }
    let (first, second) = (&libvirt.domains[0], &libvirt.domains[1]);
    let mut names = [first.as_str(), second.as_str()];
    names.sort_unstable();
    let vms = daemon.wait_for_vms(&names, true);
    let entry = |name: &str| {
        vms.as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    for domain in &libvirt.domains {
        let uuid = libvirt.virsh(&["domuuid", domain]);
        let uuid = String::from_utf8_lossy(&uuid.stdout).trim().to_owned();
        assert_eq!(
            entry(domain)["uuid"],
            uuid.as_str(),
            "from libvirt's status file"
        );
    }
    let id = |name: &str| {
        entry(name)["scanouts"][0]["id"]
            .as_u64()
            .unwrap()
            .to_string()
    };
    let (first_id, second_id) = (id(first), id(second));
    assert_ne!(first_id, second_id, "each display its own stream");

    for (domain, scanout) in [(first, &first_id), (second, &second_id)] {
        wait_for_text(
            &serial_log(&base, domain),
            "zerocast-flipper: frame",
            Duration::from_secs(120),
        );
        let (out, p) = record(
            &[
                "--connect",
                &daemon.hxfr,
                "--scanout",
                scanout,
                "--frames",
                "20",
            ],
            &format!("libvirt-serve-{scanout}.h264"),
        );
        assert_eq!((p.width, p.height), (1280, 800), "the guest's mode");
        assert_frames_advance(&out, 1280, 800);
    }

    // The second domain's page, in Chromium: a key and a click reach it.
    let base_url = daemon.url.split("/?").next().unwrap();
    let url = format!(
        "{base_url}/view?scanout={second_id}&token={}",
        daemon.token()
    );
    let (mut c, _) = watch_in_chromium(&url, 20).await;
    type_a_and_click(&mut c, 200, 200).await;
    wait_for_text(
        &serial_log(&base, second),
        "EV_KEY code=30",
        Duration::from_secs(30),
    );

    libvirt.virsh_ok(&["destroy", first]);
    daemon.wait_for_vms(&[second.as_str()], true);
    drop(c);
    drop(libvirt);
    let _ = std::fs::remove_dir_all(&base);
}

/// A domain that keeps QEMU's own GPU, with `<graphics type='dbus'/>` on a
/// bus of the test's: `zerocast attach` streams it and types into it.
#[tokio::test(flavor = "multi_thread")]
async fn a_dbus_graphics_domain_is_attached() {
    require("libvirtd");
    require("virsh");
    require("dbus-daemon");
    require("qemu-system-x86_64");
    let base = PathBuf::from(format!("/tmp/zc-libvirt-attach-{}", std::process::id()));
    let libvirt = Libvirt::start(&base, &[], 1);
    let domain = &libvirt.domains[0];
    let bus = base.join("bus");
    let address = format!("unix:path={}", bus.display());
    let mut dbus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", &format!("--address={address}")])
        .spawn()
        .expect("start dbus-daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bus.exists() {
        assert!(Instant::now() < deadline, "dbus-daemon made no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let xml = domain_xml(domain, &base, &Display::Dbus { address: &address });
    let path = base.join("attach.xml");
    std::fs::write(&path, xml).unwrap();
    libvirt.virsh_ok(&["define", path.to_str().unwrap()]);
    libvirt.virsh_ok(&["start", domain]);
    let serial = serial_log(&base, domain);
    // QEMU takes its name on the bus as it starts; the guest's kernel
    // talking means it has.
    wait_for_text(&serial, "Linux version", Duration::from_secs(60));
    let zc = Zerocast::run("attach", &["--dbus", &address, "--fps", "30"]);
    wait_for_text(&serial, "zerocast-flipper: frame", Duration::from_secs(120));
    let (out, p) = record(
        &["--connect", &zc.hxfr, "--frames", "30"],
        "libvirt-attach.h264",
    );
    assert_eq!((p.width, p.height), (1280, 800), "the guest's mode");
    assert_frames_advance(&out, 1280, 800);

    let (mut c, _) = watch_in_chromium(&zc.url, 10).await;
    type_a_and_click(&mut c, 200, 200).await;
    wait_for_text(&serial, "EV_KEY code=30", Duration::from_secs(30));
    drop((c, zc, libvirt));
    let _ = dbus.kill();
    let _ = dbus.wait();
    let _ = std::fs::remove_dir_all(&base);
}
