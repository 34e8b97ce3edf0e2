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
    #[error(
        "a {width}x{height} picture cannot be converted in part into a picture of another size"
    )]
    NotSameSize { width: u32, height: u32 },
}

/// An I420 picture whose planes are reused from frame to frame.
#[derive(Debug, Default)]
pub struct I420 {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    /// A rectangle's last row pair when it goes through a packed copy (see
    /// `convert_rect`): its two source rows, and its Y, U and V samples.
    /// Kept, so that path allocates nothing after the first frame either.
    tail_rows: Vec<u8>,
    tail_planes: Vec<u8>,
}

impl I420 {
    /// Converts only `rects` of `frame` into the planes, which must hold
    /// the previous picture of the same size (else: [`ConvertError::NotSameSize`];
    /// convert the whole frame instead). Each rectangle is grown to whole
    /// 2x2 blocks, so the result equals a whole conversion inside them and
    /// leaves every other sample as it was.
    pub fn convert_rects(
        &mut self,
        frame: &Frame<'_>,
        rects: &[crate::Rect],
    ) -> Result<(), ConvertError> {
        let (w, h) = (frame.width() & !1, frame.height() & !1);
        if (w, h) != (self.width, self.height) || w == 0 || h == 0 {
            return Err(ConvertError::NotSameSize {
                width: frame.width(),
                height: frame.height(),
            });
        }
        for r in rects {
            let r = r.to_even(w, h);
            if !r.is_empty() {
                self.convert_rect(frame, r)?;
            }
        }
        Ok(())
    }

