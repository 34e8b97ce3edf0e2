//! The picture size an H.264 stream declares in its sequence parameter set,
//! for whoever relays a stream without decoding it (HXFR's FRAME_RESPONSE
//! carries no size). Sans I/O; the input is untrusted, so every read is
//! bounded and a malformed SPS gives `None`.

use crate::annexb::{nal_type, nal_units, unit_type};

/// Largest picture side accepted, in macroblocks (H.264 level 6.2 allows
/// 8192 pixels, 512 macroblocks).
const MAX_MBS: u32 = 512;

/// The width and height (cropping applied) of the first SPS in
/// `access_unit`, or `None` when it has no SPS or a malformed one.
pub fn picture_size(access_unit: &[u8]) -> Option<(u32, u32)> {
    let sps = nal_units(access_unit).find(|n| unit_type(n) == Some(nal_type::SPS))?;
    parse(&unescape(sps.get(1..)?))
}

/// The NAL payload without its emulation prevention bytes (00 00 03).
fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits, most significant first.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some((acc << 1) | self.bit()?))
    }

    /// ue(v), Exp-Golomb; values past 2^31 are refused.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Profiles whose SPS carries chroma format and scaling lists.
const HIGH_PROFILES: [u32; 12] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134];

fn parse(rbsp: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits { data: rbsp, pos: 0 };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if HIGH_PROFILES.contains(&profile) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit depth luma
        r.ue()?; // bit depth chroma
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let height_mbs = height_units.checked_mul(2 - frame_mbs_only)?;
    if width_mbs > MAX_MBS || height_mbs > MAX_MBS {
        return None;
    }
    let (mut width, mut height) = (width_mbs * 16, height_mbs * 16);
    if r.bit()? == 1 {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Crop units: chroma samples (2x2 for 4:2:0), field pairs count twice.
        let (unit_x, unit_y) = match chroma_format {
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        let crop_x = left.checked_add(right)?.checked_mul(unit_x)?;
        let crop_y = top.checked_add(bottom)?.checked_mul(unit_y)?;
        width = width.checked_sub(crop_x)?;
        height = height.checked_sub(crop_y)?;
    }
    (width > 0 && height > 0).then_some((width, height))
}

fn skip_scaling_list(r: &mut Bits<'_>, size: u32) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncoderKind, EncoderSettings, Quality};
    use zerocast_frame::{Damage, Frame, PixelFormat};

    #[test]
    fn reads_the_size_of_our_own_streams_including_cropped_ones() {
        for kind in EncoderKind::ALL {
            for (w, h) in [(320, 240), (1920, 1080), (1366, 768), (642, 362), (16, 16)] {
                let mut enc = crate::new_encoder(kind, EncoderSettings::default()).unwrap();
                let px = vec![90u8; (w * h * 4) as usize];
                let frame = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap();
                let mut au = Vec::new();
                enc.encode(&frame, &Damage::full(), true, Quality::Motion, &mut au)
                    .unwrap();
                assert_eq!(picture_size(&au), Some((w, h)), "{kind}: {w}x{h}");
            }
        }
    }

    #[test]
    fn no_sps_or_a_broken_one_gives_none() {
        assert_eq!(picture_size(&[0, 0, 0, 1, 0x65, 0x88]), None);
        assert_eq!(picture_size(&[0, 0, 0, 1, 0x67]), None);
        // An Exp-Golomb run of zeros longer than any field.
        assert_eq!(
            picture_size(&[0, 0, 0, 1, 0x67, 66, 0, 30, 0, 0, 3, 0, 0]),
            None
        );
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(unescape(&[1, 0, 0, 3, 1, 0, 0, 3]), [1, 0, 0, 1, 0, 0]);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_safe(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut au = vec![0, 0, 0, 1, 0x67];
            au.extend(bytes);
            let _ = picture_size(&au);
        }
    }
}
