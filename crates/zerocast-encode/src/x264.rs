//! The default backend of builds with libx264-dev: x264, linked statically
//! through `zerocast-x264`'s shim, tuned for latency: zerolatency (no
//! B-frames, no lookahead, one access unit per picture), constrained
//! baseline, SPS/PPS before every keyframe, keyframes only when asked for
//! (or at the interval, counted here so that a change applies at once),
//! sliced threads for large pictures.
//!
//! Rate control as OpenH264's backend does it: under
//! [`RateControl::Quality`], x264 runs at constant QP and each picture is
//! coded at the QP [`QpControl`] picks (or the refresh QP, for a still
//! picture and its refinement); under [`RateControl::Bitrate`], x264's
//! average bitrate control under a VBV.
//!
//! Pay for what changed: each picture goes with the macroblocks its damage
//! left unchanged (a page flip's found by comparing the pictures), which
//! x264 codes as skips without analysing them.

use std::time::Instant;

use zerocast_frame::{Damage, Frame};
use zerocast_x264::{Config, Preset, Rate, X264};

use crate::picture::Picture;
use crate::qp_control::{QpControl, BURST_MS};
use crate::{EncodeError, Encoded, EncoderSettings, Fps, Quality, RateControl, VideoEncoder};

const NAME: &str = "x264";
/// Level 5.2's largest picture (36864 macroblocks), as wide as x264 goes
/// in baseline.
const MAX_SIZE: (u32, u32) = (4096, 2304);
/// Speed against compression: superfast turns on what ultrafast leaves off
/// and screen content gains most from (the deblocking filter, intra 4x4,
/// sub-pixel motion) for little CPU.
const PRESET: Preset = Preset::Superfast;
/// ... with veryfast's sub-pixel refinement, which decides modes by SATD
/// rather than SAD: at QP 26 on the desktop-damage workloads, 1.1-1.8 dB
/// more at about the same bytes, for about 6% more CPU on page flips.
const SUBPEL_REFINE: u8 = 2;
/// At most this many sliced threads: each is a slice of every picture,
/// which costs compression, and a host streaming many VMs has their
/// pictures to spread over its cores too.
const MAX_THREADS: usize = 4;
/// Macroblocks per sliced thread. Handing a picture's slices to threads
/// costs CPU on every picture; it buys latency only on large pictures.
/// 1280x800 (4000) takes one thread a few ms; a 1920x64 stripe on two
/// threads cost 0.87 ms a keystroke, on one 0.50 ms (desktop-damage bench).
const MACROBLOCKS_PER_THREAD: usize = 4000;

/// Software H.264 with x264, constrained baseline, one picture in and one
/// access unit out.
pub struct X264Encoder {
    /// Opened on the first frame and again when the size or the kind of
    /// rate control changes, always from the settings in force.
    session: Option<Session>,
    settings: EncoderSettings,
    /// The picture last encoded.
    picture: Picture,
    frames_since_keyframe: u64,
    /// Each picture's QP under [`RateControl::Quality`].
    qp: QpControl,
    /// Sliced threads for the largest pictures (the machine's cores, at
    /// most [`MAX_THREADS`]).
    max_threads: usize,
}

struct Session {
    x264: X264,
    /// The frame rate x264 was opened with: it cannot change it later, so
    /// a new rate is folded into the bitrate (see [`encoder_kbps`]).
    fps: Fps,
}

impl X264Encoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, EncodeError> {
        if !zerocast_x264::available() {
            return Err(backend_error(&zerocast_x264::Error::NotBuilt));
        }
        let settings = settings.sanitized();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(X264Encoder {
            session: None,
            settings,
            picture: Picture::tracking_blocks(),
            frames_since_keyframe: 0,
            qp: QpControl::for_settings(&settings),
            max_threads: cores.min(MAX_THREADS),
        })
    }

    /// Encodes the picture in `picture` at `quality`, appending its access
    /// unit to `out`. With `skip_unchanged`, the macroblocks the picture's
    /// last update left as they were are skipped without analysis.
    fn encode_picture(
        &mut self,
        force_keyframe: bool,
        quality: Quality,
        skip_unchanged: bool,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let (qp, still) = match (self.settings.rate_control, quality) {
            (RateControl::Quality { refresh_qp, .. }, Quality::Still) => (Some(refresh_qp), true),
            (RateControl::Quality { .. }, Quality::Motion) => (Some(self.qp.qp()), false),
            (RateControl::Bitrate, _) => (None, false),
        };
        let size = self.picture.size();
        let session = match &mut self.session {
            Some(s) if s.x264.size() == size => s,
            slot => slot.insert(Session::open(&self.settings, size, self.max_threads)?),
        };
        let interval = u64::from(self.settings.keyframe_interval);
        let force = force_keyframe || (interval > 0 && self.frames_since_keyframe + 1 >= interval);
        let constant = self.picture.constant_blocks().filter(|_| skip_unchanged);
        let au = session
            .x264
            .encode(self.picture.i420(), force, qp, constant)
            .map_err(|e| backend_error(&e))?
            .ok_or_else(|| EncodeError::Backend {
                encoder: NAME,
                message: "x264 held a picture back (it should not with zerolatency)".into(),
            })?;
        out.extend_from_slice(au.data);
        let (keyframe, len) = (au.keyframe, au.data.len());
        self.frames_since_keyframe = if keyframe {
            0
        } else {
            self.frames_since_keyframe + 1
        };
        self.qp.sent(Instant::now(), len);
        Ok(Encoded {
            keyframe,
            still,
            len,
        })
    }
}

