//! The animated test picture: a static background, squares bouncing around,
//! a scrolling diagonal rainbow band at the bottom and the frame-number stamp
//! in the top-left corner.
//!
//! Frame `n` is a pure function of `n`, whatever the frame rate, so a host
//! that reads the stamp knows exactly what the rest of the picture holds.
//!
//! The guest runs under TCG emulation, where every byte written costs, so a
//! frame repaints only what moves: the squares (after restoring the
//! background where the buffer last had them), the band and the stamp. The
//! full background is painted once per buffer.

use zerocast_frame::stamp;

/// Bytes per pixel of XRGB8888.
const BPP: usize = 4;
/// Height of the rainbow band at the bottom of the screen.
const BAND_HEIGHT: u32 = 64;
/// How far the band scrolls each frame, in pixels.
const BAND_SPEED: u32 = 6;
/// Spacing of the background's grid lines.
const GRID: u32 = 64;

/// One pixel of XRGB8888 as it lies in memory (little-endian B, G, R, X).
/// X is 0xFF so the picture stays opaque for readers that take it as ARGB.
type Pixel = [u8; BPP];

const fn rgb(r: u8, g: u8, b: u8) -> Pixel {
    [b, g, r, 0xFF]
}

/// A rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// A mapped XRGB8888 buffer to draw into.
pub struct Canvas<'a> {
    pixels: &'a mut [u8],
    width: u32,
    height: u32,
    stride: usize,
}

impl<'a> Canvas<'a> {
    /// Wraps `pixels`, rows of `stride` bytes. Panics if the buffer is too
    /// small for `width` x `height`: that is a bug in the caller, not a
    /// runtime condition.
    pub fn new(pixels: &'a mut [u8], width: u32, height: u32, stride: usize) -> Self {
        let row = width as usize * BPP;
        assert!(stride >= row, "stride {stride} < row of {row} bytes");
        assert!(
            height == 0 || pixels.len() >= (height as usize - 1) * stride + row,
            "buffer of {} bytes too small for {width}x{height} with stride {stride}",
            pixels.len()
        );
        Canvas {
            pixels,
            width,
            height,
            stride,
        }
    }

    /// The bytes of row `y` from column `x` on, `w` pixels long. Callers
    /// pass rectangles already clipped to the canvas.
    fn span(&mut self, x: u32, y: u32, w: u32) -> &mut [u8] {
        let start = y as usize * self.stride + x as usize * BPP;
        &mut self.pixels[start..start + w as usize * BPP]
    }

    fn clip(&self, r: Rect) -> Rect {
        let x = r.x.min(self.width);
        let y = r.y.min(self.height);
        Rect {
            x,
            y,
            w: r.w.min(self.width - x),
            h: r.h.min(self.height - y),
        }
    }

    fn fill(&mut self, r: Rect, color: Pixel) {
        let r = self.clip(r);
        for y in r.y..r.y + r.h {
            for px in self.span(r.x, y, r.w).chunks_exact_mut(BPP) {
                px.copy_from_slice(&color);
            }
        }
    }

    /// Copies `r` from `src`, a tightly packed picture of the canvas's size.
    fn copy_from(&mut self, src: &[u8], r: Rect) {
        let r = self.clip(r);
        let src_stride = self.width as usize * BPP;
        for y in r.y..r.y + r.h {
            let start = y as usize * src_stride + r.x as usize * BPP;
            self.span(r.x, y, r.w)
                .copy_from_slice(&src[start..start + r.w as usize * BPP]);
        }
    }
}

/// A square that bounces between the edges of the arena.
struct Sprite {
    size: u32,
    /// Pixels per frame along x and y.
    speed: (u32, u32),
    /// Start offset along the bounce path, so the squares do not move together.
    phase: (u32, u32),
    color: Pixel,
}

