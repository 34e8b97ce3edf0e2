//! Serving one QEMU: bind the vhost-user socket, run the session on a
//! background thread, and the handle the rest of zerocast holds
//! ([`GpuBackendHandle`]): scanout sources, the resource table, stats,
//! scanout enable/disable, shutdown. A connection that is already made
//! (libvirt's `--fd=N`) goes through the `relay` module.

use std::fs::Permissions;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use tracing::{debug, info};
use vhost::vhost_user::Listener;
use vhost_user_backend::{ShutdownHandle, VhostUserDaemon};
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use crate::backend::GpuDevice;
use crate::config::GpuConfig;
use crate::device::Shared;
use crate::error::GpuError;
use crate::relay::{PrivateDir, Relay};
use crate::source::ScanoutSource;
use crate::stats::GpuStats;
use crate::table::ResourceTable;

/// How a running session is stopped from another thread.
#[derive(Default)]
struct Stopper {
    requested: bool,
    /// The listening socket while the session thread waits for QEMU.
    /// Cleared (under the lock) before the socket is closed.
    listener: Option<RawFd>,
    /// Set once QEMU has connected.
    session: Option<ShutdownHandle>,
}

impl Stopper {
    /// Asks the session to end, whatever stage it is at.
    fn stop(&mut self) {
        self.requested = true;
        if let Some(session) = &self.session {
            session.shutdown();
        } else if let Some(fd) = self.listener {
            // SAFETY: `fd` is the listening socket, still open: `serve` clears
            // `listener` under the same lock before closing it. shutdown()
            // only makes the pending accept() fail; no memory is involved.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
    }
}

/// A virtio-gpu device serving one QEMU connection on a background thread.
/// Dropping the handle stops the device and removes the socket.
pub struct GpuBackendHandle {
    shared: Arc<Shared>,
    socket_path: PathBuf,
    stopper: Arc<Mutex<Stopper>>,
    thread: Option<JoinHandle<Result<(), GpuError>>>,
    /// Set when serving a connection made elsewhere ([`from_stream`]).
    ///
    /// [`from_stream`]: GpuBackendHandle::from_stream
    relay: Option<Relay>,
}

impl std::fmt::Debug for GpuBackendHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackendHandle")
            .field("socket_path", &self.socket_path)
            .finish_non_exhaustive()
    }
}

impl GpuBackendHandle {
    /// Listens on `socket_path` (replacing a stale socket file) and serves
    /// the first QEMU that connects, until it disconnects or [`shutdown`]
    /// is called. Returns once the socket is bound, so QEMU can be started
    /// right after.
    ///
    /// QEMU needs shared guest memory (`-object memory-backend-memfd,
    /// share=on,... -machine memory-backend=...`) and as many outputs as
    /// `config` has scanouts (`-device vhost-user-gpu-pci,max_outputs=N`).
    ///
    /// [`shutdown`]: GpuBackendHandle::shutdown
    pub fn start(socket_path: impl AsRef<Path>, config: GpuConfig) -> Result<Self, GpuError> {
        config.validate()?;
        let scanout_count = config.scanout_count()?;
        let socket_path = socket_path.as_ref().to_path_buf();
        let listener = Listener::new(&socket_path, true).map_err(|source| GpuError::Listen {
            path: socket_path.clone(),
            source,
        })?;
        // The first peer to connect is served as the VM: only our own user
        // (QEMU runs as us) may.
        std::fs::set_permissions(&socket_path, Permissions::from_mode(0o600)).map_err(|e| {
            GpuError::Listen {
                path: socket_path.clone(),
                source: vhost::vhost_user::Error::SocketError(e),
            }
        })?;
        let shared = Arc::new(Shared::new(&config));
        let device =
            Arc::new(GpuDevice::new(shared.clone(), scanout_count).map_err(GpuError::ExitEvent)?);
        // This starts the vring worker thread; `stop_workers` ends it.
        let daemon = VhostUserDaemon::new(
            "zerocast-gpu".to_string(),
            device.clone(),
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        )
        .map_err(|e| GpuError::Daemon(e.into()))?;
        info!(path = %socket_path.display(), scanouts = ?config.scanouts, "vhost-user-gpu listening");
        let stopper = Arc::new(Mutex::new(Stopper {
            listener: Some(listener.as_raw_fd()),
            ..Stopper::default()
        }));
        let thread = {
            let (shared, stopper, workers) = (shared.clone(), stopper.clone(), device.clone());
            thread::Builder::new()
                .name("zerocast-gpu".to_string())
                .spawn(move || {
                    let result = serve(daemon, listener, &stopper);
                    workers.stop_workers();
                    shared.close();
                    result
                })
                .map_err(|e| {
                    device.stop_workers();
                    GpuError::Thread(e)
                })?
        };
        Ok(GpuBackendHandle {
            shared,
            socket_path,
            stopper,
            thread: Some(thread),
            relay: None,
        })
    }