impl Session {
    fn open(
        settings: &EncoderSettings,
        (width, height): (u32, u32),
        max_threads: usize,
    ) -> Result<Self, EncodeError> {
        let rate = match settings.rate_control {
            // Each picture's QP is given with it; this is only the first.
            RateControl::Quality { qp, .. } => Rate::ConstantQp(qp),
            RateControl::Bitrate => Rate::Bitrate {
                kbps: encoder_kbps(settings, settings.fps),
                vbv_buffer_kbit: vbv_buffer_kbit(settings),
            },
        };
        let x264 = X264::open(Config {
            width,
            height,
            fps: (settings.fps.num, settings.fps.den),
            preset: PRESET,
            threads: threads_for(zerocast_x264::macroblocks(width, height), max_threads),
            rate,
            // Keyframes come from our own counter and from requests.
            keyint: 0,
            constant_blocks: true,
            subpel_refine: Some(SUBPEL_REFINE),
            // Veryfast's 8x8 partitions of P macroblocks fit the edges of
            // moved windows and scrolled text: on desktop-damage at QP 26
            // and 30 (with the diamond search), 15-17% fewer bytes on a
            // window drag, 10-14% on a scroll, 24% on typing, at the same
            // PSNR (within 0.2 dB), for no measurable CPU. Its second
            // reference saved under 2% more, for more CPU.
            p8x8: true,
            // Uneven multi-hexagon search finds scrolls and moved windows
            // the diamond misses; unchanged blocks are not searched, so it
            // costs on what changed only. At QP 26 on desktop-damage: a
            // scroll in 564 B instead of 1318 B (hexagon) or 1392 B
            // (diamond), a drag in 2410 B instead of 2995 B, at the same
            // PSNR and CPU; full-screen video 1.6x the CPU.
            umh: true,
        })
        .map_err(|e| backend_error(&e))?;
        Ok(Session {
            x264,
            fps: settings.fps,
        })
    }

    /// Moves a running bitrate-controlled encoder to `settings`' bitrate
    /// and frame rate.
    fn apply_rate(&mut self, settings: &EncoderSettings) -> Result<(), EncodeError> {
        let kbps = encoder_kbps(settings, self.fps);
        self.x264
            .set_bitrate(kbps, kbps, vbv_buffer_kbit(settings))
            .map_err(|e| backend_error(&e))
    }
}

/// Sliced threads for a picture of `macroblocks`: one per
/// [`MACROBLOCKS_PER_THREAD`], at least one, at most `max`.
fn threads_for(macroblocks: usize, max: usize) -> u32 {
    let threads = (macroblocks / MACROBLOCKS_PER_THREAD).clamp(1, max.max(1));
    u32::try_from(threads).unwrap_or(1)
}

/// The bitrate to give an encoder opened at `opened` fps so that it spends
/// `settings`' bitrate at `settings`' frame rate: x264 budgets bits per
/// frame from its own frame rate, which only opening sets.
fn encoder_kbps(settings: &EncoderSettings, opened: Fps) -> u32 {
    // bitrate * (opened.num / opened.den) / (fps.num / fps.den), in kbit/s;
    // sanitized settings keep every factor small enough for u64.
    let num = u64::from(settings.bitrate_bps)
        * u64::from(opened.num)
        * u64::from(settings.fps.den.max(1));
    let den = u64::from(opened.den.max(1)) * u64::from(settings.fps.num.max(1)) * 1000;
    u32::try_from(num / den).unwrap_or(u32::MAX).max(1)
}

