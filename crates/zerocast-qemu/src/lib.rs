//! Everything about starting QEMU for zerocast and talking to it.
//!
//! Design map:
//! - `cmdline`: [`VmConfig`] -> QEMU's command line (pure, validated).
//! - `vm`: [`Vm`], the running QEMU: spawn, wait for the guest, stop.
//! - `serial`: finds a line in the serial log QEMU keeps appending to.
//! - `child`: helper processes that die with zerocast, whatever kills it.
//! - `qmp`: [`Qmp`], an async QMP client (line-delimited JSON on a Unix socket).
//! - `keymap`: [`QCODES`], Linux evdev key codes -> QEMU qcodes.
//! - `vsock`: [`VsockDevice`], rust-vmm's vhost-device-vsock giving the guest real vsock.
//! - `input`: [`qmp_events`], an [`zerocast_input::InputEvent`] -> the
//!   `input-send-event` events (pure), and [`QmpInput`], the
//!   [`zerocast_input::InputSink`] that sends them over QMP without blocking.

mod child;
mod cmdline;
mod input;
mod keymap;
mod qmp;
mod serial;
mod vm;
mod vsock;

pub use cmdline::{Accel, ConfigError, Gpu, VmConfig, MEMORY_MB, SHARE_TAG};
pub use input::{qmp_events, InputStats, QmpInput, ABS_MAX, MAX_DETENTS};
pub use keymap::{qcode, QCODES};
pub use qmp::{Qmp, QmpError, COMMAND_TIMEOUT, MAX_LINE};
pub use vm::{Vm, VmError, QEMU};
pub use vsock::{VsockDevice, VsockError, VHOST_DEVICE_VSOCK};
