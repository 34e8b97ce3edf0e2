//! Real vsock for a guest on hosts without `/dev/vhost-vsock`: rust-vmm's
//! `vhost-device-vsock` as a vhost-user backend. A guest's connection to
//! CID 2 port P arrives on the host as a Unix connection to `BASE_P`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tracing::info;

/// The backend's program (crates.io: `cargo install vhost-device-vsock`).
pub const VHOST_DEVICE_VSOCK: &str = "vhost-device-vsock";
/// How long the backend has to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    #[error("cannot start {VHOST_DEVICE_VSOCK}: {0}; install it with `cargo install vhost-device-vsock` (scripts/install-deps.sh does)")]
    Spawn(std::io::Error),
    #[error("{VHOST_DEVICE_VSOCK} created no socket at {0} within 10 s")]
    NoSocket(PathBuf),
}

/// A running `vhost-device-vsock`. Dropping it stops the process and
/// removes its socket files (it leaves them behind otherwise).
pub struct VsockDevice {
    child: Child,
    socket: PathBuf,
    uds_base: PathBuf,
}

impl VsockDevice {
    /// Starts the backend with its sockets in `dir` for a guest of `guest_cid`.
    pub async fn spawn(dir: &Path, guest_cid: u32) -> Result<VsockDevice, VsockError> {
        let socket = dir.join("vsock.sock");
        let uds_base = dir.join("vsock");
        let _ = std::fs::remove_file(&socket);
        let child = crate::child::dies_with_parent(Command::new(VHOST_DEVICE_VSOCK))
            .arg("--guest-cid")
            .arg(guest_cid.to_string())
            .arg("--socket")
            .arg(&socket)
            .arg("--uds-path")
            .arg(&uds_base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(VsockError::Spawn)?;
        let device = VsockDevice {
            child,
            socket,
            uds_base,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !device.socket.exists() {
            if Instant::now() > deadline {
                return Err(VsockError::NoSocket(device.socket.clone()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        info!(socket = %device.socket.display(), "vhost-device-vsock ready");
        Ok(device)
    }

    /// The backend's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The socket QEMU's `vhost-user-vsock-pci` connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Where a guest's connections to host port `port` arrive: the host
    /// listens on this Unix socket.
    pub fn host_listener(&self, port: u32) -> PathBuf {
        let mut name = self.uds_base.clone().into_os_string();
        name.push(format!("_{port}"));
        name.into()
    }
}

impl Drop for VsockDevice {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.uds_base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_the_backend_or_says_how_to_install_it() {
        // Only meaningful where the binary is absent; where it is present the
        // spawn succeeds and the device is dropped (and stopped) at once.
        let dir = std::env::temp_dir().join(format!("zerocast-vsock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        match VsockDevice::spawn(&dir, 3).await {
            Ok(d) => assert_eq!(d.host_listener(5001), dir.join("vsock_5001")),
            Err(e) => assert!(e.to_string().contains("cargo install vhost-device-vsock")),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
