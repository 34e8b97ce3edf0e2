//! [`Fanout`]: the half every stream shares: frames out to the subscribers
//! (one broadcast, each frame shared), events in from them, and counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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
    tx: broadcast::Sender<Arc<EncodedFrame>>,
    inbox: Inbox,
    next_subscriber: AtomicU64,
    seq: AtomicU64,
    stats: Mutex<PipelineStats>,
}

impl Fanout {
    pub fn new(id: u32, inbox: Inbox) -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        Fanout {
            id,
            tx,
            inbox,
            next_subscriber: AtomicU64::new(1),
            seq: AtomicU64::new(0),
            stats: Mutex::new(PipelineStats::default()),
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    pub fn subscribe(&self) -> Subscription {
        let rx = self.tx.subscribe();
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        Subscription::new(id, self.id, rx, self.inbox.clone())
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Numbers `frame`, counts it and hands it to every subscriber.
    pub fn publish(&self, mut frame: EncodedFrame) {
        frame.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut s = self.stats();
            s.frames += 1;
            s.keyframes += u64::from(frame.keyframe);
            s.bytes += frame.access_unit.len() as u64;
        }
        // Fails only when the last subscriber left meanwhile: nothing to do.
        let _ = self.tx.send(Arc::new(frame));
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
