//! HXFR, helix's frame-export protocol, as a sans-IO codec: bytes in,
//! messages out, and back. No sockets, no threads, no clocks.
//!
//! Byte-compatible with helix's `helix-frame-export.h` and
//! `api/pkg/drm/protocol.go`: a 12-byte little-endian header
//! (magic `HXFR`, type, flags, session id, payload size), then a packed payload.
//!
//! Design map:
//! - [`header`]: the fixed header and message type numbers.
//! - [`message`]: every payload struct, and [`Message`] to hold any of them.
//! - [`codec`]: [`Decoder`] (stream of bytes to [`Packet`]s, with hard
//!   [`Limits`] checked before any allocation) and [`encode`].
//! - [`error`]: decode errors and the protocol's error codes.
//! - `fuzzing` (feature `fuzzing`, not API): the fuzz target's checks,
//!   shared by `fuzz/` and the corpus replay test.

#![forbid(unsafe_code)]

pub mod codec;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod header;
pub mod message;

pub use codec::{
    encode, encode_frame_response, frame_response_prefix, Decoder, Limits, Packet,
    FRAME_RESPONSE_PREFIX_LEN,
};
pub use error::{DecodeError, ErrorCode};
pub use header::{Header, MsgType, HEADER_LEN, MAGIC};
pub use message::{
    ConfigReq, CursorImage, CursorPosition, EnableScanout, ErrorMsg, FrameRequest, FrameResponse,
    Message, ScanoutResp, SubscribeResp,
};

/// SUBSCRIBE's header flag asking for the guest's cursor too
/// (zerocast's extension): CURSOR_IMAGE and CURSOR_POSITION on the
/// subscription's session. helix's clients send flags 0 and never see them.
pub const FLAG_CURSOR: u8 = 0x01;

/// TCP port of helix's scanout mode (`HELIX_FRAME_EXPORT_PORT`).
pub const DEFAULT_TCP_PORT: u16 = 15937;
/// vsock port helix's deployment uses for request/response mode.
pub const DEFAULT_VSOCK_PORT: u32 = 5001;
