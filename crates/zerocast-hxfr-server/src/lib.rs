//! zerocast's HXFR server: the edge where HXFR peers (helix's clients,
//! `zerocast client`, guest agents) reach the streams and resources of a
//! [`zerocast_pipeline::Registry`].
//!
//! Design map:
//! - [`peer`]: one peer's protocol state, sans I/O: packets in, outputs
//!   (replies, subscriptions, encodes to run) out; what each listener
//!   [`ListenerRole`] may send.
//! - [`session`]: request/response mode: a session's encoder, and every
//!   FRAME_REQUEST checked against the resource it names.
//! - [`connection`]: one peer's I/O: the read loop, the writer task, pushed
//!   frames written as header + shared access unit (vectored).
//! - [`listener`]: TCP and Unix listeners, each with its own connection pool.
//! - [`budget`]: the memory request/response encoders may hold, all together.

#![forbid(unsafe_code)]

pub mod budget;
pub mod connection;
pub mod listener;
pub mod peer;
pub mod session;

pub use listener::{Endpoint, Server, ServerLimits};
pub use peer::ListenerRole;
pub use session::{EncodedReply, ErrorReply, Session};
