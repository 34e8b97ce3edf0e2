//! Counters the device keeps while it runs, readable from any thread.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::budget::{Budget, MappingBudget};

/// A copy of the device's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Control and cursor commands received.
    pub commands: u64,
    /// Commands refused (each answered with a `RESP_ERR_*` and logged).
    pub errors: u64,
    /// `RESOURCE_FLUSH` commands accepted.
    pub flushes: u64,
    /// `TRANSFER_TO_HOST_2D` commands accepted.
    pub transfers: u64,
    /// Pixel bytes the host copied (only the fallback path copies).
    pub bytes_copied: u64,
    /// Backings mapped without copying.
    pub zero_copy_attaches: u64,
    /// Backings that could not be mapped and use the copy path.
    pub copy_attaches: u64,
    /// Of `copy_attaches`, backings that could have been mapped but were
    /// copied because a mapping budget said no (per resource or process).
    pub copy_fallbacks: u64,
    /// Commands refused because the host memory budget was spent.
    pub memory_refusals: u64,
    /// Mappings (VMAs) held now by zero-copy views, counted against the
    /// device's mapping budget (by default the process-wide one, shared by
    /// every device of the process).
    pub mappings_in_use: u64,
    /// Host bytes held now on the guest's behalf (copy buffers and their
    /// copy-on-write clones, backing tables), counted against the device's
    /// `max_hostmem`.
    pub host_bytes_in_use: u64,
}

/// The live counters, and the budgets whose use they report.
#[derive(Debug)]
pub(crate) struct Stats {
    pub commands: AtomicU64,
    pub errors: AtomicU64,
    pub flushes: AtomicU64,
    pub transfers: AtomicU64,
    pub bytes_copied: AtomicU64,
    pub zero_copy_attaches: AtomicU64,
    pub copy_attaches: AtomicU64,
    pub copy_fallbacks: AtomicU64,
    pub memory_refusals: AtomicU64,
    hostmem: Budget,
    mappings: MappingBudget,
}

impl Stats {
    pub fn new(hostmem: Budget, mappings: MappingBudget) -> Self {
        Stats {
            commands: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            transfers: AtomicU64::new(0),
            bytes_copied: AtomicU64::new(0),
            zero_copy_attaches: AtomicU64::new(0),
            copy_attaches: AtomicU64::new(0),
            copy_fallbacks: AtomicU64::new(0),
            memory_refusals: AtomicU64::new(0),
            hostmem,
            mappings,
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> GpuStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GpuStats {
            commands: get(&self.commands),
            errors: get(&self.errors),
            flushes: get(&self.flushes),
            transfers: get(&self.transfers),
            bytes_copied: get(&self.bytes_copied),
            zero_copy_attaches: get(&self.zero_copy_attaches),
            copy_attaches: get(&self.copy_attaches),
            copy_fallbacks: get(&self.copy_fallbacks),
            memory_refusals: get(&self.memory_refusals),
            mappings_in_use: self.mappings.in_use(),
            host_bytes_in_use: self.hostmem.used(),
        }
    }
}
