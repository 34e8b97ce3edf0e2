//! [`Vm`], the running `qemu-system-x86_64`: spawn it from a [`VmConfig`],
//! watch its serial log and stderr, stop it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, Command};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cmdline::{ConfigError, Gpu, VmConfig};
use crate::serial::Scan;

/// The QEMU binary, looked up in `PATH`.
pub const QEMU: &str = "qemu-system-x86_64";

/// How often [`Vm::wait_for_serial`] looks at the serial log.
const SERIAL_POLL: Duration = Duration::from_millis(100);

/// How long [`Vm::kill`] waits for QEMU to die after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of QEMU's stderr a [`Vm`] keeps for error messages.
const STDERR_TAIL: usize = 8192;

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

/// A running QEMU. Dropping it kills QEMU.
#[derive(Debug)]
pub struct Vm {
    /// Locked only briefly (`try_wait`), never across an `await`.
    /// Async: [`Vm::exited`] holds it while it waits for QEMU to end.
    child: tokio::sync::Mutex<Child>,
    /// For logs: `Child::id` is gone once the child is reaped.
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
            child: tokio::sync::Mutex::new(child),
            pid,
            qmp_socket: config.qmp_socket.clone(),
            serial_log: config.serial_log.clone(),
            stderr,
        })
    }

    /// QEMU's process id while it runs (the benchmark reads its CPU time).
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
            // Held by `exited` means still running.
            let exited = match self.child.try_lock() {
                Ok(mut child) => child.try_wait().map_err(VmError::Wait)?,
                Err(_) => None,
            };
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
    /// failed), with QEMU's stderr on failure. Woken by the child's exit
    /// (SIGCHLD), not by polling; cancel-safe.
    pub async fn exited(&self) -> Result<ExitStatus, VmError> {
        let status = self
            .child
            .lock()
            .await
            .wait()
            .await
            .map_err(VmError::Wait)?;
        if !status.success() {
            warn!(%status, stderr = %self.final_stderr().await, "QEMU failed");
        }
        Ok(status)
    }

    /// Kills QEMU (SIGKILL) if it is still running and reaps it.
    pub async fn kill(&mut self) -> Result<ExitStatus, VmError> {
        let child = self.child.get_mut();
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
        let running = self.child.get_mut().try_wait().ok().flatten().is_none();
        if running {
            debug!(pid = self.pid, "killing QEMU on drop");
        }
        let _ = std::fs::remove_file(&self.qmp_socket);
    }
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
