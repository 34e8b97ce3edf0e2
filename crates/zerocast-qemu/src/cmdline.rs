//! QEMU's command line: [`VmConfig`] -> argv, pure and validated.
//!
//! The VM always gets: guest RAM in a shared memfd (vhost-user devices map
//! it), no PS/2 controller (input goes through virtio-keyboard and
//! virtio-tablet, which QMP's `input-send-event` reaches), no display of
//! QEMU's own, QMP on a Unix socket and the serial console in a file.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Guest memory sizes [`VmConfig::validate`] accepts, in MiB.
pub const MEMORY_MB: RangeInclusive<u32> = 128..=65536;

/// Longest Unix socket path (`sun_path` holds 108 bytes with the NUL).
const SOCKET_PATH_MAX: usize = 107;

/// How QEMU runs guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// Software emulation: slower, works everywhere.
    #[default]
    Tcg,
    /// Hardware virtualisation. Only when asked for: on nested machines
    /// `/dev/kvm` may exist and still hang the guest.
    Kvm,
}

/// The VM's virtio-gpu device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gpu {
    /// zerocast's own backend (`zerocast-gpu`), listening on `socket`;
    /// it must be started before QEMU. What the product uses.
    VhostUser { socket: PathBuf },
    /// QEMU's built-in `virtio-gpu-pci`: no backend needed, frames stay
    /// inside QEMU (tests, `screendump`).
    VirtioGpu,
    /// QEMU's built-in `virtio-gpu-pci` shown by QEMU's own VNC server on
    /// the Unix socket `socket` (no TCP port, so no other user reaches it):
    /// the display users get for free, which the benchmark compares with.
    VirtioVnc { socket: PathBuf },
}

/// Everything needed to start one VM.
#[derive(Debug, Clone, PartialEq)]
pub struct VmConfig {
    /// Kernel to boot directly (`-kernel`), with `disk` (if any) as its
    /// root device's drive; `None` boots `disk`.
    pub kernel: Option<PathBuf>,
    /// Initramfs for `kernel`.
    pub initrd: Option<PathBuf>,
    /// Kernel command line; `console=ttyS0` is always added.
    pub append: String,
    /// Disk image, a virtio-blk drive (`/dev/vda`): `*.qcow2`, `*.raw` or
    /// `*.img`. Booted itself when there is no kernel.
    pub disk: Option<PathBuf>,
    /// Open `disk` with `snapshot=on`: the guest's writes go to a
    /// temporary file QEMU drops at exit, so the image is never modified.
    pub disk_snapshot: bool,
    pub memory_mb: u32,
    pub accel: Accel,
    pub gpu: Gpu,
    /// Outputs of the GPU (`max_outputs`), at least 1. The upper bound is
    /// the device's: for [`Gpu::VhostUser`] it must equal the backend's
    /// scanout count, and QEMU refuses more than its virtio-gpu allows.
    pub scanouts: u32,
    /// Where QEMU listens for QMP.
    pub qmp_socket: PathBuf,
    /// Where QEMU writes the guest's serial console (created afresh).
    pub serial_log: PathBuf,
    /// A vhost-user-vsock backend's socket (see [`crate::VsockDevice`]):
    /// gives the guest real vsock.
    pub vsock: Option<PathBuf>,
    /// A host folder the guest may read (9p, mount tag [`SHARE_TAG`]): how
    /// the guest agent reaches a desktop image that does not carry it.
    pub share: Option<PathBuf>,
    /// Appended to the command line as they are.
    pub extra_args: Vec<String>,
}

/// The 9p mount tag of [`VmConfig::share`]: in the guest,
/// `mount -t 9p -o trans=virtio,ro zerocast /mnt`.
pub const SHARE_TAG: &str = "zerocast";

/// A [`VmConfig`] that cannot work, and what to change.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("nothing to boot: set a kernel (with its initrd) or a disk image")]
    NothingToBoot,
    #[error("a disk snapshot is asked for without a disk image: set the disk too")]
    SnapshotWithoutDisk,
    #[error("an initrd is set without a kernel: set the kernel too, or drop the initrd")]
    InitrdWithoutKernel,
    #[error(
        "{mb} MiB of memory is out of range: use {} to {} MiB",
        MEMORY_MB.start(),
        MEMORY_MB.end()
    )]
    Memory { mb: u32 },
    #[error("0 scanouts: a VM needs at least one display")]
    NoScanouts,
    #[error("cannot tell the format of disk image {}: name it *.qcow2, *.raw or *.img", path.display())]
    DiskFormat { path: PathBuf },
    #[error("no {what} path set")]
    EmptyPath { what: &'static str },
    #[error("{what} path {path:?} is not UTF-8: use a UTF-8 path")]
    NotUtf8 { what: &'static str, path: PathBuf },
    #[error(
        "{what} path {} is {len} bytes, longer than a Unix socket allows \
         ({SOCKET_PATH_MAX}): use a shorter folder", path.display()
    )]
    SocketPathTooLong {
        what: &'static str,
        path: PathBuf,
        len: usize,
    },
}

