//! What the synthetic desktop shows at frame N. Animation depends only on
//! the frame number (so runs are repeatable); the clock shows wall time.

use std::time::{SystemTime, UNIX_EPOCH};

use zerocast_frame::stamp;
use zerocast_input::{Button, InputEvent};

use crate::canvas::{Canvas, Rgb};

const BAR_H: u32 = 40;
const TITLE_H: u32 = 28;
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
        let (w, h) = (self.width as i32, self.height as i32);

        // Three windows drifting on slow Lissajous paths.
        let ww = (w * 2 / 5).max(200) as u32;
        let wh = (h * 2 / 5).max(150) as u32;
        let path = |phase: f32, sx: f32, sy: f32| -> (i32, i32) {
            let fx = 0.5 + 0.45 * (t * sx + phase).sin();
            let fy = 0.5 + 0.45 * (t * sy + phase * 1.7).cos();
            (
                ((w - ww as i32) as f32 * fx) as i32,
                BAR_H as i32 + ((h - BAR_H as i32 - wh as i32) as f32 * fy) as i32,
            )
        };
        let (cx, cy) = path(2.0, 0.21, 0.17);
        self.window(canvas, cx, cy, ww, wh, "charts", Rgb(40, 44, 52));
        chart(
            canvas,
            cx + 12,
            cy + TITLE_H as i32 + 12,
            ww - 24,
            wh - TITLE_H - 24,
            t,
        );
        let (kx, ky) = path(4.0, 0.13, 0.23);
        self.window(canvas, kx, ky, ww * 3 / 4, wh / 2, "clock", Rgb(24, 60, 90));
        let clock = wall_clock();
        canvas.text(
            kx + 16,
            ky + TITLE_H as i32 + 20,
            4,
            Rgb(255, 255, 255),
            &clock,
        );
        let (tx, ty) = path(0.0, 0.17, 0.11);
        self.window(canvas, tx, ty, ww, wh, "terminal", Rgb(12, 12, 12));
        canvas.clipped(tx, ty, ww, wh, |c| {
            self.terminal(c, tx + 10, ty + TITLE_H as i32 + 8, wh - TITLE_H - 16, n)
        });

        // Top bar: frame stamp (machine-readable), title, frame counter, clock.
        canvas.fill_rect(0, 0, self.width, BAR_H, Rgb(32, 32, 36));
        let x = canvas.text(stamp::WIDTH as i32 + 16, 12, 2, TEXT, "zerocast");
        canvas.text(x + 32, 12, 2, Rgb(255, 210, 80), &format!("frame {n}"));
        canvas.text(w - 16 * 12 - 16, 12, 2, TEXT, &clock);
        let stride = canvas.stride();
        stamp::draw(canvas.pixels(), self.width, self.height, stride, n as u32);

        if let Some((x, y, at)) = self.click {
            let age = n.saturating_sub(at);
            if age < 30 {
                let r = 8 + age as i32 * 2;
                let (px, py) = ((x * w as f32) as i32, (y * h as f32) as i32);
                canvas.fill_rect(px - r, py - r, 2 * r as u32, 2 * r as u32, Rgb(255, 120, 0));
            }
        }
        if let Some((x, y)) = self.pointer {
            cursor(canvas, (x * w as f32) as i32, (y * h as f32) as i32);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn window(&self, c: &mut Canvas<'_>, x: i32, y: i32, w: u32, h: u32, title: &str, body: Rgb) {
        c.fill_rect(x + 6, y + 6, w, h, Rgb(10, 10, 16));
        c.fill_rect(x, y, w, h, body);
        c.fill_rect(x, y, w, TITLE_H, Rgb(70, 76, 90));
        c.text(x + 10, y + 6, 2, TEXT, title);
        for (i, color) in [Rgb(255, 95, 86), Rgb(255, 189, 46), Rgb(39, 201, 63)]
            .into_iter()
            .enumerate()
        {
            c.fill_rect(x + w as i32 - 70 + i as i32 * 22, y + 8, 12, 12, color);
        }
    }

    fn terminal(&self, c: &mut Canvas<'_>, x: i32, y: i32, h: u32, n: u64) {
        let line_h = 18;
        let rows = (h / line_h).saturating_sub(1) as u64;
        // A new log line every 4 frames: steady scrolling text.
        let top = (n / 4).saturating_sub(rows);
        for (i, line) in (top..top + rows).enumerate() {
            let text = format!(
                "[{:>6}.{:03}] zerocast: frame {:>7} encoded, {} bytes",
                line / 15,
                (line * 67) % 1000,
                line * 4,
                900 + (line * 7919) % 4000
            );
            c.text(
                x,
                y + (i as u32 * line_h) as i32,
                2,
                Rgb(120, 220, 120),
                &text,
            );
        }
        let prompt = format!("$ {}_", self.typed);
        c.text(
            x,
            y + (rows as u32 * line_h) as i32,
            2,
            Rgb(255, 255, 255),
            &prompt,
        );
    }
}

fn chart(c: &mut Canvas<'_>, x: i32, y: i32, w: u32, h: u32, t: f32) {
    let bars = 16;
    let bw = w / bars;
    for i in 0..bars {
        let v = 0.5 + 0.45 * (t * 2.0 + i as f32 * 0.6).sin();
        let bh = (h as f32 * v) as u32;
        let hue = Rgb(
            (60 + i * 12) as u8,
            (200 - i * 8) as u8,
            (120 + i * 8) as u8,
        );
        c.fill_rect(
            x + (i * bw) as i32,
            y + (h - bh) as i32,
            bw.saturating_sub(4),
            bh,
            hue,
        );
    }
}

fn cursor(c: &mut Canvas<'_>, x: i32, y: i32) {
    for row in 0..18u32 {
        let len = (row * 2 / 3).max(1);
        c.fill_rect(x, y + row as i32, len + 2, 1, Rgb(0, 0, 0));
        c.fill_rect(x + 1, y + row as i32, len, 1, Rgb(255, 255, 255));
    }
}

fn wall_clock() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
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
            (30.0 + 40.0 * f) as u8,
            (60.0 + 30.0 * f) as u8,
            (110.0 - 30.0 * f) as u8,
        )
        .bgrx();
        for p in row.chunks_exact_mut(4) {
            p.copy_from_slice(&c);
        }
    }
    px
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
