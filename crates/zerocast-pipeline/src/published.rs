//! [`PublishedStream`]: a stream encoded elsewhere (a guest agent's own
//! encoder) and handed in frame by frame; subscribers see it like a scanout.

use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zerocast_frame::Doorbell;

use crate::core::{Event, Outcome, PipelineCore};
use crate::fanout::Fanout;
use crate::inbox::{Command, Inbox};
use crate::{EncodedFrame, Layout};

/// One access unit of a published stream, as its producer sent it.
#[derive(Debug, Clone)]
pub struct PublishedFrame {
    pub access_unit: Bytes,
    pub keyframe: bool,
    /// When it arrived, in nanoseconds since the Unix epoch (the producer's
    /// clock is not ours).
    pub captured_unix_ns: i64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

#[derive(Debug)]
pub struct PublishedStream {
    pub(crate) fanout: Fanout,
    pub(crate) describe: String,
    /// The keyframe rules, run when a frame comes in (no thread of its own).
    core: Mutex<(PipelineCore, Receiver<Command>)>,
}

impl PublishedStream {
    pub fn new(id: u32, describe: impl Into<String>) -> Self {
        Self::with_bell(id, describe, Doorbell::new())
    }

    /// A stream whose `bell` rings when its subscribers change (one joins,
    /// leaves or falls behind): a producer that waits on it learns when
    /// to start, stop, or make a keyframe without waiting for a frame.
    pub fn with_bell(id: u32, describe: impl Into<String>, bell: Doorbell) -> Self {
        let (inbox, rx) = Inbox::new(bell);
        PublishedStream {
            fanout: Fanout::new(id, inbox),
            describe: describe.into(),
            core: Mutex::new((PipelineCore::new(Duration::ZERO), rx)),
        }
    }

    /// Whether the producer's next frame should be a keyframe, after what
    /// the subscribers did since the last frame.
    pub fn keyframe_wanted(&self) -> bool {
        let now = Instant::now();
        let mut guard = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        let (core, rx) = &mut *guard;
        catch_up(core, rx, now);
        core.keyframe_due(now)
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.fanout.subscribers()
    }

    /// Hands one access unit to the subscribers. Returns true when the
    /// producer should make its next frame a keyframe (a new or lagging
    /// subscriber, a decoder reset).
    pub fn publish(&self, frame: PublishedFrame) -> bool {
        let now = Instant::now();
        let mut guard = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        let (core, rx) = &mut *guard;
        catch_up(core, rx, now);
        let keyframe = frame.keyframe;
        self.fanout.publish(EncodedFrame {
            seq: 0,
            keyframe,
            captured_unix_ns: frame.captured_unix_ns,
            captured_at: now,
            width: frame.width,
            height: frame.height,
            fps: frame.fps,
            encode_time: Duration::ZERO,
            layout: Layout::Whole,
            access_unit: frame.access_unit,
        });
        core.handle(now, Event::Encoded(Outcome::Published { keyframe }));
        self.fanout.count(core.counters());
        core.keyframe_due(now)
    }

    /// Ends the stream for good (its VM stopped): subscribers get what was
    /// sent, then the end with `reason`.
    pub fn end(&self, reason: &'static str) {
        self.fanout.close(reason);
    }
}

/// Hands the core what the subscribers did since it was last asked.
fn catch_up(core: &mut PipelineCore, rx: &Receiver<Command>, now: Instant) {
    for command in rx.try_iter() {
        if let Command::Core(_, event) = command {
            core.handle(now, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(keyframe: bool) -> PublishedFrame {
        PublishedFrame {
            access_unit: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
            keyframe,
            captured_unix_ns: 1,
            width: 64,
            height: 32,
            fps: 30,
        }
    }

    #[tokio::test]
    async fn subscribers_start_at_a_keyframe_and_ask_the_producer_for_one() {
        let stream = PublishedStream::new(16, "agent");
        assert!(!stream.publish(frame(false)), "nobody watches");
        let mut sub = stream.fanout.subscribe();
        assert!(
            stream.publish(frame(false)),
            "a new subscriber needs a keyframe"
        );
        assert!(!stream.publish(frame(true)));
        let got = sub.next().await.unwrap();
        assert!(got.keyframe, "the delta frame before it was skipped");
        assert_eq!((got.seq, got.width, got.fps), (3, 64, 30));
        assert_eq!(stream.fanout.stats().frames, 3);
    }

    #[tokio::test]
    async fn a_producer_is_rung_when_subscribers_change_and_told_to_make_a_keyframe() {
        let bell = Doorbell::new();
        let stream = PublishedStream::with_bell(20, "relay", bell.clone());
        assert!(!stream.keyframe_wanted());
        let sub = stream.fanout.subscribe();
        let past = Instant::now();
        assert!(bell.wait(Some(past)), "a join rings");
        assert_eq!(stream.subscribers(), 1);
        assert!(stream.keyframe_wanted(), "without waiting for a frame");
        assert!(!stream.publish(frame(true)));
        drop(sub);
        assert!(bell.wait(Some(past)), "a leave rings");
        assert_eq!(stream.subscribers(), 0);
        assert!(!stream.keyframe_wanted());
    }

    #[tokio::test]
    async fn an_ended_stream_delivers_what_was_sent_then_says_why() {
        let stream = PublishedStream::new(16, "agent");
        let mut sub = stream.fanout.subscribe();
        stream.publish(frame(true));
        stream.end("the VM stopped");
        assert!(sub.next().await.is_some(), "sent before the end");
        assert!(sub.next().await.is_none());
        assert_eq!(sub.end_reason(), "the VM stopped");
        let mut late = stream.fanout.subscribe();
        assert!(
            late.next().await.is_none(),
            "a late subscriber ends at once"
        );
        // Counted until they let go, so a host can wait for them.
        assert_eq!(stream.fanout.subscribers(), 2);
        drop((sub, late));
        assert_eq!(stream.fanout.subscribers(), 0);
    }
}
