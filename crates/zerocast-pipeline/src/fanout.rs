//! [`Fanout`]: the half every stream shares: frames out to the subscribers
//! (one broadcast, each frame shared), events in from them, and counters.
//! Closing it ends every subscription, with a reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::broadcast;

use crate::core::CoreCounters;
use crate::inbox::Inbox;
use crate::stats::PipelineStats;
use crate::{EncodedFrame, Subscription};

/// Encoded frames kept for subscribers; one that falls further behind skips
/// to the next keyframe.
const BACKLOG: usize = 32;

#[derive(Debug)]
pub(crate) struct Fanout {
    id: u32,
    /// `None` once closed: dropping the sender ends every subscription
    /// after the frames already sent to it.
    tx: Mutex<Option<broadcast::Sender<Arc<EncodedFrame>>>>,
    /// Why the stream ended, for its subscribers; each holds a clone, so
    /// it also counts them (after the end too, until they let go).
    end: Arc<OnceLock<&'static str>>,
    inbox: Inbox,
    next_subscriber: AtomicU64,
    seq: AtomicU64,
    /// Shared by the outputs of one pipeline: its figures are the stream's.
    stats: Arc<Mutex<PipelineStats>>,
}

impl Fanout {
    pub fn new(id: u32, inbox: Inbox) -> Self {
        Self::with_stats(id, inbox, Arc::default())
    }

    /// Another output of the pipeline whose fanout is `other`: its own
    /// subscribers, the same stats.
    pub fn beside(other: &Fanout, inbox: Inbox) -> Self {
        Self::with_stats(other.id, inbox, other.stats.clone())
    }

    fn with_stats(id: u32, inbox: Inbox, stats: Arc<Mutex<PipelineStats>>) -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        Fanout {
            id,
            tx: Mutex::new(Some(tx)),
            end: Arc::new(OnceLock::new()),
            inbox,
            next_subscriber: AtomicU64::new(1),
            seq: AtomicU64::new(0),
            stats,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    pub fn subscribe(&self) -> Subscription {
        // After the end, a receiver whose sender is already gone: the
        // subscription ends at once.
        let rx = match &*self.sender() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        };
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        Subscription::new(id, self.id, rx, self.inbox.clone(), self.end.clone())
    }

    pub fn subscribers(&self) -> usize {
        Arc::strong_count(&self.end) - 1
    }

    /// Ends the stream: each subscription gets what was already sent, then
    /// `None`, and [`Subscription::end_reason`] gives `reason`.
    pub fn close(&self, reason: &'static str) {
        let _ = self.end.set(reason);
        self.sender().take();
    }

    fn sender(&self) -> MutexGuard<'_, Option<broadcast::Sender<Arc<EncodedFrame>>>> {
        self.tx.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers `frame`, counts it and hands it to every subscriber.
    pub fn publish(&self, mut frame: EncodedFrame) {
        frame.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut s = self.stats();
            s.frames += 1;
            s.keyframes += u64::from(frame.keyframe);
            s.bytes += frame.access_unit.len() as u64;
            s.size = Some((frame.width, frame.height));
            s.recent.push(std::time::Instant::now());
        }
        // Fails only when the last subscriber left meanwhile (or the stream
        // has ended): nothing to do.
        if let Some(tx) = &*self.sender() {
            let _ = tx.send(Arc::new(frame));
        }
    }

    /// Copies the core's counters into the stats.
    pub fn count(&self, c: CoreCounters) {
        let mut s = self.stats();
        s.unwatched = c.unwatched;
        s.lagged = c.lagged;
    }

    pub fn stats(&self) -> MutexGuard<'_, PipelineStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
