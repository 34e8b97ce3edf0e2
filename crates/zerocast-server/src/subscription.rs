//! A subscriber's view of a scanout pipeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::pipeline::{Control, EncodedFrame};

/// Frames of one scanout for one subscriber. Starts at a keyframe; when the
/// subscriber falls so far behind that frames were lost, it skips to the next
/// keyframe (and asks for one) rather than hand a decoder a broken chain.
/// The encoder never waits for a subscriber.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<EncodedFrame>>,
    control: Arc<Control>,
    /// Set while this subscriber has no usable picture; the pipeline
    /// encodes a keyframe while any subscriber's flag is up.
    waiting_for_keyframe: Arc<AtomicBool>,
    skipped: u64,
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<Arc<EncodedFrame>>, control: Arc<Control>) -> Self {
        let waiting_for_keyframe = Arc::new(AtomicBool::new(true));
        control.wait_for_keyframe(&waiting_for_keyframe);
        Subscription {
            rx,
            control,
            waiting_for_keyframe,
            skipped: 0,
        }
    }

    /// The next frame to send, or `None` when the pipeline has stopped.
    pub async fn next(&mut self) -> Option<Arc<EncodedFrame>> {
        loop {
            match self.rx.recv().await {
                Ok(frame) => {
                    if self.waiting_for_keyframe.load(Ordering::Acquire) {
                        if !frame.keyframe {
                            self.skipped += 1;
                            continue;
                        }
                        self.waiting_for_keyframe.store(false, Ordering::Release);
                    }
                    return Some(frame);
                }
                Err(RecvError::Lagged(n)) => {
                    self.skipped += n;
                    self.control.lagged.fetch_add(n, Ordering::Relaxed);
                    tracing::debug!("subscriber fell {n} frames behind; skipping to a keyframe");
                    self.control.wait_for_keyframe(&self.waiting_for_keyframe);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Frames this subscriber did not get (fell behind, or waited for a keyframe).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Asks the pipeline for a keyframe (a viewer's decoder reset).
    pub fn request_keyframe(&self) {
        self.control.request_keyframe();
    }
}
