//! Errors of the public API (guest mistakes are not errors: they get a
//! `RESP_ERR_*` and a log line).

use std::io;
use std::path::PathBuf;

use crate::config::MAX_SCANOUTS;
use crate::edid::MAX_EDID_DIMENSION;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("{count} scanouts configured: use 1 to {MAX_SCANOUTS}")]
    ScanoutCount { count: usize },
    #[error("scanout {index} is {width}x{height}: each side must be 1 to {MAX_EDID_DIMENSION}")]
    ScanoutSize {
        index: usize,
        width: u32,
        height: u32,
    },
    #[error("no scanout {index}: the device has {count}")]
    NoSuchScanout { index: u32, count: usize },
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        source: vhost::vhost_user::Error,
    },
    #[error("cannot create the event that stops the vring worker: {0}")]
    ExitEvent(#[source] io::Error),
    #[error("cannot set up the vhost-user daemon: {0}")]
    Daemon(#[source] VhostUserFailure),
    #[error("cannot start the GPU backend thread: {0}")]
    Thread(#[source] io::Error),
    #[error("cannot accept QEMU's vhost-user connection: {0}")]
    Accept(#[source] VhostUserFailure),
    #[error("the vhost-user session with QEMU failed: {0}")]
    Session(#[source] VhostUserFailure),
    #[error("cannot relay the vhost-user connection given: {0}")]
    Relay(#[source] io::Error),
    #[error("the GPU backend thread panicked")]
    Panicked,
}

/// A `vhost_user_backend::Error`, in a form that can cross threads and
/// join an error chain: the original is not `std::error::Error`, and one
/// variant holds a panic payload that is not `Sync`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VhostUserFailure(String);

impl From<vhost_user_backend::Error> for VhostUserFailure {
    fn from(e: vhost_user_backend::Error) -> Self {
        VhostUserFailure(e.to_string())
    }
}
