//! The encoder every build has: Cisco's OpenH264 built from source by
//! `openh264-sys2` (the default when the build has no x264).

use std::os::raw::c_int;

use openh264::encoder::{
    BitRate, ColorPrimaries, Complexity, Encoder, EncoderConfig, FrameRate, FrameType,
    IntraFramePeriod, RateControlMode, SpsPpsStrategy, TransferCharacteristics, UsageType,
    VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use openh264_sys2::{
    SEncParamExt, TagBitrateInfo, ENCODER_OPTION_BITRATE, ENCODER_OPTION_FRAME_RATE,
    ENCODER_OPTION_MAX_BITRATE, ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, ENCODER_OPTION_TRACE_LEVEL,
    SPATIAL_LAYER_ALL, WELS_LOG_ERROR,
};
use std::time::Instant;
use zerocast_frame::{Damage, Frame, I420};

use crate::openh264_build::{self, Build};
use crate::picture::Picture;
use crate::qp_control::QpControl;
use crate::{EncodeError, Encoded, EncoderSettings, Quality, RateControl, VideoEncoder};

const NAME: &str = "openh264";
/// OpenH264 encodes up to level 5.2.
const MAX_SIZE: (u32, u32) = (3840, 2160);
/// The QP OpenH264 starts a session at with its rate control off
/// (`SVC_QUALITY_BASE_QP`); another can only be set once it has initialised.
const START_QP: u8 = 26;

/// Software H.264, constrained baseline, tuned for screen content in real time.
pub struct OpenH264Encoder {
    /// Built on the first frame and again when the size changes, always from
    /// the settings in force (OpenH264 would otherwise restore its initial
    /// bitrate when it re-initialises for a new size).
    session: Option<Session>,
    settings: EncoderSettings,
    /// The picture last encoded.
    picture: Picture,
    frames_since_keyframe: u64,
    /// Each picture's QP under [`RateControl::Quality`].
    qp: QpControl,
}

impl OpenH264Encoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, EncodeError> {
        openh264_build::warn_once_if_rebuild_helps();
        let settings = settings.sanitized();
        Ok(OpenH264Encoder {
            session: None,
            settings,
            picture: Picture::default(),
            frames_since_keyframe: 0,
            qp: QpControl::for_settings(&settings),
        })
    }

    /// Encodes the picture in `picture` at `quality`, appending its access
    /// unit to `out`.
    fn encode_picture(
        &mut self,
        force_keyframe: bool,
        quality: Quality,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let (qp, still) = match (self.settings.rate_control, quality) {
            (RateControl::Quality { refresh_qp, .. }, Quality::Still) => (refresh_qp, true),
            (RateControl::Quality { .. }, Quality::Motion) => (self.qp.qp(), false),
            // Unused: OpenH264's own rate control picks the QP.
            (RateControl::Bitrate, _) => (START_QP, false),
        };
        let size = self.picture.size();
        let session = match &mut self.session {
            Some(s) if s.size == size => s,
            slot => slot.insert(Session::new(&self.settings, size)?),
        };
        let interval = u64::from(self.settings.keyframe_interval);
        if force_keyframe || (interval > 0 && self.frames_since_keyframe + 1 >= interval) {
            session.encoder.force_intra_frame();
        }
        let fixed_qp = matches!(self.settings.rate_control, RateControl::Quality { .. });
        let started = session.qp.is_some();
        if fixed_qp && started {
            session.set_qp(qp)?;
        }
        let start = out.len();
        let bitstream = session
            .encoder
            .encode(&Planes(self.picture.i420()))
            .map_err(|e| backend_error(&e))?;
        if !started {
            session.qp = Some(START_QP);
            if fixed_qp && qp != START_QP {
                // The first picture came out at OpenH264's starting QP: now
                // that the session has initialised, it is encoded again at ours.
                session.set_qp(qp)?;
                session.encoder.force_intra_frame();
                return self.encode_picture(true, quality, out);
            }
        }
        bitstream.write_vec(out);
        let keyframe = matches!(bitstream.frame_type(), FrameType::IDR);
        self.frames_since_keyframe = if keyframe {
            0
        } else {
            self.frames_since_keyframe + 1
        };
        let len = out.len() - start;
        self.qp.sent(Instant::now(), len);
        Ok(Encoded {
            keyframe,
            still,
            len,
        })
    }
}

