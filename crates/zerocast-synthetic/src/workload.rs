//! Deterministic desktop workloads for the damage benchmark: each frame
//! redraws only what changes and says exactly what it redrew, as a guest's
//! compositor does with its flushes. Everything depends on the frame number
//! alone, so two runs (or two encoders in one run) see the same pictures.

use std::fmt;
use std::str::FromStr;

use zerocast_frame::{Damage, Frame, PixelFormat, Rect};

use crate::canvas::{Canvas, Rgb};

/// One kind of desktop activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One character typed into a terminal per frame, cursor after it.
    Typing,
    /// A clock with milliseconds in a corner, and a cursor blinking twice a second.
    Clock,
    /// A window dragged across the desktop.
    Drag,
    /// A full-screen terminal scrolling by one line per frame.
    Scroll,
    /// Full-screen video-like animation: every pixel, every frame.
    Video,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::Typing,
        Workload::Clock,
        Workload::Drag,
        Workload::Scroll,
        Workload::Video,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Typing => "typing",
            Workload::Clock => "clock",
            Workload::Drag => "drag",
            Workload::Scroll => "scroll",
            Workload::Video => "video",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown workload {s:?}"))
    }
}

const BG: Rgb = Rgb(24, 26, 32);
const TERM: Rgb = Rgb(12, 12, 12);
const INK: Rgb = Rgb(200, 220, 200);
/// Font cell: the 8x8 font at scale 2.
const CELL: u32 = 16;
const TYPED: &str = "cargo run --release -- bench --workload desktop-damage # zerocast ";

/// A workload's desktop, drawn frame by frame.
pub struct WorkloadScene {
    kind: Workload,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    /// The desktop without the dragged window, to repair what it uncovers.
    base: Vec<u8>,
    frame_no: u64,
    /// Drag: where the window was last drawn.
    window: Rect,
}

impl WorkloadScene {
    /// A `width` x `height` desktop (at least 64x64) for `kind`, drawn once.
    pub fn new(kind: Workload, width: u32, height: u32) -> Self {
        let (width, height) = (width.max(64), height.max(64));
        let mut pixels = vec![0u8; width as usize * height as usize * 4];
        let stride = width as usize * 4;
        let mut c = Canvas::new(&mut pixels, width, height, stride);
        c.fill_rect(0, 0, width, height, BG);
        c.fill_rect(0, 0, width, 32, Rgb(48, 48, 56));
        c.text(12, 8, 2, INK, "zerocast desktop-damage");
        // The terminal: most of the screen, with a screenful of old output.
        c.fill_rect(16, 48, width - 32, height - 64, TERM);
        let rows = (height - 80) / CELL;
        for row in 0..rows.saturating_sub(4) {
            let line = format!("{row:>4}: drwxr-xr-x 2 user user 4096 Nov 26 01:{row:02} target");
            c.text(24, signed(56 + row * CELL), 2, INK, &line);
        }
        let base = pixels.clone();
        WorkloadScene {
            kind,
            width,
            height,
            pixels,
            base,
            frame_no: 0,
            window: Rect::default(),
        }
    }

    pub fn kind(&self) -> Workload {
        self.kind
    }

