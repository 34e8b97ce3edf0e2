//! Packed RGB to I420, what H.264 encoders take, with the `yuv` crate's SIMD
//! paths. The one place that reads a frame's pixels, on the host and in the
//! guest agent alike; the planes are reused, so a stream of same-sized
//! frames allocates nothing.

use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

use crate::Frame;

/// Why a picture could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("a {width}x{height} picture is too small to encode")]
    TooSmall { width: u32, height: u32 },
    #[error("colour conversion failed: {0}")]
    Yuv(#[from] yuv::YuvError),
}

/// An I420 picture whose planes are reused from frame to frame.
#[derive(Debug, Default)]
pub struct I420 {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420 {
    /// Converts `frame`, cropped to even width and height (4:2:0 needs
    /// pairs). BT.601 limited range: what decoders assume when the stream
    /// carries no colour description.
    pub fn convert(&mut self, frame: &Frame<'_>) -> Result<(), ConvertError> {
        let (w, h) = (frame.width() & !1, frame.height() & !1);
        if w == 0 || h == 0 {
            return Err(ConvertError::TooSmall {
                width: frame.width(),
                height: frame.height(),
            });
        }
        self.resize(w, h);
        let mut planar = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(&mut self.y),
            y_stride: w,
            u_plane: BufferStoreMut::Borrowed(&mut self.u),
            u_stride: w / 2,
            v_plane: BufferStoreMut::Borrowed(&mut self.v),
            v_stride: w / 2,
            width: w,
            height: h,
        };
        let convert = if frame.format().is_bgr_order() {
            yuv::bgra_to_yuv420
        } else {
            yuv::rgba_to_yuv420
        };
        convert(
            &mut planar,
            frame.data(),
            frame.stride(),
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        )
        .map_err(ConvertError::from)
    }

    fn resize(&mut self, w: u32, h: u32) {
        if (w, h) == (self.width, self.height) {
            return;
        }
        let luma = w as usize * h as usize;
        self.y.resize(luma, 0);
        self.u.resize(luma / 4, 0);
        self.v.resize(luma / 4, 0);
        self.width = w;
        self.height = h;
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn y(&self) -> &[u8] {
        &self.y
    }

    pub fn u(&self) -> &[u8] {
        &self.u
    }

    pub fn v(&self) -> &[u8] {
        &self.v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PixelFormat;

    /// A `w` x `h` picture of one colour, rows of `stride` bytes, in
    /// `format`'s byte order as `drm_fourcc.h` gives it (spelled out here
    /// rather than taken from `PixelFormat`, so a wrong order there fails).
    fn solid(format: PixelFormat, [r, g, b]: [u8; 3], w: u32, h: u32, stride: u32) -> Vec<u8> {
        let bytes = match format {
            PixelFormat::Argb8888 | PixelFormat::Xrgb8888 => [b, g, r, 0],
            PixelFormat::Abgr8888 | PixelFormat::Xbgr8888 => [r, g, b, 0],
        };
        let mut px = vec![0u8; (stride * h) as usize];
        for row in px.chunks_exact_mut(stride as usize) {
            for p in row[..(w * 4) as usize].chunks_exact_mut(4) {
                p.copy_from_slice(&bytes);
            }
        }
        px
    }

    #[test]
    fn white_and_red_land_on_bt601_values_in_every_format() {
        let mut i420 = I420::default();
        for format in PixelFormat::ALL {
            // Rows padded past the 8 pixels.
            let px = solid(format, [255, 255, 255], 8, 4, 40);
            i420.convert(&Frame::new(8, 4, 40, format, &px).unwrap())
                .unwrap();
            assert!(
                i420.y().iter().all(|&y| (234..=236).contains(&y)),
                "{format:?} {:?}",
                i420.y()
            );
            let px = solid(format, [255, 0, 0], 8, 4, 32);
            i420.convert(&Frame::new(8, 4, 32, format, &px).unwrap())
                .unwrap();
            assert!(
                i420.y().iter().all(|&y| (80..=83).contains(&y)),
                "{format:?} {:?}",
                i420.y()
            );
            assert!(
                i420.v().iter().all(|&v| v >= 238),
                "{format:?} {:?}",
                i420.v()
            );
        }
    }

    #[test]
    fn odd_sizes_crop_to_even_and_reuse_buffers() {
        let mut i420 = I420::default();
        let px = vec![0u8; 7 * 5 * 4];
        i420.convert(&Frame::new(7, 5, 28, PixelFormat::Argb8888, &px).unwrap())
            .unwrap();
        assert_eq!((i420.width(), i420.height()), (6, 4));
        let ptr = i420.y().as_ptr();
        i420.convert(&Frame::new(7, 5, 28, PixelFormat::Argb8888, &px).unwrap())
            .unwrap();
        assert_eq!(ptr, i420.y().as_ptr());
        let one = vec![0u8; 4];
        assert!(i420
            .convert(&Frame::new(1, 1, 4, PixelFormat::Argb8888, &one).unwrap())
            .is_err());
    }
}