impl VmConfig {
    /// A VM with 512 MiB, TCG, one scanout, no kernel or disk yet.
    pub fn new(gpu: Gpu, qmp_socket: impl Into<PathBuf>, serial_log: impl Into<PathBuf>) -> Self {
        VmConfig {
            kernel: None,
            initrd: None,
            append: String::new(),
            disk: None,
            disk_snapshot: false,
            memory_mb: 512,
            accel: Accel::default(),
            gpu,
            scanouts: 1,
            qmp_socket: qmp_socket.into(),
            serial_log: serial_log.into(),
            vsock: None,
            share: None,
            extra_args: Vec::new(),
        }
    }

    /// Checks the configuration on its own (no file system access).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.kernel, &self.initrd, &self.disk) {
            (None, Some(_), _) => return Err(ConfigError::InitrdWithoutKernel),
            (None, None, None) => return Err(ConfigError::NothingToBoot),
            _ => {}
        }
        if self.disk_snapshot && self.disk.is_none() {
            return Err(ConfigError::SnapshotWithoutDisk);
        }
        if let Some(disk) = &self.disk {
            disk_format(disk)?;
        }
        if !MEMORY_MB.contains(&self.memory_mb) {
            return Err(ConfigError::Memory { mb: self.memory_mb });
        }
        if self.scanouts == 0 {
            return Err(ConfigError::NoScanouts);
        }
        socket_path("QMP socket", &self.qmp_socket)?;
        match &self.gpu {
            Gpu::VhostUser { socket } => socket_path("vhost-user-gpu socket", socket)?,
            Gpu::VirtioVnc { socket } => socket_path("VNC socket", socket)?,
            Gpu::VirtioGpu => {}
        }
        if let Some(socket) = &self.vsock {
            socket_path("vhost-user-vsock socket", socket)?;
        }
        utf8("serial log", &self.serial_log)?;
        for (what, path) in [("kernel", &self.kernel), ("initrd", &self.initrd)] {
            if let Some(path) = path {
                utf8(what, path)?;
            }
        }
        Ok(())
    }

    /// QEMU's command line, without the binary. Pure: validates, touches
    /// nothing.
    pub fn args(&self) -> Result<Vec<String>, ConfigError> {
        self.validate()?;
        let mut args: Vec<String> = Vec::new();
        let mut push = |words: &[&str]| args.extend(words.iter().map(|w| w.to_string()));
        let mb = self.memory_mb;

        // No -no-reboot: a guest that reboots (a desktop after its updates)
        // comes back on the same display, and its viewers stay connected.
        push(&["-nodefaults"]);
        push(&[
            "-accel",
            match self.accel {
                Accel::Tcg => "tcg",
                Accel::Kvm => "kvm",
            },
        ]);
        push(&["-m", &format!("{mb}M")]);
        push(&[
            "-object",
            &format!("memory-backend-memfd,id=mem,size={mb}M,share=on"),
        ]);
        push(&["-machine", "pc,memory-backend=mem,i8042=off"]);
        match &self.gpu {
            Gpu::VhostUser { socket } => {
                let socket = opt_value(utf8("vhost-user-gpu socket", socket)?);
                push(&["-chardev", &format!("socket,id=gpu,path={socket}")]);
                push(&[
                    "-device",
                    &format!(
                        "vhost-user-gpu-pci,chardev=gpu,max_outputs={}",
                        self.scanouts
                    ),
                ]);
            }
            Gpu::VirtioGpu => push(&[
                "-device",
                &format!("virtio-gpu-pci,max_outputs={}", self.scanouts),
            ]),
            Gpu::VirtioVnc { socket } => {
                let socket = opt_value(utf8("VNC socket", socket)?);
                push(&[
                    "-device",
                    &format!("virtio-gpu-pci,max_outputs={}", self.scanouts),
                ]);
                // `-display none` below only drops the local window; VNC
                // is a display of its own and still serves the console.
                push(&["-vnc", &format!("unix:{socket}")]);
            }
        }
        push(&[
            "-device",
            "virtio-keyboard-pci",
            "-device",
            "virtio-tablet-pci",
        ]);
        if let Some(socket) = &self.vsock {
            let socket = opt_value(utf8("vhost-user-vsock socket", socket)?);
            push(&["-chardev", &format!("socket,id=vsock,path={socket}")]);
            push(&["-device", "vhost-user-vsock-pci,chardev=vsock"]);
        }
        push(&["-vga", "none", "-display", "none", "-monitor", "none"]);
        let qmp = opt_value(utf8("QMP socket", &self.qmp_socket)?);
        push(&["-qmp", &format!("unix:{qmp},server=on,wait=off")]);
        // `file:` takes the rest of the word as the path: no escaping.
        push(&[
            "-serial",
            &format!("file:{}", utf8("serial log", &self.serial_log)?),
        ]);

        if let Some(kernel) = &self.kernel {
            push(&["-kernel", utf8("kernel", kernel)?]);
            if let Some(initrd) = &self.initrd {
                push(&["-initrd", utf8("initrd", initrd)?]);
            }
            push(&["-append", &kernel_cmdline(&self.append)]);
        }
        if let Some(disk) = &self.disk {
            let file = opt_value(utf8("disk image", disk)?);
            let format = disk_format(disk)?;
            let snapshot = if self.disk_snapshot {
                ",snapshot=on"
            } else {
                ""
            };
            push(&[
                "-drive",
                &format!("file={file},if=virtio,format={format}{snapshot}"),
            ]);
        }
        if let Some(share) = &self.share {
            let path = opt_value(utf8("shared folder", share)?);
            push(&[
                "-fsdev",
                &format!("local,id=zerocast-share,path={path},security_model=none,readonly=on"),
                "-device",
                &format!("virtio-9p-pci,fsdev=zerocast-share,mount_tag={SHARE_TAG}"),
            ]);
        }
        args.extend(self.extra_args.iter().cloned());
        Ok(args)
    }
}

