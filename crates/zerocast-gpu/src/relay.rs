//! A session on a vhost-user socket that is already connected (libvirt
//! starts a backend with `--fd=N`, one end of a socket pair whose other end
//! QEMU holds). `vhost-user-backend` 0.24 starts a session only from a
//! listener, so the device listens in a private folder, we connect to it,
//! and two threads pass each message across whole, with the descriptors
//! attached to it. Only the control channel goes through here: guest RAM,
//! the vrings' eventfds and QEMU's display socket arrive as descriptors and
//! are used directly from then on, so frames never touch the relay.

use std::ffi::{CString, OsString};
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};

use tracing::{debug, warn};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// A vhost-user header: request, flags and payload size, each a
/// little-endian u32.
const HEADER_LEN: usize = 12;
/// vhost's `MAX_MSG_SIZE`: no message of the protocol has a larger
/// payload, so a larger size means the stream is not vhost-user.
const MAX_PAYLOAD: usize = 0x1000;
/// vhost's `MAX_ATTACHED_FD_ENTRIES`: the most descriptors one message carries.
const MAX_FDS: usize = 32;

/// The two threads passing messages between QEMU's socket and the device's.
pub(crate) struct Relay {
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Passes messages between `frontend` (QEMU's connection) and `device`
    /// (ours to the device's listener) until either side closes; then both
    /// are shut down, so the other side sees the end too.
    pub fn start(frontend: UnixStream, device: UnixStream) -> io::Result<Relay> {
        let to_device = spawn(
            "zerocast-gpu-relay-in",
            frontend.try_clone()?,
            device.try_clone()?,
        )?;
        let to_frontend = spawn("zerocast-gpu-relay-out", device, frontend)?;
        Ok(Relay {
            threads: vec![to_device, to_frontend],
        })
    }

    /// Waits for both threads (they end once either socket is shut down).
    pub fn join(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                warn!("a vhost-user relay thread panicked");
            }
        }
    }
}

fn spawn(name: &str, from: UnixStream, to: UnixStream) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name.into()).spawn(move || {
        match pass_messages(&from, &to) {
            Ok(()) => debug!("vhost-user relay: peer closed"),
            Err(e) => debug!(%e, "vhost-user relay stopped"),
        }
        // Shutting down a socket both threads use ends the other's wait too.
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    })
}

/// Copies whole messages from `from` to `to`, each sent with one `sendmsg`
/// carrying its descriptors, until `from` closes between messages.
fn pass_messages(from: &UnixStream, to: &UnixStream) -> io::Result<()> {
    let mut buf = [0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut fds = Vec::new();
    loop {
        if !recv_exact(from, &mut buf[..HEADER_LEN], &mut fds)? {
            return Ok(());
        }
        let size = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {size}-byte payload: not a vhost-user message"),
            ));
        }
        let end = HEADER_LEN + size;
        if !recv_exact(from, &mut buf[HEADER_LEN..end], &mut fds)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        send_all(to, &buf[..end], &raw)?;
        // Closes our copies: the receiver holds its own now.
        fds.clear();
    }
}

/// Fills `buf`, collecting any descriptors that come with the bytes.
/// `Ok(false)`: the peer closed before the first byte.
fn recv_exact(from: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        let mut iov = [libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        }];
        let mut raw = [-1; MAX_FDS];
        // SAFETY: the iovec covers `rest`, a live, exclusively borrowed byte
        // slice, where any bytes may be written.
        let received = unsafe { from.recv_with_fds(&mut iov, &mut raw) };
        let (n, nfds) = match received {
            Ok(r) => r,
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) => return Err(e.into()),
        };
        for &fd in &raw[..nfds] {
            // SAFETY: recvmsg just created `fd` in this process and nothing
            // else refers to it: it is ours to own and close.
            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(true)
}

