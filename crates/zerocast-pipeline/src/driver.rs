//! [`ScanoutPipeline`]: one scanout's encoder thread. A thin driver: it
//! feeds the [`PipelineCore`] with the source's damage and the subscribers'
//! events, does what the core says (encode, or sleep on the doorbell until
//! the next event or deadline), and publishes each access unit once for
//! every subscriber. With nothing to do it sleeps without a timeout.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use zerocast_encode::{
    new_encoder, EncodeError, Encoded, EncoderKind, EncoderSettings, Quality, VideoEncoder,
};
use zerocast_frame::{Damage, Doorbell, FrameSource, SourceEvent};

use crate::core::{Action, Event, Outcome, PipelineCore};
use crate::cursor::CursorChannel;
use crate::fanout::Fanout;
use crate::inbox::{Command, Inbox};
use crate::stats::thread_cpu_time;
use crate::EncodedFrame;

/// What a pipeline is built with.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub scanout_id: u32,
    pub encoder: EncoderKind,
    pub settings: EncoderSettings,
    /// How long the screen stays still before its last picture is refined
    /// ([`VideoEncoder::refine`]); `None`: never.
    pub refresh_after: Option<Duration>,
}

/// Why a pipeline did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Encoder(#[from] EncodeError),
    #[error("cannot start the encoder thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Handle to a running scanout pipeline. Dropping it stops the thread.
#[derive(Debug)]
pub struct ScanoutPipeline {
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) describe: String,
    /// The settings in force, or the ones about to be.
    settings: Arc<Mutex<EncoderSettings>>,
    /// The source's hardware cursor, if it has one.
    cursor: Option<Arc<CursorChannel>>,
    thread: Option<JoinHandle<()>>,
}

impl ScanoutPipeline {
    /// Starts the pipeline thread. Fails when the encoder cannot be built.
    pub fn start(
        mut source: Box<dyn FrameSource>,
        config: PipelineConfig,
    ) -> Result<Self, StartError> {
        let encoder = new_encoder(config.encoder, config.settings)?;
        let describe = format!("{} -> {}", source.describe(), encoder.describe());
        let settings = Arc::new(Mutex::new(encoder.settings()));
        let bell = Doorbell::new();
        source.attach(bell.clone());
        let cursor = Arc::new(CursorChannel::new());
        let cursor = source.attach_cursor(cursor.clone()).then_some(cursor);
        let (inbox, rx) = Inbox::new(bell.clone());
        let fanout = Arc::new(Fanout::new(config.scanout_id, inbox));
        let fps = encoder.settings().fps.as_f32();
        let mut driver = Driver {
            core: PipelineCore::new(PipelineCore::min_spacing(fps))
                .with_refresh(config.refresh_after),
            source,
            encoder,
            fanout: fanout.clone(),
            settings: settings.clone(),
            rx,
            bell,
            out: Vec::new(),
            last_size: None,
            clock: WallClock::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("scanout-{}", config.scanout_id))
            .spawn(move || driver.run())
            .map_err(StartError::Thread)?;
        Ok(ScanoutPipeline {
            fanout,
            describe,
            settings,
            cursor,
            thread: Some(thread),
        })
    }

    /// Changes bitrate / frame rate / keyframe interval of the shared encoder.
    pub fn reconfigure(&self, settings: EncoderSettings) {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
        self.fanout.inbox().send(Command::Reconfigure(settings));
    }