struct Session {
    encoder: Encoder,
    size: (u32, u32),
    /// The layer QP in force; `None` until OpenH264 has initialised, on the
    /// first picture (options that need an initialised encoder, the QP,
    /// wait for it).
    qp: Option<u8>,
}

impl Session {
    fn new(settings: &EncoderSettings, size: (u32, u32)) -> Result<Self, EncodeError> {
        let (mode, detection) = match settings.rate_control {
            // Scene change detection makes OpenH264 skip every block whose
            // source did not change since the reference's, whatever the
            // reference's quality: a refinement of a still picture would come
            // out as all skips. Without it, unchanged blocks are still
            // skipped by mode decision (their residual against the
            // reconstruction quantises to zero), except where there is
            // something to refine.
            RateControl::Quality { .. } => (RateControlMode::Off, false),
            RateControl::Bitrate => (RateControlMode::Bitrate, true),
        };
        let config = EncoderConfig::new()
            .usage_type(UsageType::ScreenContentRealTime)
            .rate_control_mode(mode)
            .scene_change_detect(detection)
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.fps.as_f32()))
            // Skipping frames would break "one frame in, one access unit out".
            .skip_frames(false)
            // OpenH264 ignores these two for screen content and warns if set.
            .adaptive_quantization(false)
            .background_detection(false)
            .complexity(Complexity::Low)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            // Say how the picture was made (zerocast-frame's converter: BT.601
            // matrix, limited range, from sRGB pixels), so that decoders do
            // not guess, e.g. BT.709 for HD sizes.
            .vui(
                VuiConfig::bt601()
                    .color_primaries(ColorPrimaries::Bt709)
                    .transfer_characteristics(TransferCharacteristics::Srgb),
            )
            // Keyframes come from our own counter and from requests, so that
            // an interval change applies at once.
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            // One thread: CPU per frame is what a host running many VMs pays.
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| backend_error(&e))?;
        let mut session = Session {
            encoder,
            size,
            qp: None,
        };
        // Only errors on stderr: OpenH264 warns at every start about settings
        // that are deliberate here (no frame skipping for one-in-one-out).
        let mut level: c_int = WELS_LOG_ERROR as c_int;
        session.set_option(ENCODER_OPTION_TRACE_LEVEL, &mut level)?;
        Ok(session)
    }

    /// Sets the QP of the following pictures (rate control off). Changing
    /// it does not restart the stream: OpenH264 takes a new layer QP as a
    /// "small settings adjustment".
    fn set_qp(&mut self, qp: u8) -> Result<(), EncodeError> {
        if self.qp == Some(qp) {
            return Ok(());
        }
        let mut params = SEncParamExt::default();
        // SAFETY: the encoder is initialised (`qp` is set); GetOption with
        // ENCODER_OPTION_SVC_ENCODE_PARAM_EXT copies exactly one
        // `SEncParamExt` into `params`, a live exclusive borrow.
        let rc = unsafe {
            self.encoder.raw_api().get_option(
                ENCODER_OPTION_SVC_ENCODE_PARAM_EXT,
                (&raw mut params).cast(),
            )
        };
        if rc != 0 {
            return Err(EncodeError::Backend {
                encoder: NAME,
                message: format!("GetOption(SVC_ENCODE_PARAM_EXT) returned {rc}"),
            });
        }
        params.sSpatialLayers[0].iDLayerQp = c_int::from(qp);
        self.set_option(ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, &mut params)?;
        self.qp = Some(qp);
        Ok(())
    }

    fn set_option<T>(
        &mut self,
        option: openh264_sys2::ENCODER_OPTION,
        value: &mut T,
    ) -> Result<(), EncodeError> {
        // SAFETY: the encoder object exists (created in `Session::new`; the
        // options used here are accepted before and after initialisation);
        // `option` is one whose argument type is `T` (`TagBitrateInfo` for the
        // bitrate options, `f32` for the frame rate, `c_int` for the trace
        // level, `SEncParamExt` for the parameters); `value` is a live exclusive borrow for the duration of the
        // call, which copies it.
        let rc = unsafe {
            self.encoder
                .raw_api()
                .set_option(option, (value as *mut T).cast())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(EncodeError::Backend {
                encoder: NAME,
                message: format!("SetOption({option}) returned {rc}"),
            })
        }
    }
}

