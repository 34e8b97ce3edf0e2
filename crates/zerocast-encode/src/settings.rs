//! What an encoder is asked to produce.

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

/// Encoder parameters that can change while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Nominal frame rate, used by rate control.
    pub fps: Fps,
    /// A keyframe at least every this many frames; 0 = only on request.
    pub keyframe_interval: u32,
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
        }
    }
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            bitrate_bps: 8_000_000,
            fps: Fps::new(60),
            keyframe_interval: 0,
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
        }
        .sanitized();
        assert_eq!(s.bitrate_bps, 200_000_000);
        assert_eq!(s.fps, Fps::new(60));
        assert_eq!(s.keyframe_interval, 7);
        let s = EncoderSettings {
            bitrate_bps: 1,
            fps: Fps {
                num: 30000,
                den: 1001,
            },
            keyframe_interval: 0,
        }
        .sanitized();
        assert_eq!(s.bitrate_bps, 50_000);
        assert!((s.fps.as_f32() - 29.97).abs() < 0.01);
    }
}
