//! Drawing on a packed 32-bit BGRX picture. Everything clips to the picture,
//! so callers can draw shapes that move off screen.

use font8x8::UnicodeFonts;

/// A colour; stored in memory as B, G, R, X (DRM's XRGB8888).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const fn bgrx(self) -> [u8; 4] {
        [self.2, self.1, self.0, 0xFF]
    }
}

/// A mutable view of a BGRX picture.
pub struct Canvas<'a> {
    px: &'a mut [u8],
    width: u32,
    height: u32,
    stride: usize,
    /// Drawing is limited to this rectangle: x0, y0, x1, y1 (exclusive).
    clip: (i64, i64, i64, i64),
}

impl<'a> Canvas<'a> {
    /// `px` must hold `stride * height` bytes.
    pub fn new(px: &'a mut [u8], width: u32, height: u32, stride: usize) -> Self {
        assert!(px.len() >= stride * height as usize && stride >= width as usize * 4);
        Canvas {
            px,
            width,
            height,
            stride,
            clip: (0, 0, i64::from(width), i64::from(height)),
        }
    }

    /// Runs `draw` with drawing limited to a rectangle (within the picture).
    pub fn clipped(&mut self, x: i32, y: i32, w: u32, h: u32, draw: impl FnOnce(&mut Self)) {
        let saved = self.clip;
        let (x, y) = (i64::from(x), i64::from(y));
        self.clip = (
            x.max(saved.0),
            y.max(saved.1),
            (x + i64::from(w)).min(saved.2),
            (y + i64::from(h)).min(saved.3),
        );
        draw(self);
        self.clip = saved;
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The raw bytes, for drawers that work on whole rows.
    pub fn pixels(&mut self) -> &mut [u8] {
        self.px
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Fills a rectangle, clipped to the picture.
    pub fn fill_rect(&mut self, x: i32, y: i32, w: u32, h: u32, color: Rgb) {
        let (cx0, cy0, cx1, cy1) = self.clip;
        let x0 = i64::from(x).clamp(cx0, cx1);
        let y0 = i64::from(y).clamp(cy0, cy1);
        let x1 = (i64::from(x) + i64::from(w)).clamp(cx0, cx1);
        let y1 = (i64::from(y) + i64::from(h)).clamp(cy0, cy1);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let (x0, y0, x1, y1) = (index(x0), index(y0), index(x1), index(y1));
        let c = color.bgrx();
        let first = y0 * self.stride;
        let row = &mut self.px[first + x0 * 4..first + x1 * 4];
        for p in row.chunks_exact_mut(4) {
            p.copy_from_slice(&c);
        }
        // Copying the first row is much faster than filling every pixel again.
        for yy in y0 + 1..y1 {
            let (done, rest) = self.px.split_at_mut(yy * self.stride);
            rest[x0 * 4..x1 * 4].copy_from_slice(&done[first + x0 * 4..first + x1 * 4]);
        }
    }

    /// Draws text with the 8x8 font, each font pixel `scale` pixels wide.
    /// Returns the x just after the last glyph.
    pub fn text(&mut self, x: i32, y: i32, scale: u8, color: Rgb, s: &str) -> i32 {
        let (scale_x, scale_w) = (i32::from(scale), u32::from(scale));
        let step = 8 * scale_x;
        let mut cx = x;
        for ch in s.chars() {
            if let Some(glyph) = font8x8::BASIC_FONTS.get(ch) {
                for (gy, bits) in (0i32..).zip(glyph) {
                    let mut gx = 0;
                    while gx < 8 {
                        if bits & (1 << gx) == 0 {
                            gx += 1;
                            continue;
                        }
                        // Fill runs of set bits at once.
                        let start = gx;
                        while gx < 8 && bits & (1 << gx) != 0 {
                            gx += 1;
                        }
                        self.fill_rect(
                            cx + start * scale_x,
                            y + gy * scale_x,
                            gx.abs_diff(start) * scale_w,
                            scale_w,
                            color,
                        );
                    }
                }
            }
            cx += step;
        }
        cx
    }
}

/// A byte index from a coordinate clamped to the clip, which lies within the
/// picture: never negative, never past its width or height.
fn index(v: i64) -> usize {
    usize::try_from(v).expect("clipped coordinates are within the picture")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_clips_at_every_edge() {
        let mut px = vec![0u8; 10 * 4 * 6];
        let mut c = Canvas::new(&mut px, 10, 6, 40);
        c.fill_rect(-5, -5, 8, 8, Rgb(255, 0, 0));
        c.fill_rect(8, 4, 100, 100, Rgb(0, 255, 0));
        c.fill_rect(20, 20, 5, 5, Rgb(0, 0, 255));
        c.fill_rect(i32::MIN, i32::MIN, u32::MAX, u32::MAX, Rgb(1, 2, 3));
        assert_eq!(&px[0..4], &[3, 2, 1, 255]);
    }

    #[test]
    fn clip_limits_drawing() {
        let mut px = vec![0u8; 10 * 4 * 6];
        let mut c = Canvas::new(&mut px, 10, 6, 40);
        c.clipped(2, 2, 3, 3, |c| c.fill_rect(0, 0, 10, 6, Rgb(9, 9, 9)));
        let lit: Vec<usize> = px
            .chunks_exact(4)
            .enumerate()
            .filter(|(_, p)| p[0] == 9)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(lit, vec![22, 23, 24, 32, 33, 34, 42, 43, 44]);
    }

    #[test]
    fn text_sets_pixels_and_advances() {
        let mut px = vec![0u8; 64 * 4 * 16];
        let mut c = Canvas::new(&mut px, 64, 16, 256);
        assert_eq!(c.text(0, 0, 2, Rgb(255, 255, 255), "Hi"), 32);
        assert!(px.contains(&255));
    }
}