    /// The settings in force, or the ones about to be.
    pub fn settings(&self) -> EncoderSettings {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The source's hardware cursor; `None` if it has none.
    pub fn cursor(&self) -> Option<&CursorChannel> {
        self.cursor.as_deref()
    }
}

impl Drop for ScanoutPipeline {
    fn drop(&mut self) {
        self.fanout.inbox().send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Maps the monotonic clock onto wall-clock time, for viewers that measure
/// latency against their own clock.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    instant: Instant,
    wall: SystemTime,
}

impl WallClock {
    fn new() -> Self {
        WallClock {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// `at` in nanoseconds since the Unix epoch (0 before it).
    fn unix_ns(&self, at: Instant) -> i64 {
        let wall = self.wall + at.saturating_duration_since(self.instant);
        wall.duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

struct Driver {
    core: PipelineCore,
    source: Box<dyn FrameSource>,
    encoder: Box<dyn VideoEncoder>,
    fanout: Arc<Fanout>,
    settings: Arc<Mutex<EncoderSettings>>,
    rx: Receiver<Command>,
    bell: Doorbell,
    /// Reused for every access unit.
    out: Vec<u8>,
    /// The size of the last picture published, the one a refinement refines.
    last_size: Option<(u32, u32)>,
    clock: WallClock,
}

impl Driver {
    fn run(&mut self) {
        let id = self.fanout.id();
        loop {
            let now = Instant::now();
            while let Ok(command) = self.rx.try_recv() {
                match command {
                    Command::Core(event) => self.core.handle(now, event),
                    Command::Reconfigure(settings) => self.reconfigure(now, settings),
                    Command::Stop => return,
                }
            }
            // When the source wants to be asked again (a timer-driven one).
            let source_wake = match self.source.poll(now) {
                SourceEvent::Changed {
                    captured_at,
                    damage,
                } => {
                    let area = damage;
                    self.core.handle(now, Event::Damage { captured_at, area });
                    // Ask again at once: the source may have more, or a timer.
                    Some(now)
                }
                SourceEvent::Restarted { captured_at } => {
                    let area = Damage::full();
                    self.core.handle(now, Event::Damage { captured_at, area });
                    self.core.handle(now, Event::KeyframeRequested);
                    Some(now)
                }
                SourceEvent::Idle { wake_at } => wake_at,
                SourceEvent::Closed => {
                    let reason = self.source.closed_reason();
                    tracing::info!(scanout = id, "frame source closed: {reason}");
                    self.fanout.close(reason);
                    return;
                }
            };
            let action = self.core.poll(now);
            self.fanout.count(self.core.counters());
            match action {
                Action::Encode {
                    force_keyframe,
                    captured_at,
                    damage,
                    still,
                } => {
                    let captured_at = captured_at.unwrap_or(now);
                    let quality = if still {
                        Quality::Still
                    } else {
                        Quality::Motion
                    };
                    let outcome = self.encode(&damage, force_keyframe, quality, captured_at);
                    self.core.handle(Instant::now(), Event::Encoded(outcome));
                }
                Action::Refine => {
                    let outcome = self.refine(now);
                    self.core.handle(Instant::now(), Event::Encoded(outcome));
                }
                Action::WaitUntil(t) => {
                    self.bell.wait(Some(source_wake.map_or(t, |s| s.min(t))));
                }
                Action::Idle => {
                    self.bell.wait(source_wake);
                }
            }
        }
    }

    fn reconfigure(&mut self, now: Instant, settings: EncoderSettings) {
        if let Err(e) = self.encoder.reconfigure(settings) {
            tracing::warn!(scanout = self.fanout.id(), "reconfigure failed: {e}");
        }
        let in_force = self.encoder.settings();
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = in_force;
        let spacing = PipelineCore::min_spacing(in_force.fps.as_f32());
        self.core.handle(now, Event::MinSpacing(spacing));
    }

    fn encode(
        &mut self,
        damage: &Damage,
        force_keyframe: bool,
        quality: Quality,
        captured_at: Instant,
    ) -> Outcome {
        let Some(frame) = self.source.frame() else {
            return Outcome::NoPicture;
        };
        // Encoders work on whole 2x2 chroma blocks.
        let size = (frame.width() & !1, frame.height() & !1);
        let (start, cpu_start) = (Instant::now(), thread_cpu_time());
        self.out.clear();
        let result = self
            .encoder
            .encode(&frame, damage, force_keyframe, quality, &mut self.out)
            .map(Some);
        self.publish(result, start, cpu_start, captured_at, size)
    }

    /// Refines the last picture encoded; its capture time is now (it shows
    /// nothing new, it shows it better).
    fn refine(&mut self, now: Instant) -> Outcome {
        let Some(size) = self.last_size else {
            return Outcome::Unchanged;
        };
        let (start, cpu_start) = (Instant::now(), thread_cpu_time());
        self.out.clear();
        let result = self.encoder.refine(&mut self.out);
        let outcome = self.publish(result, start, cpu_start, now, size);
        if matches!(outcome, Outcome::Published { .. }) {
            self.fanout.stats().refinements += 1;
        }
        outcome
    }

    /// Publishes what an encode started at `start` left in `out`.
    fn publish(
        &mut self,
        result: Result<Option<Encoded>, EncodeError>,
        start: Instant,
        cpu_start: Duration,
        captured_at: Instant,
        (width, height): (u32, u32),
    ) -> Outcome {
        let (elapsed, cpu) = (start.elapsed(), thread_cpu_time().saturating_sub(cpu_start));
        let encoded = match result {
            Ok(Some(e)) => e,
            Ok(None) => return Outcome::Unchanged,
            Err(e) => {
                tracing::warn!(scanout = self.fanout.id(), "encode failed: {e}");
                self.fanout.stats().encode_errors += 1;
                return Outcome::Failed;
            }
        };
        self.last_size = Some((width, height));
        {
            let mut s = self.fanout.stats();
            s.encode.push(elapsed);
            s.encode_cpu.push(cpu);
        }
        let fps = self.encoder.settings().fps.as_f32().round();
        self.fanout.publish(EncodedFrame {
            seq: 0,
            keyframe: encoded.keyframe,
            captured_unix_ns: self.clock.unix_ns(captured_at),
            captured_at,
            width,
            height,
            fps: whole_fps(fps),
            encode_time: elapsed,
            // The one copy of the access unit, shared by every subscriber.
            access_unit: Bytes::copy_from_slice(&self.out),
        });
        Outcome::Published {
            keyframe: encoded.keyframe,
        }
    }
}

/// A rounded, sanitized frame rate (at most 240) as a whole number.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole_fps(fps: f32) -> u32 {
    // Clamped into 0..=240 first, so the cast is exact.
    fps.clamp(0.0, EncoderSettings::MAX_FPS) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stream;
    use std::time::Duration;
    use zerocast_input::{InputEvent, InputSink};
    use zerocast_synthetic::{Motion, SyntheticDesktop};

    async fn next(sub: &mut crate::Subscription) -> Arc<EncodedFrame> {
        tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("a frame within 10 s")
            .expect("the pipeline runs")
    }

    #[tokio::test]
    async fn a_still_desktop_encodes_a_keyframe_per_viewer_and_a_frame_per_change() {
        let desktop = SyntheticDesktop::new(64, 48, 30, Motion::Static);
        let input = desktop.input();
        let config = PipelineConfig {
            scanout_id: 3,
            encoder: EncoderKind::OpenH264,
            settings: EncoderSettings::default(),
            refresh_after: None,
        };
        let stream = Stream::Encoded(ScanoutPipeline::start(Box::new(desktop), config).unwrap());
        assert!(stream.cursor().is_none(), "it draws its own pointer");
        let mut first = stream.subscribe();
        let f = next(&mut first).await;
        assert!(f.keyframe);
        assert_eq!((f.seq, f.width, f.height, f.fps), (1, 64, 48, 60));
        assert!(f.access_unit.starts_with(&[0, 0, 0, 1]), "Annex B");
        // A second viewer of the still screen gets its own keyframe at once.
        let mut second = stream.subscribe();
        assert!(next(&mut second).await.keyframe);
        assert!(
            next(&mut first).await.keyframe,
            "shared by every subscriber"
        );
        // Input changes the picture: one more frame, not a keyframe.
        input.send(3, InputEvent::MoveAbs { x: 0.5, y: 0.5 });
        let moved = next(&mut first).await;
        assert!(!moved.keyframe);
        assert_eq!(moved.seq, 3);
        assert_eq!(stream.stats().frames, 3);
        // A new frame rate reaches the frames.
        let pipeline = stream.as_encoded().unwrap();
        let mut settings = pipeline.settings();
        settings.fps = zerocast_encode::Fps::new(24);
        pipeline.reconfigure(settings);
        input.send(3, InputEvent::MoveAbs { x: 0.1, y: 0.5 });
        assert_eq!(next(&mut first).await.fps, 24);
    }
}
