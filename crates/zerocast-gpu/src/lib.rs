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
//! - `budget`: what a guest may make the host spend: host memory, mappings (VMAs).
//! - `snapshot`: [`ResourceSnapshot`], what a reader holds: geometry plus shared pixels,
//!   readable until the guest takes the pages back (UNREF, DETACH_BACKING, reset).
//! - `resource`: the resource table with its checks and limits.
//! - `refusal`: why a guest command was refused, and the `RESP_ERR_*` for it.
//! - `scanout`: scanout state: the resource shown, whether its picture is still valid, the
//!   cursor (its 64x64 image copied out of the guest's resource on UPDATE_CURSOR, pushed with
//!   every move to the streams' [`zerocast_frame::CursorSink`]s, not through the encoder).
//! - `source`: [`ScanoutSource`], the [`zerocast_frame::FrameSource`] of a scanout: the
//!   guest's pages, or a "no signal" picture once they are taken back or the scanout is off.
//! - `device`: the device, sans I/O: requests in, responses out, readers woken.
//! - `backend`: the `VhostUserBackend` plumbing (features, config space, vrings).
//! - `server`: [`GpuBackendHandle`]: one QEMU connection served on a background thread.
//! - `relay`: a connection already made (libvirt's `--fd`), passed to the device message by message.
//! - `table`: [`ResourceTable`], lookups by resource id.
//! - `log_limit`: repeated log lines (refused commands) summarised once a second.
//! - `flush_stamps`: [`FlushStamps`], when each stamped picture was
//!   flushed, for benchmarks (off unless asked).
//! - `stats`: [`GpuStats`] counters. `config`: [`GpuConfig`]. `error`: [`GpuError`].
//! - `testutil` (tests and fuzzing): memfd-backed guest memory, as QEMU shares it.
//! - `fuzzing` (feature `fuzzing`, not API): the fuzz target's command-script
//!   interpreter and checks, shared by `fuzz/` and the corpus replay test.
//!
//! Budgets: what one guest can make the host spend, each with a default in
//! [`GpuConfig`]. Past a mapping budget a backing is copied instead of
//! mapped (counted in [`GpuStats::copy_fallbacks`]), never failing anything
//! else in the process; past the memory budget the command is refused with
//! `RESP_ERR_OUT_OF_MEMORY` and nothing is allocated.
//! - Host memory per device ([`GpuConfig::max_hostmem`], default
//!   [`DEFAULT_MAX_HOSTMEM`], 256 MiB, as QEMU's `max_hostmem`): copy buffers,
//!   their copy-on-write clones held by readers, backing tables. A copy
//!   buffer is as long as the backing the guest attached, not the resource
//!   (a 1-byte backing costs 1 byte; a picture it cannot fill is not shown).
//! - Mappings (VMAs) per resource ([`GpuConfig::max_mappings_per_resource`],
//!   default [`DEFAULT_MAX_MAPPINGS_PER_RESOURCE`], 1,024), after merging
//!   pages that touch in guest RAM: a framebuffer usually takes one or a few.
//! - Mappings per process ([`MappingBudget::process`], default
//!   [`DEFAULT_PROCESS_MAPPINGS`], 16,384, a quarter of Linux's default
//!   `vm.max_map_count` of 65,530), shared by all devices.
//! - Refused commands are logged the first of a burst, then at most one line
//!   a second with how many were left out.

mod backend;
mod backing;
mod budget;
mod commands;
mod config;
mod device;
mod edid;
mod error;
mod flush_stamps;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod log_limit;
mod mapping;
mod protocol;
mod refusal;
mod relay;
mod resource;
mod scanout;
mod server;
mod snapshot;
mod source;
mod stats;
mod table;
#[cfg(any(test, feature = "fuzzing"))]
mod testutil;

pub use budget::MappingBudget;
pub use config::{
    GpuConfig, DEFAULT_MAX_HOSTMEM, DEFAULT_MAX_MAPPINGS_PER_RESOURCE, DEFAULT_PROCESS_MAPPINGS,
    MAX_SCANOUTS,
};
pub use error::{GpuError, VhostUserFailure};
pub use flush_stamps::FlushStamps;
pub use server::GpuBackendHandle;
pub use snapshot::ResourceSnapshot;
pub use source::ScanoutSource;
pub use stats::GpuStats;
pub use table::ResourceTable;
