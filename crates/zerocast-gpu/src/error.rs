//! Errors of the public API (guest mistakes are not errors: they get a
//! `RESP_ERR_*` and a log line).

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("bad GPU configuration: {0}")]
    Config(String),
    #[error("no scanout {index}: the device has {count}")]
    NoSuchScanout { index: u32, count: usize },
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        source: vhost::vhost_user::Error,
    },
    #[error("cannot set up the vhost-user device: {0}")]
    Setup(String),
    #[error("cannot start the GPU backend thread: {0}")]
    Thread(io::Error),
    #[error("the vhost-user session with QEMU failed: {0}")]
    Session(String),
    #[error("the GPU backend thread panicked")]
    Panicked,
}
