//! What the device offers the guest: its scanouts (virtual monitors).

use crate::budget::MappingBudget;
use crate::edid::MAX_EDID_DIMENSION;
use crate::error::GpuError;

/// Most scanouts the device offers. QEMU decides how many the guest sees
/// (`-device vhost-user-gpu-pci,max_outputs=N`, default 1): make them match.
pub const MAX_SCANOUTS: u32 = 4;

/// Default [`GpuConfig::max_hostmem`]: 256 MiB, QEMU's `max_hostmem` default
/// for virtio-gpu: room for the copy buffers of thirty 1920x1080
/// framebuffers (a guest on the zero-copy path needs only its backing
/// tables, a few KiB).
pub const DEFAULT_MAX_HOSTMEM: u64 = 256 << 20;

/// Default [`GpuConfig::max_mappings_per_resource`]. A 1280x800 framebuffer
/// is 1,000 pages, so it maps even if no two pages touch; a Linux guest's
/// backings come in a few hundred runs at most, merged again where they
/// touch in guest RAM. One resource can take at most 1/16 of the process's
/// [`DEFAULT_PROCESS_MAPPINGS`].
pub const DEFAULT_MAX_MAPPINGS_PER_RESOURCE: usize = 1024;

/// Limit of [`MappingBudget::process`]: mappings all devices of the process
/// may hold together. Linux's `vm.max_map_count` defaults to 65,530 per
/// process, and past it every `mmap` fails (the allocator's, a new thread's
/// stack); zerocast takes a quarter, leaving the rest (about 49,000) to the
/// heap, thread stacks, libraries and encoders, which use a few hundred.
pub const DEFAULT_PROCESS_MAPPINGS: u64 = 16_384;

/// The device's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuConfig {
    /// Width and height of each scanout's preferred mode, scanout 0 first.
    pub scanouts: Vec<(u32, u32)>,
    /// Most host memory, in bytes, the device spends on the guest's behalf
    /// at once (copy buffers, their copy-on-write clones, backing tables),
    /// like QEMU's `max_hostmem`. A command that needs more is refused with
    /// `RESP_ERR_OUT_OF_MEMORY`.
    pub max_hostmem: u64,
    /// Most mappings (VMAs) one resource's zero-copy view may take, after
    /// merging runs that touch; a backing with more is copied instead.
    pub max_mappings_per_resource: usize,
    /// The mappings budget this device draws from; a backing that finds it
    /// spent is copied instead. Shared by every clone (default: the
    /// process-wide one).
    pub mappings: MappingBudget,
}

impl Default for GpuConfig {
    /// One 1280x800 scanout (what QEMU offers with `-display none`), the
    /// default budgets.
    fn default() -> Self {
        GpuConfig {
            scanouts: vec![(1280, 800)],
            max_hostmem: DEFAULT_MAX_HOSTMEM,
            max_mappings_per_resource: DEFAULT_MAX_MAPPINGS_PER_RESOURCE,
            mappings: MappingBudget::process(),
        }
    }
}

impl GpuConfig {
    /// The number of scanouts, if it is 1 to [`MAX_SCANOUTS`].
    pub(crate) fn scanout_count(&self) -> Result<u32, GpuError> {
        let count = self.scanouts.len();
        u32::try_from(count)
            .ok()
            .filter(|n| (1..=MAX_SCANOUTS).contains(n))
            .ok_or(GpuError::ScanoutCount { count })
    }

    /// Checks the scanout count and sizes.
    pub fn validate(&self) -> Result<(), GpuError> {
        self.scanout_count()?;
        for (index, &(width, height)) in self.scanouts.iter().enumerate() {
            let ok = |v: u32| (1..=MAX_EDID_DIMENSION).contains(&v);
            if !ok(width) || !ok(height) {
                return Err(GpuError::ScanoutSize {
                    index,
                    width,
                    height,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_counts_and_sizes() {
        assert!(GpuConfig::default().validate().is_ok());
        let cfg = |scanouts: Vec<(u32, u32)>| {
            GpuConfig {
                scanouts,
                ..GpuConfig::default()
            }
            .validate()
        };
        assert!(cfg(vec![]).is_err());
        assert!(cfg(vec![(640, 480); 5]).is_err());
        assert!(cfg(vec![(3840, 2160); 4]).is_ok());
        assert!(cfg(vec![(0, 480)]).is_err());
        assert!(cfg(vec![(640, 4096)]).is_err());
    }
}