    /// Serves a vhost-user connection that is already made: libvirt starts
    /// a backend with `--fd=N`, one end of a socket pair whose other end
    /// QEMU holds. Same device as [`start`]; its messages pass through a
    /// relay (see the `relay` module) because `vhost-user-backend` takes
    /// sessions from a listener only.
    ///
    /// [`start`]: GpuBackendHandle::start
    pub fn from_stream(stream: UnixStream, config: GpuConfig) -> Result<Self, GpuError> {
        let dir = PrivateDir::new().map_err(GpuError::Relay)?;
        let mut handle = Self::start(dir.path().join("gpu.sock"), config)?;
        let device = UnixStream::connect(handle.socket_path()).map_err(GpuError::Relay)?;
        handle.relay = Some(Relay::start(stream, device).map_err(GpuError::Relay)?);
        Ok(handle)
    }

    /// The vhost-user socket QEMU connects to (removed once it has; with
    /// [`from_stream`], the relay's, gone at once).
    ///
    /// [`from_stream`]: GpuBackendHandle::from_stream
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// A frame source for scanout `index`. Any number may exist; each
    /// reports the scanout's latest flush once.
    pub fn scanout(&self, index: u32) -> Result<ScanoutSource, GpuError> {
        self.check_scanout(index)?;
        Ok(ScanoutSource::new(self.shared.clone(), index))
    }

    /// The resource table, for lookups by resource id.
    pub fn resources(&self) -> ResourceTable {
        ResourceTable::new(self.shared.clone())
    }

    /// The device's counters.
    pub fn stats(&self) -> GpuStats {
        self.shared.stats.snapshot()
    }

    /// When scanout 0's stamped pictures were flushed, once turned on.
    pub fn flush_stamps(&self) -> &crate::FlushStamps {
        &self.shared.flush_stamps
    }

    /// Offers scanout `index` to the guest as connected or not. The guest
    /// reads this at its next `GET_DISPLAY_INFO` (driver start): QEMU's
    /// vhost-user-gpu does not pass a backend's config-change event on, so
    /// a running guest is not told. A disabled scanout's sources show a
    /// "no signal" picture until it is enabled again.
    pub fn set_scanout_enabled(&self, index: u32, enabled: bool) -> Result<(), GpuError> {
        self.check_scanout(index)?;
        self.shared.lock().scanouts[index as usize].set_enabled(enabled);
        self.shared.notify();
        Ok(())
    }

    /// True once the session is over (QEMU gone or shut down).
    pub fn is_finished(&self) -> bool {
        self.shared.lock().closed
    }

    /// Stops serving and waits for the session thread; reports how the
    /// session ended.
    pub fn shutdown(mut self) -> Result<(), GpuError> {
        self.stop()
    }

    fn check_scanout(&self, index: u32) -> Result<(), GpuError> {
        let count = self.shared.lock().scanouts.len();
        if (index as usize) < count {
            Ok(())
        } else {
            Err(GpuError::NoSuchScanout { index, count })
        }
    }

    fn stop(&mut self) -> Result<(), GpuError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stopper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop();
        let result = thread.join().map_err(|_| GpuError::Panicked);
        // The session's end shut the relay's socket down: its threads are ending.
        if let Some(relay) = self.relay.take() {
            relay.join();
        }
        result?
    }
}

impl Drop for GpuBackendHandle {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            debug!(%e, "GPU backend ended with an error");
        }
    }
}