/// `append` with `console=ttyS0` in front, unless it already has it.
fn kernel_cmdline(append: &str) -> String {
    let append = append.trim();
    if append.split_whitespace().any(|w| w == "console=ttyS0") {
        append.to_owned()
    } else if append.is_empty() {
        "console=ttyS0".to_owned()
    } else {
        format!("console=ttyS0 {append}")
    }
}

/// The `format=` of a disk image, from its extension.
fn disk_format(path: &Path) -> Result<&'static str, ConfigError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("qcow2") => Ok("qcow2"),
        Some("raw" | "img") => Ok("raw"),
        _ => Err(ConfigError::DiskFormat {
            path: path.to_owned(),
        }),
    }
}

fn utf8<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, ConfigError> {
    match path.to_str() {
        Some("") => Err(ConfigError::EmptyPath { what }),
        Some(text) => Ok(text),
        None => Err(ConfigError::NotUtf8 {
            what,
            path: path.to_owned(),
        }),
    }
}

fn socket_path(what: &'static str, path: &Path) -> Result<(), ConfigError> {
    let len = utf8(what, path)?.len();
    if len > SOCKET_PATH_MAX {
        return Err(ConfigError::SocketPathTooLong {
            what,
            path: path.to_owned(),
            len,
        });
    }
    Ok(())
}

