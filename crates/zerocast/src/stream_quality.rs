//! The picture quality of a stream run: how close the frames a viewer
//! decodes are to the frames their source drew, as luma PSNR and SSIM,
//! so that a cheaper encode that looks worse shows.
//!
//! The test guest's picture is a pure function of its frame number
//! ([`zerocast_flipper::scene`]), as is the synthetic desktop's when its
//! clock shows the frame's time ([`zerocast_synthetic::Motion::Replayable`],
//! which the benchmark runs), and the number is stamped into both
//! ([`zerocast_frame::stamp`]). After a run's measured window (so that
//! decoding here does not count in its CPU figures), a subscriber of the
//! stream the run measured (the very access units its viewers get) takes
//! its frames for a few seconds; they are then decoded in order with
//! OpenH264's decoder, and up to [`MAX_COMPARED`] of them, spread evenly,
//! are compared with the frame their stamp names, drawn here and converted
//! to I420 as the host's encoders convert (BT.601 limited range). A frame
//! whose stamp does not read is not compared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use serde::Serialize;
use zerocast_flipper::scene as guest;
use zerocast_frame::{stamp, Frame, PixelFormat, I420};
use zerocast_pipeline::{EncodedFrame, Layout, Stream};

use crate::picture_quality::{psnr, squared_error, ssim};

/// How long frames are taken from the stream...
const WINDOW: Duration = Duration::from_secs(3);
/// ...or longer, until there are [`MIN_FRAMES`] (the guest's x264 makes a
/// few frames a second under TCG, and a new subscriber waits for a
/// keyframe), but never longer than this.
const LONGEST: Duration = Duration::from_secs(20);
const MIN_FRAMES: usize = 10;
/// At most this many frames are compared, spread evenly over the decoded.
pub(crate) const MAX_COMPARED: usize = 60;

/// What a stream's frames were drawn from, to draw them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The test guest's flipper.
    TestGuest,
    /// The synthetic desktop, [`zerocast_synthetic::Motion::Replayable`]
    /// at this frame rate, with no input.
    Synthetic { fps: u32 },
}

/// A run's picture quality (luma), over the frames compared.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub(crate) struct Quality {
    /// PSNR in dB from the squared error summed over every frame compared
    /// (99 for identical pictures); None when no frame was compared.
    pub(crate) psnr_db: Option<f64>,
    /// The frames' PSNR, each frame's own: their median (the typical
    /// frame, which a few bad ones do not move, as they move the figure
    /// above) and the worst.
    pub(crate) psnr_median_db: Option<f64>,
    pub(crate) psnr_min_db: Option<f64>,
    /// The mean of the frames' SSIM (1 for identical pictures).
    pub(crate) ssim: Option<f64>,
    pub(crate) frames_compared: u64,
    /// Frames taken from the stream and decoded, and of those sampled, the
    /// ones whose stamp did not read (not compared).
    pub(crate) frames_decoded: u64,
    pub(crate) frames_unstamped: u64,
    /// Access units the decoder refused (it then waits for a keyframe).
    pub(crate) decoder_errors: u64,
    /// How long frames were taken from the stream.
    pub(crate) seconds: f64,
    /// The keyframes among the frames taken (the first is the one a new
    /// subscriber is owed) and their mean size in bytes.
    pub(crate) keyframes: u64,
    pub(crate) mean_keyframe_bytes: Option<f64>,
    /// Why there is no figure, when there is none.
    pub(crate) not_measured: Option<String>,
}

