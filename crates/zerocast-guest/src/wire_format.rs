//! DRM fourcc of a framebuffer to the format a FRAME_REQUEST names.
//!
//! helix's protocol knows two packed formats, `AR24` (B, G, R, A in memory)
//! and `AB24` (R, G, B, A); our host also accepts their `X` twins and reads
//! the fourth byte of either as padding. A framebuffer's `XR24` is sent as
//! `AR24` (and `XB24` as `AB24`) so that helix's host, which only knows the
//! `A` names, reads it too.

use anyhow::{bail, Result};
use zerocast_frame::PixelFormat;

/// The format to request for a framebuffer of DRM format `drm_fourcc`.
pub fn request_format(drm_fourcc: u32) -> Result<PixelFormat> {
    match PixelFormat::from_fourcc(drm_fourcc) {
        Some(PixelFormat::Argb8888 | PixelFormat::Xrgb8888) => Ok(PixelFormat::Argb8888),
        Some(PixelFormat::Abgr8888 | PixelFormat::Xbgr8888) => Ok(PixelFormat::Abgr8888),
        None => bail!(
            "framebuffer format {} is not one the host reads (XR24, AR24, XB24, AB24)",
            fourcc_name(drm_fourcc)
        ),
    }
}

/// A fourcc as its four characters, e.g. `XR24`; unprintable bytes as `?`.
pub fn fourcc_name(fourcc: u32) -> String {
    fourcc
        .to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(name: &[u8; 4]) -> u32 {
        u32::from_le_bytes(*name)
    }

    #[test]
    fn packed_formats_map_to_helix_names() {
        assert_eq!(
            request_format(code(b"XR24")).unwrap().fourcc(),
            code(b"AR24")
        );
        assert_eq!(
            request_format(code(b"AR24")).unwrap().fourcc(),
            code(b"AR24")
        );
        assert_eq!(
            request_format(code(b"XB24")).unwrap().fourcc(),
            code(b"AB24")
        );
        assert_eq!(
            request_format(code(b"AB24")).unwrap().fourcc(),
            code(b"AB24")
        );
        // helix-frame-export.h: HELIX_FORMAT_BGRA8888.
        assert_eq!(request_format(code(b"XR24")).unwrap().fourcc(), 0x3432_5241);
    }

    #[test]
    fn channel_order_is_kept() {
        for name in [b"XR24", b"AR24", b"XB24", b"AB24"] {
            let drm = PixelFormat::from_fourcc(code(name)).unwrap();
            assert_eq!(
                request_format(code(name)).unwrap().is_bgr_order(),
                drm.is_bgr_order()
            );
        }
    }

    #[test]
    fn other_formats_are_refused_by_name() {
        let err = request_format(code(b"RG16")).unwrap_err().to_string();
        assert!(err.contains("RG16"), "{err}");
        assert!(request_format(code(b"NV12")).is_err());
        assert_eq!(fourcc_name(0x0000_3432), "24??");
    }
}
