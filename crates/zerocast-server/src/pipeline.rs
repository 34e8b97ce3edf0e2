//! One scanout's pipeline: a thread that waits on the frame source, encodes
//! what changed while someone watches, and publishes each access unit once,
//! already framed as an HXFR FRAME_RESPONSE, for every subscriber to share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast;
use zerocast_encode::{new_encoder, EncoderKind, EncoderSettings, VideoEncoder};
use zerocast_frame::{FrameSource, SourceEvent};
use zerocast_hxfr::{encode_frame_response, FrameResponse, HEADER_LEN};

use crate::stats::{thread_cpu_time, PipelineStats};
use crate::subscription::Subscription;

/// How long the pipeline waits on its source before it looks at requests
/// again; bounds how late a still screen answers a new viewer.
const CONTROL_TICK: Duration = Duration::from_millis(10);
/// Encoded frames kept for subscribers; one that falls further behind skips
/// to the next keyframe.
const BACKLOG: usize = 32;

/// One encoded access unit, shared by every subscriber.
#[derive(Debug)]
pub struct EncodedFrame {
    /// Position in this pipeline's output, from 1.
    pub seq: u64,
    pub keyframe: bool,
    /// When the picture was complete, in nanoseconds since the Unix epoch.
    pub captured_unix_ns: i64,
    pub captured_at: Instant,
    pub width: u32,
    pub height: u32,
    /// Time spent converting and encoding.
    pub encode_time: Duration,
    /// The whole HXFR FRAME_RESPONSE (session id = scanout id).
    pub hxfr: Bytes,
}

impl EncodedFrame {
    /// Offset of the access unit in the HXFR message: header, fixed part, entry size.
    const AU_OFFSET: usize = HEADER_LEN + FrameResponse::FIXED_LEN as usize + 4;

    /// The Annex B access unit.
    pub fn access_unit(&self) -> &[u8] {
        &self.hxfr[Self::AU_OFFSET..]
    }
}

/// What a pipeline is built with.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub scanout_id: u32,
    pub encoder: EncoderKind,
    pub settings: EncoderSettings,
}

/// How long a published keyframe counts as on its way to the subscribers
/// still waiting for one, before they get another.
const KEYFRAME_IN_FLIGHT: Duration = Duration::from_millis(100);

/// Requests from subscribers to the pipeline thread.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Explicit keyframe requests (KEYFRAME_REQ, a viewer's decoder reset);
    /// each one is answered by a keyframe encoded after it was read.
    keyframe_requests: AtomicU64,
    /// Subscribers that have no usable picture yet (new, or fell behind).
    /// Each flag is cleared by its subscription when a keyframe reaches it,
    /// so a keyframe that happened to be on its way is not encoded twice.
    waiting: Mutex<Vec<Weak<AtomicBool>>>,
    settings: Mutex<Option<EncoderSettings>>,
    current: Mutex<EncoderSettings>,
    stop: AtomicBool,
    /// Frames subscribers lost by falling behind (they skipped to a keyframe).
    pub(crate) lagged: AtomicU64,
}

impl Control {
    pub(crate) fn request_keyframe(&self) {
        self.keyframe_requests.fetch_add(1, Ordering::AcqRel);
    }

    /// Registers a subscription that waits for a keyframe.
    pub(crate) fn wait_for_keyframe(&self, flag: &Arc<AtomicBool>) {
        flag.store(true, Ordering::Release);
        let mut waiting = lock(&self.waiting);
        if !waiting.iter().any(|w| w.as_ptr() == Arc::as_ptr(flag)) {
            waiting.push(Arc::downgrade(flag));
        }
    }

    /// True while some live subscription still waits for a keyframe.
    fn anyone_waiting(&self) -> bool {
        let mut waiting = lock(&self.waiting);
        waiting.retain(|w| w.upgrade().is_some_and(|f| f.load(Ordering::Acquire)));
        !waiting.is_empty()
    }
}