/// Sends all of `bytes`, the descriptors with the first part.
fn send_all(to: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        let fds = if sent == 0 { fds } else { &[] };
        match to.send_with_fds(&[&bytes[sent..]], fds) {
            Ok(n) => sent += n,
            Err(e) if e.errno() == libc::EINTR => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A new folder only we may enter (mode 0700, from `mkdtemp`), removed
/// with what is in it on drop: where the device's listener is reachable by
/// our own connection alone.
pub(crate) struct PrivateDir(PathBuf);

impl PrivateDir {
    pub fn new() -> io::Result<PrivateDir> {
        let template = std::env::temp_dir().join("zerocast-gpu-XXXXXX");
        let template = CString::new(template.into_os_string().into_vec())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut bytes = template.into_bytes_with_nul();
        // SAFETY: `bytes` is a NUL-terminated template ending in XXXXXX, as
        // mkdtemp requires; it rewrites those six bytes in place.
        let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if made.is_null() {
            return Err(io::Error::last_os_error());
        }
        bytes.pop();
        Ok(PrivateDir(PathBuf::from(OsString::from_vec(bytes))))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            debug!(%e, path = %self.0.display(), "cannot remove the relay's folder");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn message(request: u32, payload: &[u8]) -> Vec<u8> {
        let size = u32::try_from(payload.len()).unwrap();
        let mut m = Vec::new();
        m.extend_from_slice(&request.to_le_bytes());
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&size.to_le_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn messages_keep_their_descriptors_and_boundaries() {
        let (qemu, frontend) = UnixStream::pair().unwrap();
        let (device, backend) = UnixStream::pair().unwrap();
        let relay = Relay::start(frontend, device).unwrap();

        // Two messages back to back, the second with a descriptor: it must
        // arrive with the second, not be glued to the first.
        let (kept, passed) = UnixStream::pair().unwrap();
        (&qemu).write_all(&message(1, &[])).unwrap();
        qemu.send_with_fds(&[&message(12, &[7; 8])[..]], &[passed.as_raw_fd()])
            .unwrap();
        drop(passed);

        let mut fds = Vec::new();
        let mut first = [0u8; HEADER_LEN];
        assert!(recv_exact(&backend, &mut first, &mut fds).unwrap());
        assert_eq!(first[..], message(1, &[])[..]);
        assert!(fds.is_empty(), "the first message has no descriptor");
        let mut second = [0u8; HEADER_LEN + 8];
        assert!(recv_exact(&backend, &mut second, &mut fds).unwrap());
        assert_eq!(second[..], message(12, &[7; 8])[..]);
        assert_eq!(fds.len(), 1);
        // The descriptor passed is the socket whose peer we kept.
        let mut passed = UnixStream::from(fds.pop().unwrap());
        passed.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        std::io::Read::read_exact(&mut &kept, &mut got).unwrap();
        assert_eq!(&got, b"x");

        // Replies go the other way; the device hanging up ends the relay
        // and QEMU sees the end.
        (&backend)
            .write_all(&message(1, &8u64.to_le_bytes()))
            .unwrap();
        let mut reply = [0u8; HEADER_LEN + 8];
        assert!(recv_exact(&qemu, &mut reply, &mut fds).unwrap());
        drop(backend);
        relay.join();
        assert!(!recv_exact(&qemu, &mut reply, &mut fds).unwrap());
    }

    #[test]
    fn an_oversized_message_ends_the_session() {
        let (qemu, frontend) = UnixStream::pair().unwrap();
        let (device, backend) = UnixStream::pair().unwrap();
        let relay = Relay::start(frontend, device).unwrap();
        let mut header = message(5, &[]);
        header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        (&qemu).write_all(&header).unwrap();
        relay.join();
        let mut fds = Vec::new();
        assert!(!recv_exact(&backend, &mut [0u8; 1], &mut fds).unwrap());
    }

    #[test]
    fn the_private_folder_is_ours_alone_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = PrivateDir::new().unwrap();
        let path = dir.path().to_owned();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(path.join("f"), b"").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}
