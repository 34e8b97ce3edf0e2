//! Starting QEMU: [`VmConfig`] and its command line (pure), and [`Vm`], the
//! running `qemu-system-x86_64` process.
//!
//! The VM always gets: guest RAM in a shared memfd (vhost-user devices map
//! it), no PS/2 controller (input goes through virtio-keyboard and
//! virtio-tablet, which QMP's `input-send-event` reaches), no display of
//! QEMU's own, QMP on a Unix socket and the serial console in a file.

use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::process::{Child, ChildStderr, Command};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The QEMU binary, looked up in `PATH`.
pub const QEMU: &str = "qemu-system-x86_64";

/// Guest memory sizes [`VmConfig::validate`] accepts, in MiB.
pub const MEMORY_MB: RangeInclusive<u32> = 128..=65536;

/// Scanouts a virtio-gpu device can have (`VIRTIO_GPU_MAX_SCANOUTS`).
pub const MAX_SCANOUTS: u32 = 16;

/// Longest Unix socket path (`sun_path` holds 108 bytes with the NUL).
const SOCKET_PATH_MAX: usize = 107;

/// How often [`Vm::wait_for_serial`] looks at the serial log.
const SERIAL_POLL: Duration = Duration::from_millis(100);

/// How long [`Vm::kill`] waits for QEMU to die after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`Vm::exited`] looks at QEMU.
const EXIT_POLL: Duration = Duration::from_millis(200);

/// How much of QEMU's stderr a [`Vm`] keeps for error messages.
const STDERR_TAIL: usize = 8192;

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
}

/// Everything needed to start one VM.
#[derive(Debug, Clone, PartialEq)]
pub struct VmConfig {
    /// Kernel to boot directly (`-kernel`); `None` boots `disk`.
    pub kernel: Option<PathBuf>,
    /// Initramfs for `kernel`.
    pub initrd: Option<PathBuf>,
    /// Kernel command line; `console=ttyS0` is always added.
    pub append: String,
    /// Disk image to boot instead of a kernel: `*.qcow2`, `*.raw` or `*.img`.
    pub disk: Option<PathBuf>,
    pub memory_mb: u32,
    pub accel: Accel,
    pub gpu: Gpu,
    /// Outputs of the GPU (`max_outputs`); for [`Gpu::VhostUser`] it must
    /// equal the backend's scanout count.
    pub scanouts: u32,
    /// Where QEMU listens for QMP.
    pub qmp_socket: PathBuf,
    /// Where QEMU writes the guest's serial console (created afresh).
    pub serial_log: PathBuf,
    /// A vhost-user-vsock backend's socket (see [`crate::VsockDevice`]):
    /// gives the guest real vsock.
    pub vsock: Option<PathBuf>,
    /// Appended to the command line as they are.
    pub extra_args: Vec<String>,
}

/// A [`VmConfig`] that cannot work, and what to change.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("nothing to boot: set a kernel (with its initrd) or a disk image")]
    NothingToBoot,
    #[error("both a kernel and a disk image are set: boot one of them")]
    KernelAndDisk,
    #[error("an initrd is set without a kernel: set the kernel too, or drop the initrd")]
    InitrdWithoutKernel,
    #[error("{mb} MiB of memory is out of range: use 128 to 65536 MiB")]
    Memory { mb: u32 },
    #[error("{n} scanouts: use 1 to {MAX_SCANOUTS}")]
    Scanouts { n: u32 },
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

/// Starting or watching QEMU failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{QEMU} not found: run scripts/install-deps.sh")]
    QemuNotFound,
    #[error("cannot start {QEMU}: {0}")]
    Spawn(io::Error),
    #[error("Vm::spawn must be called inside a tokio runtime")]
    NoRuntime,
    #[error("{what} {} does not exist: check the path", path.display())]
    MissingFile { what: &'static str, path: PathBuf },
    #[error(
        "vhost-user-gpu socket {} does not exist: start the GPU backend \
         (zerocast-gpu) before QEMU", path.display()
    )]
    NoGpuBackend { path: PathBuf },
    #[error("{} exists and is not a socket: refusing to replace it with the QMP socket", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot prepare or read the serial log {}: {source}", path.display())]
    SerialLog { path: PathBuf, source: io::Error },
    #[error(
        "no {needle:?} in the serial log {} within {timeout:?}: the guest is slow \
         or stuck; read the log", path.display()
    )]
    SerialTimeout {
        needle: String,
        timeout: Duration,
        path: PathBuf,
    },
    #[error("QEMU exited ({status}) while waiting for {needle:?} in the serial log; QEMU said: {stderr}")]
    Exited {
        status: ExitStatus,
        needle: String,
        stderr: String,
    },
    #[error("cannot wait for QEMU: {0}")]
    Wait(io::Error),
    #[error("QEMU did not exit within {KILL_TIMEOUT:?} of SIGKILL")]
    KillTimeout,
}

