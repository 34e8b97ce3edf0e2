//! What a guest may make the host spend: counted budgets, charges that give
//! their share back when dropped, and host buffers that carry their charge.
//!
//! Two budgets: host memory, one per device (QEMU's `max_hostmem`), and
//! mappings (VMAs), one per process, because `vm.max_map_count` is a limit of
//! the whole process: past it any `mmap` fails, including the allocator's
//! and a new thread's stack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::DEFAULT_PROCESS_MAPPINGS;

/// A request that would take a budget past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{wanted} more would pass the limit of {limit} ({used} in use)")]
pub struct OverBudget {
    pub wanted: u64,
    pub used: u64,
    pub limit: u64,
}

#[derive(Debug)]
struct Counter {
    limit: u64,
    used: AtomicU64,
}

/// A limit and what is in use against it, shared by every clone.
#[derive(Debug, Clone)]
pub(crate) struct Budget(Arc<Counter>);

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget(Arc::new(Counter {
            limit,
            used: AtomicU64::new(0),
        }))
    }

    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.0.limit
    }

    /// Takes `n`, if that stays within the limit. Nothing is taken otherwise.
    pub fn take(&self, n: u64) -> Result<Charge, OverBudget> {
        let limit = self.0.limit;
        self.0
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .map_err(|used| OverBudget {
                wanted: n,
                used,
                limit,
            })?;
        Ok(Charge {
            budget: self.clone(),
            n,
        })
    }
}

/// A share taken from a [`Budget`], given back on drop: whatever holds the
/// resource it pays for (a reader's snapshot included) holds the charge.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Budget,
    n: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.n, Ordering::Relaxed);
    }
}

/// The budget of memory mappings (VMAs) that zero-copy views of guest
/// backing may hold. Clones share one count; by default every device of the
/// process shares [`MappingBudget::process`].
#[derive(Debug, Clone)]
pub struct MappingBudget(pub(crate) Budget);

impl MappingBudget {
    /// A budget of its own, of `limit` mappings.
    pub fn new(limit: u64) -> Self {
        MappingBudget(Budget::new(limit))
    }

    /// The process-wide budget, [`DEFAULT_PROCESS_MAPPINGS`] mappings.
    pub fn process() -> Self {
        static PROCESS: OnceLock<MappingBudget> = OnceLock::new();
        PROCESS
            .get_or_init(|| MappingBudget::new(DEFAULT_PROCESS_MAPPINGS))
            .clone()
    }

    /// Mappings held now.
    pub fn in_use(&self) -> u64 {
        self.0.used()
    }

    pub fn limit(&self) -> u64 {
        self.0.limit()
    }
}

impl PartialEq for MappingBudget {
    /// The same budget, not merely the same limit.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&(self.0).0, &(other.0).0)
    }
}

impl Eq for MappingBudget {}

/// A zeroed host buffer paid for from a host-memory budget, as long as it
/// lives (copy-on-write clones kept by readers included).
#[derive(Debug)]
pub(crate) struct HostBuffer {
    bytes: Vec<u8>,
    _charge: Charge,
}

impl HostBuffer {
    /// `len` zero bytes, if `budget` has room; nothing is allocated if not.
    pub fn zeroed(budget: &Budget, len: usize) -> Result<Self, OverBudget> {
        let charge = budget.take(len as u64)?;
        let over = OverBudget {
            wanted: len as u64,
            used: budget.used(),
            limit: budget.limit(),
        };
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len).map_err(|_| over)?;
        bytes.resize(len, 0);
        Ok(HostBuffer {
            bytes,
            _charge: charge,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stay_within_the_limit_and_come_back_on_drop() {
        let budget = Budget::new(100);
        let a = budget.take(60).unwrap();
        let refused = budget.take(41).unwrap_err();
        assert_eq!(
            refused,
            OverBudget {
                wanted: 41,
                used: 60,
                limit: 100
            }
        );
        let b = budget.take(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert!(budget.take(u64::MAX).is_err());
        drop((a, b));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_host_buffer_pays_while_it_lives_and_is_refused_past_the_budget() {
        let budget = Budget::new(1000);
        let buffer = HostBuffer::zeroed(&budget, 600).unwrap();
        assert_eq!(buffer.bytes(), &[0u8; 600][..]);
        assert_eq!(budget.used(), 600);
        assert!(HostBuffer::zeroed(&budget, 401).is_err());
        assert_eq!(budget.used(), 600);
        drop(buffer);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn mapping_budgets_compare_by_identity() {
        assert_eq!(MappingBudget::process(), MappingBudget::process());
        assert_ne!(MappingBudget::new(5), MappingBudget::new(5));
        assert_eq!(MappingBudget::process().limit(), DEFAULT_PROCESS_MAPPINGS);
    }
}