/// Takes `stream`'s frames for a few seconds, then compares them with
/// `source`'s.
pub(crate) async fn measure(stream: &Stream, source: Source) -> anyhow::Result<Quality> {
    let mut sub = stream.subscribe();
    let started = Instant::now();
    let mut frames: Vec<Arc<EncodedFrame>> = Vec::new();
    loop {
        let elapsed = started.elapsed();
        if elapsed >= LONGEST || (elapsed >= WINDOW && frames.len() >= MIN_FRAMES) {
            break;
        }
        // Past the window, wait only for what the minimum still needs.
        let until = if elapsed < WINDOW { WINDOW } else { LONGEST };
        let deadline = tokio::time::Instant::from_std(started + until);
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Err(_) => {}
            Ok(Some(f)) if f.layout == Layout::Whole => frames.push(f),
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("the stream ended: {}", sub.end_reason()),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(sub);
    let keyframes: Vec<usize> = frames
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.access_unit.len())
        .collect();
    let mut quality = tokio::task::spawn_blocking(move || compare(&frames, source))
        .await
        .context("the quality comparison's thread")??;
    quality.seconds = seconds;
    quality.keyframes = keyframes.len() as u64;
    quality.mean_keyframe_bytes = (!keyframes.is_empty())
        .then(|| keyframes.iter().sum::<usize>() as f64 / keyframes.len() as f64);
    Ok(quality)
}

/// Decodes `frames` in order and compares up to [`MAX_COMPARED`] of them,
/// evenly spread, with `source`'s frames their stamps name.
fn compare(frames: &[Arc<EncodedFrame>], source: Source) -> anyhow::Result<Quality> {
    let mut decoder = Decoder::new().context("building OpenH264's decoder")?;
    let every = frames.len().div_ceil(MAX_COMPARED).max(1);
    let mut reference = Reference::new(source);
    let mut q = Quality::default();
    let (mut squared, mut samples, mut ssim_sum) = (0.0, 0.0, 0.0);
    let mut each = Vec::new();
    let mut broken = false;
    for (i, f) in frames.iter().enumerate() {
        if broken && !f.keyframe {
            continue;
        }
        let decoded = match decoder.decode(&f.access_unit) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("quality: frame {} of the stream did not decode: {e}", f.seq);
                q.decoder_errors += 1;
                broken = true;
                continue;
            }
        };
        broken = false;
        q.frames_decoded += 1;
        if i % every != 0 {
            continue;
        }
        let (w, h) = decoded.dimensions();
        let (w, h) = (u32::try_from(w)?, u32::try_from(h)?);
        let Some(n) = stamp::read_luma(decoded.y(), w, h, decoded.strides().0) else {
            q.frames_unstamped += 1;
            continue;
        };
        let source = reference.frame(w, h, n)?;
        let (Some((se, count)), Some(s)) =
            (squared_error(&decoded, source), ssim(&decoded, source))
        else {
            // An odd size: the source was cropped to even for 4:2:0.
            q.frames_unstamped += 1;
            continue;
        };
        q.frames_compared += 1;
        squared += se;
        samples += count;
        ssim_sum += s;
        let p = psnr(se, count);
        tracing::debug!(
            seq = f.seq,
            keyframe = f.keyframe,
            stamp = n,
            psnr_db = p,
            ssim = s,
            bytes = f.access_unit.len(),
            "quality: frame compared"
        );
        each.push(p);
    }
    if q.frames_compared > 0 {
        q.psnr_db = Some(psnr(squared, samples));
        q.ssim = Some(ssim_sum / q.frames_compared as f64);
        q.psnr_min_db = each.iter().copied().reduce(f64::min);
        q.psnr_median_db = Some(crate::bench::median(each));
    } else {
        q.not_measured = Some(match q.frames_decoded {
            0 if q.decoder_errors > 0 => "the stream's frames did not decode".to_owned(),
            0 => "no frame of the stream was decoded".to_owned(),
            _ => "no decoded frame's stamp read: not the picture expected?".to_owned(),
        });
    }
    Ok(q)
}

/// A source's scene of one size.
enum Scene {
    Guest(guest::Scene),
    Synthetic(zerocast_synthetic::scene::Scene),
}

/// A source's frames, drawn here.
struct Reference {
    source: Source,
    /// The scene of the last size asked for (its background is made once).
    scene: Option<(u32, u32, Scene)>,
    pixels: Vec<u8>,
    i420: I420,
}

