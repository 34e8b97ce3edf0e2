//! What every backend in [`EncoderKind::ALL`] must do, checked on each:
//! the [`VideoEncoder`] contract (one access unit per call, keyframes,
//! size changes, damage, refinement, reconfiguration), with the output
//! decoded by a real decoder (OpenH264's).

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use zerocast_frame::{Damage, Frame, PixelFormat, Rect, I420};

use crate::annexb::{self, nal_type};
use crate::{
    new_encoder, EncodeError, Encoded, EncoderKind, EncoderSettings, Fps, Quality, RateControl,
    VideoEncoder,
};

fn encoder(kind: EncoderKind, settings: EncoderSettings) -> Box<dyn VideoEncoder> {
    new_encoder(kind, settings).unwrap()
}

fn picture(w: u32, h: u32, seed: u32) -> Vec<u8> {
    (0..w * h * 4)
        .map(|i| ((i / 4 + seed * 7) % 251) as u8)
        .collect()
}

fn encode(enc: &mut dyn VideoEncoder, w: u32, h: u32, seed: u32, key: bool) -> (Encoded, Vec<u8>) {
    let px = picture(w, h, seed);
    let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
    let mut out = Vec::new();
    let e = enc
        .encode(&frame, &Damage::full(), key, Quality::Motion, &mut out)
        .unwrap();
    (e, out)
}

/// A picture with text-like detail: fine stripes and sharp edges.
fn detailed(w: u32, h: u32) -> Vec<u8> {
    (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            let v = if (x / 3 + y / 5) % 2 == 0 { 230 } else { 20 };
            [v, v / 2 + (x % 7) as u8 * 9, 255 - v, 0]
        })
        .collect()
}

