//! A subscriber's view of a stream.

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::core::{Event, SubscriberId};
use crate::inbox::Inbox;
use crate::EncodedFrame;

/// Frames of one stream for one subscriber. Starts at a keyframe; when the
/// subscriber falls so far behind that frames were lost, it skips to the
/// next keyframe (and the pipeline makes one) rather than hand a decoder a
/// broken chain. The encoder never waits for a subscriber.
#[derive(Debug)]
pub struct Subscription {
    id: SubscriberId,
    stream_id: u32,
    rx: broadcast::Receiver<Arc<EncodedFrame>>,
    inbox: Inbox,
    gate: KeyframeGate,
}

impl Subscription {
    /// `rx` must exist before the pipeline hears of the subscriber, so the
    /// keyframe that answers it cannot pass it by.
    pub(crate) fn new(
        id: SubscriberId,
        stream_id: u32,
        rx: broadcast::Receiver<Arc<EncodedFrame>>,
        inbox: Inbox,
    ) -> Self {
        inbox.event(Event::Joined(id));
        Subscription {
            id,
            stream_id,
            rx,
            inbox,
            gate: KeyframeGate::default(),
        }
    }

    /// The next frame to send, or `None` when the stream has stopped.
    pub async fn next(&mut self) -> Option<Arc<EncodedFrame>> {
        loop {
            match self.rx.recv().await {
                Ok(frame) => match self.gate.offer(frame.keyframe) {
                    Gate::Skip => {}
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
                    self.inbox.event(Event::Lagged {
                        id: self.id,
                        frames,
                    });
                }
                Err(RecvError::Closed) => return None,
            }
        }
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
    fn offer(&mut self, keyframe: bool) -> Gate {
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
        let mut g = KeyframeGate::default();
        assert_eq!(g.offer(false), Gate::Skip);
        assert_eq!(g.offer(true), Gate::Resume);
        assert_eq!(g.offer(false), Gate::Pass);
        assert_eq!(g.offer(true), Gate::Pass);
        g.lost();
        assert_eq!(g.offer(false), Gate::Skip);
        assert_eq!(g.offer(true), Gate::Resume);
    }
}
