//! Striped encoding: the picture cut into horizontal stripes, each its own
//! small H.264 stream from its own encoder, and only the stripes that
//! changed encoded. A keystroke at 1080p then costs one 1920x64 encode
//! instead of a whole-frame one: the encoders' cost grows with the pixels
//! they are given, whatever changed in them.
//!
//! The output of one [`StripedEncoder::encode`] is a striped access unit:
//! a record per encoded stripe, each a [`StripeHeader`] and that stripe's
//! Annex B access unit. A viewer decodes each stripe with its own decoder
//! and draws it at its row. Stripes absent from a frame keep their last
//! picture. See `docs/browser-protocol.md` (message 0x02).

use zerocast_frame::{Damage, Frame, Rect};

use crate::{
    new_encoder, EncodeError, Encoded, EncoderKind, EncoderSettings, Quality, VideoEncoder,
};

/// Bytes of a stripe record's header: row (u16), height (u16), flags (u8),
/// access unit length (u32), big-endian.
pub const STRIPE_HEADER_LEN: usize = 9;
const FLAG_KEYFRAME: u8 = 0x01;

/// Stripe heights accepted: whole macroblock rows, at most a 1080p screen's.
pub const STRIPE_HEIGHTS: std::ops::RangeInclusive<u32> = 16..=1088;

/// The header of one stripe's record in a striped access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeHeader {
    /// First row of the stripe in the picture.
    pub y: u16,
    pub height: u16,
    /// The stripe's access unit is an IDR picture.
    pub keyframe: bool,
    /// Bytes of the access unit after the header.
    pub len: u32,
}

impl StripeHeader {
    pub fn to_bytes(self) -> [u8; STRIPE_HEADER_LEN] {
        let mut b = [0u8; STRIPE_HEADER_LEN];
        b[0..2].copy_from_slice(&self.y.to_be_bytes());
        b[2..4].copy_from_slice(&self.height.to_be_bytes());
        b[4] = if self.keyframe { FLAG_KEYFRAME } else { 0 };
        b[5..9].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    pub fn parse(b: &[u8]) -> Option<StripeHeader> {
        let b: &[u8; STRIPE_HEADER_LEN] = b.get(..STRIPE_HEADER_LEN)?.try_into().ok()?;
        Some(StripeHeader {
            y: u16::from_be_bytes([b[0], b[1]]),
            height: u16::from_be_bytes([b[2], b[3]]),
            keyframe: b[4] & FLAG_KEYFRAME != 0,
            len: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        })
    }
}

/// Splits a striped access unit into its records: (header, access unit).
/// Stops at the first record that does not fit (yielding `Err`).
pub fn records(mut au: &[u8]) -> impl Iterator<Item = Result<(StripeHeader, &[u8]), ()>> {
    std::iter::from_fn(move || {
        if au.is_empty() {
            return None;
        }
        let parsed = StripeHeader::parse(au).and_then(|h| {
            let end = STRIPE_HEADER_LEN.checked_add(usize::try_from(h.len).ok()?)?;
            let body = au.get(STRIPE_HEADER_LEN..end)?;
            Some((h, body, end))
        });
        match parsed {
            Some((h, body, end)) => {
                au = &au[end..];
                Some(Ok((h, body)))
            }
            None => {
                au = &[];
                Some(Err(()))
            }
        }
    })
}

/// One stripe: its rows and its encoder.
struct Stripe {
    rows: Rect,
    encoder: Box<dyn VideoEncoder>,
    /// Its last picture was coded at motion quality: a refinement would improve it.
    refinable: bool,
}

/// A [`VideoEncoder`] whose access units are striped (see the module docs):
/// one inner encoder of `kind` per stripe of `stripe_height` rows.
pub struct StripedEncoder {
    kind: EncoderKind,
    settings: EncoderSettings,
    stripe_height: u32,
    describe: String,
    /// (width, height) the stripes are cut for.
    size: (u32, u32),
    stripes: Vec<Stripe>,
}

impl StripedEncoder {
    /// `stripe_height` is rounded down to whole macroblock rows, within
    /// [`STRIPE_HEIGHTS`].
    pub fn new(
        kind: EncoderKind,
        settings: EncoderSettings,
        stripe_height: u32,
    ) -> Result<Self, EncodeError> {
        let stripe_height =
            (stripe_height & !15).clamp(*STRIPE_HEIGHTS.start(), *STRIPE_HEIGHTS.end());
        // Built once here so that a backend that cannot start fails now,
        // not at the first frame.
        let describe = format!(
            "{}, in stripes of {stripe_height} rows",
            new_encoder(kind, settings)?.describe()
        );
        Ok(StripedEncoder {
            kind,
            settings: settings.sanitized(),
            stripe_height,
            describe,
            size: (0, 0),
            stripes: Vec::new(),
        })
    }

