//! The browser side of zerocast.
//!
//! Design map:
//! - [`access`]: who may use the gateway (tokens for the `control` and
//!   `view` roles, Host and Origin checks), sans I/O.
//! - [`protocol`]: helix's browser stream protocol (`ws_stream.go`), sans-IO:
//!   stream init, video frames and pongs out; pings and input in, every
//!   length and value checked; the hardware cursor's image and position
//!   out (zerocast's extension).
//! - [`gateway`]: the HTTP side: the viewer page, the access guard on
//!   every request, the WebSocket upgrade; over plain TCP or TLS.
//! - `viewer`: one viewer's WebSocket: frames and cursor out, input in
//!   through its budget to an [`zerocast_input::InputSink`].
//! - `outbox`: what goes out to one viewer: its writer task, and the
//!   budget of unsent bytes past which it skips to a fresh keyframe.
//! - `stats`: `/api/stats`.
//! - [`directory`]: for a gateway of many VMs (`zerocast serve`): the index
//!   page at `/`, `/api/vms`, viewers at `/view`.
//! - [`session`]: the guest's desktop session as `control` viewers reach
//!   it: resize, clipboard both ways, typed text (zerocast's 0x60-0x62).
//! - [`input_budget`]: how much input one viewer may send on (a token
//!   bucket), so that one viewer's flood cannot crowd out another's; sans I/O.
//! - [`tls`]: the certificate and key (PEM) the gateway serves HTTPS/WSS
//!   with, and the TLS accept loop (a handshake per connection, in its own task).
//! - `fuzzing` (feature `fuzzing`, not API): the fuzz target's checks,
//!   shared by `fuzz/` and the corpus replay test.
//! - `assets/`: the index of VMs (`vms.html`), and the viewer: WebCodecs `VideoDecoder`, stats overlay, input capture,
//!   the guest's cursor as the canvas's CSS cursor.

#![forbid(unsafe_code)]

pub mod access;
pub mod directory;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gateway;
pub mod input_budget;
mod outbox;
pub mod protocol;
pub mod session;
mod stats;
pub mod tls;
mod viewer;

pub use access::{Access, Role, Token, TokenError};
pub use directory::{Directory, VmEntry};
pub use gateway::{AccessConfig, Gateway, ViewerReport};
pub use input_budget::InputBudget;
pub use session::GuestSession;
pub use tls::{Tls, TlsError};
