//! FRAME_REQUESTs sent and not yet answered.
//!
//! Requests are pipelined: the next one may go out while the host encodes
//! the previous, so the host never idles waiting for the guest's next
//! request to cross vsock. The depth is small (2) because each request
//! names a buffer the display's owner will draw into again soon: a deep
//! queue would encode stale or half-drawn pictures. The host answers a
//! connection's requests in order, each with one FRAME_RESPONSE or one
//! ERROR, so the oldest pending request is the one an answer belongs to.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many requests may wait for an answer at once.
pub const DEPTH: usize = 2;

/// A request waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub sent_at: Instant,
    pub pts_ns: i64,
    pub resource_id: u32,
}

#[derive(Debug)]
pub struct InFlight {
    depth: usize,
    queue: VecDeque<Pending>,
}

impl InFlight {
    pub fn new(depth: usize) -> Self {
        InFlight {
            depth,
            queue: VecDeque::with_capacity(depth),
        }
    }

    /// Whether another request may be sent now.
    pub fn has_room(&self) -> bool {
        self.queue.len() < self.depth
    }

    /// Records a request just sent.
    pub fn sent(&mut self, p: Pending) {
        debug_assert!(self.has_room(), "sent past the pipeline depth");
        self.queue.push_back(p);
    }

    /// The request an answer that just arrived belongs to: the oldest.
    /// `None` if nothing was pending (an answer nobody asked for).
    pub fn answered(&mut self) -> Option<Pending> {
        self.queue.pop_front()
    }

    /// How long the oldest request has waited, if longer than `limit`.
    pub fn overdue(&self, now: Instant, limit: Duration) -> Option<Duration> {
        let waited = now.duration_since(self.queue.front()?.sent_at);
        (waited > limit).then_some(waited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(sent_at: Instant, pts_ns: i64) -> Pending {
        Pending {
            sent_at,
            pts_ns,
            resource_id: 3,
        }
    }

    #[test]
    fn at_most_depth_requests_wait() {
        let t = Instant::now();
        let mut q = InFlight::new(DEPTH);
        assert!(q.has_room());
        q.sent(pending(t, 1));
        assert!(
            q.has_room(),
            "a second request may go while the first is encoded"
        );
        q.sent(pending(t, 2));
        assert!(!q.has_room());
        q.answered();
        assert!(q.has_room());
    }

    #[test]
    fn answers_match_requests_in_order() {
        let t = Instant::now();
        let mut q = InFlight::new(DEPTH);
        q.sent(pending(t, 10));
        q.sent(pending(t, 20));
        assert_eq!(q.answered().map(|p| p.pts_ns), Some(10));
        q.sent(pending(t, 30));
        assert_eq!(q.answered().map(|p| p.pts_ns), Some(20));
        assert_eq!(q.answered().map(|p| p.pts_ns), Some(30));
        assert_eq!(q.answered(), None, "an unasked-for answer matches nothing");
    }

    #[test]
    fn overdue_looks_at_the_oldest() {
        let t = Instant::now();
        let second = Duration::from_secs(1);
        let mut q = InFlight::new(DEPTH);
        assert_eq!(q.overdue(t + 10 * second, second), None);
        q.sent(pending(t, 1));
        q.sent(pending(t + second, 2));
        assert_eq!(q.overdue(t + second, second), None);
        assert_eq!(q.overdue(t + 3 * second, second), Some(3 * second));
        q.answered();
        assert_eq!(q.overdue(t + 3 * second, 3 * second), None);
    }
}
