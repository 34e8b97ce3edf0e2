//! What the synthetic desktop shows at frame N. Animation depends only on
//! the frame number (so runs are repeatable); the clock shows wall time, or
//! with [`Scene::with_frame_clock`] the frame's own time, and then frame N
//! is a pure function of N (and the frame rate) until input changes it.

use std::time::{SystemTime, UNIX_EPOCH};

use zerocast_frame::stamp;
use zerocast_input::{Button, InputEvent};

use crate::canvas::{Canvas, Rgb};

// u16 so that both the u32 sizes and the i32 offsets convert with `from`.
const BAR_H: u16 = 40;
const TITLE_H: u16 = 28;
const TEXT: Rgb = Rgb(230, 230, 230);
const MAX_TYPED: usize = 60;

/// Desktop state that input changes: pointer, typed text, last click.
#[derive(Debug, Default)]
pub struct Scene {
    width: u32,
    height: u32,
    background: Vec<u8>,
    pointer: Option<(f32, f32)>,
    typed: String,
    click: Option<(f32, f32, u64)>,
    input_events: u64,
    /// The clock shows frame N's time (N / fps) instead of the wall's.
    frame_clock: bool,
}

impl Scene {
    pub fn new(width: u32, height: u32) -> Self {
        Scene {
            width,
            height,
            background: gradient(width, height),
            ..Scene::default()
        }
    }

    /// The clock shows each frame's time from frame 0 instead of the
    /// wall's: frame N can be drawn again, the same, from N alone.
    pub fn with_frame_clock(mut self) -> Self {
        self.frame_clock = true;
        self
    }

    /// Number of input events applied so far.
    pub fn input_events(&self) -> u64 {
        self.input_events
    }

    /// Applies one input event; returns true when the picture changes.
    pub fn apply(&mut self, event: InputEvent, frame: u64) -> bool {
        self.input_events += 1;
        match event {
            InputEvent::MoveAbs { x, y } => {
                self.pointer = Some((x.clamp(0.0, 1.0), y.clamp(0.0, 1.0)));
            }
            InputEvent::MoveRel { dx, dy } => {
                let (x, y) = self.pointer.unwrap_or((0.5, 0.5));
                self.pointer = Some((
                    (x + dx as f32 / self.width as f32).clamp(0.0, 1.0),
                    (y + dy as f32 / self.height as f32).clamp(0.0, 1.0),
                ));
            }
            InputEvent::Button {
                button: Button::Left,
                down: true,
            } => {
                let (x, y) = self.pointer.unwrap_or((0.5, 0.5));
                self.click = Some((x, y, frame));
            }
            InputEvent::Key { code, down: true } => match code {
                14 => {
                    self.typed.pop();
                }
                28 => self.typed.clear(),
                _ => {
                    if let Some(c) = evdev_char(code) {
                        if self.typed.len() >= MAX_TYPED {
                            self.typed.remove(0);
                        }
                        self.typed.push(c);
                    }
                }
            },
            _ => return false,
        }
        true
    }

