//! DRM fourcc pixel formats (values as in `drm_fourcc.h`, as helix sends them).

/// A pixel format the host can read. Packed 32-bit formats are named by DRM's
/// convention: the name lists components from the most significant bit of a
/// little-endian 32-bit word, so `Argb8888` is B, G, R, A in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// `AR24`: bytes B, G, R, A.
    Argb8888,
    /// `XR24`: bytes B, G, R, X (virtio-gpu's B8G8R8X8).
    Xrgb8888,
    /// `AB24`: bytes R, G, B, A.
    Abgr8888,
    /// `XB24`: bytes R, G, B, X (virtio-gpu's R8G8B8X8).
    Xbgr8888,
}

const fn fourcc(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}

impl PixelFormat {
    /// Every format, for tests and option parsing.
    pub const ALL: [PixelFormat; 4] = [
        PixelFormat::Argb8888,
        PixelFormat::Xrgb8888,
        PixelFormat::Abgr8888,
        PixelFormat::Xbgr8888,
    ];

    /// The DRM fourcc code.
    pub const fn fourcc(self) -> u32 {
        match self {
            PixelFormat::Argb8888 => fourcc(b"AR24"),
            PixelFormat::Xrgb8888 => fourcc(b"XR24"),
            PixelFormat::Abgr8888 => fourcc(b"AB24"),
            PixelFormat::Xbgr8888 => fourcc(b"XB24"),
        }
    }

    /// The format with this DRM fourcc code, if the host can read it.
    pub fn from_fourcc(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.fourcc() == code)
    }

    /// Bytes per pixel of the packed format.
    pub const fn bytes_per_pixel(self) -> u32 {
        4
    }

    /// True when blue is the first byte in memory (B, G, R, A/X order).
    pub const fn is_bgr_order(self) -> bool {
        matches!(self, PixelFormat::Argb8888 | PixelFormat::Xrgb8888)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_values_match_drm_and_helix() {
        // helix-frame-export.h: HELIX_FORMAT_BGRA8888 0x34325241 ('AR24').
        assert_eq!(PixelFormat::Argb8888.fourcc(), 0x3432_5241);
        assert_eq!(PixelFormat::Abgr8888.fourcc(), 0x3432_4241);
        assert_eq!(PixelFormat::Xrgb8888.fourcc(), 0x3432_5258);
        assert_eq!(PixelFormat::Xbgr8888.fourcc(), 0x3432_4258);
    }

    #[test]
    fn fourcc_round_trips_and_rejects_unknown() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
        }
        // NV12 is a valid DRM format but not one the host reads from a resource.
        assert_eq!(PixelFormat::from_fourcc(0x3231_564E), None);
        assert_eq!(PixelFormat::from_fourcc(0), None);
    }
}