/// Accepts one connection and runs it to the end.
fn serve(
    mut daemon: VhostUserDaemon<Arc<GpuDevice>>,
    mut listener: Listener,
    stopper: &Mutex<Stopper>,
) -> Result<(), GpuError> {
    let accepted = daemon.start(&mut listener);
    let requested = {
        let mut stopper = stopper.lock().unwrap_or_else(PoisonError::into_inner);
        stopper.listener = None;
        stopper.session = daemon.shutdown_handle();
        if stopper.requested {
            daemon.request_shutdown();
        }
        stopper.requested
    };
    // One connection only: the socket file goes away now.
    drop(listener);
    match accepted {
        Ok(()) => {}
        Err(_) if requested => return Ok(()),
        Err(e) => return Err(GpuError::Accept(e.into())),
    }
    info!("QEMU connected to the GPU backend");
    let result = daemon.wait();
    info!("GPU backend session ended");
    match result {
        Ok(()) => Ok(()),
        // QEMU quitting mid-message is how sessions usually end.
        Err(vhost_user_backend::Error::HandleRequest(
            vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
        )) => Ok(()),
        Err(e) => Err(GpuError::Session(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};
    use zerocast_frame::{Doorbell, FrameSource, SourceEvent};

    fn socket(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("zerocast-gpu-{}-{name}.sock", std::process::id()))
    }

    #[test]
    fn shuts_down_before_qemu_connects_and_removes_the_socket() {
        let path = socket("idle");
        let gpu = GpuBackendHandle::start(&path, GpuConfig::default()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only our user may connect");
        assert!(matches!(
            gpu.scanout(1),
            Err(GpuError::NoSuchScanout { .. })
        ));
        assert!(matches!(
            gpu.set_scanout_enabled(4, false),
            Err(GpuError::NoSuchScanout { .. })
        ));
        gpu.shutdown().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn shuts_down_even_without_its_socket_file() {
        let path = socket("unlinked");
        let gpu = GpuBackendHandle::start(&path, GpuConfig::default()).unwrap();
        assert_eq!(gpu.socket_path(), path);
        std::fs::remove_file(&path).unwrap();
        gpu.shutdown().unwrap();
    }

    #[test]
    fn a_frontend_hanging_up_closes_the_sources() {
        let path = socket("hangup");
        let gpu = GpuBackendHandle::start(&path, GpuConfig::default()).unwrap();
        let mut source = gpu.scanout(0).unwrap();
        let bell = Doorbell::new();
        source.attach(bell.clone());
        drop(UnixStream::connect(&path).unwrap());
        assert!(bell.wait(Some(Instant::now() + Duration::from_secs(10))));
        assert_eq!(source.poll(Instant::now()), SourceEvent::Closed);
        assert!(gpu.is_finished());
        gpu.shutdown().unwrap();
    }

    #[test]
    fn a_connection_given_is_served_until_it_hangs_up() {
        use std::io::{Read, Write};
        let (qemu, ours) = UnixStream::pair().unwrap();
        let gpu = GpuBackendHandle::from_stream(ours, GpuConfig::default()).unwrap();
        assert!(
            !gpu.socket_path().exists(),
            "nobody else may reach the device"
        );
        let mut source = gpu.scanout(0).unwrap();
        let bell = Doorbell::new();
        source.attach(bell.clone());
        // VHOST_USER_GET_FEATURES (1), protocol version 1, no payload: the
        // device answers with its 8-byte feature bits, flagged as a reply.
        let mut qemu_side = &qemu;
        qemu_side
            .write_all(&[1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        let mut reply = [0u8; 20];
        qemu_side.read_exact(&mut reply).unwrap();
        assert_eq!(reply[..4], [1, 0, 0, 0]);
        assert_eq!(reply[4] & 0x4, 0x4, "the reply flag");
        assert_eq!(reply[8..12], [8, 0, 0, 0]);
        drop(qemu);
        assert!(bell.wait(Some(Instant::now() + Duration::from_secs(10))));
        assert_eq!(source.poll(Instant::now()), SourceEvent::Closed);
        gpu.shutdown().unwrap();
    }

    #[test]
    fn a_connection_given_is_let_go_at_shutdown() {
        use std::io::Read;
        let (qemu, ours) = UnixStream::pair().unwrap();
        let gpu = GpuBackendHandle::from_stream(ours, GpuConfig::default()).unwrap();
        gpu.shutdown().unwrap();
        let mut buf = [0u8; 1];
        assert_eq!((&qemu).read(&mut buf).unwrap(), 0, "QEMU sees the end");
    }

    #[test]
    fn refuses_bad_configurations() {
        let bad = GpuConfig {
            scanouts: vec![(1280, 800); 5],
            ..GpuConfig::default()
        };
        assert!(matches!(
            GpuBackendHandle::start(socket("bad"), bad),
            Err(GpuError::ScanoutCount { count: 5 })
        ));
    }
}