    /// Draws the next frame; returns what changed since the previous one
    /// (everything for the first).
    pub fn advance(&mut self) -> Damage {
        self.frame_no += 1;
        let n = self.frame_no;
        let (w, h, stride) = (self.width, self.height, self.width as usize * 4);
        let mut c = Canvas::new(&mut self.pixels, w, h, stride);
        let damage = match self.kind {
            Workload::Typing => {
                let cols = (w - 48) / CELL;
                let rows = (h - 80) / CELL;
                let i = n - 1;
                let col = u32::try_from(i % u64::from(cols)).unwrap_or(0);
                let row = rows - 3 + u32::try_from((i / u64::from(cols)) % 3).unwrap_or(0);
                let (x, y) = (24 + col * CELL, 56 + row * CELL);
                let ch = TYPED.as_bytes()[usize::try_from(i).unwrap_or(0) % TYPED.len()];
                let mut line = Rect::new(x, y, 2 * CELL, CELL);
                if col == 0 {
                    // A new line: cleared first, along with the old cursor.
                    c.fill_rect(24, signed(y), cols * CELL + CELL, CELL, TERM);
                    line = Rect::new(24, y, cols * CELL + CELL, CELL);
                    let prev = 56 + (rows - 3 + (row + 2 - (rows - 3)) % 3) * CELL;
                    c.fill_rect(24, signed(prev), cols * CELL + CELL, CELL, TERM);
                    let mut d = Damage::rect(line);
                    d.add_rect(Rect::new(24, prev, cols * CELL + CELL, CELL));
                    c.text(signed(x), signed(y), 2, INK, &char::from(ch).to_string());
                    c.fill_rect(signed(x + CELL), signed(y), CELL, CELL, INK);
                    return self.first_or(d);
                }
                c.fill_rect(signed(x), signed(y), CELL, CELL, TERM);
                c.text(signed(x), signed(y), 2, INK, &char::from(ch).to_string());
                c.fill_rect(signed(x + CELL), signed(y), CELL, CELL, INK);
                Damage::rect(line)
            }
            Workload::Clock => {
                let ms = n * 1000 / 60;
                let text = format!(
                    "{:02}:{:02}:{:02}.{:03}",
                    (ms / 3_600_000) % 24,
                    (ms / 60_000) % 60,
                    (ms / 1000) % 60,
                    ms % 1000
                );
                let clock = Rect::new(w - 16 - 12 * CELL, 8, 12 * CELL, CELL);
                c.fill_rect(signed(clock.x), 8, clock.width, CELL, Rgb(48, 48, 56));
                c.text(signed(clock.x), 8, 2, INK, &text);
                let mut d = Damage::rect(clock);
                if n % 30 == 0 {
                    let cursor = Rect::new(24, 56 + ((h - 80) / CELL - 2) * CELL, CELL, CELL);
                    let on = (n / 30) % 2 == 1;
                    let colour = if on { INK } else { TERM };
                    c.fill_rect(signed(cursor.x), signed(cursor.y), CELL, CELL, colour);
                    d.add_rect(cursor);
                }
                d
            }
            Workload::Drag => {
                let (ww, wh) = (w * 2 / 5, h * 2 / 5);
                // Bounces around the screen, 6 and 3 pixels a frame.
                let bounce = |t: u64, span: u32| {
                    let span = u64::from(span.max(1));
                    let p = t % (2 * span);
                    u32::try_from(if p < span { p } else { 2 * span - p }).unwrap_or(0)
                };
                let (x, y) = (bounce(n * 6, w - ww), bounce(n * 3, h - wh));
                let old = self.window;
                let new = Rect::new(x, y, ww, wh);
                // Uncovered parts come back from the desktop underneath.
                for row in old.y..old.y + old.height {
                    let at = row as usize * stride + old.x as usize * 4;
                    let len = old.width as usize * 4;
                    c.pixels()[at..at + len].copy_from_slice(&self.base[at..at + len]);
                }
                // Drawn inside the window only: the damage is its rectangle.
                c.clipped(signed(x), signed(y), ww, wh, |c| {
                    c.fill_rect(signed(x), signed(y), ww, wh, Rgb(60, 64, 80));
                    c.fill_rect(signed(x), signed(y), ww, 28, Rgb(90, 96, 120));
                    c.text(signed(x) + 10, signed(y) + 6, 2, INK, "dragged window");
                    for line in 0..(wh - 40) / CELL {
                        let text = format!("line {line}: the quick brown fox");
                        let ty = signed(y + 36 + line * CELL);
                        c.text(signed(x) + 10, ty, 2, INK, &text);
                    }
                });
                self.window = new;
                let mut d = Damage::rect(new);
                d.add_rect(old);
                d
            }
            Workload::Scroll => {
                // Everything moves up one line; a new line at the bottom.
                let line = CELL as usize * stride;
                let px = c.pixels();
                px.copy_within(line.., 0);
                let y = h - CELL;
                c.fill_rect(0, signed(y), w, CELL, TERM);
                let text = format!("[{n:>8}] kernel: scrolling line {n}, nothing to see here");
                c.text(8, signed(y), 2, INK, &text);
                Damage::rect(Rect::new(0, 0, w, h))
            }
            Workload::Video => {
                // Cheap integer patterns that move: no two frames alike.
                let t = u32::try_from(n % 4096).unwrap_or(0);
                for (y, row) in (0u32..).zip(c.pixels().chunks_exact_mut(stride)) {
                    for (x, p) in (0u32..).zip(row.chunks_exact_mut(4)) {
                        let a = (x + 3 * t) ^ (y + t);
                        let b = x * y / 64 + 5 * t;
                        p.copy_from_slice(&[
                            a.to_le_bytes()[0],
                            b.to_le_bytes()[0],
                            ((a >> 2) ^ b).to_le_bytes()[0],
                            0xff,
                        ]);
                    }
                }
                Damage::rect(Rect::new(0, 0, w, h))
            }
        };
        self.first_or(damage)
    }

    /// Everything for the first frame (nothing was shown before it).
    fn first_or(&self, damage: Damage) -> Damage {
        if self.frame_no == 1 {
            Damage::full()
        } else {
            damage
        }
    }

    pub fn frame(&self) -> Frame<'_> {
        Frame::new(
            self.width,
            self.height,
            self.width * 4,
            PixelFormat::Xrgb8888,
            &self.pixels,
        )
        .expect("the scene's buffer fits its size")
    }
}

/// A coordinate for drawing; sizes here are far inside i32.
fn signed(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pixel that differs from the previous frame lies in the damage.
    #[test]
    fn each_workload_damages_exactly_what_it_redraws() {
        for kind in Workload::ALL {
            let mut scene = WorkloadScene::new(kind, 320, 200);
            assert!(scene.advance().is_full());
            let mut before = scene.pixels.clone();
            for _ in 0..90 {
                let damage = scene.advance();
                assert!(!damage.is_full(), "{kind}");
                for (i, (a, b)) in before
                    .chunks_exact(4)
                    .zip(scene.pixels.chunks_exact(4))
                    .enumerate()
                {
                    if a != b {
                        let (x, y) = (
                            u32::try_from(i).unwrap() % 320,
                            u32::try_from(i).unwrap() / 320,
                        );
                        assert!(
                            damage.rects().iter().any(|r| x >= r.x
                                && y >= r.y
                                && x < r.x + r.width
                                && y < r.y + r.height),
                            "{kind}: ({x}, {y}) changed outside {damage:?}"
                        );
                    }
                }
                before.copy_from_slice(&scene.pixels);
            }
            let small = scene.advance().area().unwrap();
            match kind {
                Workload::Typing | Workload::Clock => assert!(small < 320 * 200 / 4, "{kind}"),
                _ => {}
            }
            assert_eq!(kind.name().parse::<Workload>(), Ok(kind));
        }
    }
}
