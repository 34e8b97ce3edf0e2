//! [`ScanoutPipeline`]: one scanout's encoder thread. A thin driver: it
//! feeds the [`PipelineCore`] of each output with the source's damage and
//! the subscribers' events, does what the cores say (encode, or sleep on
//! the doorbell until the next event or deadline), and publishes each
//! access unit once for every subscriber of its output. With nothing to do
//! it sleeps without a timeout.
//!
//! A pipeline has one or two outputs, each with its own core, encoder and
//! subscribers: the whole picture (HXFR, helix's clients), and, when
//! configured, the striped stream zerocast's web viewer asks for. An
//! output nobody watches costs nothing.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use zerocast_encode::{
    new_encoder, EncodeError, Encoded, EncoderKind, EncoderSettings, Quality, StripedEncoder,
    VideoEncoder,
};
use zerocast_frame::{Damage, Doorbell, FramePacer, FrameSource, SourceEvent};

use crate::core::{Action, CoreCounters, Event, Outcome, PipelineCore};
use crate::cursor::CursorChannel;
use crate::fanout::Fanout;
use crate::inbox::{Command, Inbox, Output};
use crate::stats::thread_cpu_time;
use crate::{EncodedFrame, Layout};

/// What a pipeline is built with.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub scanout_id: u32,
    pub encoder: EncoderKind,
    pub settings: EncoderSettings,
    /// How long the screen stays still before its last picture is refined
    /// ([`VideoEncoder::refine`]); `None`: never.
    pub refresh_after: Option<Duration>,
    /// Rows per stripe of the striped output ([`StripedEncoder`]); `None`:
    /// no striped output, striped subscribers get the whole picture.
    pub stripe_height: Option<u32>,
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
    /// The striped output's, if configured.
    pub(crate) stripes: Option<Arc<Fanout>>,
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
        let fanout = Arc::new(Fanout::new(config.scanout_id, inbox.clone()));
        let mut outputs = vec![OutputState::new(encoder, fanout.clone(), &config)];
        let stripes = match config.stripe_height {
            Some(rows) => {
                let encoder = StripedEncoder::new(config.encoder, config.settings, rows)?;
                let striped = Arc::new(Fanout::beside(&fanout, inbox.for_output(Output::Stripes)));
                outputs.push(OutputState::new(
                    Box::new(encoder),
                    striped.clone(),
                    &config,
                ));
                Some(striped)
            }
            None => None,
        };
        let mut driver = Driver {
            outputs,
            source,
            settings: settings.clone(),
            rx,
            bell,
            clock: WallClock::new(),
            unwatched: 0,
        };
        let thread = std::thread::Builder::new()
            .name(format!("scanout-{}", config.scanout_id))
            .spawn(move || driver.run())
            .map_err(StartError::Thread)?;
        Ok(ScanoutPipeline {
            fanout,
            stripes,
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

/// One output of a pipeline: its rules, its encoder, its subscribers.
struct OutputState {
    core: PipelineCore,
    encoder: Box<dyn VideoEncoder>,
    fanout: Arc<Fanout>,
    layout: Layout,
    /// Reused for every access unit.
    out: Vec<u8>,
    /// The size of the last picture published, the one a refinement refines.
    last_size: Option<(u32, u32)>,
}

impl OutputState {
    fn new(encoder: Box<dyn VideoEncoder>, fanout: Arc<Fanout>, config: &PipelineConfig) -> Self {
        let fps = encoder.settings().fps.as_f32();
        let striped = fanout.inbox().output() == Output::Stripes;
        OutputState {
            core: PipelineCore::new(FramePacer::interval_at(fps))
                .with_refresh(config.refresh_after),
            encoder,
            fanout,
            layout: if striped {
                Layout::Stripes
            } else {
                Layout::Whole
            },
            out: Vec::new(),
            last_size: None,
        }
    }

    /// Does what the core says now; returns when to wake for it, `Some(now)`
    /// after work done (the core may have more).
    fn step(
        &mut self,
        now: Instant,
        source: &dyn FrameSource,
        clock: &WallClock,
    ) -> Option<Instant> {
        match self.core.poll(now) {
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
                let outcome = self.encode(
                    source,
                    &damage,
                    force_keyframe,
                    quality,
                    (captured_at, clock),
                );
                self.core.handle(Instant::now(), Event::Encoded(outcome));
                Some(now)
            }
            Action::Refine => {
                let outcome = self.refine(now, clock);
                self.core.handle(Instant::now(), Event::Encoded(outcome));
                Some(now)
            }
            Action::WaitUntil(t) => Some(t),
            Action::Idle => None,
        }
    }

    fn encode(
        &mut self,
        source: &dyn FrameSource,
        damage: &Damage,
        force_keyframe: bool,
        quality: Quality,
        captured: (Instant, &WallClock),
    ) -> Outcome {
        let Some(frame) = source.frame() else {
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
        self.publish(result, (start, cpu_start), captured, size)
    }

    /// Refines the last picture encoded; its capture time is now (it shows
    /// nothing new, it shows it better).
    fn refine(&mut self, now: Instant, clock: &WallClock) -> Outcome {
        let Some(size) = self.last_size else {
            return Outcome::Unchanged;
        };
        let (start, cpu_start) = (Instant::now(), thread_cpu_time());
        self.out.clear();
        let result = self.encoder.refine(&mut self.out);
        let outcome = self.publish(result, (start, cpu_start), (now, clock), size);
        if matches!(outcome, Outcome::Published { .. }) {
            self.fanout.stats().refinements += 1;
        }
        outcome
    }

    /// Publishes what an encode started at `start` left in `out`.
    fn publish(
        &mut self,
        result: Result<Option<Encoded>, EncodeError>,
        (start, cpu_start): (Instant, Duration),
        (captured_at, clock): (Instant, &WallClock),
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
            captured_unix_ns: clock.unix_ns(captured_at),
            captured_at,
            width,
            height,
            fps: whole_fps(fps),
            encode_time: elapsed,
            layout: self.layout,
            // The one copy of the access unit, shared by every subscriber.
            access_unit: Bytes::copy_from_slice(&self.out),
        });
        Outcome::Published {
            keyframe: encoded.keyframe,
        }
    }
}