impl Reference {
    fn new(source: Source) -> Reference {
        Reference {
            source,
            scene: None,
            pixels: Vec::new(),
            i420: I420::default(),
        }
    }

    /// Frame `n` of a `w` x `h` picture of the source, in I420.
    fn frame(&mut self, w: u32, h: u32, n: u32) -> anyhow::Result<&I420> {
        if !matches!(&self.scene, Some((sw, sh, _)) if (*sw, *sh) == (w, h)) {
            let scene = match self.source {
                Source::TestGuest => Scene::Guest(guest::Scene::new(w, h)),
                Source::Synthetic { .. } => {
                    Scene::Synthetic(zerocast_synthetic::scene::Scene::new(w, h).with_frame_clock())
                }
            };
            self.scene = Some((w, h, scene));
        }
        let Some((_, _, scene)) = &self.scene else {
            unreachable!("set above")
        };
        let stride = w as usize * 4;
        self.pixels.resize(stride * h as usize, 0);
        match (scene, self.source) {
            (Scene::Guest(scene), _) => {
                // A fresh canvas with the background and nothing drawn:
                // frame n whole.
                let mut canvas = guest::Canvas::new(&mut self.pixels, w, h, stride);
                scene.paint_background(&mut canvas);
                scene.render(&mut canvas, u64::from(n), &mut Vec::new());
            }
            (Scene::Synthetic(scene), Source::Synthetic { fps }) => {
                // It draws its background first itself.
                let mut canvas =
                    zerocast_synthetic::canvas::Canvas::new(&mut self.pixels, w, h, stride);
                scene.render(&mut canvas, u64::from(n), fps);
            }
            (Scene::Synthetic(_), Source::TestGuest) => unreachable!("made for its source"),
        }
        let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &self.pixels)
            .context("the test guest's frame")?;
        self.i420
            .convert(&frame)
            .context("converting the test guest's frame")?;
        Ok(&self.i420)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use openh264::encoder::{BitRate, Encoder, EncoderConfig};
    use openh264::formats::YUVBuffer;
    use openh264::OpenH264API;

    const W: u32 = 640;
    const H: u32 = 400;

    /// Frame `picture` of the test guest, stamped `stamped` instead of its
    /// own number when given.
    fn picture(picture: u32, stamped: Option<u32>) -> Vec<u8> {
        let stride = W as usize * 4;
        let mut px = vec![0u8; stride * H as usize];
        let scene = guest::Scene::new(W, H);
        let mut canvas = guest::Canvas::new(&mut px, W, H, stride);
        scene.paint_background(&mut canvas);
        scene.render(&mut canvas, u64::from(picture), &mut Vec::new());
        if let Some(n) = stamped {
            stamp::draw(&mut px, W, H, stride, n);
        }
        px
    }

