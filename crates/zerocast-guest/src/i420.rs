//! Packed 32-bit RGB to I420 for the guest-side encoder, with the `yuv`
//! crate's SIMD paths (the same conversion the host's encoders use):
//! BT.601, limited range, cropped to even width and height.

use anyhow::{bail, Result};
use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};
use zerocast_frame::PixelFormat;

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
    /// Converts `width` x `height` pixels of `format`, `stride` bytes a row.
    pub fn convert(
        &mut self,
        pixels: &[u8],
        width: u32,
        height: u32,
        stride: u32,
        format: PixelFormat,
    ) -> Result<()> {
        let (w, h) = (width & !1, height & !1);
        if w == 0 || h == 0 {
            bail!("a {width}x{height} picture is too small to encode");
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
        let convert = if format.is_bgr_order() {
            yuv::bgra_to_yuv420
        } else {
            yuv::rgba_to_yuv420
        };
        convert(
            &mut planar,
            pixels,
            stride,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        )
        .map_err(|e| anyhow::anyhow!("converting to I420: {e}"))
    }

    fn resize(&mut self, w: u32, h: u32) {
        if (w, h) == (self.width, self.height) {
            return;
        }
        let luma = w as usize * h as usize;
        self.y.resize(luma, 0);
        self.u.resize(luma / 4, 0);
        self.v.resize(luma / 4, 0);
        (self.width, self.height) = (w, h);
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The Y, U and V planes; their strides are `width` and `width / 2`.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        (&self.y, &self.u, &self.v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, stride: u32, px: [u8; 4]) -> Vec<u8> {
        let mut buf = vec![0u8; (stride * h) as usize];
        for row in buf.chunks_exact_mut(stride as usize) {
            for p in row[..(w * 4) as usize].chunks_exact_mut(4) {
                p.copy_from_slice(&px);
            }
        }
        buf
    }

    #[test]
    fn white_and_channel_order() {
        let mut pic = I420::default();
        let (w, h, stride) = (16, 8, 80);
        pic.convert(
            &solid(w, h, stride, [255; 4]),
            w,
            h,
            stride,
            PixelFormat::Xrgb8888,
        )
        .unwrap();
        let (y, u, v) = pic.planes();
        assert!(y.iter().all(|&l| l == 235), "limited-range white");
        assert!(u.iter().chain(v).all(|&c| (127..=129).contains(&c)));

        // Pure red: B, G, R in XR24 memory order, R, G, B in XB24.
        pic.convert(
            &solid(w, h, stride, [0, 0, 255, 0]),
            w,
            h,
            stride,
            PixelFormat::Xrgb8888,
        )
        .unwrap();
        let red_v = pic.planes().2[0];
        pic.convert(
            &solid(w, h, stride, [255, 0, 0, 0]),
            w,
            h,
            stride,
            PixelFormat::Xbgr8888,
        )
        .unwrap();
        assert_eq!(pic.planes().2[0], red_v);
        assert!(red_v > 200, "red has a high V ({red_v})");
    }

    #[test]
    fn odd_sizes_crop_and_tiny_ones_fail() {
        let mut pic = I420::default();
        pic.convert(&solid(5, 3, 20, [0; 4]), 5, 3, 20, PixelFormat::Argb8888)
            .unwrap();
        assert_eq!((pic.width(), pic.height()), (4, 2));
        assert_eq!(pic.planes().0.len(), 8);
        assert!(pic
            .convert(&[0; 4], 1, 1, 4, PixelFormat::Argb8888)
            .is_err());
    }
}
