//! Walking an H.264 Annex B byte stream: NAL units separated by start codes.

/// NAL unit types that matter to a streamer.
pub mod nal_type {
    pub const NON_IDR_SLICE: u8 = 1;
    pub const IDR_SLICE: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

/// The NAL units of an Annex B stream, without their start codes.
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = skip_start_code(stream);
    std::iter::from_fn(move || {
        let data = rest?;
        match find_start_code(data) {
            Some((end, next)) => {
                rest = Some(&data[next..]);
                Some(trim_trailing_zeros(&data[..end]))
            }
            None => {
                rest = None;
                (!data.is_empty()).then_some(data)
            }
        }
    })
}

/// The type of a NAL unit (low 5 bits of its first byte).
pub fn unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1F)
}

/// True when the access unit holds an IDR slice, i.e. decoding can start here.
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|n| unit_type(n) == Some(nal_type::IDR_SLICE))
}

fn skip_start_code(stream: &[u8]) -> Option<&[u8]> {
    match find_start_code(stream) {
        // Leading zeros belong to a 4-byte (or longer) start code.
        Some((at, next)) if stream[..at].iter().all(|&b| b == 0) => Some(&stream[next..]),
        // Not Annex B from the first byte: treat everything as one unit.
        _ => Some(stream),
    }
}

/// Position of the next 00 00 01 start code (the byte after it too).
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (i, i + 3))
}

/// A four-byte start code leaves a zero at the end of the previous unit.
fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &nal[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9,
        ];
        let units: Vec<_> = nal_units(&s).collect();
        assert_eq!(units, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 9, 9]]);
        assert!(is_keyframe(&s));
        assert_eq!(unit_type(units[0]), Some(nal_type::SPS));
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert!(!is_keyframe(&[0, 0, 1, 0x41, 0, 0]));
        assert_eq!(nal_units(&[0x41, 7]).count(), 1);
    }
}
