//! The benchmark's `baseline-native`: the guest agent's x264 baseline
//! (zerocast-guest's `baseline.rs`) done by the host, on the same guest
//! frames: what that work costs outside the emulated guest, roughly what
//! a KVM guest would spend on it.
//!
//! Each picture the guest flushes on a scanout is converted to I420 from
//! guest memory as it lies, as the agent converts from its mapped dumb
//! buffer as it lies (neither copies the pixels first), encoded with the
//! agent's x264 configuration ([`zerocast_x264::Config::baseline`]: the
//! same preset, threads, rate control, and keyframes every
//! [`AGENT_KEYFRAME_EVERY`] or when a viewer needs one) and published as
//! the agent publishes its access units.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use zerocast_frame::{Doorbell, FrameSource, SourceEvent, I420};
use zerocast_pipeline::{PublishedFrame, Stream};
use zerocast_x264::X264;

/// The stream the host's baseline publishes: past every scanout id and the
/// agent's own ([`crate::vm::GUEST_STREAM`]).
pub const NATIVE_STREAM: u32 = crate::vm::GUEST_STREAM + 1;

/// The agent's keyframe interval, given to it on the guest's command line
/// by the benchmark so that both baselines use this one value.
pub const AGENT_KEYFRAME_EVERY: Duration = Duration::from_secs(10);

/// How often a thread with nothing to encode looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The x264 settings the agent gets from the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct AgentX264 {
    pub fps: u32,
    pub bitrate: u32,
}

/// The encoding thread; stopped by [`NativeBaseline::stop`] (or on drop).
pub struct NativeBaseline {
    stop: Arc<AtomicBool>,
    bell: Doorbell,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl NativeBaseline {
    /// Encodes `source`'s pictures into `stream`, which must be a published
    /// stream, on a thread of its own.
    pub fn start(
        source: Box<dyn FrameSource>,
        stream: Arc<Stream>,
        settings: AgentX264,
    ) -> anyhow::Result<NativeBaseline> {
        anyhow::ensure!(
            stream.as_published().is_some(),
            "the host's baseline publishes into a published stream, not {}",
            stream.describe()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let bell = Doorbell::new();
        let thread = std::thread::Builder::new()
            .name("native-x264".into())
            .spawn({
                let (stop, bell) = (stop.clone(), bell.clone());
                move || {
                    let result = encode_loop(source, &stream, settings, &stop, &bell);
                    if let Err(e) = &result {
                        tracing::error!("the host's x264 baseline stopped: {e:#}");
                    }
                    result
                }
            })
            .context("starting the host's x264 baseline thread")?;
        Ok(NativeBaseline {
            stop,
            bell,
            thread: Some(thread),
        })
    }

    /// Stops the thread and says whether it had failed.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.bell.ring();
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the host's x264 baseline thread panicked"),
        }
    }
}

impl Drop for NativeBaseline {
    fn drop(&mut self) {
        // Its error was logged where it happened.
        let _ = self.halt();
    }
}

fn encode_loop(
    mut source: Box<dyn FrameSource>,
    stream: &Stream,
    settings: AgentX264,
    stop: &AtomicBool,
    bell: &Doorbell,
) -> anyhow::Result<()> {
    let Some(published) = stream.as_published() else {
        anyhow::bail!("not a published stream: {}", stream.describe());
    };
    source.attach(bell.clone());
    let mut pic = I420::default();
    let mut encoder: Option<X264> = None;
    let mut keyframe_wanted = false;
    let mut next_keyframe = Instant::now() + AGENT_KEYFRAME_EVERY;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let captured_at = match source.poll(now) {
            SourceEvent::Changed { captured_at, .. } => captured_at,
            SourceEvent::Restarted { captured_at } => {
                keyframe_wanted = true;
                captured_at
            }
            SourceEvent::Idle { wake_at } => {
                let check = now + STOP_CHECK;
                bell.wait(Some(wake_at.map_or(check, |w| w.min(check))));
                continue;
            }
            SourceEvent::Closed => return Ok(()),
        };
        let Some(frame) = source.frame() else {
            continue;
        };
        pic.convert(&frame)
            .context("converting a guest picture to I420")?;
        let (width, height) = (pic.width(), pic.height());
        let enc = match &mut encoder {
            Some(enc) if enc.size() == (width, height) => enc,
            _ => encoder.insert(
                X264::new(width, height, settings.fps, settings.bitrate, 0)
                    .context("opening x264 as the agent does")?,
            ),
        };
        let periodic = now >= next_keyframe;
        if periodic {
            next_keyframe = now + AGENT_KEYFRAME_EVERY;
        }
        let force = std::mem::take(&mut keyframe_wanted) || periodic || published.keyframe_wanted();
        let Some(au) = enc.encode(&pic, force, None, None)? else {
            continue;
        };
        keyframe_wanted = published.publish(PublishedFrame {
            access_unit: Bytes::copy_from_slice(au.data),
            keyframe: au.keyframe,
            captured_unix_ns: unix_ns(captured_at),
            width,
            height,
            fps: settings.fps,
        });
    }
    Ok(())
}

/// `at`, a moment in the recent past, on the wall clock the page's
/// latency is measured against.
fn unix_ns(at: Instant) -> i64 {
    let wall = SystemTime::now()
        .checked_sub(at.elapsed())
        .unwrap_or(UNIX_EPOCH);
    let ns = wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    i64::try_from(ns).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_pipeline::PublishedStream;
    use zerocast_synthetic::{Motion, SyntheticDesktop};

    #[tokio::test]
    async fn encodes_a_sources_pictures_into_the_stream() {
        let source = SyntheticDesktop::new(320, 240, 30, Motion::Animated);
        let stream = Arc::new(Stream::Published(PublishedStream::new(17, "test")));
        let mut sub = stream.subscribe();
        let settings = AgentX264 {
            fps: 30,
            bitrate: 1_000_000,
        };
        let baseline = NativeBaseline::start(Box::new(source), stream.clone(), settings).unwrap();
        let wait = Duration::from_secs(10);
        let first = tokio::time::timeout(wait, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert!(first.keyframe, "a new subscriber starts at a keyframe");
        assert_eq!((first.width, first.height), (320, 240));
        // H.264 Annex B, as the agent's x264 writes it.
        assert!(first.access_unit.starts_with(&[0, 0, 0, 1]));
        for _ in 0..4 {
            let next = tokio::time::timeout(wait, sub.next()).await.unwrap();
            assert!(next.is_some(), "the stream goes on");
        }
        baseline.stop().unwrap();
        assert!(stream.stats().frames >= 5, "{:?}", stream.stats());
    }

    #[test]
    fn recent_instants_on_the_wall_clock() {
        let now_ns = unix_ns(Instant::now());
        let earlier = unix_ns(Instant::now() - Duration::from_millis(500));
        assert!((now_ns - earlier - 500_000_000).abs() < 50_000_000);
    }
}