/// Handle to a running scanout pipeline. Dropping it stops the thread.
pub struct ScanoutPipeline {
    scanout_id: u32,
    tx: broadcast::Sender<Arc<EncodedFrame>>,
    control: Arc<Control>,
    stats: Arc<Mutex<PipelineStats>>,
    describe: String,
    thread: Option<JoinHandle<()>>,
    /// For a stream encoded elsewhere (a guest agent): where its frames go in.
    published: Option<Mutex<Output>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ScanoutPipeline {
    /// Starts the pipeline thread. Fails when the encoder cannot be built.
    pub fn start(
        source: Box<dyn FrameSource>,
        config: PipelineConfig,
    ) -> Result<Self, zerocast_encode::EncodeError> {
        let encoder = new_encoder(config.encoder, config.settings)?;
        let describe = format!("{} -> {}", source.describe(), encoder.describe());
        let (tx, _) = broadcast::channel(BACKLOG);
        let control = Arc::new(Control::default());
        *lock(&control.current) = encoder.settings();
        let stats = Arc::new(Mutex::new(PipelineStats::default()));
        let mut worker = Worker {
            source,
            encoder,
            output: Output::new(
                config.scanout_id,
                tx.clone(),
                control.clone(),
                stats.clone(),
            ),
            out: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("scanout-{}", config.scanout_id))
            .spawn(move || worker.run())
            .map_err(|e| zerocast_encode::EncodeError::Backend {
                encoder: "pipeline",
                message: format!("cannot start the encoder thread: {e}"),
            })?;
        Ok(ScanoutPipeline {
            scanout_id: config.scanout_id,
            tx,
            control,
            stats,
            describe,
            thread: Some(thread),
            published: None,
        })
    }

    /// A stream whose frames are encoded elsewhere and handed in with
    /// [`ScanoutPipeline::publish`] (a guest agent's stream). Subscribers see
    /// it like any scanout.
    pub fn published(scanout_id: u32, describe: impl Into<String>) -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        let control = Arc::new(Control::default());
        let stats = Arc::new(Mutex::new(PipelineStats::default()));
        let output = Output::new(scanout_id, tx.clone(), control.clone(), stats.clone());
        ScanoutPipeline {
            scanout_id,
            tx,
            control,
            stats,
            describe: describe.into(),
            thread: None,
            published: Some(Mutex::new(output)),
        }
    }

    /// Hands in one access unit of a published stream. Returns true when the
    /// publisher should make its next frame a keyframe (a new or lagging
    /// subscriber), false too when this is not a published stream.
    pub fn publish(
        &self,
        access_unit: &[u8],
        keyframe: bool,
        captured_unix_ns: i64,
        size: (u32, u32),
    ) -> bool {
        let Some(output) = &self.published else {
            return false;
        };
        let mut output = lock(output);
        let (_, requests) = output.keyframe_due();
        let frame = Published {
            access_unit,
            keyframe,
            captured_at: Instant::now(),
            captured_unix_ns,
            size,
            encode_time: Duration::ZERO,
        };
        output.publish(frame, requests);
        output.keyframe_due().0
    }

    /// True for a stream fed by [`ScanoutPipeline::publish`].
    pub fn is_published(&self) -> bool {
        self.published.is_some()
    }

    pub fn scanout_id(&self) -> u32 {
        self.scanout_id
    }

    /// A new subscriber: its first frame is a keyframe, produced at once
    /// even if the screen is still.
    pub fn subscribe(&self) -> Subscription {
        // The receiver exists before the request does, so the keyframe that
        // answers it cannot pass it by.
        let rx = self.tx.subscribe();
        Subscription::new(rx, self.control.clone())
    }

    pub fn request_keyframe(&self) {
        self.control.request_keyframe();
    }

    /// Changes bitrate / frame rate / keyframe interval of the shared encoder.
    pub fn reconfigure(&self, settings: EncoderSettings) {
        *lock(&self.control.settings) = Some(settings);
    }

    /// The settings in force, or the ones about to be.
    pub fn settings(&self) -> EncoderSettings {
        lock(&self.control.settings).unwrap_or(*lock(&self.control.current))
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn stats(&self) -> PipelineStats {
        let mut s = lock(&self.stats).clone();
        s.lagged = self.control.lagged.load(Ordering::Relaxed);
        s
    }

    /// `source -> encoder`, for logs and the viewer.
    pub fn describe(&self) -> &str {
        &self.describe
    }
}

impl Drop for ScanoutPipeline {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    source: Box<dyn FrameSource>,
    encoder: Box<dyn VideoEncoder>,
    output: Output,
    /// Reused for every access unit.
    out: Vec<u8>,
}

/// One access unit on its way to the subscribers.
struct Published<'a> {
    access_unit: &'a [u8],
    keyframe: bool,
    captured_at: Instant,
    captured_unix_ns: i64,
    size: (u32, u32),
    encode_time: Duration,
}

/// The publishing half of a pipeline: frames into the broadcast, with the
/// keyframe bookkeeping and the counters. Shared by encoded and published streams.
struct Output {
    scanout_id: u32,
    tx: broadcast::Sender<Arc<EncodedFrame>>,
    control: Arc<Control>,
    stats: Arc<Mutex<PipelineStats>>,
    seq: u64,
    /// Explicit keyframe requests answered by a published keyframe.
    keyframes_served: u64,
    last_keyframe: Option<Instant>,
}

impl Output {
    fn new(
        scanout_id: u32,
        tx: broadcast::Sender<Arc<EncodedFrame>>,
        control: Arc<Control>,
        stats: Arc<Mutex<PipelineStats>>,
    ) -> Self {
        Output {
            scanout_id,
            tx,
            control,
            stats,
            seq: 0,
            keyframes_served: 0,
            last_keyframe: None,
        }
    }