const SPRITES: [Sprite; 4] = [
    Sprite {
        size: 120,
        speed: (7, 5),
        phase: (0, 0),
        color: rgb(0xE6, 0x39, 0x46),
    },
    Sprite {
        size: 96,
        speed: (5, 9),
        phase: (400, 100),
        color: rgb(0x2A, 0x9D, 0x8F),
    },
    Sprite {
        size: 72,
        speed: (11, 3),
        phase: (900, 250),
        color: rgb(0xF4, 0xA2, 0x61),
    },
    Sprite {
        size: 48,
        speed: (3, 13),
        phase: (200, 600),
        color: rgb(0xE9, 0xC4, 0x6A),
    },
];

impl Sprite {
    fn rect(&self, frame: u64, arena: Rect) -> Rect {
        let size = self.size.min(arena.w).min(arena.h);
        let along = |phase: u32, speed: u32, room: u32| {
            bounce(u64::from(phase) + frame * u64::from(speed), room)
        };
        Rect {
            x: arena.x + along(self.phase.0, self.speed.0, arena.w - size),
            y: arena.y + along(self.phase.1, self.speed.1, arena.h - size),
            w: size,
            h: size,
        }
    }
}

/// Position after travelling `distance` back and forth over `0..=room`.
fn bounce(distance: u64, room: u32) -> u32 {
    let room = u64::from(room);
    if room == 0 {
        return 0;
    }
    let t = distance % (2 * room);
    let at = if t <= room { t } else { 2 * room - t };
    u32::try_from(at).expect("at most `room`, which came from a u32")
}

/// A rainbow colour, `t` in steps of 1/256 around the colour circle: the
/// three channels are triangle waves a third of a turn apart.
fn hue(t: u32) -> Pixel {
    let wave = |shift: u32| {
        let x = (t + shift) % 256;
        u8::try_from(255 - (2 * x).abs_diff(255)).expect("a triangle wave in 0..=255")
    };
    rgb(wave(0), wave(85), wave(170))
}

/// The picture of one mode size, with its precomputed parts.
pub struct Scene {
    width: u32,
    height: u32,
    /// The full background, tightly packed: painted once per buffer, then
    /// copied back wherever a square has been.
    background: Vec<u8>,
    /// Two periods of the band's rainbow, so any scroll offset is one slice.
    rainbow: Vec<u8>,
    band: Rect,
    /// Where the squares bounce: between the stamp and the band.
    arena: Rect,
}

impl Scene {
    pub fn new(width: u32, height: u32) -> Scene {
        let band_height = BAND_HEIGHT.min(height / 4);
        let band = Rect {
            x: 0,
            y: height - band_height,
            w: width,
            h: band_height,
        };
        let top = (2 * stamp::BLOCK).min(band.y);
        let arena = Rect {
            x: 0,
            y: top,
            w: width,
            h: band.y - top,
        };
        Scene {
            width,
            height,
            background: background(width, height),
            rainbow: (0..2 * width)
                .flat_map(|x| hue(x * 256 / width.max(1)))
                .collect(),
            band,
            arena,
        }
    }

    /// Paints the whole background; once per buffer, before its first frame.
    pub fn paint_background(&self, canvas: &mut Canvas) {
        let all = Rect {
            x: 0,
            y: 0,
            w: self.width,
            h: self.height,
        };
        canvas.copy_from(&self.background, all);
    }

    /// Draws frame `frame` into a canvas that holds an earlier frame of this
    /// scene. `drawn` is what that earlier frame put there beyond the static
    /// parts (kept per buffer by the caller, empty for a fresh background);
    /// it is replaced by what this frame draws.
    pub fn render(&self, canvas: &mut Canvas, frame: u64, drawn: &mut Vec<Rect>) {
        for r in drawn.drain(..) {
            canvas.copy_from(&self.background, r);
        }
        for sprite in &SPRITES {
            let r = sprite.rect(frame, self.arena);
            canvas.fill(r, sprite.color);
            drawn.push(r);
        }
        self.draw_band(canvas, frame);
        stamp::draw(
            canvas.pixels,
            self.width,
            self.height,
            canvas.stride,
            stamp::number(frame),
        );
    }

