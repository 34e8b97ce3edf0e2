//! Connecting to the host's HXFR server: AF_VSOCK to the host (CID 2), the
//! real transport, or TCP. Plain blocking sockets: the connection is split
//! into a reading half (for a reader thread) and a writing half.
//!
//! std has no vsock type. A connected vsock socket is kept as a `File`:
//! its `read` and `write` are read(2) and write(2), which is all a stream
//! socket needs, and `try_clone` is dup(2).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

/// A write that blocks longer than this means the host stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between connection attempts while the server is not up yet.
const RETRY: Duration = Duration::from_millis(200);

/// Where the host's HXFR server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Vsock { cid: u32, port: u32 },
    Tcp(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Target::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

pub type Reader = Box<dyn Read + Send>;
pub type Writer = Box<dyn Write + Send>;

/// Connects, trying again until `deadline` while the server is not there.
pub fn connect(target: &Target, deadline: Instant) -> Result<(Reader, Writer)> {
    loop {
        let attempt = match target {
            Target::Vsock { cid, port } => connect_vsock(*cid, *port).and_then(split_file),
            Target::Tcp(addr) => connect_tcp(addr, deadline),
        };
        match attempt {
            Ok(halves) => return Ok(halves),
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow!(e)).with_context(|| format!("connecting to {target}"))
            }
            Err(_) => thread::sleep(RETRY),
        }
    }
}

fn connect_tcp(addr: &str, deadline: Instant) -> io::Result<(Reader, Writer)> {
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{addr} resolves to nothing"),
    );
    for sock_addr in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sock_addr, wait) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok((Box::new(stream.try_clone()?), Box::new(stream)));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn split_file(file: File) -> io::Result<(Reader, Writer)> {
    Ok((Box::new(file.try_clone()?), Box::new(file)))
}

/// A connected AF_VSOCK stream socket. The kernel bounds the connect
/// itself (2 s by default).
fn connect_vsock(cid: u32, port: u32) -> io::Result<File> {
    // SAFETY: socket(2) with constant arguments; it returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero `sockaddr_vm` is a valid value of this plain C struct.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::sa_family_t::try_from(libc::AF_VSOCK).expect("AF_VSOCK is 40");
    addr.svm_cid = cid;
    addr.svm_port = port;
    // SAFETY: `addr` is a live sockaddr_vm and the length passed is its size.
    let rc = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            socklen::<libc::sockaddr_vm>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let timeout = libc::timeval {
        tv_sec: libc::time_t::try_from(WRITE_TIMEOUT.as_secs()).expect("a few seconds"),
        tv_usec: 0,
    };
    // SAFETY: SO_SNDTIMEO takes a `timeval`; the pointer and length are those
    // of a live one.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&timeout as *const libc::timeval).cast(),
            socklen::<libc::timeval>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(File::from(sock))
}

/// The size of `T`, a socket address or option struct of a few bytes, as
/// the kernel takes it.
fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).expect("socket structs are small")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn tcp_halves_talk_to_the_peer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut rd, mut wr) = connect(&Target::Tcp(addr), deadline).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        wr.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        peer.write_all(b"pong").unwrap();
        rd.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
    }

    #[test]
    fn gives_up_at_the_deadline() {
        // A port nobody listens on: bind one, then free it.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(300);
        let err = connect(&Target::Tcp(addr), deadline).err().unwrap();
        assert!(
            err.to_string().contains("connecting to tcp:127.0.0.1"),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