    /// Whether the next frame must be a keyframe, and the request count read
    /// for it (see [`Control::keyframe_requests`]).
    fn keyframe_due(&self) -> (bool, u64) {
        let requests = self.control.keyframe_requests.load(Ordering::Acquire);
        let in_flight = self
            .last_keyframe
            .is_some_and(|t| t.elapsed() < KEYFRAME_IN_FLIGHT);
        let due = requests > self.keyframes_served || (!in_flight && self.control.anyone_waiting());
        (due, requests)
    }

    fn publish(&mut self, f: Published<'_>, requests: u64) {
        self.seq += 1;
        let mut msg = BytesMut::with_capacity(EncodedFrame::AU_OFFSET + f.access_unit.len());
        encode_frame_response(
            &mut msg,
            self.scanout_id as u16,
            f.captured_unix_ns,
            f.captured_unix_ns,
            f.keyframe,
            f.access_unit,
        );
        {
            let mut s = lock(&self.stats);
            s.frames += 1;
            s.keyframes += u64::from(f.keyframe);
            s.bytes += f.access_unit.len() as u64;
        }
        if f.keyframe {
            self.keyframes_served = requests;
            self.last_keyframe = Some(Instant::now());
        }
        // Fails only when the last subscriber left meanwhile: nothing to do.
        let _ = self.tx.send(Arc::new(EncodedFrame {
            seq: self.seq,
            keyframe: f.keyframe,
            captured_unix_ns: f.captured_unix_ns,
            captured_at: f.captured_at,
            width: f.size.0,
            height: f.size.1,
            encode_time: f.encode_time,
            hxfr: msg.freeze(),
        }));
    }
}

impl Worker {
    fn run(&mut self) {
        let mut dirty = false;
        let mut captured = Instant::now();
        // Maps the source's Instants onto wall-clock time for viewers.
        let (epoch_instant, epoch_wall) = (Instant::now(), SystemTime::now());
        let id = self.output.scanout_id;
        // A guest may flip faster than the stream's frame rate: encode about
        // that often, always the latest picture (the rest coalesce). The slot
        // is a quarter shorter than a frame so that a source paced at the
        // same rate, with jitter, never loses a frame to it.
        let mut last_encode: Option<Instant> = None;
        while !self.output.control.stop.load(Ordering::Acquire) {
            let fps = self.encoder.settings().fps.as_f32().max(1.0);
            let interval = Duration::from_secs(1).div_f32(fps) * 3 / 4;
            let next_slot = last_encode.map_or_else(Instant::now, |t| t + interval);
            let mut deadline = Instant::now() + CONTROL_TICK;
            if dirty {
                deadline = deadline.min(next_slot.max(Instant::now()));
            }
            match self.source.wait(deadline) {
                SourceEvent::Changed { captured_at } => {
                    dirty = true;
                    captured = captured_at;
                }
                SourceEvent::Idle => {}
                SourceEvent::Closed => {
                    tracing::info!(scanout = id, "frame source closed");
                    break;
                }
            }
            if let Some(s) = lock(&self.output.control.settings).take() {
                if let Err(e) = self.encoder.reconfigure(s) {
                    tracing::warn!(scanout = id, "reconfigure failed: {e}");
                }
                *lock(&self.output.control.current) = self.encoder.settings();
            }
            if self.output.tx.receiver_count() == 0 {
                // Nobody watches: encode nothing. A new subscriber asks for a keyframe.
                if dirty {
                    lock(&self.output.stats).unwatched += 1;
                }
                dirty = false;
                continue;
            }
            let (keyframe, requests) = self.output.keyframe_due();
            if !keyframe && (!dirty || Instant::now() < next_slot) {
                continue;
            }
            last_encode = Some(Instant::now());
            dirty = false;
            let wall = epoch_wall + captured.saturating_duration_since(epoch_instant);
            self.encode(keyframe, requests, captured, wall);
        }
    }

    fn encode(
        &mut self,
        force_keyframe: bool,
        requests: u64,
        captured_at: Instant,
        wall: SystemTime,
    ) {
        // No picture yet (a guest that has not set a scanout): requests stay
        // pending until there is one.
        let Some(frame) = self.source.frame() else {
            return;
        };
        let (start, cpu_start) = (Instant::now(), thread_cpu_time());
        self.out.clear();
        let result = self.encoder.encode(&frame, force_keyframe, &mut self.out);
        let (elapsed, cpu) = (start.elapsed(), thread_cpu_time().saturating_sub(cpu_start));
        let size = (frame.width() & !1, frame.height() & !1);
        let encoded = match result {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(scanout = self.output.scanout_id, "encode failed: {e}");
                lock(&self.output.stats).encode_errors += 1;
                return;
            }
        };
        {
            let mut s = lock(&self.output.stats);
            s.encode.push(elapsed);
            s.encode_cpu.push(cpu);
        }
        let captured_unix_ns = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let frame = Published {
            access_unit: &self.out,
            keyframe: encoded.keyframe,
            captured_at,
            captured_unix_ns,
            size,
            encode_time: elapsed,
        };
        self.output.publish(frame, requests);
    }
}
