//! [`WorkloadSource`]: a [`WorkloadScene`] as a frame source, a frame every
//! 1/fps, each reporting exactly what it redrew (`zerocast demo
//! --workload`): what the stripes cost for typing, a clock, a drag, as a
//! viewer sees it.

use std::time::{Duration, Instant};

use zerocast_frame::{Doorbell, Frame, FrameSource, SourceEvent};

use crate::WorkloadScene;

/// Paces a [`WorkloadScene`]; after `limit` frames the picture stays still.
pub struct WorkloadSource {
    scene: WorkloadScene,
    fps: u32,
    interval: Duration,
    next: Option<Instant>,
    /// Frames still to draw after the first; `None`: no end.
    left: Option<u64>,
}

impl WorkloadSource {
    pub fn new(scene: WorkloadScene, fps: u32, limit: Option<u64>) -> Self {
        WorkloadSource {
            scene,
            fps,
            interval: Duration::from_secs(1) / fps.max(1),
            next: None,
            left: limit,
        }
    }
}

impl FrameSource for WorkloadSource {
    // Timer-driven: the pipeline wakes at the instant `poll` gives.
    fn attach(&mut self, _bell: Doorbell) {}

    fn poll(&mut self, now: Instant) -> SourceEvent {
        let Some(next) = self.next else {
            // The scene's first picture (all of it is damage).
            self.next = Some(now + self.interval);
            return SourceEvent::Changed {
                captured_at: now,
                damage: self.scene.advance(),
            };
        };
        if self.left == Some(0) {
            return SourceEvent::Idle { wake_at: None };
        }
        if now < next {
            return SourceEvent::Idle {
                wake_at: Some(next),
            };
        }
        // Fell behind (a slow encoder): skip ahead instead of bursting.
        self.next = Some((next + self.interval).max(now));
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        SourceEvent::Changed {
            captured_at: now,
            damage: self.scene.advance(),
        }
    }

    fn frame(&self) -> Option<Frame<'_>> {
        Some(self.scene.frame())
    }

    fn describe(&self) -> String {
        let f = self.scene.frame();
        format!(
            "synthetic {} workload {}x{}@{}",
            self.scene.kind(),
            f.width(),
            f.height(),
            self.fps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Workload;

    #[test]
    fn frames_come_on_the_clock_with_the_scene_s_damage_and_stop_at_the_limit() {
        let scene = WorkloadScene::new(Workload::Typing, 640, 360);
        let mut source = WorkloadSource::new(scene, 100, Some(2));
        let t0 = Instant::now();
        let full =
            |e: SourceEvent| matches!(e, SourceEvent::Changed { damage, .. } if damage.is_full());
        assert!(full(source.poll(t0)), "the first picture is all damage");
        let tick = t0 + Duration::from_millis(10);
        assert_eq!(
            source.poll(t0),
            SourceEvent::Idle {
                wake_at: Some(tick)
            }
        );
        for _ in 0..2 {
            let now = source.next.unwrap();
            match source.poll(now) {
                SourceEvent::Changed { damage, .. } => {
                    let area = damage.area().expect("a typed character, not everything");
                    assert!(area < 640 * 360 / 100, "{damage:?}");
                }
                other => panic!("expected a frame, got {other:?}"),
            }
        }
        assert_eq!(
            source.poll(t0 + Duration::from_secs(1)),
            SourceEvent::Idle { wake_at: None }
        );
        assert!(source.describe().contains("typing workload 640x360@100"));
    }
}
