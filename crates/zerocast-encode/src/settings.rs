//! What an encoder is asked to produce.

use crate::qp_control::MAX_QP;

/// A frame rate as a fraction (HXFR's CONFIG_REQ sends `fps_num / fps_den`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fps {
    pub num: u32,
    pub den: u32,
}

impl Fps {
    pub const fn new(num: u32) -> Self {
        Fps { num, den: 1 }
    }

    /// Frames per second as a float; a zero denominator counts as 1.
    pub fn as_f32(self) -> f32 {
        self.num as f32 / self.den.max(1) as f32
    }
}

/// How an encoder spends bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateControl {
    /// Every picture at `qp`, coarser only while the stream runs above the
    /// bitrate, which is a ceiling (see [`crate::qp_control`]). A still
    /// screen's last picture can be refined at `refresh_qp`
    /// ([`crate::VideoEncoder::refine`]).
    Quality { qp: u8, refresh_qp: u8 },
    /// The encoder's own rate control aims at the bitrate, whatever the
    /// content; no refinement.
    Bitrate,
}

impl RateControl {
    /// The default: text after motion converges to near-lossless.
    pub const DEFAULT_QUALITY: RateControl = RateControl::Quality {
        qp: 26,
        refresh_qp: 18,
    };
}

/// Encoder parameters that can change while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Bits per second: a ceiling under [`RateControl::Quality`], the target
    /// under [`RateControl::Bitrate`].
    pub bitrate_bps: u32,
    /// Nominal frame rate, used by rate control.
    pub fps: Fps,
    /// A keyframe at least every this many frames; 0 = only on request.
    pub keyframe_interval: u32,
    pub rate_control: RateControl,
}

impl EncoderSettings {
    /// Lowest and highest bitrates accepted, so a client cannot ask for nonsense.
    pub const BITRATE_RANGE: std::ops::RangeInclusive<u32> = 50_000..=200_000_000;
    /// Highest frame rate accepted.
    pub const MAX_FPS: f32 = 240.0;

    /// Clamps the values into what the encoders accept.
    pub fn sanitized(self) -> Self {
        let fps = if self.fps.num == 0 || self.fps.den == 0 || self.fps.as_f32() > Self::MAX_FPS {
            Fps::new(60)
        } else {
            self.fps
        };
        EncoderSettings {
            bitrate_bps: self
                .bitrate_bps
                .clamp(*Self::BITRATE_RANGE.start(), *Self::BITRATE_RANGE.end()),
            fps,
            keyframe_interval: self.keyframe_interval,
            rate_control: match self.rate_control {
                RateControl::Quality { qp, refresh_qp } => RateControl::Quality {
                    qp: qp.min(MAX_QP),
                    refresh_qp: refresh_qp.min(MAX_QP),
                },
                RateControl::Bitrate => RateControl::Bitrate,
            },
        }
    }
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            bitrate_bps: 8_000_000,
            fps: Fps::new(60),
            keyframe_interval: 0,
            rate_control: RateControl::DEFAULT_QUALITY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_clamps_hostile_values() {
        let s = EncoderSettings {
            bitrate_bps: u32::MAX,
            fps: Fps { num: 1000, den: 0 },
            keyframe_interval: 7,
            rate_control: RateControl::Quality {
                qp: 90,
                refresh_qp: 52,
            },
        }
        .sanitized();
        assert_eq!(s.bitrate_bps, 200_000_000);
        assert_eq!(s.fps, Fps::new(60));
        assert_eq!(s.keyframe_interval, 7);
        assert_eq!(
            s.rate_control,
            RateControl::Quality {
                qp: 51,
                refresh_qp: 51
            }
        );
        let s = EncoderSettings {
            bitrate_bps: 1,
            fps: Fps {
                num: 30000,
                den: 1001,
            },
            keyframe_interval: 0,
            rate_control: RateControl::Bitrate,
        }
        .sanitized();
        assert_eq!(s.bitrate_bps, 50_000);
        assert!((s.fps.as_f32() - 29.97).abs() < 0.01);
    }
}