/// Decodes one access unit, which must give exactly one picture, and
/// returns its luma PSNR against `frame`.
fn decoded_psnr(decoder: &mut Decoder, au: &[u8], frame: &Frame<'_>) -> f64 {
    let decoded = decoder.decode(au).unwrap().expect("a picture");
    let mut source = I420::default();
    source.convert(frame).unwrap();
    let w = source.width() as usize;
    assert_eq!(
        decoded.dimensions(),
        (w, source.height() as usize),
        "decoded size"
    );
    let stride = decoded.strides().0;
    let mut sum = 0f64;
    for (got, want) in decoded.y().chunks(stride).zip(source.y().chunks_exact(w)) {
        for (a, b) in got[..w].iter().zip(want) {
            sum += f64::from(a.abs_diff(*b)).powi(2);
        }
    }
    let mse = sum / (w * source.height() as usize) as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

#[test]
fn first_frame_is_a_constrained_baseline_idr_with_parameter_sets_then_p_frames() {
    for kind in EncoderKind::ALL {
        let mut enc = encoder(kind, EncoderSettings::default());
        let (e, au) = encode(enc.as_mut(), 320, 240, 0, false);
        assert!(e.keyframe, "{kind}");
        assert_eq!(e.len, au.len());
        let types: Vec<_> = annexb::nal_units(&au)
            .filter_map(annexb::unit_type)
            .collect();
        assert!(
            types.contains(&nal_type::SPS) && types.contains(&nal_type::PPS),
            "{kind}: {types:?}"
        );
        assert!(annexb::is_keyframe(&au));
        // The viewer's codec string is avc1. and the SPS's first three
        // bytes: WebCodecs takes profile 66 (0x42) with constraint_set1
        // (constrained baseline) from every H.264 decoder.
        let sps = annexb::nal_units(&au)
            .find(|n| annexb::unit_type(n) == Some(nal_type::SPS))
            .unwrap();
        assert_eq!(sps[1], 0x42, "{kind}: baseline profile");
        assert_ne!(sps[2] & 0x40, 0, "{kind}: constrained baseline");
        for seed in 1..5 {
            let (e, au) = encode(enc.as_mut(), 320, 240, seed, false);
            assert!(
                !e.keyframe && !au.is_empty() && !annexb::is_keyframe(&au),
                "{kind}"
            );
        }
        let (e, au) = encode(enc.as_mut(), 320, 240, 9, true);
        assert!(e.keyframe, "{kind}: a forced keyframe is an IDR");
        assert!(
            annexb::nal_units(&au).any(|n| annexb::unit_type(n) == Some(nal_type::SPS)),
            "{kind}: a joining decoder can start at any keyframe"
        );
    }
}

#[test]
fn every_call_is_one_access_unit_that_decodes_to_one_picture() {
    let (w, h) = (320u32, 240u32);
    for kind in EncoderKind::ALL {
        let mut enc = encoder(kind, EncoderSettings::default());
        let mut decoder = Decoder::new().unwrap();
        for seed in 0..8 {
            let px = picture(w, h, seed * 3);
            let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
            let mut au = Vec::new();
            enc.encode(&frame, &Damage::full(), seed == 5, Quality::Motion, &mut au)
                .unwrap();
            let slices = annexb::nal_units(&au)
                .filter_map(annexb::unit_type)
                .filter(|&t| t == nal_type::IDR_SLICE || t == nal_type::NON_IDR_SLICE)
                .count();
            assert!(slices >= 1, "{kind}: frame {seed} has a picture");
            let psnr = decoded_psnr(&mut decoder, &au, &frame);
            assert!(psnr > 30.0, "{kind}: frame {seed} decodes at {psnr:.1} dB");
        }
    }
}

#[test]
fn keyframe_interval_and_runtime_reconfigure() {
    for kind in EncoderKind::ALL {
        let mut enc = encoder(
            kind,
            EncoderSettings {
                keyframe_interval: 3,
                ..EncoderSettings::default()
            },
        );
        let keys: Vec<bool> = (0..7)
            .map(|i| encode(enc.as_mut(), 320, 240, i, false).0.keyframe)
            .collect();
        assert_eq!(
            keys,
            [true, false, false, true, false, false, true],
            "{kind}"
        );
        let new = EncoderSettings {
            bitrate_bps: 500_000,
            fps: Fps::new(30),
            keyframe_interval: 0,
            rate_control: RateControl::Quality {
                qp: 30,
                refresh_qp: 20,
            },
        };
        enc.reconfigure(new).unwrap();
        assert_eq!(enc.settings(), new);
        let keys: Vec<bool> = (0..5)
            .map(|i| encode(enc.as_mut(), 320, 240, i, false).0.keyframe)
            .collect();
        assert_eq!(
            keys, [false; 5],
            "{kind}: reconfiguring does not restart the stream"
        );
    }
}

#[test]
fn damage_alone_gives_the_same_stream_as_whole_frames() {
    let (w, h) = (320u32, 240u32);
    for kind in EncoderKind::ALL {
        let mut px = picture(w, h, 0);
        let (mut whole, mut part) = (
            encoder(kind, EncoderSettings::default()),
            encoder(kind, EncoderSettings::default()),
        );
        for n in 0..6u32 {
            // A 9x13 block moves and changes colour; the rest stays.
            let r = Rect::new(3 + n * 17, 5 + n * 11, 9, 13);
            if n > 0 {
                for y in r.y..r.y + r.height {
                    for x in r.x..r.x + r.width {
                        let i = ((y * w + x) * 4) as usize;
                        px[i..i + 4].copy_from_slice(&[u8::try_from(n * 40).unwrap(), 200, 30, 0]);
                    }
                }
            }
            let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
            let damage = if n == 0 {
                Damage::full()
            } else {
                Damage::rect(r)
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            whole
                .encode(&frame, &Damage::full(), false, Quality::Motion, &mut a)
                .unwrap();
            part.encode(&frame, &damage, false, Quality::Motion, &mut b)
                .unwrap();
            assert_eq!(
                a, b,
                "{kind}: frame {n}: the same picture reaches the encoder"
            );
        }
        // Nothing changed: the previous picture again, even as a keyframe.
        let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        whole
            .encode(&frame, &Damage::full(), true, Quality::Motion, &mut a)
            .unwrap();
        part.encode(&frame, &Damage::none(), true, Quality::Motion, &mut b)
            .unwrap();
        assert_eq!(a, b, "{kind}");
    }
}

#[test]
fn a_flip_to_a_buffer_that_differs_in_one_box_decodes_to_it() {
    // Whole-picture damage: the backend cannot know what changed, and x264's
    // finds it by comparing, so a missed block would show as the old box.
    let (w, h) = (320u32, 240u32);
    let before = detailed(w, h);
    let mut after = before.clone();
    for y in 100..132 {
        for x in 161..209 {
            let i = ((y * w + x) * 4) as usize;
            for c in &mut after[i..i + 3] {
                *c = 255 - *c;
            }
        }
    }
    for kind in EncoderKind::ALL {
        let mut enc = encoder(kind, EncoderSettings::default());
        let mut decoder = Decoder::new().unwrap();
        for (n, px) in [&before, &after, &before, &before].into_iter().enumerate() {
            let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, px).unwrap();
            let mut out = Vec::new();
            enc.encode(&frame, &Damage::full(), false, Quality::Motion, &mut out)
                .unwrap();
            let psnr = decoded_psnr(&mut decoder, &out, &frame);
            assert!(psnr > 35.0, "{kind}: picture {n}: {psnr:.1} dB");
        }
    }
}

#[test]
fn size_change_restarts_with_keyframe_and_huge_frames_are_refused() {
    for kind in EncoderKind::ALL {
        let mut enc = encoder(kind, EncoderSettings::default());
        encode(enc.as_mut(), 320, 240, 0, false);
        assert!(!encode(enc.as_mut(), 320, 240, 1, false).0.keyframe);
        let (e, au) = encode(enc.as_mut(), 640, 240, 2, false);
        assert!(e.keyframe, "{kind}");
        assert_eq!(crate::sps::picture_size(&au), Some((640, 240)), "{kind}");
        let px = vec![0u8; 8192 * 4 * 2];
        let wide = Frame::new(8192, 2, 8192 * 4, PixelFormat::Xrgb8888, &px).unwrap();
        assert!(
            matches!(
                enc.encode(
                    &wide,
                    &Damage::full(),
                    false,
                    Quality::Motion,
                    &mut Vec::new()
                ),
                Err(EncodeError::UnsupportedSize { .. })
            ),
            "{kind}"
        );
    }
}

#[test]
fn refine_sharpens_the_still_picture_as_a_p_frame() {
    let settings = EncoderSettings {
        rate_control: RateControl::Quality {
            qp: 36,
            refresh_qp: 16,
        },
        ..EncoderSettings::default()
    };
    let (w, h) = (320, 240);
    let px = detailed(w, h);
    let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
    for kind in EncoderKind::ALL {
        let mut enc = encoder(kind, settings);
        let mut out = Vec::new();
        assert_eq!(
            enc.refine(&mut out).unwrap(),
            None,
            "{kind}: nothing to refine yet"
        );
        let mut decoder = Decoder::new().unwrap();
        let first = enc
            .encode(&frame, &Damage::full(), false, Quality::Motion, &mut out)
            .unwrap();
        assert!(!first.still);
        let coarse = decoded_psnr(&mut decoder, &out, &frame);
        out.clear();
        let refined = enc.refine(&mut out).unwrap().expect("a refinement");
        assert!(refined.still && !refined.keyframe && !annexb::is_keyframe(&out));
        let sharp = decoded_psnr(&mut decoder, &out, &frame);
        assert!(
            sharp > coarse + 6.0,
            "{kind}: refined {sharp:.1} dB against {coarse:.1} dB"
        );
        // Back to the motion QP for the next change, still no keyframe.
        out.clear();
        assert!(
            !enc.encode(&frame, &Damage::none(), false, Quality::Motion, &mut out)
                .unwrap()
                .keyframe,
            "{kind}"
        );
    }
}

#[test]
fn the_first_picture_is_coded_at_the_qp_asked_for() {
    let (w, h) = (320, 240);
    let px = detailed(w, h);
    let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
    for kind in EncoderKind::ALL {
        let size_at = |qp| {
            let mut enc = encoder(
                kind,
                EncoderSettings {
                    rate_control: RateControl::Quality { qp, refresh_qp: qp },
                    ..EncoderSettings::default()
                },
            );
            let mut out = Vec::new();
            let e = enc
                .encode(&frame, &Damage::full(), false, Quality::Motion, &mut out)
                .unwrap();
            assert!(e.keyframe && e.len == out.len());
            out.len()
        };
        let (fine, start, coarse) = (size_at(12), size_at(26), size_at(44));
        assert!(
            fine > start && start > coarse,
            "{kind}: {fine} {start} {coarse}"
        );
    }
}

#[test]
fn bitrate_control_does_not_refine_and_switching_restarts_with_a_keyframe() {
    for kind in EncoderKind::ALL {
        let bitrate = EncoderSettings {
            rate_control: RateControl::Bitrate,
            ..EncoderSettings::default()
        };
        let mut enc = encoder(kind, bitrate);
        encode(enc.as_mut(), 320, 240, 0, false);
        assert_eq!(enc.refine(&mut Vec::new()).unwrap(), None, "{kind}");
        assert!(!encode(enc.as_mut(), 320, 240, 1, false).0.keyframe);
        // A new bitrate and frame rate: the same stream goes on.
        let slower = EncoderSettings {
            bitrate_bps: 1_000_000,
            fps: Fps::new(30),
            ..bitrate
        };
        enc.reconfigure(slower).unwrap();
        assert_eq!(enc.settings(), slower);
        assert!(
            !encode(enc.as_mut(), 320, 240, 2, false).0.keyframe,
            "{kind}"
        );
        enc.reconfigure(EncoderSettings::default()).unwrap();
        assert!(
            encode(enc.as_mut(), 320, 240, 3, false).0.keyframe,
            "{kind}"
        );
        assert!(enc.refine(&mut Vec::new()).unwrap().is_some(), "{kind}");
    }
}

#[test]
fn every_backend_has_a_name_that_parses_back() {
    for kind in EncoderKind::ALL {
        assert_eq!(kind.to_string().parse::<EncoderKind>(), Ok(kind));
        assert!(encoder(kind, EncoderSettings::default())
            .describe()
            .starts_with(kind.name()));
    }
    assert!("X264".parse::<EncoderKind>().is_ok());
    assert!("vp8".parse::<EncoderKind>().unwrap_err().contains("x264"));
}
