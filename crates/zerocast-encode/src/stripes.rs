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

use zerocast_frame::{Damage, Frame, Rect, I420};

use crate::{
    new_encoder, EncodeError, Encoded, EncoderKind, EncoderSettings, Quality, RateControl,
    VideoEncoder,
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

/// A share of the picture's rows past which a frame is coded whole: a
/// scroll, a video or a dragged window moves pixels across stripes, which
/// stripes code at many times the bytes (they cannot predict from their
/// neighbours), for no CPU saved.
const WHOLE_ABOVE: f64 = 0.25;

/// One encoder of a striped stream: a stripe's, or the whole picture's.
struct Part {
    /// Its rows in the picture.
    rows: Rect,
    encoder: Box<dyn VideoEncoder>,
    /// What changed in its rows since its own last encode (what it converts).
    pending: Damage,
    /// Its rows changed in the frame being encoded (what it encodes for).
    changed: bool,
    /// Its last picture is on screen at motion quality: a refinement
    /// would improve it.
    refinable: bool,
    /// Viewers may lack its previous pictures (a keyframe of the other
    /// parts went out since its last encode): its next picture is an IDR.
    needs_idr: bool,
}

impl Part {
    fn new(rows: Rect, encoder: Box<dyn VideoEncoder>) -> Self {
        Part {
            rows,
            encoder,
            pending: Damage::full(),
            changed: false,
            refinable: false,
            needs_idr: true,
        }
    }

    /// Encodes its rows of `frame` as one record appended to `out`.
    fn encode(
        &mut self,
        frame: &Frame<'_>,
        force_keyframe: bool,
        quality: Quality,
        out: &mut Vec<u8>,
    ) -> Result<Option<Encoded>, EncodeError> {
        let Some(rows) = frame.rows(self.rows.y, self.rows.height) else {
            return Ok(None);
        };
        let damage = self.pending.take();
        let key = force_keyframe || self.needs_idr;
        let encoder = &mut self.encoder;
        let encoded = record(out, &self.rows, |out| {
            encoder.encode(&rows, &damage, key, quality, out).map(Some)
        })?;
        if let Some(e) = encoded {
            self.refinable = !e.still;
            self.needs_idr &= !e.keyframe;
        }
        Ok(encoded)
    }
}

/// A [`VideoEncoder`] whose access units are striped (see the module docs):
/// one inner encoder of `kind` per stripe of `stripe_height` rows, and one
/// for the whole picture, used while most of it changes.
///
/// How the parts stay in step with what viewers show:
/// - A keyframe is every stripe as an IDR; the whole picture's encoder
///   then starts with an IDR of its own when next used.
/// - A part encodes its rows from its own last picture, whatever other
///   parts showed since (its decoder has the same reference): correct, and
///   only dearer than predicting from the newest picture.
/// - Once a frame was coded whole, frames stay whole until that picture
///   is refined (the screen went still): stripes could not refine rows
///   they did not code last. A stripe refines only rows it coded last.
pub struct StripedEncoder {
    kind: EncoderKind,
    settings: EncoderSettings,
    stripe_height: u32,
    describe: String,
    /// (width, height) the parts are cut for.
    size: (u32, u32),
    stripes: Vec<Part>,
    /// `None` when the picture is a single stripe.
    whole: Option<Part>,
    /// The last frame was coded whole at motion quality and not refined yet.
    whole_on_screen: bool,
    /// The last frame's picture, to find what a frame of unknown damage
    /// changed, and the buffer the next one is converted into.
    seen: I420,
    scratch: I420,
    /// `seen` holds the whole last frame.
    seen_valid: bool,
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
            whole: None,
            whole_on_screen: false,
            seen: I420::default(),
            scratch: I420::default(),
            seen_valid: false,
        })
    }

    /// Cuts the parts for a picture of `size`, each with a new encoder.
    fn cut(&mut self, (width, height): (u32, u32)) -> Result<(), EncodeError> {
        self.stripes.clear();
        self.whole = None;
        self.whole_on_screen = false;
        self.seen_valid = false;
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
            self.stripes.push(Part::new(rows, encoder));
            y += rows.height;
        }
        if self.stripes.len() > 1 {
            let encoder = new_encoder(self.kind, self.settings)?;
            self.whole = Some(Part::new(Rect::new(0, 0, width, height), encoder));
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

    /// Whether this frame is coded whole (see the type's docs).
    fn whole_frame(&self, force_keyframe: bool) -> bool {
        if self.whole.is_none() || force_keyframe {
            return false;
        }
        if self.whole_on_screen {
            return true;
        }
        let changed: u32 = self
            .stripes
            .iter()
            .filter(|s| s.changed)
            .map(|s| s.rows.height)
            .sum();
        f64::from(changed) > WHOLE_ABOVE * f64::from(self.size.1)
    }

    fn encode_parts(
        &mut self,
        frame: &Frame<'_>,
        force_keyframe: bool,
        quality: Quality,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let start = out.len();
        let whole_frame = self.whole_frame(force_keyframe);
        if let Some(whole) = self.whole.as_mut().filter(|_| whole_frame) {
            let encoded = whole.encode(frame, false, quality, out)?;
            let still = encoded.is_none_or(|e| e.still);
            // Rows coded whole are not the stripes' to refine any more.
            for stripe in &mut self.stripes {
                stripe.refinable = false;
            }
            let refinable = matches!(self.settings.rate_control, RateControl::Quality { .. });
            self.whole_on_screen = refinable && !still;
            return Ok(Encoded {
                keyframe: false,
                still,
                len: out.len() - start,
            });
        }
        let (mut all_keyframes, mut still) = (true, true);
        for stripe in &mut self.stripes {
            if !stripe.changed && !force_keyframe {
                all_keyframes = false;
                continue;
            }
            match stripe.encode(frame, force_keyframe, quality, out)? {
                Some(e) => {
                    all_keyframes &= e.keyframe;
                    still &= e.still;
                }
                None => all_keyframes = false,
            }
        }
        let keyframe = all_keyframes && !self.stripes.is_empty();
        if let Some(whole) = &mut self.whole {
            whole.refinable = false;
            // Its decoders may be new (a viewer joined): start them afresh.
            whole.needs_idr |= keyframe;
        }
        self.whole_on_screen = false;
        Ok(Encoded {
            keyframe,
            still,
            len: out.len() - start,
        })
    }

    fn refine_parts(&mut self, out: &mut Vec<u8>) -> Result<Option<Encoded>, EncodeError> {
        let start = out.len();
        let mut any = false;
        let whole = self.whole.iter_mut().filter(|_| self.whole_on_screen);
        for part in whole.chain(self.stripes.iter_mut()).filter(|p| p.refinable) {
            let encoder = &mut part.encoder;
            any |= record(out, &part.rows, |out| encoder.refine(out))?.is_some();
            part.refinable = false;
        }
        self.whole_on_screen = false;
        Ok(any.then(|| Encoded {
            keyframe: false,
            still: true,
            len: out.len() - start,
        }))
    }

    /// Notes what `frame` changed, for each part. Damage that is the whole
    /// picture (unknown, or a page flip to another buffer) is narrowed to
    /// the stripes whose pixels differ, as a VNC server finds its
    /// rectangles: a flip that changed one window encodes that window's
    /// stripes, not the screen.
    fn note(&mut self, frame: &Frame<'_>, damage: &Damage) -> Result<(), EncodeError> {
        for part in self.whole.iter_mut() {
            part.pending.add(damage);
        }
        let narrowed = if self.whole_on_screen {
            // The frame is coded whole whatever changed: nothing to find,
            // and the picture is looked at afresh once stripes are back.
            self.seen_valid = false;
            None
        } else if damage.is_full() {
            self.scratch.convert(frame)?;
            std::mem::swap(&mut self.seen, &mut self.scratch);
            // `scratch` now holds the picture before, if `seen` did.
            std::mem::replace(&mut self.seen_valid, true).then_some(&self.scratch)
        } else {
            if self.seen_valid {
                self.seen.convert_rects(frame, damage.rects())?;
            } else {
                self.seen.convert(frame)?;
            }
            self.seen_valid = true;
            None
        };
        for stripe in &mut self.stripes {
            let part = match narrowed {
                Some(before) if same_rows(before, &self.seen, &stripe.rows) => Damage::none(),
                _ => damage.within(&stripe.rows),
            };
            stripe.changed = !part.is_empty();
            stripe.pending.add(&part);
        }
        Ok(())
    }

    /// Drops every part after a failure: their encoders are out of step
    /// with what viewers have, so the next picture cuts them afresh.
    fn restart<T>(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        e: EncodeError,
    ) -> Result<T, EncodeError> {
        self.size = (0, 0);
        out.truncate(start);
        Err(e)
    }
}