    /// `pictures` encoded with OpenH264 at a generous bitrate, as a stream.
    fn encoded(pictures: &[Vec<u8>]) -> Vec<Arc<EncodedFrame>> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(4_000_000))
            .skip_frames(false);
        let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).unwrap();
        let mut i420 = I420::default();
        (1..)
            .zip(pictures)
            .map(|(seq, px)| {
                let frame = Frame::new(W, H, W * 4, PixelFormat::Xrgb8888, px).unwrap();
                i420.convert(&frame).unwrap();
                let yuv = YUVBuffer::from_vec(
                    [i420.y(), i420.u(), i420.v()].concat(),
                    W as usize,
                    H as usize,
                );
                let au = encoder.encode(&yuv).unwrap().to_vec();
                Arc::new(EncodedFrame {
                    seq,
                    keyframe: seq == 1,
                    captured_unix_ns: 0,
                    captured_at: Instant::now(),
                    width: W,
                    height: H,
                    fps: 60,
                    encode_time: Duration::ZERO,
                    layout: Layout::Whole,
                    access_unit: Bytes::from(au),
                })
            })
            .collect()
    }

    #[test]
    fn the_guest_picture_compares_well_and_a_wrong_frame_badly() {
        let frames: Vec<Vec<u8>> = (5..9).map(|n| picture(n, None)).collect();
        let good = compare(&encoded(&frames), Source::TestGuest).unwrap();
        assert_eq!((good.frames_decoded, good.frames_compared), (4, 4));
        let psnr = good.psnr_db.unwrap();
        assert!((30.0..99.0).contains(&psnr), "{good:?}");
        assert!(good.ssim.unwrap() > 0.9, "{good:?}");
        assert!(good.psnr_min_db.unwrap() <= psnr + 1e-9, "{good:?}");
        assert!(good.psnr_min_db <= good.psnr_median_db, "{good:?}");
        assert_eq!(good.not_measured, None);

        // A picture other than the one its stamp names (frame 300's
        // squares and band, stamped 5): it shows.
        let wrong = compare(&encoded(&[picture(300, Some(5))]), Source::TestGuest).unwrap();
        assert_eq!(wrong.frames_compared, 1);
        assert!(wrong.psnr_db.unwrap() < psnr - 5.0, "{wrong:?} vs {good:?}");
        assert!(
            wrong.ssim.unwrap() < good.ssim.unwrap(),
            "{wrong:?} vs {good:?}"
        );
    }

    #[test]
    fn the_replayable_synthetic_desktop_compares_well() {
        use zerocast_frame::FrameSource;
        use zerocast_synthetic::{Motion, SyntheticDesktop};
        let mut desktop = SyntheticDesktop::new(W, H, 30, Motion::Replayable);
        let frames: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                let _ = desktop.render();
                desktop.frame().unwrap().data().to_vec()
            })
            .collect();
        let good = compare(&encoded(&frames), Source::Synthetic { fps: 30 }).unwrap();
        assert_eq!(good.frames_compared, 4, "{good:?}");
        assert!(good.psnr_median_db.unwrap() > 30.0, "{good:?}");
        // Drawn at another frame rate, the animation is elsewhere.
        let off = compare(&encoded(&frames), Source::Synthetic { fps: 7 }).unwrap();
        assert!(
            off.psnr_db.unwrap() < good.psnr_db.unwrap() - 3.0,
            "{off:?} vs {good:?}"
        );
    }

    #[test]
    fn frames_without_a_stamp_are_not_compared() {
        let blank = vec![vec![0x40u8; W as usize * H as usize * 4]; 2];
        let q = compare(&encoded(&blank), Source::TestGuest).unwrap();
        assert_eq!((q.frames_decoded, q.frames_unstamped), (2, 2));
        assert_eq!((q.frames_compared, q.psnr_db, q.ssim), (0, None, None));
        assert!(q.not_measured.is_some());
        let none = compare(&[], Source::TestGuest).unwrap();
        assert_eq!(none.frames_decoded, 0);
        assert!(none.not_measured.is_some());
        // Garbage does not decode: counted, and no figure.
        let mut garbage = (*encoded(&blank[..1])[0]).clone();
        garbage.access_unit = Bytes::from_static(&[0, 0, 0, 1, 0x65, 0xff, 0x00, 0x13]);
        let q = compare(&[Arc::new(garbage)], Source::TestGuest).unwrap();
        assert_eq!(q.frames_compared, 0);
        assert!(q.not_measured.is_some(), "{q:?}");
    }

    #[test]
    fn at_most_max_compared_frames_are_compared() {
        let frames: Vec<Vec<u8>> = (0..u32::try_from(MAX_COMPARED).unwrap() + 10)
            .map(|n| picture(n, None))
            .collect();
        let q = compare(&encoded(&frames), Source::TestGuest).unwrap();
        assert_eq!(q.frames_decoded, frames.len() as u64);
        assert!(q.frames_compared <= MAX_COMPARED as u64 && q.frames_compared > 0);
    }
}
