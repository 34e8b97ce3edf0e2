//! A hardware cursor on the flipper's CRTC: a 64x64 ARGB dumb buffer with a
//! pattern a host test recognises, set with the legacy cursor ioctl
//! (`DRM_IOCTL_MODE_CURSOR2`, as Xorg's modesetting driver does), which
//! virtio-gpu turns into UPDATE_CURSOR and MOVE_CURSOR on its cursor queue.
//!
//! The pattern: the top-left 32x32 is opaque, in 16x16 quadrants red,
//! green (right), blue (below), white (diagonal); the rest is transparent.
//! The hotspot is at (5, 9).

use anyhow::{Context, Result};
use drm::buffer::{Buffer as _, DrmFourcc};
use drm::control::dumbbuffer::DumbBuffer;
use drm::control::{crtc, Device as ControlDevice};

use crate::kms::Card;

/// virtio-gpu's cursor size.
pub const SIDE: u32 = 64;
/// The pixel that points.
pub const HOTSPOT: (i32, i32) = (5, 9);

/// The pattern's pixel at (x, y): B, G, R, A in memory (ARGB8888).
pub fn pixel(x: u32, y: u32) -> [u8; 4] {
    if x >= 32 || y >= 32 {
        return [0; 4];
    }
    match (x / 16, y / 16) {
        (0, 0) => [0, 0, 0xFF, 0xFF],
        (1, 0) => [0, 0xFF, 0, 0xFF],
        (0, _) => [0xFF, 0, 0, 0xFF],
        _ => [0xFF, 0xFF, 0xFF, 0xFF],
    }
}

/// The cursor shown on one CRTC; its buffer lives as long as it does.
pub struct Cursor<'a> {
    card: &'a Card,
    crtc: crtc::Handle,
    _buffer: DumbBuffer,
}

impl<'a> Cursor<'a> {
    /// Draws the pattern into a new dumb buffer and shows it on `crtc`.
    // The legacy cursor ioctls are deprecated in favour of cursor planes,
    // but they are what X servers still use, and reach virtio-gpu's cursor
    // queue the same way without an atomic commit per move.
    #[allow(deprecated)]
    pub fn show(card: &'a Card, crtc: crtc::Handle) -> Result<Self> {
        let mut buffer = card
            .create_dumb_buffer((SIDE, SIDE), DrmFourcc::Argb8888, 32)
            .context("DRM CREATE_DUMB (cursor)")?;
        {
            let pitch = buffer.pitch() as usize;
            let mut map = card
                .map_dumb_buffer(&mut buffer)
                .context("DRM MAP_DUMB (cursor)")?;
            for (y, row) in (0..SIDE).zip(map.chunks_mut(pitch)) {
                for (x, px) in (0..SIDE).zip(row.chunks_exact_mut(4)) {
                    px.copy_from_slice(&pixel(x, y));
                }
            }
        }
        card.set_cursor2(crtc, Some(&buffer), HOTSPOT)
            .context("DRM CURSOR2")?;
        Ok(Cursor {
            card,
            crtc,
            _buffer: buffer,
        })
    }

    /// Puts the hotspot at (x, y).
    #[allow(deprecated)] // see `show`
    pub fn move_to(&self, x: i32, y: i32) -> Result<()> {
        self.card
            .move_cursor(self.crtc, (x - HOTSPOT.0, y - HOTSPOT.1))
            .context("DRM CURSOR move")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_has_four_opaque_quadrants_and_a_transparent_rest() {
        assert_eq!(pixel(0, 0), [0, 0, 0xFF, 0xFF]);
        assert_eq!(pixel(20, 0), [0, 0xFF, 0, 0xFF]);
        assert_eq!(pixel(0, 20), [0xFF, 0, 0, 0xFF]);
        assert_eq!(pixel(31, 31), [0xFF; 4]);
        assert_eq!(pixel(32, 0)[3], 0);
        assert_eq!(pixel(63, 63)[3], 0);
    }
}
