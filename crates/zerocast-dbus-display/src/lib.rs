//! A VM's display through QEMU's D-Bus display (`-display dbus`,
//! `org.qemu.Display1`), for VMs that keep QEMU's own virtio-gpu.
//!
//! - [`connect`]: joins the bus QEMU is on and registers a listener on one
//!   console; returns its pictures as a [`DbusSource`] and an [`DbusInput`]
//!   that sends keys and pointer back through the console.
//! - [`listener`]: the `org.qemu.Display1.Listener` object QEMU calls, and
//!   its shared-memory variant `Listener.Unix.Map`.
//! - [`source`]: the console's current picture as a `FrameSource`.
//! - [`input`]: evdev events to the console's `Keyboard` and `Mouse`.
//! - [`pixman`]: the pixel formats QEMU names by pixman code.
//!
//! QEMU is the D-Bus server of the listener's socket (it runs
//! `g_dbus_connection_new_sync(.., AUTHENTICATION_SERVER)` on the fd right
//! after answering `RegisterListener`), so we are its client, and our
//! objects must be served before QEMU reads the listener's `Interfaces`.

pub mod input;
pub mod listener;
pub mod pixman;
pub mod source;

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::{Fd, ObjectPath};

pub use input::DbusInput;
pub use source::DbusSource;

/// QEMU's well-known name on a bus (`-display dbus,addr=...`).
const QEMU_NAME: &str = "org.qemu";

/// Where QEMU looks for the listener's interfaces.
const LISTENER_PATH: &str = "/org/qemu/Display1/Listener";

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error(
        "QEMU did not answer on D-Bus within {0:?} (is it running with -display dbus on that bus?)"
    )]
    Timeout(Duration),
    #[error("console {0} is not a graphic console (type {1:?})")]
    NotGraphic(u32, String),
    #[error("making the listener's socket pair: {0}")]
    Socket(#[from] std::io::Error),
}

/// An attached console: its pictures and its input. The connections live
/// as long as this does.
pub struct Attached {
    pub source: DbusSource,
    pub input: DbusInput,
    /// What QEMU calls the console (the device's name, e.g. "virtio-vga").
    pub label: String,
    _bus: zbus::Connection,
    _listener: zbus::Connection,
}

/// `f`, or [`AttachError::Timeout`] after `timeout`.
async fn bounded<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, AttachError>>,
) -> Result<T, AttachError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| AttachError::Timeout(timeout))?
}

/// Connects to QEMU's D-Bus display at `address` (a D-Bus address, e.g.
/// `unix:path=/run/vm/dbus.sock`) and registers a listener on console
/// `console`; every D-Bus step is bounded by `timeout`.
pub async fn connect(
    address: &str,
    console: u32,
    timeout: Duration,
) -> Result<Attached, AttachError> {
    let bus = bounded(timeout, async {
        Ok(zbus::connection::Builder::address(address)?.build().await?)
    })
    .await?;
    let path = ObjectPath::try_from(format!("/org/qemu/Display1/Console_{console}"))
        .map_err(zbus::Error::from)?;
    let console_proxy = |iface: &'static str| {
        let path = path.clone();
        let bus = &bus;
        async move {
            Ok::<_, AttachError>(
                zbus::proxy::Builder::<zbus::Proxy<'static>>::new(bus)
                    .destination(QEMU_NAME)?
                    .path(path)?
                    .interface(iface)?
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await?,
            )
        }
    };
    let con = console_proxy("org.qemu.Display1.Console").await?;
    let kind: String = bounded(timeout, async { Ok(con.get_property("Type").await?) }).await?;
    if kind != "Graphic" {
        return Err(AttachError::NotGraphic(console, kind));
    }
    let label: String = bounded(timeout, async { Ok(con.get_property("Label").await?) }).await?;

    let shared = source::Shared::new();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let ours = tokio::net::UnixStream::from_std(ours)?;
    let listener = zbus::connection::Builder::unix_stream(ours)
        .p2p()
        .serve_at(LISTENER_PATH, listener::Listener::new(shared.clone()))?
        .serve_at(LISTENER_PATH, listener::MapListener::new(shared.clone()))?;
    // QEMU answers first, then blocks in the handshake on its end of the
    // pair: both have to run at once.
    let register = async {
        let reply: Result<(), zbus::Error> = con
            .call("RegisterListener", &(Fd::from(theirs.as_fd()),))
            .await;
        reply.map_err(AttachError::from)
    };
    let build = async { listener.build().await.map_err(AttachError::from) };
    let (registered, listener) =
        bounded(timeout, async { Ok(tokio::join!(register, build)) }).await?;
    registered?;
    let listener = listener?;
    drop(theirs);
    // QEMU closes the listener's socket when it stops (or drops us): the
    // message stream ends then, and so does the source.
    let mut messages = zbus::MessageStream::from(&listener);
    let watched = shared.clone();
    tokio::spawn(async move {
        while let Some(Ok(_)) = messages.next().await {}
        watched.close();
    });
    tracing::info!(console, %label, "listener registered on QEMU's D-Bus display");

    let input = DbusInput::start(
        console_proxy("org.qemu.Display1.Keyboard").await?,
        console_proxy("org.qemu.Display1.Mouse").await?,
        Arc::clone(&shared),
    );
    Ok(Attached {
        source: DbusSource::new(
            shared,
            format!("QEMU D-Bus display, console {console} ({label})"),
        ),
        input,
        label,
        _bus: bus,
        _listener: listener,
    })
}
