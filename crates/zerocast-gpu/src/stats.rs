//! Counters the device keeps while it runs, readable from any thread.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub commands: AtomicU64,
    pub errors: AtomicU64,
    pub flushes: AtomicU64,
    pub transfers: AtomicU64,
    pub bytes_copied: AtomicU64,
    pub zero_copy_attaches: AtomicU64,
    pub copy_attaches: AtomicU64,
}

impl Stats {
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
        }
    }
}
