//! [`EncodedFrame`]: one access unit and what a transport needs to send it.
//! No transport's framing: HXFR and WebSocket each frame it at their edge.

use std::time::{Duration, Instant};

use bytes::Bytes;

/// How a frame's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// One H.264 access unit of the whole picture, Annex B.
    #[default]
    Whole,
    /// A striped access unit (`zerocast_encode::stripes`): a record per
    /// changed stripe, each its own stream's access unit. Only for
    /// viewers that asked for stripes.
    Stripes,
}

/// One encoded access unit, shared by every subscriber of its stream.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// Position in this stream's output, from 1.
    pub seq: u64,
    pub keyframe: bool,
    /// When the picture was complete, in nanoseconds since the Unix epoch.
    pub captured_unix_ns: i64,
    pub captured_at: Instant,
    pub width: u32,
    pub height: u32,
    /// The stream's nominal frame rate when this frame was made (whole fps).
    pub fps: u32,
    /// Time spent converting and encoding (zero for a published stream).
    pub encode_time: Duration,
    pub layout: Layout,
    /// The H.264 access unit, Annex B byte stream (SPS/PPS in front of a
    /// keyframe), or the stripes' records (see [`Layout`]).
    pub access_unit: Bytes,
}
