//! What the device offers the guest: its scanouts (virtual monitors).

use crate::edid::MAX_EDID_DIMENSION;
use crate::error::GpuError;

/// Most scanouts the device offers. QEMU decides how many the guest sees
/// (`-device vhost-user-gpu-pci,max_outputs=N`, default 1): make them match.
pub const MAX_SCANOUTS: u32 = 4;

/// The device's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuConfig {
    /// Width and height of each scanout's preferred mode, scanout 0 first.
    pub scanouts: Vec<(u32, u32)>,
}

impl Default for GpuConfig {
    /// One 1280x800 scanout (what QEMU offers with `-display none`).
    fn default() -> Self {
        GpuConfig {
            scanouts: vec![(1280, 800)],
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
        let cfg = |scanouts: Vec<(u32, u32)>| GpuConfig { scanouts }.validate();
        assert!(cfg(vec![]).is_err());
        assert!(cfg(vec![(640, 480); 5]).is_err());
        assert!(cfg(vec![(3840, 2160); 4]).is_ok());
        assert!(cfg(vec![(0, 480)]).is_err());
        assert!(cfg(vec![(640, 4096)]).is_err());
    }
}
