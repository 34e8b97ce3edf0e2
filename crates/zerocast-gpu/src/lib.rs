//! zerocast's virtio-gpu device: a vhost-user-gpu backend for QEMU
//! (`-device vhost-user-gpu-pci`) that shows the guest's framebuffers to the
//! host without copying them, by mapping their pages out of the shared
//! guest-RAM memfd.
//!
//! Design map:
//! - `protocol`: virtio-gpu wire structs, and short names for `virtio-bindings`' constants.
//! - `commands`: request bytes -> typed commands; responses -> bytes.
//! - `edid`: EDID blocks for the virtual monitors.
//! - `backing`: a resource's scatter-gather list, checked against guest memory; the copy path's reads.
//! - `mapping`: zero-copy: a backing mapped as one contiguous read-only host range.
//! - `snapshot`: [`ResourceSnapshot`], what a reader holds: geometry plus shared pixels,
//!   readable until the guest takes the pages back (UNREF, DETACH_BACKING, reset).
//! - `resource`: the resource table with its checks and limits.
//! - `refusal`: why a guest command was refused, and the `RESP_ERR_*` for it.
//! - `scanout`: scanout state: the resource shown, whether its picture is still valid, the cursor.
//! - `source`: [`ScanoutSource`], the [`zerocast_frame::FrameSource`] of a scanout: the
//!   guest's pages, or a "no signal" picture once they are taken back or the scanout is off.
//! - `device`: the device, sans I/O: requests in, responses out, readers woken.
//! - `backend`: the `VhostUserBackend` plumbing (features, config space, vrings).
//! - `server`: [`GpuBackendHandle`]: one QEMU connection served on a background thread.
//! - `table`: [`ResourceTable`], lookups by resource id.
//! - `stats`: [`GpuStats`] counters. `config`: [`GpuConfig`]. `error`: [`GpuError`].
//! - `testutil` (tests only): memfd-backed guest memory, as QEMU shares it.

mod backend;
mod backing;
mod commands;
mod config;
mod device;
mod edid;
mod error;
mod mapping;
mod protocol;
mod refusal;
mod resource;
mod scanout;
mod server;
mod snapshot;
mod source;
mod stats;
mod table;
#[cfg(test)]
mod testutil;

pub use config::{GpuConfig, MAX_SCANOUTS};
pub use error::{GpuError, VhostUserFailure};
pub use server::GpuBackendHandle;
pub use snapshot::ResourceSnapshot;
pub use source::ScanoutSource;
pub use stats::GpuStats;
pub use table::ResourceTable;
