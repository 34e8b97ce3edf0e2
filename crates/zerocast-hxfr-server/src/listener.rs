//! Where the server listens: TCP (helix's scanout port) and Unix sockets
//! (vhost-device-vsock's host side, local tools).

use std::collections::HashMap;
use std::fmt;
use std::fs::Permissions;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use zerocast_pipeline::Registry;

use crate::budget::EncoderMemory;
use crate::connection::{self, EncodeBudget};
use crate::peer::ListenerRole;

/// A listen address: `tcp:HOST:PORT` (or bare `HOST:PORT`) or `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path, e.g. unix:/run/zerocast.sock".into());
            }
            return Ok(Endpoint::Unix(path.into()));
        }
        let addr = s.strip_prefix("tcp:").unwrap_or(s);
        addr.parse()
            .map(Endpoint::Tcp)
            .map_err(|e| format!("{s:?} is not tcp:HOST:PORT or unix:PATH ({e})"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What peers may take: each listener's share, and the encoders' memory
/// shared by all.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Peers served at once on one listener; more wait in the kernel's
    /// backlog. Each listener has its own, so a flood on one endpoint cannot
    /// lock out another (a VM's guest agent on its vsock socket, say).
    pub connections: usize,
    /// Peers served at once from one IP address (TCP only).
    pub per_address: usize,
    /// Memory all request/response encoder sessions may hold together,
    /// counted by picture size (see [`crate::budget`]).
    pub encoder_memory: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            connections: 64,
            per_address: 16,
            // About 28 sessions at 720p, 12 at 1080p.
            encoder_memory: 512 << 20,
        }
    }
}

/// Accepts HXFR peers and serves each on its own task.
pub struct Server {
    registry: Arc<Registry>,
    limits: ServerLimits,
    budget: EncodeBudget,
}

impl Server {
    pub fn new(registry: Arc<Registry>, limits: ServerLimits) -> Self {
        // Encodes at once: no more than there are cores to run them.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Server {
            registry,
            limits,
            budget: EncodeBudget {
                at_once: Arc::new(Semaphore::new(cores)),
                memory: EncoderMemory::new(limits.encoder_memory),
            },
        }
    }

    /// Binds `endpoint` and serves it in the background, its peers in `role`.
    /// Returns the address actually bound (port 0 becomes the real port).
    pub async fn listen(
        &self,
        endpoint: &Endpoint,
        role: ListenerRole,
    ) -> std::io::Result<(Endpoint, JoinHandle<()>)> {
        let (listener, bound) = match endpoint {
            Endpoint::Tcp(addr) => {
                let l = TcpListener::bind(addr).await?;
                let bound = Endpoint::Tcp(l.local_addr()?);
                (Bound::Tcp(l), bound)
            }
            Endpoint::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path)?;
                // Connecting needs write permission on the socket file: only
                // our own user may subscribe, or send input through it.
                std::fs::set_permissions(path, Permissions::from_mode(0o600))?;
                let name = format!("unix:{}", path.display());
                (Bound::Unix(listener, name), endpoint.clone())
            }
        };
        let slots = Arc::new(Semaphore::new(self.limits.connections.max(1)));
        let addresses = Arc::new(PerAddress::new(self.limits.per_address));
        let shared = Shared {
            registry: self.registry.clone(),
            budget: self.budget.clone(),
            role,
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let accepted = match &listener {
                    Bound::Tcp(l) => l.accept().await.map(|(s, peer)| {
                        let Some(address) = addresses.clone().admit(peer.ip()) else {
                            tracing::debug!(%peer, "too many connections from this address");
                            return;
                        };
                        let _ = s.set_nodelay(true);
                        spawn_peer(s, &shared, peer.to_string(), (permit, Some(address)));
                    }),
                    Bound::Unix(l, name) => l
                        .accept()
                        .await
                        .map(|(s, _)| spawn_peer(s, &shared, name.clone(), (permit, None))),
                };
                if let Err(e) = accepted {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors, most likely: let some go first.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        });
        Ok((bound, task))
    }
}

/// What every peer of one listener shares.
struct Shared {
    registry: Arc<Registry>,
    budget: EncodeBudget,
    role: ListenerRole,
}

/// Connections per IP address on one listener.
struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; lets its place go when dropped.
struct AddressSlot(Arc<PerAddress>, IpAddr);

impl PerAddress {
    fn new(max: usize) -> Self {
        PerAddress {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn admit(self: Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        drop(open);
        Some(AddressSlot(self, ip))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.0.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Removes a socket file left by a previous run, which would make bind
/// fail. Anything else at `path` is the operator's, not ours to delete.
fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket: remove it or pick another path",
                path.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A bound listener; Unix peers are named after the socket.
enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, String),
}

/// Serves one accepted peer on its own task, holding its connection slots.
fn spawn_peer<S>(
    stream: S,
    shared: &Shared,
    peer: String,
    slots: (OwnedSemaphorePermit, Option<AddressSlot>),
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (registry, budget, role) = (shared.registry.clone(), shared.budget.clone(), shared.role);
    tokio::spawn(async move {
        connection::serve(stream, registry, budget, role, peer).await;
        drop(slots);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_share_and_gives_it_back() {
        let per = Arc::new(PerAddress::new(2));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        let first = per.clone().admit(a).unwrap();
        let _second = per.clone().admit(a).unwrap();
        assert!(per.clone().admit(a).is_none(), "a third from one address");
        assert!(
            per.clone().admit(b).is_some(),
            "another address is not held back"
        );
        drop(first);
        assert!(
            per.clone().admit(a).is_some(),
            "a place freed is a place again"
        );
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            "127.0.0.1:15937".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("127.0.0.1:15937".parse().unwrap())
        );
        assert_eq!(
            "tcp:[::1]:0".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("[::1]:0".parse().unwrap())
        );
        assert_eq!(
            "unix:/tmp/x.sock".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/tmp/x.sock".into())
        );
        assert!("unix:".parse::<Endpoint>().is_err());
        assert!("localhost".parse::<Endpoint>().is_err());
    }

    #[test]
    fn only_a_stale_socket_is_removed() {
        let dir = std::env::temp_dir().join(format!("zerocast-listener-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("stale.sock");
        let _ = std::fs::remove_file(&socket);
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        remove_stale_socket(&socket).unwrap();
        assert!(!socket.exists());
        remove_stale_socket(&socket).unwrap();

        let file = dir.join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        let e = remove_stale_socket(&file).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