    /// One even, non-empty rectangle inside the planes.
    fn convert_rect(&mut self, frame: &Frame<'_>, r: crate::Rect) -> Result<(), ConvertError> {
        let convert = if frame.format().is_bgr_order() {
            yuv::bgra_to_yuv420
        } else {
            yuv::rgba_to_yuv420
        };
        let (w, h) = (self.width as usize, self.height as usize);
        let (x, y, rw, rh) = (r.x as usize, r.y as usize, r.width, r.height);
        let stride = frame.stride() as usize;
        let bpp = frame.format().bytes_per_pixel() as usize;
        let src = &frame.data()[y * stride + x * bpp..];
        // The yuv crate walks source and planes in whole row pairs of two
        // strides and skips a pair that is short of that: the last pair of a
        // rectangle at the picture's bottom (planes) or at the frame's end
        // (source). That pair goes through a packed copy instead.
        let plane_room = y + (rh as usize) < h || x == 0;
        let direct = if plane_room && src.len() >= stride * rh as usize {
            rh
        } else {
            rh - 2
        };
        let (yo, co) = (y * w + x, y / 2 * (w / 2) + x / 2);
        if direct > 0 {
            // Slices of exactly `direct` rows: the yuv crate converts row
            // pairs for as long as all its slices last, whatever the height.
            let (ylen, clen) = (direct as usize * w, direct as usize / 2 * (w / 2));
            let mut planar = YuvPlanarImageMut {
                y_plane: BufferStoreMut::Borrowed(&mut self.y[yo..yo + ylen]),
                y_stride: self.width,
                u_plane: BufferStoreMut::Borrowed(&mut self.u[co..co + clen]),
                u_stride: self.width / 2,
                v_plane: BufferStoreMut::Borrowed(&mut self.v[co..co + clen]),
                v_stride: self.width / 2,
                width: rw,
                height: direct,
            };
            convert(
                &mut planar,
                &src[..direct as usize * stride],
                frame.stride(),
                YuvRange::Limited,
                YuvStandardMatrix::Bt601,
                YuvConversionMode::Balanced,
            )?;
        }
        if direct == rh {
            return Ok(());
        }
        // The last pair: two packed rows in, small packed planes out, then
        // copied into place.
        let (row, cw) = (rw as usize * bpp, rw as usize / 2);
        let first = stride * direct as usize;
        self.tail_rows.clear();
        self.tail_rows.extend_from_slice(&src[first..first + row]);
        self.tail_rows
            .extend_from_slice(&src[first + stride..first + stride + row]);
        self.tail_planes.resize(2 * rw as usize + 2 * cw, 0);
        let (py, chroma) = self.tail_planes.split_at_mut(2 * rw as usize);
        let (pu, pv) = chroma.split_at_mut(cw);
        let mut packed = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(py),
            y_stride: rw,
            u_plane: BufferStoreMut::Borrowed(pu),
            u_stride: rw / 2,
            v_plane: BufferStoreMut::Borrowed(pv),
            v_stride: rw / 2,
            width: rw,
            height: 2,
        };
        convert(
            &mut packed,
            &self.tail_rows,
            rw * frame.format().bytes_per_pixel(),
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        )?;
        let (ly, lc) = (yo + direct as usize * w, co + direct as usize / 2 * (w / 2));
        let rw = rw as usize;
        self.y[ly..ly + rw].copy_from_slice(&py[..rw]);
        self.y[ly + w..ly + w + rw].copy_from_slice(&py[rw..]);
        self.u[lc..lc + cw].copy_from_slice(pu);
        self.v[lc..lc + cw].copy_from_slice(pv);
        Ok(())
    }
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
        // The whole picture as one rectangle: its last row pair, which a
        // frame ending at its buffer's end (a scanout of an extended
        // desktop) has short, is handled there.
        self.convert_rect(frame, crate::Rect::new(0, 0, w, h))
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
    use proptest::prelude::*;

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

    /// Where R, G and B sit in a pixel of `format`, as `drm_fourcc.h` gives it.
    fn rgb_offsets(format: PixelFormat) -> [usize; 3] {
        match format {
            PixelFormat::Argb8888 | PixelFormat::Xrgb8888 => [2, 1, 0],
            PixelFormat::Abgr8888 | PixelFormat::Xbgr8888 => [0, 1, 2],
        }
    }

    /// A buffer of `len` bytes of reproducible noise.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                // xorshift64: any pattern without structure will do.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect()
    }

    /// `offset + scale / 255 * (coeffs . rgb) / (n * 10^6)`, rounded: one
    /// BT.601 limited-range sample from the mean of `n` pixels whose
    /// channels are summed in `rgb`, in integers so nothing is cast.
    fn bt601(offset: i64, scale: i64, coeffs: [i64; 3], rgb: [i64; 3], n: i64) -> u8 {
        let dot: i64 = coeffs.iter().zip(rgb).map(|(k, c)| k * c).sum();
        let den = 255 * 1_000_000 * n;
        let value = (2 * (offset * den + scale * dot) + den).div_euclid(2 * den);
        u8::try_from(value.clamp(0, 255)).unwrap()
    }

    /// Scalar BT.601 limited-range I420 of `frame` cropped to even size,
    /// chroma from the mean of each 2x2 block, straight from the formulas.
    fn reference(frame: &Frame<'_>) -> [Vec<u8>; 3] {
        let (w, h) = (
            (frame.width() & !1) as usize,
            (frame.height() & !1) as usize,
        );
        let [ro, go, bo] = rgb_offsets(frame.format());
        let stride = frame.stride() as usize;
        let rgb = |x: usize, y: usize| {
            let p = &frame.data()[y * stride + x * 4..];
            [p[ro], p[go], p[bo]].map(i64::from)
        };
        let mut luma = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                luma.push(bt601(16, 219, [299_000, 587_000, 114_000], rgb(x, y), 1));
            }
        }
        let (mut cb, mut cr) = (Vec::new(), Vec::new());
        for y in (0..h).step_by(2) {
            for x in (0..w).step_by(2) {
                let mut sum = [0; 3];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    for (s, c) in sum.iter_mut().zip(rgb(x + dx, y + dy)) {
                        *s += c;
                    }
                }
                cb.push(bt601(128, 224, [-168_736, -331_264, 500_000], sum, 4));
                cr.push(bt601(128, 224, [500_000, -418_688, -81_312], sum, 4));
            }
        }
        [luma, cb, cr]
    }

    /// The first plane sample that differs from the reference by more than
    /// rounding (±2), as (plane, index, got, wanted).
    fn mismatch(i420: &I420, frame: &Frame<'_>) -> Option<(&'static str, usize, u8, u8)> {
        let want = reference(frame);
        assert_eq!(i420.y().len(), want[0].len());
        [("Y", i420.y()), ("U", i420.u()), ("V", i420.v())]
            .into_iter()
            .zip(&want)
            .find_map(|((plane, got), want)| {
                got.iter()
                    .zip(want)
                    .position(|(g, w)| g.abs_diff(*w) > 2)
                    .map(|i| (plane, i, got[i], want[i]))
            })
    }

    /// The `w` x `h` rectangle at (`x`, `y`) of a noise buffer `buf_w`
    /// pixels wide and `buf_h` rows high, its bytes running to the
    /// buffer's end, as a scanout of an extended desktop sees them.
    fn check_rect(
        format: PixelFormat,
        (buf_w, buf_h): (u32, u32),
        (x, y, w, h): (u32, u32, u32, u32),
    ) {
        let stride = buf_w * 4;
        let buf = noise(
            (stride * buf_h) as usize,
            u64::from(buf_w * 7919 + x * 31 + y),
        );
        let data = &buf[(y * stride + x * 4) as usize..];
        let frame = Frame::new(w, h, stride, format, data).unwrap();
        let mut i420 = I420::default();
        i420.convert(&frame).unwrap();
        assert_eq!(
            mismatch(&i420, &frame),
            None,
            "{format:?} {w}x{h} at ({x}, {y}) in {buf_w}x{buf_h}"
        );
    }

    #[test]
    fn rectangle_ending_at_its_buffers_end_keeps_its_last_rows() {
        // Scanout 1 of a 2560x800 extended desktop: the right half, whose
        // last row pair is short of two whole strides.
        check_rect(PixelFormat::Xrgb8888, (2560, 800), (1280, 0, 1280, 800));
        // A lone row pair: all of it goes through the packed copy.
        check_rect(PixelFormat::Xbgr8888, (64, 2), (10, 0, 54, 2));
    }

    #[test]
    fn odd_offsets_and_sizes_convert_every_even_row() {
        check_rect(PixelFormat::Argb8888, (64, 40), (5, 3, 37, 23));
        check_rect(PixelFormat::Abgr8888, (64, 40), (27, 17, 37, 23));
        check_rect(PixelFormat::Xrgb8888, (64, 40), (1, 1, 63, 39));
    }

    #[test]
    fn stride_much_larger_than_width() {
        check_rect(PixelFormat::Xrgb8888, (4096, 6), (4090, 0, 6, 6));
        check_rect(PixelFormat::Xbgr8888, (4096, 7), (0, 2, 2, 5));
    }

    /// A buffer's width and height and a rectangle `(x, y, w, h)` of at
    /// least 2x2 anywhere inside it.
    fn geometry() -> impl Strategy<Value = ((u32, u32), (u32, u32, u32, u32))> {
        (2u32..96, 2u32..48)
            .prop_flat_map(|(bw, bh)| (Just((bw, bh)), 2..=bw, 2..=bh))
            .prop_flat_map(|((bw, bh), w, h)| {
                (Just((bw, bh)), 0..=bw - w, 0..=bh - h, Just((w, h)))
            })
            .prop_map(|(buf, x, y, (w, h))| (buf, (x, y, w, h)))
    }

    proptest! {
        #[test]
        fn matches_the_scalar_reference(
            ((buf_w, buf_h), (x, y, w, h)) in geometry(),
            format in prop::sample::select(PixelFormat::ALL.to_vec()),
            spare in prop_oneof![Just(0usize), 1usize..64, Just(usize::MAX)],
            seed in any::<u64>(),
        ) {
            let stride = buf_w * 4;
            let buf = noise((stride * buf_h) as usize, seed);
            let start = (y * stride + x * 4) as usize;
            // The slice ends where the rectangle does, a little after, or at
            // the buffer's end.
            let needed = (stride * (h - 1) + w * 4) as usize;
            let end = start.saturating_add(needed).saturating_add(spare).min(buf.len());
            let frame = Frame::new(w, h, stride, format, &buf[start..end]).unwrap();
            let mut i420 = I420::default();
            i420.convert(&frame).unwrap();
            prop_assert_eq!(mismatch(&i420, &frame), None);
        }
    }
}