struct Driver {
    /// The whole picture's first, then the striped one's if configured.
    outputs: Vec<OutputState>,
    source: Box<dyn FrameSource>,
    settings: Arc<Mutex<EncoderSettings>>,
    rx: Receiver<Command>,
    bell: Doorbell,
    clock: WallClock,
    /// Pictures no output's subscriber watched.
    unwatched: u64,
}

impl Driver {
    fn run(&mut self) {
        let id = self.outputs[0].fanout.id();
        loop {
            let now = Instant::now();
            while let Ok(command) = self.rx.try_recv() {
                match command {
                    Command::Core(output, event) => {
                        let i = usize::from(output == Output::Stripes);
                        if let Some(o) = self.outputs.get_mut(i) {
                            o.core.handle(now, event);
                        }
                    }
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
                    if self.outputs.iter().all(|o| o.core.subscribers() == 0) {
                        self.unwatched += 1;
                    }
                    self.each_core(
                        now,
                        Event::Damage {
                            captured_at,
                            area: damage,
                        },
                    );
                    // Ask again at once: the source may have more, or a timer.
                    Some(now)
                }
                SourceEvent::Restarted { captured_at } => {
                    let area = Damage::full();
                    self.each_core(now, Event::Damage { captured_at, area });
                    self.each_core(now, Event::KeyframeRequested);
                    Some(now)
                }
                SourceEvent::Idle { wake_at } => wake_at,
                SourceEvent::Closed => {
                    let reason = self.source.closed_reason();
                    tracing::info!(scanout = id, "frame source closed: {reason}");
                    for o in &self.outputs {
                        o.fanout.close(reason);
                    }
                    return;
                }
            };
            let mut wake = source_wake;
            for o in &mut self.outputs {
                if let Some(t) = o.step(now, self.source.as_ref(), &self.clock) {
                    wake = Some(wake.map_or(t, |w| w.min(t)));
                }
            }
            self.count();
            if wake != Some(now) {
                self.bell.wait(wake);
            }
        }
    }

    fn each_core(&mut self, now: Instant, event: Event) {
        for o in &mut self.outputs {
            o.core.handle(now, event);
        }
    }

    /// The outputs' counters, together, into the stats they share.
    fn count(&self) {
        let lagged = self.outputs.iter().map(|o| o.core.counters().lagged).sum();
        let unwatched = self.unwatched;
        self.outputs[0]
            .fanout
            .count(CoreCounters { unwatched, lagged });
    }

    fn reconfigure(&mut self, now: Instant, settings: EncoderSettings) {
        for o in &mut self.outputs {
            if let Err(e) = o.encoder.reconfigure(settings) {
                tracing::warn!(scanout = o.fanout.id(), "reconfigure failed: {e}");
            }
            let interval = FramePacer::interval_at(o.encoder.settings().fps.as_f32());
            o.core.handle(now, Event::FrameInterval(interval));
        }
        let in_force = self.outputs[0].encoder.settings();
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = in_force;
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
    use crate::{Layout, Stream};
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
            stripe_height: None,
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

    #[tokio::test]
    async fn striped_subscribers_get_only_the_changed_stripes_beside_whole_frames() {
        let desktop = SyntheticDesktop::new(64, 96, 30, Motion::Static);
        let input = desktop.input();
        let config = PipelineConfig {
            scanout_id: 1,
            encoder: EncoderKind::OpenH264,
            settings: EncoderSettings::default(),
            refresh_after: None,
            stripe_height: Some(32),
        };
        let stream = Stream::Encoded(ScanoutPipeline::start(Box::new(desktop), config).unwrap());
        let mut striped = stream.subscribe_striped();
        let mut whole = stream.subscribe();
        assert_eq!(stream.subscribers(), 2);
        let rows = |f: &EncodedFrame| -> Vec<u16> {
            zerocast_encode::stripes::records(&f.access_unit)
                .map(|r| r.unwrap().0.y)
                .collect()
        };
        let first = next(&mut striped).await;
        assert_eq!(first.layout, Layout::Stripes);
        assert!(first.keyframe);
        assert_eq!(
            rows(&first),
            [0, 32, 64],
            "every stripe of the first picture"
        );
        let w = next(&mut whole).await;
        assert_eq!((w.layout, w.keyframe), (Layout::Whole, true));
        assert!(w.access_unit.starts_with(&[0, 0, 0, 1]));
        // The pointer moves to the top. This desktop reports all of its
        // picture as damage, as a page flip does; the striped encoder finds
        // that only the top stripe (pointer, frame counter) differs.
        input.send(1, InputEvent::MoveAbs { x: 0.5, y: 0.05 });
        let moved = next(&mut striped).await;
        assert!(!moved.keyframe);
        assert_eq!(rows(&moved), [0]);
        assert!(!next(&mut whole).await.keyframe);
        // A keyframe request reaches the striped output too: every stripe again.
        stream.request_keyframe();
        let again = loop {
            let f = next(&mut striped).await;
            if f.keyframe {
                break f;
            }
        };
        assert_eq!(rows(&again), [0, 32, 64]);
        drop(whole);
        assert_eq!(stream.subscribers(), 1);
    }
}
