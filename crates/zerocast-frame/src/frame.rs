//! A borrowed picture whose geometry has been checked against its bytes.

use crate::PixelFormat;

/// Why a frame's geometry does not fit its bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {width}x{height} is empty or too large (max {max}x{max})")]
    BadSize { width: u32, height: u32, max: u32 },
    #[error("stride {stride} is smaller than a row of {row_bytes} bytes")]
    StrideTooSmall { stride: u32, row_bytes: u64 },
    #[error("frame needs {needed} bytes but only {available} are there")]
    TooShort { needed: u64, available: usize },
}

/// The largest width or height the host accepts (H.264 level 6.2 tops out at 8192x4320).
pub const MAX_DIMENSION: u32 = 8192;

/// One packed-RGB picture, borrowed from wherever it lives (a synthetic
/// renderer's buffer or guest memory). Construction checks that every row the
/// geometry names lies inside `data`, so readers can index without overflow.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    width: u32,
    height: u32,
    stride: u32,
    format: PixelFormat,
    data: &'a [u8],
}

/// Bytes a frame of this geometry spans: `stride * (height - 1) + width * bpp`.
pub fn required_len(
    width: u32,
    height: u32,
    stride: u32,
    format: PixelFormat,
) -> Result<u64, FrameError> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(FrameError::BadSize {
            width,
            height,
            max: MAX_DIMENSION,
        });
    }
    let row_bytes = u64::from(width) * u64::from(format.bytes_per_pixel());
    if u64::from(stride) < row_bytes {
        return Err(FrameError::StrideTooSmall { stride, row_bytes });
    }
    Ok(u64::from(stride) * u64::from(height - 1) + row_bytes)
}

impl<'a> Frame<'a> {
    /// Checks the geometry against `data`.
    pub fn new(
        width: u32,
        height: u32,
        stride: u32,
        format: PixelFormat,
        data: &'a [u8],
    ) -> Result<Self, FrameError> {
        let needed = required_len(width, height, stride, format)?;
        if needed > data.len() as u64 {
            return Err(FrameError::TooShort {
                needed,
                available: data.len(),
            });
        }
        Ok(Frame {
            width,
            height,
            stride,
            format,
            data,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn stride(&self) -> u32 {
        self.stride
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The pixel bytes, at least `stride * (height - 1) + width * bpp` long.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The band of `height` rows from row `y`, as a picture of its own (no
    /// copy); `None` when the band is empty or leaves the picture.
    pub fn rows(&self, y: u32, height: u32) -> Option<Frame<'a>> {
        if height == 0 || y.checked_add(height)? > self.height {
            return None;
        }
        let start = usize::try_from(u64::from(y) * u64::from(self.stride)).ok()?;
        Frame::new(
            self.width,
            height,
            self.stride,
            self.format,
            self.data.get(start..)?,
        )
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_exact_fit_with_short_last_row() {
        let data = vec![0u8; 64 * 3 + 16 * 4];
        let f = Frame::new(16, 4, 64, PixelFormat::Xrgb8888, &data).unwrap();
        assert_eq!((f.width(), f.height(), f.stride()), (16, 4, 64));
    }

    #[test]
    fn rejects_bad_geometry() {
        let data = vec![0u8; 1024];
        assert!(matches!(
            Frame::new(0, 4, 64, PixelFormat::Xrgb8888, &data),
            Err(FrameError::BadSize { .. })
        ));
        assert!(matches!(
            Frame::new(16, 4, 63, PixelFormat::Xrgb8888, &data),
            Err(FrameError::StrideTooSmall { .. })
        ));
        assert!(matches!(
            Frame::new(16, 17, 64, PixelFormat::Xrgb8888, &data),
            Err(FrameError::TooShort { .. })
        ));
    }

    #[test]
    fn a_band_of_rows_is_the_same_pixels_without_a_copy() {
        let data: Vec<u8> = (0..=255).cycle().take(64 * 4).collect();
        let f = Frame::new(16, 4, 64, PixelFormat::Xrgb8888, &data).unwrap();
        let band = f.rows(1, 2).unwrap();
        assert_eq!((band.width(), band.height(), band.stride()), (16, 2, 64));
        assert_eq!(band.data().as_ptr(), data[64..].as_ptr());
        assert!(f.rows(3, 1).is_some());
        assert!(f.rows(3, 2).is_none(), "past the last row");
        assert!(f.rows(0, 0).is_none(), "empty");
        assert!(f.rows(u32::MAX, 2).is_none(), "overflow");
    }

    proptest! {
        #[test]
        fn never_overflows(w in any::<u32>(), h in any::<u32>(), s in any::<u32>(), len in 0usize..4096) {
            let data = vec![0u8; len];
            if let Ok(f) = Frame::new(w, h, s, PixelFormat::Argb8888, &data) {
                let last = u64::from(f.stride()) * u64::from(f.height() - 1) + u64::from(f.width()) * 4;
                prop_assert!(last <= len as u64);
            }
        }
    }
}
