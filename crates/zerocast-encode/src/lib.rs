//! Video encoders for zerocast.
//!
//! Design map:
//! - [`settings`]: what an encoder is asked for (bitrate, frame rate,
//!   keyframe interval, rate control).
//! - [`qp_control`]: quality-driven rate control under a bitrate ceiling (sans I/O).
//! - [`encoder`]: the [`VideoEncoder`] trait every backend implements, and its errors.
//! - [`x264`]: the default software H.264 backend in builds with
//!   libx264-dev, through `zerocast-x264`: told which macroblocks did not
//!   change.
//! - [`openh264`]: the software H.264 backend every build has (it builds
//!   from crates.io alone), the default of builds without x264.
//! - [`stripes`]: [`StripedEncoder`], the picture in horizontal stripes, each
//!   its own small stream, only the changed ones encoded (the web viewer's).
//! - [`openh264_build`]: whether that backend runs OpenH264's SIMD assembly or
//!   plain C, and the advice to rebuild once `nasm` is installed.
//! - `picture`: the picture a backend encodes next, updated from each
//!   frame's damage (shared by the backends).
//! - `macroblocks`: which macroblocks a picture left unchanged, for x264
//!   to skip without analysing them.
//! - [`annexb`]: walking an Annex B byte stream (NAL types, keyframe checks).
//! - [`sps`]: the picture size a stream's sequence parameter set declares.
//! - `backend_tests`: the [`VideoEncoder`] contract, checked on every backend.

pub mod annexb;
pub mod encoder;
mod macroblocks;
pub mod openh264;
pub mod openh264_build;
mod picture;
pub mod qp_control;
pub mod settings;
pub mod sps;
pub mod stripes;
pub mod x264;

#[cfg(test)]
mod backend_tests;

pub use encoder::{EncodeError, Encoded, EncoderKind, Quality, VideoEncoder};
pub use settings::{EncoderSettings, Fps, RateControl};
pub use stripes::StripedEncoder;

/// Builds the encoder of the given kind.
pub fn new_encoder(
    kind: EncoderKind,
    settings: EncoderSettings,
) -> Result<Box<dyn VideoEncoder>, EncodeError> {
    match kind {
        EncoderKind::OpenH264 => Ok(Box::new(openh264::OpenH264Encoder::new(settings)?)),
        EncoderKind::X264 => Ok(Box::new(x264::X264Encoder::new(settings)?)),
    }
}