    /// Draws frame `n` into `canvas` (which must be this scene's size).
    pub fn render(&self, canvas: &mut Canvas<'_>, n: u64, fps: u32) {
        canvas.pixels()[..self.background.len()].copy_from_slice(&self.background);
        let t = n as f32 / fps.max(1) as f32;
        let (w, h) = (signed(self.width), signed(self.height));
        let (bar_h, title_h) = (i32::from(BAR_H), i32::from(TITLE_H));

        // Three windows drifting on slow Lissajous paths.
        let ww = (self.width * 2 / 5).max(200);
        let wh = (self.height * 2 / 5).max(150);
        let path = |phase: f32, sx: f32, sy: f32| -> (i32, i32) {
            let fx = 0.5 + 0.45 * (t * sx + phase).sin();
            let fy = 0.5 + 0.45 * (t * sy + phase * 1.7).cos();
            (
                px((w - signed(ww)) as f32 * fx),
                bar_h + px((h - bar_h - signed(wh)) as f32 * fy),
            )
        };
        let (cx, cy) = path(2.0, 0.21, 0.17);
        self.window(canvas, cx, cy, ww, wh, "charts", Rgb(40, 44, 52));
        chart(
            canvas,
            cx + 12,
            cy + title_h + 12,
            ww - 24,
            wh - u32::from(TITLE_H) - 24,
            t,
        );
        let (kx, ky) = path(4.0, 0.13, 0.23);
        self.window(canvas, kx, ky, ww * 3 / 4, wh / 2, "clock", Rgb(24, 60, 90));
        let clock = match self.frame_clock {
            true => clock_text(u128::from(n) * 1000 / u128::from(fps.max(1))),
            false => wall_clock(),
        };
        canvas.text(kx + 16, ky + title_h + 20, 4, Rgb(255, 255, 255), &clock);
        let (tx, ty) = path(0.0, 0.17, 0.11);
        self.window(canvas, tx, ty, ww, wh, "terminal", Rgb(12, 12, 12));
        canvas.clipped(tx, ty, ww, wh, |c| {
            self.terminal(
                c,
                tx + 10,
                ty + title_h + 8,
                wh - u32::from(TITLE_H) - 16,
                n,
            )
        });

        // Top bar: frame stamp (machine-readable), title, frame counter, clock.
        canvas.fill_rect(0, 0, self.width, u32::from(BAR_H), Rgb(32, 32, 36));
        let x = canvas.text(signed(stamp::WIDTH) + 16, 12, 2, TEXT, "zerocast");
        canvas.text(x + 32, 12, 2, Rgb(255, 210, 80), &format!("frame {n}"));
        canvas.text(w - 16 * 12 - 16, 12, 2, TEXT, &clock);
        let stride = canvas.stride();
        stamp::draw(
            canvas.pixels(),
            self.width,
            self.height,
            stride,
            stamp::number(n),
        );

        if let Some((x, y, at)) = self.click {
            // A ripple that grows for 30 frames.
            if let Ok(age @ 0..30) = i32::try_from(n.saturating_sub(at)) {
                let r = 8 + age * 2;
                let d = (2 * r).unsigned_abs(); // r is positive
                let (rx, ry) = (px(x * w as f32), px(y * h as f32));
                canvas.fill_rect(rx - r, ry - r, d, d, Rgb(255, 120, 0));
            }
        }
        if let Some((x, y)) = self.pointer {
            cursor(canvas, px(x * w as f32), px(y * h as f32));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn window(&self, c: &mut Canvas<'_>, x: i32, y: i32, w: u32, h: u32, title: &str, body: Rgb) {
        c.fill_rect(x + 6, y + 6, w, h, Rgb(10, 10, 16));
        c.fill_rect(x, y, w, h, body);
        c.fill_rect(x, y, w, u32::from(TITLE_H), Rgb(70, 76, 90));
        c.text(x + 10, y + 6, 2, TEXT, title);
        for (i, color) in (0..).zip([Rgb(255, 95, 86), Rgb(255, 189, 46), Rgb(39, 201, 63)]) {
            c.fill_rect(x + signed(w) - 70 + i * 22, y + 8, 12, 12, color);
        }
    }

    fn terminal(&self, c: &mut Canvas<'_>, x: i32, y: i32, h: u32, n: u64) {
        let line_h = 18;
        let rows = (h / line_h).saturating_sub(1);
        // A new log line every 4 frames: steady scrolling text.
        let top = (n / 4).saturating_sub(u64::from(rows));
        for (i, line) in (0..).zip(top..top + u64::from(rows)) {
            let text = format!(
                "[{:>6}.{:03}] zerocast: frame {:>7} encoded, {} bytes",
                line / 15,
                (line * 67) % 1000,
                line * 4,
                900 + (line * 7919) % 4000
            );
            c.text(x, y + signed(i * line_h), 2, Rgb(120, 220, 120), &text);
        }
        let prompt = format!("$ {}_", self.typed);
        c.text(x, y + signed(rows * line_h), 2, Rgb(255, 255, 255), &prompt);
    }
}

fn chart(c: &mut Canvas<'_>, x: i32, y: i32, w: u32, h: u32, t: f32) {
    // u8 so the hues below are u8 arithmetic: they stay at or below 240.
    let bars = 16u8;
    let bw = w / u32::from(bars);
    for i in 0..bars {
        let v = 0.5 + 0.45 * (t * 2.0 + f32::from(i) * 0.6).sin();
        // v is in 0.05..0.95: a bar is never negative nor taller than h.
        let bh = u32::try_from(px(h as f32 * v)).unwrap_or(0);
        let hue = Rgb(60 + i * 12, 200 - i * 8, 120 + i * 8);
        c.fill_rect(
            x + signed(u32::from(i) * bw),
            y + signed(h - bh),
            bw.saturating_sub(4),
            bh,
            hue,
        );
    }
}

fn cursor(c: &mut Canvas<'_>, x: i32, y: i32) {
    for row in 0..18u8 {
        let len = (u32::from(row) * 2 / 3).max(1);
        c.fill_rect(x, y + i32::from(row), len + 2, 1, Rgb(0, 0, 0));
        c.fill_rect(x + 1, y + i32::from(row), len, 1, Rgb(255, 255, 255));
    }
}

fn wall_clock() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    clock_text(ms)
}

/// `ms` milliseconds past midnight as HH:MM:SS.mmm.
fn clock_text(ms: u128) -> String {
    let s = (ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

fn gradient(width: u32, height: u32) -> Vec<u8> {
    let mut px = vec![0u8; width as usize * height as usize * 4];
    for (y, row) in px.chunks_exact_mut(width as usize * 4).enumerate() {
        let f = y as f32 / height.max(1) as f32;
        let c = Rgb(
            channel(30.0 + 40.0 * f),
            channel(60.0 + 30.0 * f),
            channel(110.0 - 30.0 * f),
        )
        .bgrx();
        for p in row.chunks_exact_mut(4) {
            p.copy_from_slice(&c);
        }
    }
    px
}

/// A picture size or offset as a signed coordinate. Sizes are at most a few
/// thousand pixels; an absurd one saturates (off screen) instead of wrapping.
fn signed(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A position in pixels, truncated toward zero as the scene always drew.
#[allow(clippy::cast_possible_truncation)] // `as` saturates; positions are within a few picture sizes, far inside i32
fn px(v: f32) -> i32 {
    v as i32
}

/// A colour channel, truncated like `px`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // callers pass 30.0..=110.0; `as` saturates anyway
fn channel(v: f32) -> u8 {
    v as u8
}

/// The character an evdev key code types (US layout, no modifiers).
fn evdev_char(code: u16) -> Option<char> {
    const ROW1: &str = "1234567890";
    const ROW_Q: &str = "qwertyuiop";
    const ROW_A: &str = "asdfghjkl";
    const ROW_Z: &str = "zxcvbnm";
    let pick = |s: &str, i: u16| s.chars().nth(i as usize);
    match code {
        2..=11 => pick(ROW1, code - 2),
        16..=25 => pick(ROW_Q, code - 16),
        30..=38 => pick(ROW_A, code - 30),
        44..=50 => pick(ROW_Z, code - 44),
        57 => Some(' '),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_and_pointer_change_the_scene() {
        let mut s = Scene::new(800, 600);
        assert!(s.apply(
            InputEvent::Key {
                code: 35,
                down: true
            },
            0
        ));
        assert!(s.apply(
            InputEvent::Key {
                code: 23,
                down: true
            },
            0
        ));
        assert!(!s.apply(
            InputEvent::Key {
                code: 23,
                down: false
            },
            0
        ));
        assert_eq!(s.typed, "hi");
        assert!(s.apply(
            InputEvent::Key {
                code: 14,
                down: true
            },
            0
        ));
        assert_eq!(s.typed, "h");
        assert!(s.apply(InputEvent::MoveAbs { x: 2.0, y: -1.0 }, 0));
        assert_eq!(s.pointer, Some((1.0, 0.0)));
        assert_eq!(s.input_events(), 5);
    }

    #[test]
    fn a_frame_clock_draws_frame_n_the_same_every_time() {
        let (w, h) = (640u32, 360u32);
        let draw = |scene: &Scene, n: u64| {
            let mut px = vec![0u8; w as usize * h as usize * 4];
            let mut canvas = Canvas::new(&mut px, w, h, w as usize * 4);
            scene.render(&mut canvas, n, 60);
            px
        };
        let (a, b) = (
            Scene::new(w, h).with_frame_clock(),
            Scene::new(w, h).with_frame_clock(),
        );
        let first = draw(&a, 90);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(first == draw(&b, 90), "frame 90 drawn twice differs");
        assert!(first != draw(&b, 91));
        assert_eq!(clock_text(3_723_004), "01:02:03.004");
    }

    #[test]
    fn renders_a_readable_stamp_at_any_size() {
        for (w, h) in [(640u32, 360u32), (1920, 1080), (stamp::WIDTH, 200)] {
            let mut s = Scene::new(w, h);
            s.apply(InputEvent::MoveAbs { x: 0.99, y: 0.99 }, 0);
            s.apply(
                InputEvent::Button {
                    button: Button::Left,
                    down: true,
                },
                0,
            );
            let mut px = vec![0u8; (w * h * 4) as usize];
            s.render(&mut Canvas::new(&mut px, w, h, (w * 4) as usize), 1234, 60);
            let luma: Vec<u8> = px.chunks_exact(4).map(|p| p[1]).collect();
            assert_eq!(stamp::read_luma(&luma, w, h, w as usize), Some(1234));
        }
    }
}
