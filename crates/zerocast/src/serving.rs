//! The network edge every long-running command opens: HXFR listeners and
//! the web gateway over one registry, and the lines that tell the user (and
//! the tests) where they are.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use zerocast_hxfr_server::{Endpoint, ListenerRole, Server, ServerLimits};
use zerocast_pipeline::Registry;
use zerocast_web::{Access, Gateway, Role, Tls};

/// Where a command is reachable. The listeners stop when it is dropped
/// (a benchmark starts and stops many in one process).
pub struct Serving {
    /// The HXFR endpoints actually bound (port 0 becomes the real port), with their roles.
    pub hxfr: Vec<(Endpoint, ListenerRole)>,
    pub viewer: SocketAddr,
    access: Access,
    /// `https` when the gateway speaks TLS, else `http`.
    scheme: &'static str,
    _listeners: Listeners,
}

/// Listening tasks, stopped when dropped: what they hold (the registry,
/// its streams, their encoder threads) goes with them.
pub struct Listeners(Vec<JoinHandle<()>>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Binds the HXFR endpoints and the gateway (HTTPS only with `tls`); both
/// serve in the background.
pub async fn start(
    registry: Arc<Registry>,
    gateway: Gateway,
    hxfr: &[(Endpoint, ListenerRole)],
    limits: ServerLimits,
    listen: SocketAddr,
    tls: Option<Tls>,
) -> anyhow::Result<Serving> {
    let (bound, mut listeners) = start_hxfr(registry, hxfr, limits).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (viewer, access, web) = gateway
        .serve(listen, tls)
        .await
        .with_context(|| format!("listening on {listen} (pick another with --listen)"))?;
    listeners.0.push(web);
    Ok(Serving {
        hxfr: bound,
        viewer,
        access,
        scheme,
        _listeners: listeners,
    })
}

/// Binds the HXFR endpoints alone (a GPU backend that a daemon serves
/// opens no web gateway); returns them as bound, serving until the
/// [`Listeners`] are dropped.
pub async fn start_hxfr(
    registry: Arc<Registry>,
    hxfr: &[(Endpoint, ListenerRole)],
    limits: ServerLimits,
) -> anyhow::Result<(Vec<(Endpoint, ListenerRole)>, Listeners)> {
    let server = Server::new(registry, limits);
    let (mut bound, mut tasks) = (Vec::new(), Listeners(Vec::new()));
    for (endpoint, role) in hxfr {
        let (b, task) = server.listen(endpoint, *role).await.with_context(|| {
            format!("listening for HXFR on {endpoint} (is another zerocast running? pick another with --hxfr)")
        })?;
        bound.push((b, *role));
        tasks.0.push(task);
    }
    Ok((bound, tasks))
}

impl Serving {
    /// The viewer's URL for `role` (it carries that role's token), at `query`.
    pub fn url(&self, role: Role, query: &str) -> String {
        let token = self.access.token(role).expose();
        format!("{}://{}/?{query}token={token}", self.scheme, self.viewer)
    }

    /// The WebSocket URL of a viewer of `scanout` in `role`.
    pub fn ws_url(&self, role: Role, scanout: u32) -> String {
        let token = self.access.token(role).expose();
        let scheme = if self.scheme == "https" { "wss" } else { "ws" };
        format!(
            "{scheme}://{}/ws?scanout={scanout}&token={token}",
            self.viewer
        )
    }

    /// Prints `hxfr: ...` lines, the `extra` lines, the view-only URL, then
    /// `viewer: URL` last (the line callers wait for). Both URLs carry their
    /// token: whoever has one may watch, and with the first also type.
    pub fn announce(&self, extra: &[String]) -> anyhow::Result<()> {
        self.announce_to(&mut std::io::stdout().lock(), extra)
    }

    /// [`Serving::announce`] to `out`: a GPU backend that libvirt starts
    /// tells its stderr, which the domain's log keeps.
    pub fn announce_to(&self, out: &mut dyn Write, extra: &[String]) -> anyhow::Result<()> {
        for (bound, role) in &self.hxfr {
            let label = match role {
                ListenerRole::Subscriber => "hxfr",
                ListenerRole::Guest => "hxfr-guest",
                ListenerRole::Admin => "hxfr-admin",
            };
            writeln!(out, "{label}: {bound}")?;
        }
        for line in extra {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "view-only: {}", self.url(Role::View, ""))?;
        writeln!(out, "viewer: {}", self.url(Role::Control, ""))?;
        out.flush()?;
        Ok(())
    }
}
