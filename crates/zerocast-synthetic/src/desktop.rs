//! The synthetic desktop as a frame source: paces frames, applies input,
//! and reports damage only when the picture changed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zerocast_frame::{Damage, Doorbell, Frame, FrameSource, PixelFormat, SourceEvent};
use zerocast_input::InputLog;

use crate::canvas::Canvas;
use crate::scene::Scene;

/// Whether the desktop animates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Motion {
    /// A new picture every frame interval.
    #[default]
    Animated,
    /// One picture, then changes only on input: shows that a still screen
    /// costs nothing.
    Static,
    /// As `Animated`, but the clock shows each frame's time (frame N at
    /// N / fps s) instead of the wall's, so that frame N is a pure function
    /// of N until input changes the picture: the benchmark draws it again
    /// to compare the decoded picture with.
    Replayable,
}

pub struct SyntheticDesktop {
    width: u32,
    height: u32,
    fps: u32,
    motion: Motion,
    scene: Scene,
    pixels: Vec<u8>,
    input: Arc<InputLog>,
    frame_no: u64,
    rendered: bool,
    next_tick: Instant,
}

impl SyntheticDesktop {
    /// `width` and `height` of at least 16 pixels; `fps` of at least 1.
    pub fn new(width: u32, height: u32, fps: u32, motion: Motion) -> Self {
        let (width, height, fps) = (width.max(16), height.max(16), fps.max(1));
        SyntheticDesktop {
            width,
            height,
            fps,
            motion,
            scene: match motion {
                Motion::Replayable => Scene::new(width, height).with_frame_clock(),
                Motion::Animated | Motion::Static => Scene::new(width, height),
            },
            pixels: vec![0; width as usize * height as usize * 4],
            input: Arc::new(InputLog::default()),
            frame_no: 0,
            rendered: false,
            next_tick: Instant::now(),
        }
    }

    /// Where a viewer's input for this desktop goes.
    pub fn input(&self) -> Arc<InputLog> {
        self.input.clone()
    }

    /// Input events applied so far.
    pub fn input_events(&self) -> u64 {
        self.scene.input_events()
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(1) / self.fps
    }

    fn apply_input(&mut self) -> bool {
        let mut changed = false;
        for (_, event) in self.input.take() {
            changed |= self.scene.apply(event, self.frame_no);
        }
        changed
    }

    /// Renders the next frame now.
    pub fn render(&mut self) -> SourceEvent {
        self.frame_no += 1;
        let stride = self.width as usize * 4;
        let mut canvas = Canvas::new(&mut self.pixels, self.width, self.height, stride);
        self.scene.render(&mut canvas, self.frame_no, self.fps);
        self.rendered = true;
        SourceEvent::Changed {
            captured_at: Instant::now(),
            // The scene redraws everything from its background each frame.
            damage: Damage::full(),
        }
    }
}

impl FrameSource for SyntheticDesktop {
    fn attach(&mut self, bell: Doorbell) {
        // Input wakes a static desktop; an animated one runs on its own clock.
        self.input.notify_with(move || bell.ring());
    }

    fn poll(&mut self, now: Instant) -> SourceEvent {
        match self.motion {
            Motion::Animated | Motion::Replayable => {
                if now < self.next_tick {
                    return SourceEvent::Idle {
                        wake_at: Some(self.next_tick),
                    };
                }
                self.apply_input();
                self.next_tick += self.interval();
                // Fell behind (a slow encoder): skip ahead instead of bursting.
                if self.next_tick < now {
                    self.next_tick = now + self.interval();
                }
                self.render()
            }
            Motion::Static => {
                if self.apply_input() || !self.rendered {
                    return self.render();
                }
                SourceEvent::Idle { wake_at: None }
            }
        }
    }

    fn frame(&self) -> Option<Frame<'_>> {
        if !self.rendered {
            return None;
        }
        Frame::new(
            self.width,
            self.height,
            self.width * 4,
            PixelFormat::Xrgb8888,
            &self.pixels,
        )
        .ok()
    }

    fn describe(&self) -> String {
        let motion = match self.motion {
            Motion::Animated => "animated",
            Motion::Static => "static",
            Motion::Replayable => "animated, replayable",
        };
        format!(
            "synthetic desktop {}x{}@{} ({motion})",
            self.width, self.height, self.fps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_frame::stamp;
    use zerocast_input::{InputEvent, InputSink};

    fn stamp_of(d: &SyntheticDesktop) -> Option<u32> {
        let f = d.frame()?;
        let luma: Vec<u8> = f.data().chunks_exact(4).map(|p| p[1]).collect();
        stamp::read_luma(&luma, f.width(), f.height(), f.width() as usize)
    }

    #[test]
    fn animated_frames_advance_on_their_clock() {
        let mut d = SyntheticDesktop::new(640, 360, 100, Motion::Animated);
        assert!(d.frame().is_none());
        let t0 = Instant::now();
        d.next_tick = t0;
        for n in 1..=3u32 {
            let now = t0 + Duration::from_millis(10) * (n - 1);
            assert!(matches!(d.poll(now), SourceEvent::Changed { .. }));
            assert_eq!(stamp_of(&d), Some(n));
            // Before the next tick: idle, and it says when to come back.
            let wake = t0 + Duration::from_millis(10) * n;
            assert_eq!(
                d.poll(now + Duration::from_millis(1)),
                SourceEvent::Idle {
                    wake_at: Some(wake)
                }
            );
        }
        // Far behind: one frame, then the next tick is a full interval away.
        let late = t0 + Duration::from_secs(5);
        assert!(matches!(d.poll(late), SourceEvent::Changed { .. }));
        assert_eq!(
            d.poll(late),
            SourceEvent::Idle {
                wake_at: Some(late + Duration::from_millis(10))
            }
        );
    }

    #[test]
    fn static_desktop_is_idle_until_input_which_rings_the_bell() {
        let mut d = SyntheticDesktop::new(640, 360, 60, Motion::Static);
        let bell = Doorbell::new();
        d.attach(bell.clone());
        let now = Instant::now();
        assert!(matches!(d.poll(now), SourceEvent::Changed { .. }));
        assert_eq!(d.poll(now), SourceEvent::Idle { wake_at: None });
        assert!(!bell.wait(Some(now)));
        d.input().send(0, InputEvent::MoveAbs { x: 0.5, y: 0.5 });
        assert!(bell.wait(Some(now)));
        assert!(matches!(d.poll(now), SourceEvent::Changed { .. }));
        assert_eq!(stamp_of(&d), Some(2));
        assert_eq!(d.input_events(), 1);
        assert!(d.describe().contains("static"));
    }
}
