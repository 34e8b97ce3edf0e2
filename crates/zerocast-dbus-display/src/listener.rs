//! The objects QEMU calls at `/org/qemu/Display1/Listener` (ui/dbus-listener.c).
//! Every call is checked before its pixels are touched; a bad one is
//! answered with `InvalidArgs` and logged, and the picture stays as it was.

use std::os::fd::AsFd;
use std::sync::Arc;

use zbus::fdo;
use zbus::zvariant::Fd;

use crate::pixman;
use crate::source::{Geometry, Shared};

/// The shared-memory variant we ask QEMU for (through `Interfaces`).
const UNIX_MAP: &str = "org.qemu.Display1.Listener.Unix.Map";

fn refuse(call: &str, e: String) -> fdo::Error {
    tracing::warn!("QEMU's {call} refused: {e}");
    fdo::Error::InvalidArgs(e)
}

fn geometry(width: u32, height: u32, stride: u32, code: u32) -> Result<Geometry, String> {
    let format =
        pixman::format(code).ok_or_else(|| format!("pixman format {code:#x} is not read"))?;
    Ok(Geometry {
        width,
        height,
        stride,
        format,
    })
}

/// `org.qemu.Display1.Listener`.
pub struct Listener {
    shared: Arc<Shared>,
}

impl Listener {
    pub fn new(shared: Arc<Shared>) -> Listener {
        Listener { shared }
    }
}

#[zbus::interface(name = "org.qemu.Display1.Listener")]
impl Listener {
    async fn scanout(
        &self,
        width: u32,
        height: u32,
        stride: u32,
        pixman_format: u32,
        data: Vec<u8>,
    ) -> fdo::Result<()> {
        let g = geometry(width, height, stride, pixman_format).map_err(|e| refuse("Scanout", e))?;
        self.shared
            .scanout(g, data)
            .map_err(|e| refuse("Scanout", e))
    }

    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        x: i32,
        y: i32,
        width: i32,
        height: i32,
        stride: u32,
        pixman_format: u32,
        data: Vec<u8>,
    ) -> fdo::Result<()> {
        let format = pixman::format(pixman_format).ok_or_else(|| {
            refuse(
                "Update",
                format!("pixman format {pixman_format:#x} is not read"),
            )
        })?;
        self.shared
            .update((x, y, width, height), stride, format, &data)
            .map_err(|e| refuse("Update", e))
    }

    /// The guest turned the display off: the last picture stays up.
    async fn disable(&self) {
        tracing::info!("QEMU disabled the console's display");
    }

    /// The guest's pointer: drawn by the page, not here (yet).
    async fn mouse_set(&self, _x: i32, _y: i32, _on: i32) {}

    /// The guest's pointer image: not forwarded yet.
    async fn cursor_define(
        &self,
        _width: i32,
        _height: i32,
        _hot_x: i32,
        _hot_y: i32,
        _data: Vec<u8>,
    ) {
    }

    #[zbus(property)]
    fn interfaces(&self) -> Vec<String> {
        vec![UNIX_MAP.to_string()]
    }
}

/// `org.qemu.Display1.Listener.Unix.Map`: QEMU's surface shared as a memfd.
pub struct MapListener {
    shared: Arc<Shared>,
}

impl MapListener {
    pub fn new(shared: Arc<Shared>) -> MapListener {
        MapListener { shared }
    }
}

#[zbus::interface(name = "org.qemu.Display1.Listener.Unix.Map")]
impl MapListener {
    async fn scanout_map(
        &self,
        handle: Fd<'_>,
        offset: u32,
        width: u32,
        height: u32,
        stride: u32,
        pixman_format: u32,
    ) -> fdo::Result<()> {
        let g =
            geometry(width, height, stride, pixman_format).map_err(|e| refuse("ScanoutMap", e))?;
        let fd = handle
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| refuse("ScanoutMap", e.to_string()))?;
        self.shared
            .scanout_map(g, &fd, offset)
            .map_err(|e| refuse("ScanoutMap", e))
    }

    async fn update_map(&self, x: i32, y: i32, width: i32, height: i32) -> fdo::Result<()> {
        self.shared
            .update_map((x, y, width, height))
            .map_err(|e| refuse("UpdateMap", e))
    }
}
