//! What goes out to one viewer: [`Backlog`] decides, sans I/O, whether the
//! next video frame still fits the viewer's budget of unsent bytes (about
//! 2 s of video); [`Outbox`] is the task that writes to the viewer's socket,
//! so that a slow link fills its own queue and never stalls the viewer's
//! reading of the stream. Past the budget a viewer skips to a fresh
//! keyframe instead of being dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A send that makes no progress for this long means the viewer is gone.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The least a viewer's backlog budget is: room for a large keyframe.
const MIN_BUDGET: usize = 2 << 20;
/// A skipping viewer asks for a keyframe at most this often.
const ASK_SPACING: Duration = Duration::from_secs(1);
/// Messages queued at most (control messages; video is bounded by bytes).
const QUEUE: usize = 1024;

/// What to do with a video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Send,
    /// Not sent: the viewer is behind and waits for a keyframe that fits.
    Skip,
    /// Not sent, and a keyframe should be asked for.
    SkipAndAsk,
}

/// One viewer's budget of bytes queued but not yet written.
#[derive(Debug)]
pub(crate) struct Backlog {
    budget: usize,
    skipping: bool,
    last_ask: Option<Instant>,
}

impl Backlog {
    /// About 2 s of video at `bitrate_bps`, and never less than room for a
    /// large keyframe.
    pub(crate) fn for_bitrate(bitrate_bps: u32) -> Self {
        let two_seconds = usize::try_from(u64::from(bitrate_bps) / 4).unwrap_or(usize::MAX);
        Backlog {
            budget: two_seconds.max(MIN_BUDGET),
            skipping: false,
            last_ask: None,
        }
    }

    /// A frame of `size` bytes, with `queued` bytes still unsent.
    pub(crate) fn offer(
        &mut self,
        now: Instant,
        keyframe: bool,
        size: usize,
        queued: usize,
    ) -> Decision {
        // An empty queue takes anything: otherwise an oversized keyframe
        // would never go out and the viewer never resume.
        let fits = queued == 0 || queued.saturating_add(size) <= self.budget;
        if fits && (!self.skipping || keyframe) {
            self.skipping = false;
            return Decision::Send;
        }
        self.skipping = true;
        let ask = self
            .last_ask
            .is_none_or(|t| now.saturating_duration_since(t) >= ASK_SPACING);
        if ask {
            self.last_ask = Some(now);
            Decision::SkipAndAsk
        } else {
            Decision::Skip
        }
    }
}

/// The writer task of one viewer's socket and the bytes it has not written yet.
pub(crate) struct Outbox {
    tx: mpsc::Sender<Message>,
    queued: Arc<AtomicUsize>,
    writer: JoinHandle<()>,
}

fn size(m: &Message) -> usize {
    match m {
        Message::Binary(b) => b.len(),
        Message::Text(t) => t.len(),
        _ => 0,
    }
}

impl Outbox {
    pub(crate) fn start(mut sink: SplitSink<WebSocket, Message>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let unsent = queued.clone();
        let writer = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let n = size(&m);
                let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(m)).await;
                unsent.fetch_sub(n, Ordering::AcqRel);
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!("viewer gone: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::info!("viewer stalled: a send made no progress for {SEND_TIMEOUT:?}; letting it go");
                        return;
                    }
                }
            }
            let _ = sink.close().await;
        });
        Outbox { tx, queued, writer }
    }

    /// Queues `m`; false once the viewer is gone (or its queue is full of
    /// messages it does not read).
    pub(crate) fn push(&self, m: Message) -> bool {
        let n = size(&m);
        self.queued.fetch_add(n, Ordering::AcqRel);
        if self.tx.try_send(m).is_ok() {
            return true;
        }
        self.queued.fetch_sub(n, Ordering::AcqRel);
        false
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Sends a close frame with `reason` after what is queued, and waits
    /// (at most [`SEND_TIMEOUT`] per message) until it is written.
    pub(crate) async fn close(self, code: u16, reason: &str) {
        tracing::info!("closing viewer: {reason}");
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = self.tx.try_send(Message::Close(Some(frame)));
        self.finish().await;
    }

    /// Lets the writer write what is queued, then end.
    pub(crate) async fn finish(self) {
        drop(self.tx);
        let _ = self.writer.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_budget_is_two_seconds_of_video_with_room_for_a_keyframe() {
        assert_eq!(Backlog::for_bitrate(40_000_000).budget, 10_000_000);
        assert_eq!(Backlog::for_bitrate(1_000_000).budget, MIN_BUDGET);
    }

    #[test]
    fn a_viewer_past_its_budget_skips_to_a_keyframe_that_fits_and_asks_once_a_second() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut b = Backlog::for_bitrate(8_000_000);
        assert_eq!(b.offer(at(0), false, 30_000, MIB), Decision::Send);
        // Over the budget: skipped, and a keyframe asked for.
        assert_eq!(
            b.offer(at(10), false, 30_000, 3 * MIB),
            Decision::SkipAndAsk
        );
        // Still behind: no second ask within a second.
        assert_eq!(b.offer(at(20), false, 30_000, MIB), Decision::Skip);
        assert_eq!(b.offer(at(30), true, 200_000, 3 * MIB), Decision::Skip);
        // A delta frame never resumes a viewer that skipped, even with room.
        assert_eq!(b.offer(at(40), false, 30_000, 0), Decision::Skip);
        assert_eq!(b.offer(at(1100), false, 30_000, MIB), Decision::SkipAndAsk);
        // A keyframe with room resumes it.
        assert_eq!(b.offer(at(1200), true, 200_000, MIB), Decision::Send);
        assert_eq!(b.offer(at(1210), false, 30_000, MIB), Decision::Send);
    }

    #[test]
    fn an_empty_queue_takes_even_a_keyframe_larger_than_the_budget() {
        let mut b = Backlog::for_bitrate(1_000_000);
        let now = Instant::now();
        assert_eq!(b.offer(now, false, 10, 5 * MIB), Decision::SkipAndAsk);
        assert_eq!(b.offer(now, true, 4 * MIB, 0), Decision::Send);
    }
}
