//! Everything about starting QEMU for zerocast and talking to it.
//!
//! Design map:
//! - `launch`: [`VmConfig`] -> QEMU's command line (pure, validated), and
//!   [`Vm`], the running QEMU: spawn, watch the serial log, kill.
//! - `child`: helper processes that die with zerocast, whatever kills it.
//! - `qmp`: [`Qmp`], an async QMP client (line-delimited JSON on a Unix socket).
//! - `keymap`: [`QCODES`], Linux evdev key codes -> QEMU qcodes.
//! - `vsock`: [`VsockDevice`], rust-vmm's vhost-device-vsock giving the guest real vsock.
//! - `input`: [`qmp_events`], an [`zerocast_input::InputEvent`] -> the
//!   `input-send-event` events (pure), and [`QmpInput`], the
//!   [`zerocast_input::InputSink`] that sends them over QMP without blocking.

mod child;
mod input;
mod keymap;
mod launch;
mod qmp;
mod vsock;

pub use input::{qmp_events, InputStats, QmpInput, ABS_MAX, MAX_DETENTS};
pub use keymap::{qcode, QCODES};
pub use launch::{Accel, ConfigError, Gpu, Vm, VmConfig, VmError, MAX_SCANOUTS, MEMORY_MB, QEMU};
pub use qmp::{Qmp, QmpError, COMMAND_TIMEOUT, MAX_LINE};
pub use vsock::{VsockDevice, VsockError, VHOST_DEVICE_VSOCK};
