//! The browser side of zerocast.
//!
//! Design map:
//! - [`access`]: who may use the gateway (tokens for the `control` and
//!   `view` roles, Host and Origin checks), sans I/O.
//! - [`protocol`]: helix's browser stream protocol (`ws_stream.go`), sans-IO:
//!   stream init, video frames and pongs out; pings and input in, every
//!   length and value checked; the hardware cursor's image and position
//!   out (zerocast's extension).
//! - [`gateway`]: HTTP (viewer page, stats) and one WebSocket per viewer,
//!   fed from a scanout subscription, with input sent on to an
//!   [`zerocast_input::InputSink`]; over plain TCP or TLS.
//! - [`input_budget`]: how much input one viewer may send on (a token
//!   bucket), so that one viewer's flood cannot crowd out another's; sans I/O.
//! - [`tls`]: the certificate and key (PEM) the gateway serves HTTPS/WSS with.
//! - `fuzzing` (feature `fuzzing`, not API): the fuzz target's checks,
//!   shared by `fuzz/` and the corpus replay test.
//! - `assets/`: the viewer: WebCodecs `VideoDecoder`, stats overlay, input capture,
//!   the guest's cursor as the canvas's CSS cursor.

#![forbid(unsafe_code)]

pub mod access;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gateway;
pub mod input_budget;
pub mod protocol;
pub mod tls;

pub use access::{Access, Role, Token, TokenError};
pub use gateway::{AccessConfig, Gateway, ViewerReport};
pub use input_budget::InputBudget;
pub use tls::{Tls, TlsError};