/// Whether two pictures of the same size have the same samples in `rows`
/// (the rows of a stripe: even, whole chroma rows).
fn same_rows(a: &I420, b: &I420, rows: &Rect) -> bool {
    /// The samples of rows `top..bottom` of a plane `w` samples wide.
    fn band(plane: &[u8], w: u32, top: u32, bottom: u32) -> Option<&[u8]> {
        plane.get(top as usize * w as usize..bottom as usize * w as usize)
    }
    let (top, bottom) = (rows.y, rows.y + rows.height);
    let (w, cw) = (a.width(), a.width().div_ceil(2));
    let y = band(a.y(), w, top, bottom);
    a.width() == b.width()
        && y.is_some()
        && y == band(b.y(), w, top, bottom)
        && band(a.u(), cw, top / 2, bottom / 2) == band(b.u(), cw, top / 2, bottom / 2)
        && band(a.v(), cw, top / 2, bottom / 2) == band(b.v(), cw, top / 2, bottom / 2)
}

/// Appends one part's record: a header, then what `encode` appends.
fn record(
    out: &mut Vec<u8>,
    rows: &Rect,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<Option<Encoded>, EncodeError>,
) -> Result<Option<Encoded>, EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; STRIPE_HEADER_LEN]);
    let encoded = match encode(out) {
        Ok(Some(e)) => e,
        other => {
            out.truncate(start);
            return other;
        }
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
        let start = out.len();
        let mut force_keyframe = force_keyframe;
        if size != self.size {
            if let Err(e) = self.cut(size) {
                return self.restart(out, start, e);
            }
            force_keyframe = true;
        }
        if let Err(e) = self.note(frame, damage) {
            return self.restart(out, start, e);
        }
        match self.encode_parts(frame, force_keyframe, quality, out) {
            Ok(e) => Ok(e),
            Err(e) => self.restart(out, start, e),
        }
    }

    fn refine(&mut self, out: &mut Vec<u8>) -> Result<Option<Encoded>, EncodeError> {
        let start = out.len();
        match self.refine_parts(out) {
            Ok(e) => Ok(e),
            Err(e) => self.restart(out, start, e),
        }
    }

    fn reconfigure(&mut self, settings: EncoderSettings) -> Result<(), EncodeError> {
        self.settings = settings.sanitized();
        for i in 0..self.stripes.len() {
            let share = self.share(self.stripes[i].rows.height);
            self.stripes[i].encoder.reconfigure(share)?;
        }
        if let Some(whole) = &mut self.whole {
            whole.encoder.reconfigure(self.settings)?;
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
    const H: u32 = 330;

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
        // 330 rows: nine of 32, then 42 (the last 10 rows join the tenth).
        let want: Vec<_> = (0..9)
            .map(|i| (i * 32, 32, true))
            .chain([(288, 42, true)])
            .collect();
        assert_eq!(rows, want);
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
        assert_eq!(headers(&out).len(), 10);
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
        assert_eq!(headers(&au).len(), 10);
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
        assert_eq!(enc.stripes[0].encoder.settings().bitrate_bps, 96_969);
        assert_eq!(enc.stripes[9].encoder.settings().bitrate_bps, 127_272);
        let whole = enc.whole.as_ref().unwrap();
        assert_eq!(whole.encoder.settings().bitrate_bps, 1_000_000);
    }

    #[test]
    fn most_of_the_picture_changing_is_coded_whole_until_refined() {
        let mut enc = striped();
        encode(&mut enc, &picture(1), &Damage::full(), false);
        // Rows 0..120 change: four stripes of ten, more than a quarter.
        let big = Damage::rect(Rect::new(0, 0, W, 120));
        let (e, au) = encode(&mut enc, &picture(2), &big, false);
        assert!(!e.keyframe, "not every stripe: not a keyframe for joiners");
        let rows: Vec<_> = headers(&au)
            .iter()
            .map(|h| (h.y, h.height, h.keyframe))
            .collect();
        assert_eq!(
            rows,
            [(0, 330, true)],
            "the whole picture's first is an IDR"
        );
        let mut decoder = Decoder::new().unwrap();
        let (_, body) = records(&au).next().unwrap().unwrap();
        let decoded = decoder.decode(body).unwrap().expect("a picture");
        assert_eq!(decoded.dimensions(), (W as usize, H as usize));
        // A small change now is still coded whole: the stripes could not
        // refine the rows the whole picture coded.
        let small = Damage::rect(Rect::new(0, 0, 8, 8));
        let (_, au) = encode(&mut enc, &picture(3), &small, false);
        assert_eq!(
            headers(&au)
                .iter()
                .map(|h| (h.y, h.keyframe))
                .collect::<Vec<_>>(),
            [(0, false)]
        );
        let mut out = Vec::new();
        enc.refine(&mut out)
            .unwrap()
            .expect("the whole picture refined");
        assert_eq!(
            headers(&out).iter().map(|h| h.height).collect::<Vec<_>>(),
            [330]
        );
        // Refined: back to stripes, each from its own last picture (here
        // so unlike it that OpenH264 makes it an IDR of its own accord).
        let (_, au) = encode(&mut enc, &picture(4), &small, false);
        let rows: Vec<_> = headers(&au).iter().map(|h| (h.y, h.height)).collect();
        assert_eq!(rows, [(0, 32)]);
        // A keyframe is every stripe, and the whole picture restarts with an IDR.
        let (e, _) = encode(&mut enc, &picture(4), &Damage::none(), true);
        assert!(e.keyframe);
        let (_, au) = encode(&mut enc, &picture(5), &Damage::full(), false);
        assert_eq!(
            headers(&au)
                .iter()
                .map(|h| (h.height, h.keyframe))
                .collect::<Vec<_>>(),
            [(330, true)]
        );
    }

    #[test]
    fn a_flip_to_another_buffer_encodes_only_the_stripes_whose_pixels_differ() {
        let mut enc = striped();
        let before = picture(1);
        encode(&mut enc, &before, &Damage::full(), false);
        // Another buffer, the same but for rows 100..110: the damage is
        // the whole picture (a page flip), the change one stripe.
        let mut after = before.clone();
        for b in &mut after[(100 * W * 4) as usize..(110 * W * 4) as usize] {
            *b = b.wrapping_add(40);
        }
        let (_, au) = encode(&mut enc, &after, &Damage::full(), false);
        let rows: Vec<_> = headers(&au).iter().map(|h| h.y).collect();
        assert_eq!(rows, [96]);
        // The same buffer again: nothing.
        let (e, _) = encode(&mut enc, &after, &Damage::full(), false);
        assert_eq!(e.len, 0);
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