/// The VBV: bursts of [`BURST_MS`] at the bitrate, as much as the quality
/// rate control lets through before it coarsens.
fn vbv_buffer_kbit(settings: &EncoderSettings) -> u32 {
    let kbit = u64::from(settings.bitrate_bps) * u64::from(BURST_MS) / 1_000_000;
    u32::try_from(kbit).unwrap_or(u32::MAX).max(1)
}

fn backend_error(e: &zerocast_x264::Error) -> EncodeError {
    EncodeError::Backend {
        encoder: NAME,
        message: e.to_string(),
    }
}

impl VideoEncoder for X264Encoder {
    fn describe(&self) -> String {
        format!(
            "{NAME} (software H.264, libx264 API {}, {} preset, subme {SUBPEL_REFINE}, 8x8 partitions, UMH search, up to {} sliced threads)",
            zerocast_x264::build(),
            PRESET.name().to_string_lossy(),
            self.max_threads
        )
    }

    fn encode(
        &mut self,
        frame: &Frame<'_>,
        damage: &Damage,
        force_keyframe: bool,
        quality: Quality,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        self.picture.update(frame, damage, NAME, MAX_SIZE)?;
        let encoded = self.encode_picture(force_keyframe, quality, true, out);
        if encoded.is_err() {
            // x264's reference may not be the picture the next one's
            // unchanged blocks are counted from: start afresh, as a keyframe.
            self.session = None;
        }
        encoded
    }

    fn refine(&mut self, out: &mut Vec<u8>) -> Result<Option<Encoded>, EncodeError> {
        let quality = matches!(self.settings.rate_control, RateControl::Quality { .. });
        if !quality || !self.picture.is_valid() || self.session.is_none() {
            return Ok(None);
        }
        // The same picture again: every block is unchanged, and every one
        // coded coarser than the still QP is to be refined.
        self.encode_picture(false, Quality::Still, false, out)
            .map(Some)
    }

    fn reconfigure(&mut self, settings: EncoderSettings) -> Result<(), EncodeError> {
        let settings = settings.sanitized();
        if let RateControl::Quality { qp, .. } = settings.rate_control {
            self.qp.reconfigure(qp, settings.bitrate_bps);
        }
        let same_kind = std::mem::discriminant(&settings.rate_control)
            == std::mem::discriminant(&self.settings.rate_control);
        if !same_kind {
            // x264 fixes its kind of rate control at open: the next picture
            // opens another encoder, as a keyframe.
            self.session = None;
            self.qp = QpControl::for_settings(&settings);
        }
        let rate_changed =
            (settings.bitrate_bps, settings.fps) != (self.settings.bitrate_bps, self.settings.fps);
        if let (Some(session), RateControl::Bitrate, true) =
            (&mut self.session, settings.rate_control, rate_changed)
        {
            // x264 takes the whole change or none of it.
            session.apply_rate(&settings)?;
        }
        // Constant QP needs nothing from x264: the QP comes with each picture.
        self.settings = settings;
        Ok(())
    }

    fn settings(&self) -> EncoderSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_frame_rate_is_folded_into_the_bitrate() {
        let settings = EncoderSettings {
            bitrate_bps: 6_000_000,
            fps: Fps::new(30),
            ..EncoderSettings::default()
        };
        // Opened at 60 fps, now fed 30: twice the bits per frame.
        assert_eq!(encoder_kbps(&settings, Fps::new(60)), 12_000);
        assert_eq!(encoder_kbps(&settings, Fps::new(30)), 6_000);
        let ntsc = EncoderSettings {
            fps: Fps {
                num: 30000,
                den: 1001,
            },
            ..settings
        };
        assert_eq!(encoder_kbps(&ntsc, Fps::new(30)), 6_006);
        assert_eq!(vbv_buffer_kbit(&settings), 3_000);
    }

    #[test]
    fn only_large_pictures_are_sliced_over_threads() {
        let threads = |w, h, max| threads_for(zerocast_x264::macroblocks(w, h), max);
        assert_eq!(threads(1920, 64, 4), 1, "a stripe");
        assert_eq!(threads(1280, 800, 4), 1);
        assert_eq!(threads(1920, 1080, 4), 2);
        assert_eq!(threads(3840, 2160, 4), 4);
        assert_eq!(threads(3840, 2160, 2), 2, "no more than the cores");
        assert_eq!(threads(16, 16, 0), 1);
    }
}