fn backend_error(e: &openh264::Error) -> EncodeError {
    EncodeError::Backend {
        encoder: NAME,
        message: e.to_string(),
    }
}

/// The converter's planes, as OpenH264 reads them.
struct Planes<'a>(&'a I420);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width() as usize, self.0.height() as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width() as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        self.0.y()
    }

    fn u(&self) -> &[u8] {
        self.0.u()
    }

    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

impl VideoEncoder for OpenH264Encoder {
    fn describe(&self) -> String {
        format!("{NAME} (software H.264, {})", Build::current().describe())
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
        self.encode_picture(force_keyframe, quality, out)
    }

    fn refine(&mut self, out: &mut Vec<u8>) -> Result<Option<Encoded>, EncodeError> {
        let quality = matches!(self.settings.rate_control, RateControl::Quality { .. });
        if !quality || !self.picture.is_valid() || self.session.is_none() {
            return Ok(None);
        }
        self.encode_picture(false, Quality::Still, out).map(Some)
    }

    fn reconfigure(&mut self, settings: EncoderSettings) -> Result<(), EncodeError> {
        let settings = settings.sanitized();
        if let RateControl::Quality { qp, .. } = settings.rate_control {
            self.qp.reconfigure(qp, settings.bitrate_bps);
        }
        let same_kind = std::mem::discriminant(&settings.rate_control)
            == std::mem::discriminant(&self.settings.rate_control);
        if !same_kind {
            // Another rate control is another session (OpenH264 fixes its
            // mode at the start): the next picture starts it, as a keyframe.
            self.session = None;
            self.qp = QpControl::for_settings(&settings);
        }
        let Some(session) = &mut self.session else {
            // Not started yet: the first frame builds the encoder from these.
            self.settings = settings;
            return Ok(());
        };
        let old = self.settings;
        let applied = apply_rate(session, &old, &settings);
        if applied.is_err() {
            // All or nothing: put back what was set before the refusal, so
            // the settings in force are the ones reported.
            let _ = apply_rate(session, &settings, &old);
        }
        applied?;
        self.settings = settings;
        Ok(())
    }

    fn settings(&self) -> EncoderSettings {
        self.settings
    }
}

/// Moves a running encoder's bitrate and frame rate from `from` to `to`.
fn apply_rate(
    session: &mut Session,
    from: &EncoderSettings,
    to: &EncoderSettings,
) -> Result<(), EncodeError> {
    if to.bitrate_bps != from.bitrate_bps {
        let bitrate = c_int::try_from(to.bitrate_bps).unwrap_or(c_int::MAX);
        for option in [ENCODER_OPTION_MAX_BITRATE, ENCODER_OPTION_BITRATE] {
            let mut info = TagBitrateInfo {
                iLayer: SPATIAL_LAYER_ALL,
                iBitrate: bitrate,
            };
            session.set_option(option, &mut info)?;
        }
    }
    if to.fps != from.fps {
        let mut fps = to.fps.as_f32();
        session.set_option(ENCODER_OPTION_FRAME_RATE, &mut fps)?;
    }
    Ok(())
}