    /// Cuts the stripes for a picture of `size`, each with a new encoder.
    fn cut(&mut self, (width, height): (u32, u32)) -> Result<(), EncodeError> {
        self.stripes.clear();
        self.size = (width, height);
        let mut y = 0;
        while y < height {
            // A last sliver under a macroblock row joins the stripe above:
            // encoders refuse pictures that small.
            let left = height - y;
            let rows = if left < self.stripe_height + 16 {
                Rect::new(0, y, width, left)
            } else {
                Rect::new(0, y, width, self.stripe_height)
            };
            let encoder = new_encoder(self.kind, self.share(rows.height))?;
            self.stripes.push(Stripe {
                rows,
                encoder,
                refinable: false,
            });
            y += rows.height;
        }
        Ok(())
    }

    /// A stripe's settings: its share of the bitrate, by its rows.
    fn share(&self, rows: u32) -> EncoderSettings {
        let total = u64::from(self.size.1.max(1));
        let share = u64::from(self.settings.bitrate_bps) * u64::from(rows) / total;
        EncoderSettings {
            bitrate_bps: u32::try_from(share).unwrap_or(u32::MAX),
            ..self.settings
        }
        .sanitized()
    }
}

/// Appends one stripe's record: a header, then what `encode` appends.
fn record(
    out: &mut Vec<u8>,
    rows: &Rect,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<Option<Encoded>, EncodeError>,
) -> Result<Option<Encoded>, EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; STRIPE_HEADER_LEN]);
    let Some(encoded) = encode(out)? else {
        out.truncate(start);
        return Ok(None);
    };
    let header = StripeHeader {
        // Sizes are at most MAX_DIMENSION (8192): they fit.
        y: u16::try_from(rows.y).unwrap_or(u16::MAX),
        height: u16::try_from(rows.height).unwrap_or(u16::MAX),
        keyframe: encoded.keyframe,
        len: u32::try_from(encoded.len).unwrap_or(u32::MAX),
    };
    out[start..start + STRIPE_HEADER_LEN].copy_from_slice(&header.to_bytes());
    Ok(Some(encoded))
}

impl VideoEncoder for StripedEncoder {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn encode(
        &mut self,
        frame: &Frame<'_>,
        damage: &Damage,
        force_keyframe: bool,
        quality: Quality,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let size = (frame.width() & !1, frame.height() & !1);
        let (mut damage, mut force_keyframe) = (*damage, force_keyframe);
        if size != self.size {
            self.cut(size)?;
            (damage, force_keyframe) = (Damage::full(), true);
        }
        let start = out.len();
        let (mut all_keyframes, mut still) = (true, true);
        for stripe in &mut self.stripes {
            let part = damage.within(&stripe.rows);
            if part.is_empty() && !force_keyframe {
                all_keyframes = false;
                continue;
            }
            let Some(rows) = frame.rows(stripe.rows.y, stripe.rows.height) else {
                continue;
            };
            let encoder = &mut stripe.encoder;
            let encoded = record(out, &stripe.rows, |out| {
                encoder
                    .encode(&rows, &part, force_keyframe, quality, out)
                    .map(Some)
            });
            let encoded = match encoded {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(e) => {
                    // The stripes' encoders are out of step with what viewers
                    // have: the next picture cuts them afresh, all keyframes.
                    self.size = (0, 0);
                    out.truncate(start);
                    return Err(e);
                }
            };
            stripe.refinable = !encoded.still;
            all_keyframes &= encoded.keyframe;
            still &= encoded.still;
        }
        Ok(Encoded {
            keyframe: all_keyframes && !self.stripes.is_empty(),
            still,
            len: out.len() - start,
        })
    }

