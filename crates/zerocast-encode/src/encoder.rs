//! The trait every encoder backend implements.

use std::fmt;
use std::str::FromStr;

use zerocast_frame::{Damage, Frame};

use crate::EncoderSettings;

/// Why an encode failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("frame {width}x{height} is outside what {encoder} can encode (max {max_width}x{max_height})")]
    UnsupportedSize {
        encoder: &'static str,
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    #[error(transparent)]
    Convert(#[from] zerocast_frame::ConvertError),
    #[error("{encoder} failed: {message}")]
    Backend {
        encoder: &'static str,
        message: String,
    },
}

/// How finely to code a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quality {
    /// A picture in a moving sequence: the rate control's quality.
    #[default]
    Motion,
    /// A picture that stays on screen (a still screen's keyframe, a
    /// refinement): the refresh quality, where the rate control has one.
    Still,
}

/// What one call to [`VideoEncoder::encode`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// The access unit is an IDR picture (with SPS/PPS in front).
    pub keyframe: bool,
    /// It was coded at the still quality (so there is nothing to refine).
    pub still: bool,
    /// Bytes appended to the output buffer.
    pub len: usize,
}

/// A low-latency video encoder: one frame in, one access unit out, no
/// B-frames, no lookahead.
pub trait VideoEncoder: Send {
    /// One line naming the backend and its build, e.g. for the viewer and logs.
    fn describe(&self) -> String;

    /// Encodes `frame`, appending one Annex B access unit to `out`. A frame of
    /// a new size restarts the stream with a keyframe. `damage` is what
    /// changed since the frame of the previous call: an encoder may read
    /// only that ([`Damage::full`] when unknown; ignored after a size change
    /// or a failed call, when everything is read).
    fn encode(
        &mut self,
        frame: &Frame<'_>,
        damage: &Damage,
        force_keyframe: bool,
        quality: Quality,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError>;

    /// Encodes the picture of the last [`encode`](Self::encode) again at the
    /// still quality, as a P-frame that refines what decoders show (the
    /// screen has gone still). `Ok(None)` when there is nothing to refine
    /// (no picture yet) or the rate control cannot ([`crate::RateControl::Bitrate`]).
    fn refine(&mut self, out: &mut Vec<u8>) -> Result<Option<Encoded>, EncodeError>;

    /// Changes bitrate, frame rate or keyframe interval without restarting.
    fn reconfigure(&mut self, settings: EncoderSettings) -> Result<(), EncodeError>;

    /// The settings in force.
    fn settings(&self) -> EncoderSettings;
}

/// The encoder backends this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// Cisco's OpenH264, built from source: software, runs anywhere.
    OpenH264,
    /// x264, linked statically: software, low-latency tuned, sliced threads.
    X264,
}

impl EncoderKind {
    pub const ALL: [EncoderKind; 2] = [EncoderKind::OpenH264, EncoderKind::X264];

    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::OpenH264 => "openh264",
            EncoderKind::X264 => "x264",
        }
    }
}

/// x264 when this build has it, OpenH264 otherwise: told which macroblocks
/// did not change, x264 spends 0.5-0.7x OpenH264's CPU per frame on the
/// desktop-damage workloads and, at the same PSNR, fewer bytes (but for
/// window drags at fine QPs); on page flips it is what brings zerocast
/// below QEMU's VNC server (README, Benchmark).
impl Default for EncoderKind {
    fn default() -> Self {
        if zerocast_x264::available() {
            EncoderKind::X264
        } else {
            EncoderKind::OpenH264
        }
    }
}

impl fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EncoderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown encoder {s:?}; this build has: {}",
                    names.join(", ")
                )
            })
    }
}
