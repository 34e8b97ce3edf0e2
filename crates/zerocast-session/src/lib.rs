//! The guest session channel: what zerocast and an agent running inside the
//! guest's desktop session (`zerocast-guest --session true`) tell each
//! other. The GPU device cannot change the guest's mode or reach its
//! clipboard; a program in the session can (`xrandr`, X selections).
//!
//! Design map:
//! - [`message`]: the messages each side sends, their limits and checks.
//! - [`wire`]: their framing on a byte stream (vsock), sans I/O.
//! - [`mode`]: fitting a viewer's size to a mode the guest and encoder take.

pub mod message;
pub mod mode;
pub mod wire;

pub use message::{AgentMessage, HostMessage, MessageError, MAX_CLIPBOARD, MAX_TYPED};
pub use mode::fit_mode;
pub use wire::{Decoder, WireError};

/// The vsock port the host listens on for the session agent (HXFR is on
/// 5001, helix's).
pub const DEFAULT_VSOCK_PORT: u32 = 5002;