    fn refine(&mut self, out: &mut Vec<u8>) -> Result<Option<Encoded>, EncodeError> {
        let start = out.len();
        let mut any = false;
        for stripe in self.stripes.iter_mut().filter(|s| s.refinable) {
            let encoder = &mut stripe.encoder;
            match record(out, &stripe.rows, |out| encoder.refine(out)) {
                Ok(refined) => any |= refined.is_some(),
                Err(e) => {
                    // As for a failed encode: start afresh with keyframes.
                    self.size = (0, 0);
                    out.truncate(start);
                    return Err(e);
                }
            }
            stripe.refinable = false;
        }
        Ok(any.then(|| Encoded {
            keyframe: false,
            still: true,
            len: out.len() - start,
        }))
    }

    fn reconfigure(&mut self, settings: EncoderSettings) -> Result<(), EncodeError> {
        self.settings = settings.sanitized();
        for i in 0..self.stripes.len() {
            let share = self.share(self.stripes[i].rows.height);
            self.stripes[i].encoder.reconfigure(share)?;
        }
        Ok(())
    }

    fn settings(&self) -> EncoderSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;
    use zerocast_frame::PixelFormat;

    const W: u32 = 64;
    const H: u32 = 100;

    fn picture(seed: u32) -> Vec<u8> {
        (0..W * H * 4)
            .map(|i| ((i / 4 + seed * 7) % 251) as u8)
            .collect()
    }

    fn striped() -> StripedEncoder {
        StripedEncoder::new(EncoderKind::OpenH264, EncoderSettings::default(), 32).unwrap()
    }

    fn encode(
        enc: &mut StripedEncoder,
        px: &[u8],
        damage: &Damage,
        key: bool,
    ) -> (Encoded, Vec<u8>) {
        let frame = Frame::new(W, H, W * 4, PixelFormat::Xrgb8888, px).unwrap();
        let mut out = Vec::new();
        let e = enc
            .encode(&frame, damage, key, Quality::Motion, &mut out)
            .unwrap();
        (e, out)
    }

    fn headers(au: &[u8]) -> Vec<StripeHeader> {
        records(au).map(|r| r.unwrap().0).collect()
    }

    #[test]
    fn the_first_picture_is_every_stripe_as_a_keyframe_each_decoding_to_its_rows() {
        let mut enc = striped();
        let (e, au) = encode(&mut enc, &picture(1), &Damage::full(), false);
        assert!(e.keyframe);
        assert_eq!(e.len, au.len());
        let rows: Vec<_> = headers(&au)
            .iter()
            .map(|h| (h.y, h.height, h.keyframe))
            .collect();
        // 100 rows: two of 32, then 36 (the last 4 rows join the third).
        assert_eq!(rows, [(0, 32, true), (32, 32, true), (64, 36, true)]);
        for record in records(&au) {
            let (h, body) = record.unwrap();
            let mut decoder = Decoder::new().unwrap();
            let decoded = decoder.decode(body).unwrap().expect("a picture");
            assert_eq!(decoded.dimensions(), (W as usize, usize::from(h.height)));
        }
        assert!(enc.describe().ends_with("in stripes of 32 rows"));
    }

