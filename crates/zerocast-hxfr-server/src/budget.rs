//! [`EncoderMemory`]: the memory request/response encoders may hold, all
//! sessions of all peers together, counted by the picture size each
//! encodes. A peer cannot make the host allocate past it by opening
//! sessions: the one over budget is refused with an ERROR.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes an encoder session holds per pixel of its picture: the I420 copy
/// (1.5), OpenH264's reference and reconstruction frames and their
/// padding. Measured: a 1280x720 session grew the process by about 18 MiB.
pub const BYTES_PER_PIXEL: u64 = 20;

/// Why a session could not have its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the encoders' memory budget is spent ({used_mib} of {limit_mib} MiB in use, {wanted_mib} MiB more wanted): close other sessions, or raise the budget")]
pub struct Exhausted {
    pub used_mib: u64,
    pub limit_mib: u64,
    pub wanted_mib: u64,
}

#[derive(Debug)]
pub struct EncoderMemory {
    limit: u64,
    used: AtomicU64,
}

/// Memory held by one session; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<EncoderMemory>,
    bytes: u64,
}

impl EncoderMemory {
    pub fn new(limit_bytes: u64) -> Arc<Self> {
        Arc::new(EncoderMemory {
            limit: limit_bytes,
            used: AtomicU64::new(0),
        })
    }

    /// What a session encoding `width` x `height` pictures needs.
    pub fn estimate(width: u32, height: u32) -> u64 {
        u64::from(width) * u64::from(height) * BYTES_PER_PIXEL
    }

    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, Exhausted> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let next = used.saturating_add(bytes);
            if next > self.limit {
                let mib = |b: u64| b.div_ceil(1 << 20);
                return Err(Exhausted {
                    used_mib: mib(used),
                    limit_mib: mib(self.limit),
                    wanted_mib: mib(bytes),
                });
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Reservation {
                        budget: self.clone(),
                        bytes,
                    })
                }
                Err(now) => used = now,
            }
        }
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_share_one_budget_and_give_it_back() {
        let budget = EncoderMemory::new(3 * EncoderMemory::estimate(1280, 720));
        let sessions: Vec<_> = (0..3)
            .map(|_| budget.reserve(EncoderMemory::estimate(1280, 720)).unwrap())
            .collect();
        let e = budget
            .reserve(EncoderMemory::estimate(1280, 720))
            .unwrap_err();
        assert_eq!((e.used_mib, e.wanted_mib), (53, 18));
        drop(sessions);
        assert_eq!(budget.used(), 0);
        assert!(budget.reserve(EncoderMemory::estimate(1920, 1080)).is_ok());
    }
}