    /// The rainbow band: each row is the rainbow shifted one more pixel, so
    /// the stripes run diagonally, and the whole band scrolls every frame.
    fn draw_band(&self, canvas: &mut Canvas, frame: u64) {
        let period = self.width.max(1);
        let scroll = u32::try_from(frame * u64::from(BAND_SPEED) % u64::from(period))
            .expect("below the period, a u32");
        let row_bytes = self.width as usize * BPP;
        for dy in 0..self.band.h {
            let offset = (scroll + dy) % period;
            let start = offset as usize * BPP;
            canvas
                .span(0, self.band.y + dy, self.width)
                .copy_from_slice(&self.rainbow[start..start + row_bytes]);
        }
    }
}

/// A dark vertical gradient with a grid, so that tearing or a shifted
/// picture shows in a screenshot.
fn background(width: u32, height: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity(width as usize * height as usize * BPP);
    for y in 0..height {
        let shade = u8::try_from(y * 64 / height.max(1)).expect("below 64");
        let plain = rgb(16, 24 + shade / 2, 48 + shade);
        let line = rgb(48, 64 + shade / 2, 96 + shade);
        for x in 0..width {
            let on_grid = x % GRID == 0 || y % GRID == 0;
            px.extend_from_slice(if on_grid { &line } else { &plain });
        }
    }
    px
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(scene: &Scene, w: u32, h: u32, stride: usize, frame: u64) -> Vec<u8> {
        let mut px = vec![0u8; stride * h as usize];
        let mut canvas = Canvas::new(&mut px, w, h, stride);
        scene.paint_background(&mut canvas);
        scene.render(&mut canvas, frame, &mut Vec::new());
        px
    }

    #[test]
    fn incremental_frames_equal_fresh_ones() {
        // Three buffers drawn in turn, as the swapchain does, padded stride.
        let (w, h) = (640, 480);
        let stride = w as usize * BPP + 64;
        let scene = Scene::new(w, h);
        let mut buffers = vec![vec![0u8; stride * h as usize]; 3];
        let mut drawn = vec![Vec::new(); 3];
        for px in &mut buffers {
            scene.paint_background(&mut Canvas::new(px, w, h, stride));
        }
        for (i, frame) in (0..3).cycle().zip(0..40) {
            let mut canvas = Canvas::new(&mut buffers[i], w, h, stride);
            scene.render(&mut canvas, frame, &mut drawn[i]);
            assert!(
                buffers[i] == fresh(&scene, w, h, stride, frame),
                "frame {frame} differs from a freshly drawn one"
            );
        }
    }

    #[test]
    fn stamp_reads_back() {
        let (w, h) = (800, 600);
        let stride = w as usize * BPP;
        let scene = Scene::new(w, h);
        for frame in [0, 1, 1234] {
            let px = fresh(&scene, w, h, stride, u64::from(frame));
            let green: Vec<u8> = px.chunks_exact(BPP).map(|p| p[1]).collect();
            assert_eq!(stamp::read_luma(&green, w, h, w as usize), Some(frame));
        }
    }

    #[test]
    fn frames_change_and_tiny_modes_do_not_panic() {
        let scene = Scene::new(320, 240);
        assert_ne!(
            fresh(&scene, 320, 240, 1280, 5),
            fresh(&scene, 320, 240, 1280, 6)
        );
        for (w, h) in [(1, 1), (3, 200), (200, 3), (0, 0)] {
            let scene = Scene::new(w, h);
            fresh(&scene, w, h, w as usize * BPP, 77);
        }
    }

    #[test]
    fn bounce_stays_in_room() {
        assert_eq!(bounce(0, 10), 0);
        assert_eq!(bounce(10, 10), 10);
        assert_eq!(bounce(13, 10), 7);
        assert_eq!(bounce(20, 10), 0);
        assert_eq!(bounce(5, 0), 0);
        assert!((0..1000).all(|d| bounce(d, 37) <= 37));
    }
}