/// A value inside a QEMU `key=value,...` option: commas are doubled.
fn opt_value(value: &str) -> String {
    value.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_config() -> VmConfig {
        let mut config = VmConfig::new(
            Gpu::VhostUser {
                socket: "/run/zc/gpu.sock".into(),
            },
            "/run/zc/qmp.sock",
            "/run/zc/serial.log",
        );
        config.kernel = Some("/guest/vmlinuz".into());
        config.initrd = Some("/guest/initrd.img".into());
        config.append = "quiet zerocast.run=flipper".into();
        config
    }

    /// The value following `flag` each time it occurs.
    fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn kernel_boot_command_line() {
        let args = kernel_config().args().unwrap();
        let expected = [
            "-nodefaults",
            "-accel",
            "tcg",
            "-m",
            "512M",
            "-object",
            "memory-backend-memfd,id=mem,size=512M,share=on",
            "-machine",
            "pc,memory-backend=mem,i8042=off",
            "-chardev",
            "socket,id=gpu,path=/run/zc/gpu.sock",
            "-device",
            "vhost-user-gpu-pci,chardev=gpu,max_outputs=1",
            "-device",
            "virtio-keyboard-pci",
            "-device",
            "virtio-tablet-pci",
            "-vga",
            "none",
            "-display",
            "none",
            "-monitor",
            "none",
            "-qmp",
            "unix:/run/zc/qmp.sock,server=on,wait=off",
            "-serial",
            "file:/run/zc/serial.log",
            "-kernel",
            "/guest/vmlinuz",
            "-initrd",
            "/guest/initrd.img",
            "-append",
            "console=ttyS0 quiet zerocast.run=flipper",
        ];
        assert_eq!(args, expected);
    }

    #[test]
    fn kvm_scanouts_builtin_gpu_and_extra_args() {
        let mut config = kernel_config();
        config.accel = Accel::Kvm;
        config.gpu = Gpu::VirtioGpu;
        config.scanouts = 4;
        config.memory_mb = 2048;
        config.initrd = None;
        config.append = "console=ttyS0 root=/dev/vda".into();
        config.extra_args = vec!["-smp".into(), "2".into()];
        let args = config.args().unwrap();
        assert_eq!(values(&args, "-accel"), ["kvm"]);
        assert_eq!(values(&args, "-m"), ["2048M"]);
        assert_eq!(
            values(&args, "-object"),
            ["memory-backend-memfd,id=mem,size=2048M,share=on"]
        );
        assert!(values(&args, "-device").contains(&"virtio-gpu-pci,max_outputs=4"));
        assert!(values(&args, "-chardev").is_empty());
        assert!(values(&args, "-initrd").is_empty());
        assert_eq!(values(&args, "-append"), ["console=ttyS0 root=/dev/vda"]);
        assert_eq!(&args[args.len() - 2..], ["-smp", "2"]);
    }

    #[test]
    fn builtin_gpu_with_qemus_vnc_server_on_a_unix_socket() {
        let vhost_user = kernel_config().args().unwrap();
        let mut config = kernel_config();
        config.gpu = Gpu::VirtioVnc {
            socket: "/run/zc,1/vnc.sock".into(),
        };
        let args = config.args().unwrap();
        assert!(values(&args, "-device").contains(&"virtio-gpu-pci,max_outputs=1"));
        assert_eq!(values(&args, "-vnc"), ["unix:/run/zc,,1/vnc.sock"]);
        assert!(values(&args, "-chardev").is_empty());
        // The same command line apart from the display: what a side-by-side
        // comparison with our GPU needs.
        let strip = |args: &[String]| {
            let mut out = Vec::new();
            let mut words = args.iter();
            while let Some(w) = words.next() {
                match w.as_str() {
                    "-chardev" | "-device" | "-vnc" => {
                        let value = words.next().map(String::as_str).unwrap_or("");
                        if !value.contains("gpu") && w != "-vnc" {
                            out.extend([w.clone(), value.to_owned()]);
                        }
                    }
                    _ => out.push(w.clone()),
                }
            }
            out
        };
        assert_eq!(strip(&args), strip(&vhost_user));

        config.gpu = Gpu::VirtioVnc {
            socket: PathBuf::from(format!("/{}", "v".repeat(120))),
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::SocketPathTooLong {
                what: "VNC socket",
                ..
            })
        ));
    }

    #[test]
    fn disk_boot_detects_the_format() {
        let mut config = kernel_config();
        config.kernel = None;
        config.initrd = None;
        config.disk = Some("/images/debian.QCOW2".into());
        let args = config.args().unwrap();
        assert_eq!(
            values(&args, "-drive"),
            ["file=/images/debian.QCOW2,if=virtio,format=qcow2"]
        );
        assert!(values(&args, "-kernel").is_empty());
        assert!(values(&args, "-append").is_empty());

        config.disk = Some("/images/disk.img".into());
        assert_eq!(
            values(&config.args().unwrap(), "-drive"),
            ["file=/images/disk.img,if=virtio,format=raw"]
        );
        config.disk = Some("/images/disk.vmdk".into());
        let err = config.args().unwrap_err();
        assert!(matches!(err, ConfigError::DiskFormat { .. }));
        assert!(err.to_string().contains("*.qcow2"), "{err}");
    }

    #[test]
    fn a_shared_folder_is_read_only_9p() {
        let mut config = kernel_config();
        config.share = Some("/srv/agent,1".into());
        let args = config.args().unwrap();
        assert_eq!(
            values(&args, "-fsdev"),
            ["local,id=zerocast-share,path=/srv/agent,,1,security_model=none,readonly=on"]
        );
        assert!(values(&args, "-device")
            .contains(&"virtio-9p-pci,fsdev=zerocast-share,mount_tag=zerocast"));
    }

    #[test]
    fn kernel_with_a_disk_for_its_root() {
        let mut config = kernel_config();
        config.append = "root=/dev/vda rw".into();
        config.disk = Some("/images/desktop.raw".into());
        let args = config.args().unwrap();
        let tail = [
            "-kernel",
            "/guest/vmlinuz",
            "-initrd",
            "/guest/initrd.img",
            "-append",
            "console=ttyS0 root=/dev/vda rw",
            "-drive",
            "file=/images/desktop.raw,if=virtio,format=raw",
        ];
        assert_eq!(&args[args.len() - tail.len()..], tail);

        // Snapshot: the image is opened, never written.
        config.disk_snapshot = true;
        let args = config.args().unwrap();
        assert_eq!(
            values(&args, "-drive"),
            ["file=/images/desktop.raw,if=virtio,format=raw,snapshot=on"]
        );
        assert_eq!(values(&args, "-kernel"), ["/guest/vmlinuz"]);
    }

    #[test]
    fn a_disk_alone_in_snapshot_mode() {
        let mut config = kernel_config();
        config.kernel = None;
        config.initrd = None;
        config.disk = Some("/images/a,b.qcow2".into());
        config.disk_snapshot = true;
        let args = config.args().unwrap();
        assert_eq!(
            values(&args, "-drive"),
            ["file=/images/a,,b.qcow2,if=virtio,format=qcow2,snapshot=on"]
        );
        assert!(values(&args, "-kernel").is_empty());
        assert!(values(&args, "-append").is_empty());
    }

    #[test]
    fn commas_in_option_values_are_doubled() {
        let mut config = kernel_config();
        config.gpu = Gpu::VhostUser {
            socket: "/tmp/a,b/gpu.sock".into(),
        };
        config.qmp_socket = "/tmp/a,b/qmp.sock".into();
        config.serial_log = "/tmp/a,b/serial.log".into();
        let args = config.args().unwrap();
        assert_eq!(
            values(&args, "-chardev"),
            ["socket,id=gpu,path=/tmp/a,,b/gpu.sock"]
        );
        assert_eq!(
            values(&args, "-qmp"),
            ["unix:/tmp/a,,b/qmp.sock,server=on,wait=off"]
        );
        // `-serial file:` is not a key=value list: the path stays as it is.
        assert_eq!(values(&args, "-serial"), ["file:/tmp/a,b/serial.log"]);
    }

    #[test]
    fn console_is_always_on_the_serial_port() {
        assert_eq!(kernel_cmdline(""), "console=ttyS0");
        assert_eq!(kernel_cmdline(" quiet "), "console=ttyS0 quiet");
        assert_eq!(kernel_cmdline("quiet console=ttyS0"), "quiet console=ttyS0");
        assert_eq!(
            kernel_cmdline("console=ttyS0,115200"),
            "console=ttyS0 console=ttyS0,115200"
        );
    }

    #[test]
    fn invalid_configs_say_what_to_do() {
        let check = |edit: fn(&mut VmConfig), expected: ConfigError| {
            let mut config = kernel_config();
            edit(&mut config);
            assert_eq!(config.validate(), Err(expected.clone()));
            assert_eq!(config.args(), Err(expected));
        };
        check(
            |c| {
                c.kernel = None;
                c.initrd = None;
            },
            ConfigError::NothingToBoot,
        );
        check(|c| c.kernel = None, ConfigError::InitrdWithoutKernel);
        check(|c| c.disk_snapshot = true, ConfigError::SnapshotWithoutDisk);
        check(|c| c.memory_mb = 64, ConfigError::Memory { mb: 64 });
        check(|c| c.memory_mb = 65537, ConfigError::Memory { mb: 65537 });
        check(|c| c.scanouts = 0, ConfigError::NoScanouts);
        check(
            |c| c.qmp_socket = PathBuf::new(),
            ConfigError::EmptyPath { what: "QMP socket" },
        );
        let long = PathBuf::from(format!("/{}", "s".repeat(120)));
        let mut config = kernel_config();
        config.qmp_socket = long.clone();
        assert_eq!(
            config.validate(),
            Err(ConfigError::SocketPathTooLong {
                what: "QMP socket",
                path: long,
                len: 121
            })
        );

        // The edges are fine, and a kernel works without an initrd.
        let mut config = kernel_config();
        config.memory_mb = 128;
        config.scanouts = 1;
        config.initrd = None;
        assert_eq!(config.validate(), Ok(()));
        config.memory_mb = 65536;
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn non_utf8_paths_are_refused() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let mut config = kernel_config();
        config.kernel = Some(PathBuf::from(OsStr::from_bytes(b"/guest/\xffvmlinuz")));
        assert!(matches!(
            config.args(),
            Err(ConfigError::NotUtf8 { what: "kernel", .. })
        ));
    }
}