impl VmConfig {
    /// A VM with 512 MiB, TCG, one scanout, no kernel or disk yet.
    pub fn new(gpu: Gpu, qmp_socket: impl Into<PathBuf>, serial_log: impl Into<PathBuf>) -> Self {
        VmConfig {
            kernel: None,
            initrd: None,
            append: String::new(),
            disk: None,
            memory_mb: 512,
            accel: Accel::default(),
            gpu,
            scanouts: 1,
            qmp_socket: qmp_socket.into(),
            serial_log: serial_log.into(),
            vsock: None,
            extra_args: Vec::new(),
        }
    }

    /// Checks the configuration on its own (no file system access).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.kernel, &self.initrd, &self.disk) {
            (Some(_), _, Some(_)) => return Err(ConfigError::KernelAndDisk),
            (None, Some(_), _) => return Err(ConfigError::InitrdWithoutKernel),
            (None, None, None) => return Err(ConfigError::NothingToBoot),
            _ => {}
        }
        if let Some(disk) = &self.disk {
            disk_format(disk)?;
        }
        if !MEMORY_MB.contains(&self.memory_mb) {
            return Err(ConfigError::Memory { mb: self.memory_mb });
        }
        if !(1..=MAX_SCANOUTS).contains(&self.scanouts) {
            return Err(ConfigError::Scanouts { n: self.scanouts });
        }
        socket_path("QMP socket", &self.qmp_socket)?;
        if let Gpu::VhostUser { socket } = &self.gpu {
            socket_path("vhost-user-gpu socket", socket)?;
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

        push(&["-nodefaults", "-no-reboot"]);
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
            push(&["-drive", &format!("file={file},if=virtio,format={format}")]);
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

/// A running QEMU. Dropping it kills QEMU.
#[derive(Debug)]
pub struct Vm {
    /// Locked only briefly (`try_wait`), never across an `await`.
    child: Mutex<Child>,
    pid: Option<u32>,
    qmp_socket: PathBuf,
    serial_log: PathBuf,
    stderr: Arc<Mutex<StderrTail>>,
}

/// The end of QEMU's stderr.
#[derive(Debug, Default)]
struct StderrTail {
    text: String,
    closed: bool,
}

impl Vm {
    /// Checks the files `config` names and starts QEMU. The serial log is
    /// removed first, so [`Vm::wait_for_serial`] never sees an old run's.
    /// QEMU's stderr goes to `tracing` (warn) and into error messages.
    pub fn spawn(config: &VmConfig) -> Result<Vm, VmError> {
        let args = config.args()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| VmError::NoRuntime)?;
        check_files(config)?;

        match std::fs::remove_file(&config.serial_log) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(VmError::SerialLog {
                    path: config.serial_log.clone(),
                    source: e,
                })
            }
            _ => {}
        }
        remove_stale_socket(&config.qmp_socket)?;

        let mut child = crate::child::dies_with_parent(Command::new(QEMU))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => VmError::QemuNotFound,
                _ => VmError::Spawn(e),
            })?;
        let pid = child.id();
        info!(pid, "started {QEMU} {}", args.join(" "));

        let stderr = Arc::new(Mutex::new(StderrTail::default()));
        if let Some(pipe) = child.stderr.take() {
            runtime.spawn(collect_stderr(pipe, stderr.clone()));
        }
        Ok(Vm {
            child: Mutex::new(child),
            pid,
            qmp_socket: config.qmp_socket.clone(),
            serial_log: config.serial_log.clone(),
            stderr,
        })
    }

    /// QEMU's process id, as it was at spawn.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub fn qmp_socket(&self) -> &Path {
        &self.qmp_socket
    }

    pub fn serial_log(&self) -> &Path {
        &self.serial_log
    }

    /// The last few KiB QEMU wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        lock(&self.stderr).text.clone()
    }

    /// Waits until the serial log contains `needle`, polling the file
    /// every 100 ms and reading only what is new. Fails at the timeout, or
    /// as soon as QEMU has exited without writing it.
    pub async fn wait_for_serial(&self, needle: &str, timeout: Duration) -> Result<(), VmError> {
        let deadline = Instant::now() + timeout;
        let mut scan = Scan::new(needle.as_bytes());
        loop {
            // Exit first, then read: what QEMU wrote before exiting counts.
            let exited = lock(&self.child).try_wait().map_err(VmError::Wait)?;
            if scan
                .read_new(&self.serial_log)
                .await
                .map_err(|source| VmError::SerialLog {
                    path: self.serial_log.clone(),
                    source,
                })?
            {
                debug!(needle, "found in the serial log");
                return Ok(());
            }
            if let Some(status) = exited {
                return Err(VmError::Exited {
                    status,
                    needle: needle.into(),
                    stderr: self.final_stderr().await,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(VmError::SerialTimeout {
                    needle: needle.into(),
                    timeout,
                    path: self.serial_log.clone(),
                });
            }
            tokio::time::sleep_until(deadline.min(now + SERIAL_POLL)).await;
        }
    }

    /// Resolves when QEMU exits by itself (the guest powered off, or it
    /// failed), with QEMU's stderr on failure. Polls: the child is shared
    /// with the other methods, which only lock it briefly.
    pub async fn exited(&self) -> Result<ExitStatus, VmError> {
        loop {
            let exited = lock(&self.child).try_wait().map_err(VmError::Wait)?;
            if let Some(status) = exited {
                if !status.success() {
                    warn!(%status, stderr = %self.final_stderr().await, "QEMU failed");
                }
                return Ok(status);
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// Kills QEMU (SIGKILL) if it is still running and reaps it.
    pub async fn kill(&mut self) -> Result<ExitStatus, VmError> {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = child.try_wait().map_err(VmError::Wait)? {
            return Ok(status);
        }
        if let Err(e) = child.start_kill() {
            // It exited between try_wait and here; wait() below reaps it.
            debug!("SIGKILL to QEMU: {e}");
        }
        let status = tokio::time::timeout(KILL_TIMEOUT, child.wait())
            .await
            .map_err(|_| VmError::KillTimeout)?
            .map_err(VmError::Wait)?;
        info!(pid = self.pid, %status, "QEMU stopped");
        let _ = std::fs::remove_file(&self.qmp_socket);
        Ok(status)
    }

    /// stderr once QEMU has exited: waits a moment for the pipe to drain.
    async fn final_stderr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(1);
        while !lock(&self.stderr).closed && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let text = self.stderr_tail();
        if text.trim().is_empty() {
            "(nothing on stderr)".into()
        } else {
            text.trim().into()
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // The child is killed by `kill_on_drop`; QEMU cannot remove its QMP
        // socket after SIGKILL, so that is done here.
        let running = lock(&self.child).try_wait().ok().flatten().is_none();
        if running {
            debug!(pid = self.pid, "killing QEMU on drop");
        }
        let _ = std::fs::remove_file(&self.qmp_socket);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The files a config names exist, and the folders QEMU writes into.
fn check_files(config: &VmConfig) -> Result<(), VmError> {
    let files = [
        ("kernel", &config.kernel),
        ("initrd", &config.initrd),
        ("disk image", &config.disk),
    ];
    for (what, path) in files {
        if let Some(path) = path {
            if !path.exists() {
                return Err(VmError::MissingFile {
                    what,
                    path: path.clone(),
                });
            }
        }
    }
    if let Gpu::VhostUser { socket } = &config.gpu {
        if !socket.exists() {
            return Err(VmError::NoGpuBackend {
                path: socket.clone(),
            });
        }
    }
    for (what, path) in [
        ("folder of the QMP socket", &config.qmp_socket),
        ("folder of the serial log", &config.serial_log),
    ] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(VmError::MissingFile {
                    what,
                    path: dir.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Removes a QMP socket left by an earlier QEMU, so a client cannot reach
/// the wrong VM before ours has made its own.
fn remove_stale_socket(path: &Path) -> Result<(), VmError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            debug!(path = %path.display(), "removing an old QMP socket");
            let _ = std::fs::remove_file(path);
            Ok(())
        }
        Ok(_) => Err(VmError::NotASocket {
            path: path.to_owned(),
        }),
        Err(_) => Ok(()),
    }
}

/// Forwards QEMU's stderr to `tracing`, keeping the last [`STDERR_TAIL`] bytes.
async fn collect_stderr(mut pipe: ChildStderr, tail: Arc<Mutex<StderrTail>>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = String::from_utf8_lossy(&buf[..n]);
        for line in chunk.lines().filter(|l| !l.trim().is_empty()) {
            warn!("qemu: {line}");
        }
        let mut tail = lock(&tail);
        tail.text.push_str(&chunk);
        if tail.text.len() > STDERR_TAIL {
            let mut cut = tail.text.len() - STDERR_TAIL;
            while !tail.text.is_char_boundary(cut) {
                cut += 1;
            }
            tail.text.drain(..cut);
        }
    }
    lock(&tail).closed = true;
}

/// Incremental search of a growing file for one needle.
struct Scan<'a> {
    needle: &'a [u8],
    /// Bytes of the file already searched.
    offset: u64,
    /// The end of what was searched, in case the needle straddles reads.
    carry: Vec<u8>,
}

impl<'a> Scan<'a> {
    fn new(needle: &'a [u8]) -> Self {
        Scan {
            needle,
            offset: 0,
            carry: Vec::new(),
        }
    }

    /// Reads what the file gained since the last call; true once `needle`
    /// has been seen. A missing file is an empty one.
    async fn read_new(&mut self, path: &Path) -> io::Result<bool> {
        if self.needle.is_empty() {
            return Ok(true);
        }
        let mut file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if file.metadata().await?.len() < self.offset {
            // Truncated: start over.
            self.offset = 0;
            self.carry.clear();
        }
        file.seek(io::SeekFrom::Start(self.offset)).await?;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut chunk).await?;
            if n == 0 {
                return Ok(false);
            }
            self.offset += n as u64;
            self.carry.extend_from_slice(&chunk[..n]);
            if self
                .carry
                .windows(self.needle.len())
                .any(|w| w == self.needle)
            {
                return Ok(true);
            }
            let keep = self.carry.len().min(self.needle.len() - 1);
            self.carry.drain(..self.carry.len() - keep);
        }
    }
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
            "-no-reboot",
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
        check(
            |c| c.disk = Some("/d.qcow2".into()),
            ConfigError::KernelAndDisk,
        );
        check(|c| c.memory_mb = 64, ConfigError::Memory { mb: 64 });
        check(|c| c.memory_mb = 65537, ConfigError::Memory { mb: 65537 });
        check(|c| c.scanouts = 0, ConfigError::Scanouts { n: 0 });
        check(|c| c.scanouts = 17, ConfigError::Scanouts { n: 17 });
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
        config.scanouts = MAX_SCANOUTS;
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

    #[tokio::test]
    async fn scan_finds_needles_across_reads_and_ignores_old_bytes() {
        let path = std::env::temp_dir().join(format!("zc-scan-{}.log", std::process::id()));
        std::fs::write(&path, b"boot\r\nzerocast-input: type=EV_K").unwrap();
        let mut scan = Scan::new(b"type=EV_KEY code=30 value=1");
        assert!(!scan.read_new(&path).await.unwrap());
        let mut text = std::fs::read(&path).unwrap();
        text.extend_from_slice(b"EY code=30 value=1\r\n");
        std::fs::write(&path, &text).unwrap();
        assert!(scan.read_new(&path).await.unwrap());
        // The carry is bounded by the needle's length.
        assert!(scan.carry.len() < 200);

        let mut missing = Scan::new(b"x");
        assert!(!missing
            .read_new(&path.with_extension("none"))
            .await
            .unwrap());
        std::fs::remove_file(&path).unwrap();
    }
}
