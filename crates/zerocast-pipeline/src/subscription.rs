//! A subscriber's view of a stream.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::{self, error::RecvError};

use crate::core::{Event, SubscriberId};
use crate::inbox::Inbox;
use crate::EncodedFrame;

/// A subscriber whose next frame is older than this (about 2 s of video,
/// whatever the bitrate) drops its backlog and resumes at a fresh keyframe:
/// a slow link catches up at once instead of showing the past.
pub const MAX_BEHIND: Duration = Duration::from_secs(2);

/// A subscriber that keeps falling behind asks for a keyframe at most this often.
const LAG_REPORT_SPACING: Duration = Duration::from_secs(1);

/// Frames of one stream for one subscriber. Starts at a keyframe; when the
/// subscriber falls so far behind that frames were lost, or more than
/// [`MAX_BEHIND`], it skips to the next keyframe (and the pipeline makes
/// one) rather than hand a decoder a broken chain or a stale picture. The
/// encoder never waits for a subscriber.
#[derive(Debug)]
pub struct Subscription {
    id: SubscriberId,
    stream_id: u32,
    rx: broadcast::Receiver<Arc<EncodedFrame>>,
    inbox: Inbox,
    gate: KeyframeGate,
    last_lag_report: Option<Instant>,
    /// Frames dropped for being too old, not yet told to the pipeline.
    unreported: u64,
    /// Why the stream ended, once it has.
    end: Arc<OnceLock<&'static str>>,
}

impl Subscription {
    /// `rx` must exist before the pipeline hears of the subscriber, so the
    /// keyframe that answers it cannot pass it by.
    pub(crate) fn new(
        id: SubscriberId,
        stream_id: u32,
        rx: broadcast::Receiver<Arc<EncodedFrame>>,
        inbox: Inbox,
        end: Arc<OnceLock<&'static str>>,
    ) -> Self {
        inbox.event(Event::Joined(id));
        Subscription {
            id,
            stream_id,
            rx,
            inbox,
            gate: KeyframeGate::default(),
            last_lag_report: None,
            unreported: 0,
            end,
        }
    }

    /// Why the stream ended (e.g. "the VM stopped"), once
    /// [`Subscription::next`] has returned `None`.
    pub fn end_reason(&self) -> &'static str {
        self.end.get().copied().unwrap_or("the stream ended")
    }

    /// The next frame to send, or `None` when the stream has stopped.
    pub async fn next(&mut self) -> Option<Arc<EncodedFrame>> {
        loop {
            match self.rx.recv().await {
                Ok(frame) => match self.gate.offer(frame.keyframe, frame.captured_at.elapsed()) {
                    Gate::Skip => {}
                    Gate::Behind => {
                        self.unreported += 1;
                        self.report_lag(0);
                    }
                    Gate::Pass => return Some(frame),
                    Gate::Resume => {
                        self.inbox.event(Event::Resumed(self.id));
                        return Some(frame);
                    }
                },
                Err(RecvError::Lagged(frames)) => {
                    tracing::debug!(
                        "subscriber fell {frames} frames behind; skipping to a keyframe"
                    );
                    self.gate.lost();
                    self.report_lag(frames);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Tells the pipeline this subscriber needs a keyframe, at most once per
    /// [`LAG_REPORT_SPACING`] unless frames were lost (those are always counted).
    fn report_lag(&mut self, frames: u64) {
        let now = Instant::now();
        let recent = self
            .last_lag_report
            .is_some_and(|t| now.duration_since(t) < LAG_REPORT_SPACING);
        if recent && frames == 0 {
            return;
        }
        self.last_lag_report = Some(now);
        let frames = frames + std::mem::take(&mut self.unreported);
        self.inbox.event(Event::Lagged {
            id: self.id,
            frames,
        });
    }

    /// The id of the stream subscribed to.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Asks the stream for a keyframe (a viewer's decoder reset).
    pub fn request_keyframe(&self) {
        self.inbox.event(Event::KeyframeRequested);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.inbox.event(Event::Left(self.id));
    }
}

/// What to do with a frame that reached a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Pass,
    /// The first keyframe after a gap: pass it, and tell the pipeline.
    Resume,
    /// Not decodable without what was lost.
    Skip,
    /// Too old to show: dropped, and the subscriber waits for a fresh keyframe.
    Behind,
}

/// Whether a subscriber's decoder has a usable chain of pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyframeGate {
    waiting: bool,
}

impl Default for KeyframeGate {
    /// A new subscriber has nothing to decode from.
    fn default() -> Self {
        KeyframeGate { waiting: true }
    }
}

impl KeyframeGate {
    /// `age`: how long ago the frame's picture was complete.
    fn offer(&mut self, keyframe: bool, age: Duration) -> Gate {
        if age > MAX_BEHIND {
            self.waiting = true;
            return Gate::Behind;
        }
        match (self.waiting, keyframe) {
            (false, _) => Gate::Pass,
            (true, true) => {
                self.waiting = false;
                Gate::Resume
            }
            (true, false) => Gate::Skip,
        }
    }

    fn lost(&mut self) {
        self.waiting = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_on_a_keyframe_and_closes_on_loss() {
        let fresh = Duration::from_millis(20);
        let mut g = KeyframeGate::default();
        assert_eq!(g.offer(false, fresh), Gate::Skip);
        assert_eq!(g.offer(true, fresh), Gate::Resume);
        assert_eq!(g.offer(false, fresh), Gate::Pass);
        assert_eq!(g.offer(true, fresh), Gate::Pass);
        g.lost();
        assert_eq!(g.offer(false, fresh), Gate::Skip);
        assert_eq!(g.offer(true, fresh), Gate::Resume);
    }

    #[test]
    fn a_subscriber_more_than_two_seconds_behind_skips_to_a_fresh_keyframe() {
        let fresh = Duration::from_millis(20);
        let stale = MAX_BEHIND + Duration::from_millis(1);
        let mut g = KeyframeGate::default();
        assert_eq!(g.offer(true, fresh), Gate::Resume);
        assert_eq!(g.offer(false, stale), Gate::Behind);
        // Even an old keyframe is not shown: only a fresh one resumes.
        assert_eq!(g.offer(true, stale), Gate::Behind);
        assert_eq!(g.offer(false, fresh), Gate::Skip);
        assert_eq!(g.offer(true, fresh), Gate::Resume);
        assert_eq!(
            g.offer(false, MAX_BEHIND),
            Gate::Pass,
            "2 s is still in time"
        );
    }
}
