//! QEMU names a surface's pixel format by its pixman code. pixman's 32-bit
//! formats are native-endian words, which on a little-endian host are DRM's
//! formats of the same name.

use zerocast_frame::PixelFormat;

/// `PIXMAN_FORMAT(bpp, type, a, r, g, b)` from pixman.h.
const fn code(bpp: u32, kind: u32, a: u32, r: u32, g: u32, b: u32) -> u32 {
    (bpp << 24) | (kind << 16) | (a << 12) | (r << 8) | (g << 4) | b
}

const TYPE_ARGB: u32 = 2;
const TYPE_ABGR: u32 = 3;

pub const X8R8G8B8: u32 = code(32, TYPE_ARGB, 0, 8, 8, 8);
pub const A8R8G8B8: u32 = code(32, TYPE_ARGB, 8, 8, 8, 8);
pub const X8B8G8R8: u32 = code(32, TYPE_ABGR, 0, 8, 8, 8);
pub const A8B8G8R8: u32 = code(32, TYPE_ABGR, 8, 8, 8, 8);

/// The format zerocast reads for pixman code `code`, if any. QEMU's
/// virtio-gpu and VGA surfaces are `x8r8g8b8`; a 16-bit VGA mode is not
/// read (its picture waits for the guest's driver).
pub fn format(code: u32) -> Option<PixelFormat> {
    if cfg!(target_endian = "big") {
        return None;
    }
    Some(match code {
        X8R8G8B8 => PixelFormat::Xrgb8888,
        A8R8G8B8 => PixelFormat::Argb8888,
        X8B8G8R8 => PixelFormat::Xbgr8888,
        A8B8G8R8 => PixelFormat::Abgr8888,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_pixman() {
        // pixman.h: PIXMAN_x8r8g8b8 = PIXMAN_FORMAT(32, PIXMAN_TYPE_ARGB, 0, 8, 8, 8).
        assert_eq!(X8R8G8B8, 0x2002_0888);
        assert_eq!(A8R8G8B8, 0x2002_8888);
        assert_eq!(format(X8R8G8B8), Some(PixelFormat::Xrgb8888));
        // r5g6b5 (a 16-bit VGA mode) is not read.
        assert_eq!(format(code(16, TYPE_ARGB, 0, 5, 6, 5)), None);
    }
}