#[cfg(test)]
mod rect_tests {
    use super::*;
    use crate::{PixelFormat, Rect};

    /// Reproducible noise in every byte, so every sample differs.
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        (0..len)
            .map(|i| {
                let i = u32::try_from(i).unwrap();
                (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)).to_le_bytes()[2]
            })
            .collect()
    }

    /// Converts `old` whole, then `rects` of `new`: inside the (even-grown)
    /// rectangles the planes must equal a whole conversion of `new`,
    /// outside they must still hold `old`'s.
    fn check(format: PixelFormat, (w, h, stride): (u32, u32, u32), rects: &[Rect], short: bool) {
        let len = (stride * h) as usize;
        let (old, new) = (noise(len, 1), noise(len, 2));
        let frame = |px| Frame::new(w, h, stride, format, px).unwrap();
        let (mut whole_old, mut whole_new, mut part) =
            (I420::default(), I420::default(), I420::default());
        whole_old.convert(&frame(&old)).unwrap();
        whole_new.convert(&frame(&new)).unwrap();
        part.convert(&frame(&old)).unwrap();
        // Short: the bytes end with the last row (no padding after it).
        let end = len - if short { (stride - w * 4) as usize } else { 0 };
        part.convert_rects(&frame(&new[..end]), rects).unwrap();
        let (ew, eh) = (w & !1, h & !1);
        let even: Vec<Rect> = rects.iter().map(|r| r.to_even(ew, eh)).collect();
        let inside = |x: u32, y: u32| {
            even.iter()
                .any(|r| x >= r.x && y >= r.y && x < r.x + r.width && y < r.y + r.height)
        };
        let planes = |i: &I420| [i.y().to_vec(), i.u().to_vec(), i.v().to_vec()];
        let (po, pn, pp) = (planes(&whole_old), planes(&whole_new), planes(&part));
        for (plane, scale) in [(0, 1), (1, 2), (2, 2)] {
            let pw = ew / scale;
            for (i, got) in pp[plane].iter().enumerate() {
                let i = u32::try_from(i).unwrap();
                let (x, y) = ((i % pw) * scale, (i / pw) * scale);
                let want = if inside(x, y) {
                    pn[plane][i as usize]
                } else {
                    po[plane][i as usize]
                };
                assert_eq!(
                    *got,
                    want,
                    "{format:?} plane {plane} at ({x}, {y}), inside {}: {rects:?}",
                    inside(x, y)
                );
            }
        }
    }

    #[test]
    fn a_rectangle_converts_like_the_whole_frame_and_leaves_the_rest() {
        for format in PixelFormat::ALL {
            // Odd positions and sizes; one at each edge and corner.
            check(format, (96, 64, 400), &[Rect::new(5, 3, 33, 17)], false);
            check(format, (96, 64, 384), &[Rect::new(0, 0, 96, 2)], false);
            check(format, (96, 64, 384), &[Rect::new(90, 60, 6, 4)], false);
            check(format, (96, 64, 384), &[Rect::new(1, 61, 50, 3)], false);
            // Several, overlapping, and one past the picture (clipped).
            let rects = [
                Rect::new(2, 2, 8, 8),
                Rect::new(6, 6, 40, 3),
                Rect::new(80, 50, 99, 99),
            ];
            check(format, (96, 64, 384), &rects, false);
        }
    }

    #[test]
    fn the_last_rows_of_a_short_frame_and_of_odd_sizes_are_converted() {
        // The frame's bytes end with its last row (stride padding missing).
        check(
            PixelFormat::Xrgb8888,
            (96, 64, 512),
            &[Rect::new(40, 50, 56, 14)],
            true,
        );
        check(
            PixelFormat::Xbgr8888,
            (95, 63, 512),
            &[Rect::new(3, 3, 92, 60)],
            true,
        );
        // Taller than a pair, at the bottom, not at column 0.
        check(
            PixelFormat::Argb8888,
            (64, 32, 256),
            &[Rect::new(8, 2, 16, 30)],
            false,
        );
    }

    #[test]
    fn a_frame_of_another_size_is_refused_and_nothing_is_a_no_op() {
        let px = noise(64 * 32 * 4, 3);
        let frame = Frame::new(64, 32, 256, PixelFormat::Xrgb8888, &px).unwrap();
        let mut i420 = I420::default();
        assert!(matches!(
            i420.convert_rects(&frame, &[Rect::new(0, 0, 2, 2)]),
            Err(ConvertError::NotSameSize { .. })
        ));
        i420.convert(&frame).unwrap();
        let before = i420.y().to_vec();
        let other = noise(64 * 32 * 4, 4);
        let other = Frame::new(64, 32, 256, PixelFormat::Xrgb8888, &other).unwrap();
        i420.convert_rects(&other, &[]).unwrap();
        i420.convert_rects(&other, &[Rect::new(70, 0, 4, 4)])
            .unwrap();
        assert_eq!(i420.y(), &before[..]);
    }
}