    #[test]
    fn only_damaged_stripes_are_encoded_and_refined() {
        let mut enc = striped();
        encode(&mut enc, &picture(1), &Damage::full(), false);
        let mut out = Vec::new();
        enc.refine(&mut out)
            .unwrap()
            .expect("the first picture refined");
        assert_eq!(headers(&out).len(), 3);
        // A change in rows 40..44 and one straddling rows 60..70.
        let mut damage = Damage::rect(Rect::new(8, 40, 8, 4));
        damage.add_rect(Rect::new(0, 60, 4, 10));
        let (e, au) = encode(&mut enc, &picture(2), &damage, false);
        assert!(!e.keyframe);
        let rows: Vec<_> = headers(&au).iter().map(|h| (h.y, h.keyframe)).collect();
        assert_eq!(rows, [(32, false), (64, false)]);
        // Refinement re-codes those two stripes only, once.
        let mut out = Vec::new();
        let refined = enc.refine(&mut out).unwrap().expect("a refinement");
        assert!(refined.still && !refined.keyframe);
        let rows: Vec<_> = headers(&out).iter().map(|h| h.y).collect();
        assert_eq!(rows, [32, 64]);
        assert!(enc.refine(&mut Vec::new()).unwrap().is_none());
        // Nothing damaged where the stripes are (the odd row past them).
        let (e, au) = encode(&mut enc, &picture(2), &Damage::none(), false);
        assert_eq!((e.len, au.len(), e.keyframe), (0, 0, false));
    }

    #[test]
    fn a_forced_keyframe_or_a_new_size_recodes_every_stripe() {
        let mut enc = striped();
        encode(&mut enc, &picture(1), &Damage::full(), false);
        let (e, au) = encode(&mut enc, &picture(1), &Damage::none(), true);
        assert!(e.keyframe);
        assert_eq!(headers(&au).len(), 3);
        let px = vec![0u8; 48 * 40 * 4];
        let frame = Frame::new(48, 40, 48 * 4, PixelFormat::Xrgb8888, &px).unwrap();
        let mut out = Vec::new();
        let e = enc
            .encode(&frame, &Damage::none(), false, Quality::Motion, &mut out)
            .unwrap();
        assert!(e.keyframe);
        let rows: Vec<_> = headers(&out).iter().map(|h| (h.y, h.height)).collect();
        assert_eq!(rows, [(0, 40)]);
    }

    #[test]
    fn the_bitrate_is_shared_by_rows_and_reconfigured() {
        let mut enc = striped();
        encode(&mut enc, &picture(1), &Damage::full(), false);
        let settings = EncoderSettings {
            bitrate_bps: 1_000_000,
            ..EncoderSettings::default()
        };
        enc.reconfigure(settings).unwrap();
        assert_eq!(enc.settings().bitrate_bps, 1_000_000);
        assert_eq!(enc.stripes[0].encoder.settings().bitrate_bps, 320_000);
        assert_eq!(enc.stripes[2].encoder.settings().bitrate_bps, 360_000);
    }

    #[test]
    fn records_refuse_what_does_not_fit() {
        let header = StripeHeader {
            y: 16,
            height: 16,
            keyframe: true,
            len: 3,
        };
        assert_eq!(StripeHeader::parse(&header.to_bytes()), Some(header));
        let mut au = header.to_bytes().to_vec();
        au.extend_from_slice(&[1, 2, 3]);
        assert_eq!(records(&au).count(), 1);
        au.truncate(au.len() - 1);
        let got: Vec<_> = records(&au).collect();
        assert_eq!(got, [Err(())]);
        assert_eq!(records(&au[..4]).collect::<Vec<_>>(), [Err(())]);
        assert_eq!(records(&[]).count(), 0);
    }

    #[test]
    fn stripe_heights_are_whole_macroblock_rows() {
        let enc =
            |h| StripedEncoder::new(EncoderKind::OpenH264, EncoderSettings::default(), h).unwrap();
        assert_eq!(enc(70).stripe_height, 64);
        assert_eq!(enc(0).stripe_height, 16);
        assert_eq!(enc(u32::MAX).stripe_height, 1088);
    }
}
