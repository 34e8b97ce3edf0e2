//! Where the server listens: TCP (helix's scanout port) and Unix sockets
//! (vhost-device-vsock's host side, local tools).

use std::fmt;
use std::fs::Permissions;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use zerocast_pipeline::Registry;

use crate::connection;
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

/// Accepts HXFR peers and serves each on its own task.
pub struct Server {
    registry: Arc<Registry>,
    slots: Arc<Semaphore>,
}

impl Server {
    /// At most `max_connections` peers are served at once; more wait in the
    /// kernel's backlog.
    pub fn new(registry: Arc<Registry>, max_connections: usize) -> Self {
        Server {
            registry,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
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
        let (registry, slots) = (self.registry.clone(), self.slots.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let registry = registry.clone();
                let accepted = match &listener {
                    Bound::Tcp(l) => l.accept().await.map(|(s, peer)| {
                        let _ = s.set_nodelay(true);
                        spawn_peer(s, registry, role, peer.to_string(), permit);
                    }),
                    Bound::Unix(l, name) => l
                        .accept()
                        .await
                        .map(|(s, _)| spawn_peer(s, registry, role, name.clone(), permit)),
                };
                if let Err(e) = accepted {
                    tracing::warn!("accept failed: {e}");
                }
            }
        });
        Ok((bound, task))
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

/// Serves one accepted peer on its own task, holding its connection slot.
fn spawn_peer<S>(
    stream: S,
    registry: Arc<Registry>,
    role: ListenerRole,
    peer: String,
    slot: OwnedSemaphorePermit,
)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    tokio::spawn(async move {
        connection::serve(stream, registry, role, peer).await;
        drop(slot);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
