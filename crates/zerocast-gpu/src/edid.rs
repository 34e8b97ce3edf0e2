//! EDID 1.4 base blocks describing one virtual monitor per scanout, so the
//! guest's connector reports a preferred mode of exactly the scanout's size,
//! and the other modes a monitor usually offers, so a desktop's display
//! settings have a choice.

/// Largest width or height an EDID detailed timing can carry (12 bits).
pub const MAX_EDID_DIMENSION: u32 = 4095;

/// Length of an EDID base block.
pub const EDID_LEN: usize = 128;

const REFRESH_HZ: u64 = 60;
/// Reduced-blanking horizontal timing (VESA CVT-RB): front porch, sync, total blank.
const H_FRONT: u32 = 48;
const H_SYNC: u32 = 32;
const H_BLANK: u32 = 160;
/// Reduced-blanking vertical timing: front porch, sync, least back porch.
const V_FRONT: u32 = 3;
const V_SYNC: u32 = 6;
const V_BACK_MIN: u32 = 6;

/// Established timings (bytes 35..38): 640x480, 800x600 and 1024x768,
/// each at 60 Hz.
const ESTABLISHED: [u8; 3] = [0x21, 0x08, 0x00];

/// Standard timing aspect ratios (EDID 1.3 and later), bits 7..6 of a
/// standard timing's second byte (1 is 4:3, which no mode here needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aspect {
    W16H10 = 0,
    W5H4 = 2,
    W16H9 = 3,
}

/// The eight standard timings, all at 60 Hz. A standard timing is a width
/// that is a multiple of 8 (256..=2288) and one of four aspect ratios, so
/// 1366x768 cannot be one: it gets a detailed timing of its own.
const STANDARD: [(u32, Aspect); 8] = [
    (1280, Aspect::W16H9),  // 1280x720
    (1280, Aspect::W16H10), // 1280x800
    (1280, Aspect::W5H4),   // 1280x1024
    (1440, Aspect::W16H10), // 1440x900
    (1600, Aspect::W16H9),  // 1600x900
    (1680, Aspect::W16H10), // 1680x1050
    (1920, Aspect::W16H9),  // 1920x1080
    (1920, Aspect::W16H10), // 1920x1200
];

/// The common laptop panel size no standard timing can express.
const SECOND_DETAILED: (u32, u32) = (1366, 768);

/// sRGB chromaticity (red, green, blue, white x/y) in EDID's 10-bit units.
const CHROMA: [u16; 8] = [655, 338, 307, 614, 154, 61, 320, 337];

/// The EDID of scanout `index` showing `width`x`height` at up to 60 Hz as
/// its preferred mode, the established and standard timings above, and
/// 1366x768. Dimensions are clamped to what a detailed timing can carry.
pub fn generate(index: u32, width: u32, height: u32) -> [u8; EDID_LEN] {
    let width = width.clamp(1, MAX_EDID_DIMENSION);
    let height = height.clamp(1, MAX_EDID_DIMENSION);
    let mut e = [0u8; EDID_LEN];
    e[0..8].copy_from_slice(&[0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]);
    // Manufacturer "ZRC": three 5-bit letters, big-endian.
    let letters = b"ZRC".map(|c| u16::from(c - b'@'));
    let vendor = (letters[0] << 10) | (letters[1] << 5) | letters[2];
    e[8..10].copy_from_slice(&vendor.to_be_bytes());
    e[10..12].copy_from_slice(&1u16.to_le_bytes()); // product code
    e[12..16].copy_from_slice(&(index + 1).to_le_bytes()); // serial: tells monitors apart
    e[16] = 0; // week unknown
    e[17] = 36; // made in 2026: years since 1990
    e[18] = 1; // EDID 1.4
    e[19] = 4;
    e[20] = 0xA0; // digital input, 8 bits per colour
    let (width_mm, height_mm) = (size_mm(width), size_mm(height));
    e[21] = u8::try_from(width_mm / 10).unwrap_or(u8::MAX); // centimetres
    e[22] = u8::try_from(height_mm / 10).unwrap_or(u8::MAX);
    e[23] = 120; // gamma 2.2
    e[24] = 0x06; // sRGB default, preferred timing is native
    e[25] = lo2(CHROMA[0], 6) | lo2(CHROMA[1], 4) | lo2(CHROMA[2], 2) | lo2(CHROMA[3], 0);
    e[26] = lo2(CHROMA[4], 6) | lo2(CHROMA[5], 4) | lo2(CHROMA[6], 2) | lo2(CHROMA[7], 0);
    for (i, c) in CHROMA.iter().enumerate() {
        e[27 + i] = low_byte(u32::from(c >> 2));
    }
    e[35..38].copy_from_slice(&ESTABLISHED);
    for (slot, &(w, aspect)) in e[38..54].chunks_exact_mut(2).zip(&STANDARD) {
        slot.copy_from_slice(&standard_timing(w, aspect));
    }
    // The preferred mode must be the first descriptor; detailed timings
    // come before the display descriptors.
    e[54..72].copy_from_slice(&detailed_timing(width, height, width_mm, height_mm));
    let (w2, h2) = SECOND_DETAILED;
    e[72..90].copy_from_slice(&detailed_timing(w2, h2, width_mm, height_mm));
    e[90..108].copy_from_slice(&name_descriptor(index));
    e[108..126].copy_from_slice(&dummy_descriptor());
    e[126] = 0; // no extension blocks
    let sum = e[..127].iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    e[127] = 0u8.wrapping_sub(sum);
    e
}

/// Millimetres at 96 dots per inch.
fn size_mm(pixels: u32) -> u32 {
    pixels * 254 / 960
}

fn lo2(v: u16, shift: u32) -> u8 {
    low_byte(u32::from(v & 0b11)) << shift
}

/// Bits 0..8 of `v`. EDID splits wide fields into a low byte and a high
/// nibble; the caller has already limited `v` to the field's width.
fn low_byte(v: u32) -> u8 {
    v.to_le_bytes()[0]
}

/// Bits 8..12 of `v`, as the low nibble.
fn high_nibble(v: u32) -> u8 {
    low_byte(v >> 8) & 0x0F
}

/// An 18-byte detailed timing descriptor, reduced blanking, 60 Hz or the
/// fastest refresh whose pixel clock fits the 16-bit field (655.35 MHz).
fn detailed_timing(width: u32, height: u32, width_mm: u32, height_mm: u32) -> [u8; 18] {
    // Vertical blank of at least 460 us: 2.838% of the active lines at 60 Hz.
    let v_blank = (height * 2838)
        .div_ceil(100_000)
        .max(V_FRONT + V_SYNC + V_BACK_MIN);
    let total = u64::from(width + H_BLANK) * u64::from(height + v_blank);
    let clock_10khz = u16::try_from((total * REFRESH_HZ).div_ceil(10_000)).unwrap_or(u16::MAX);
    let h_active = width;
    let mut d = [0u8; 18];
    d[0..2].copy_from_slice(&clock_10khz.to_le_bytes());
    d[2] = low_byte(h_active);
    d[3] = low_byte(H_BLANK);
    d[4] = (high_nibble(h_active) << 4) | high_nibble(H_BLANK);
    d[5] = low_byte(height);
    d[6] = low_byte(v_blank);
    d[7] = (high_nibble(height) << 4) | high_nibble(v_blank);
    d[8] = low_byte(H_FRONT);
    d[9] = low_byte(H_SYNC);
    d[10] = (low_byte(V_FRONT) << 4) | low_byte(V_SYNC);
    d[11] = 0; // high bits of porches and syncs: all small
    d[12] = low_byte(width_mm);
    d[13] = low_byte(height_mm);
    d[14] = (high_nibble(width_mm) << 4) | high_nibble(height_mm);
    d[17] = 0x1A; // digital separate sync, hsync +, vsync - (CVT-RB)
    d
}

/// A standard timing at 60 Hz: `width / 8 - 31`, then the aspect ratio and
/// `refresh - 60`.
fn standard_timing(width: u32, aspect: Aspect) -> [u8; 2] {
    debug_assert!(width % 8 == 0 && (256..=2288).contains(&width));
    [low_byte(width / 8 - 31), (aspect as u8) << 6]
}

/// Monitor name descriptor: "zerocast N".
fn name_descriptor(index: u32) -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = 0xFC;
    let name = format!("zerocast {index}\n");
    let text = &mut d[5..18];
    text.fill(b' ');
    let n = name.len().min(text.len());
    text[..n].copy_from_slice(&name.as_bytes()[..n]);
    d
}

fn dummy_descriptor() -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = 0x10;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_valid_and_carries_the_mode() {
        for (w, h) in [
            (1280, 800),
            (1920, 1080),
            (3840, 2160),
            (16, 16),
            (4095, 4095),
        ] {
            let e = generate(0, w, h);
            assert_eq!(&e[0..8], &[0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0]);
            assert_eq!(e.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            let d = &e[54..72];
            let h_active = u32::from(d[2]) | (u32::from(d[4] >> 4) << 8);
            let v_active = u32::from(d[5]) | (u32::from(d[7] >> 4) << 8);
            assert_eq!((h_active, v_active), (w, h));
            assert_ne!(u16::from_le_bytes([d[0], d[1]]), 0);
        }
    }

    #[test]
    fn refresh_is_60hz_when_the_clock_fits() {
        let d = &generate(0, 1280, 800)[54..72];
        let clock = u64::from(u16::from_le_bytes([d[0], d[1]])) * 10_000;
        let h_total = 1280 + u64::from(d[3]);
        let v_total = 800 + u64::from(d[6]);
        let hz = clock as f64 / (h_total * v_total) as f64;
        assert!((hz - 60.0).abs() < 0.1, "{hz}");
    }

    #[test]
    fn monitors_differ_by_serial_and_name() {
        let (a, b) = (generate(0, 1280, 800), generate(1, 1280, 800));
        assert_ne!(a[12..16], b[12..16]);
        assert_eq!(&a[90..95], &[0, 0, 0, 0xFC, 0]);
        assert_eq!(&a[95..105], b"zerocast 0");
    }

    /// Active width and height of the detailed timing at `d`.
    fn detailed_size(d: &[u8]) -> (u32, u32) {
        (
            u32::from(d[2]) | (u32::from(d[4] >> 4) << 8),
            u32::from(d[5]) | (u32::from(d[7] >> 4) << 8),
        )
    }

    /// Every mode the block offers, decoded as a guest's EDID parser does:
    /// the detailed timings first, then the established, then the standard
    /// timings, as (width, height, refresh).
    fn offered_modes(e: &[u8; EDID_LEN]) -> Vec<(u32, u32, u32)> {
        let mut modes = Vec::new();
        for d in e[54..126].chunks_exact(18) {
            // A zero pixel clock marks a display descriptor.
            if d[0..2] != [0, 0] {
                let (w, h) = detailed_size(d);
                let clock = u64::from(u16::from_le_bytes([d[0], d[1]])) * 10_000;
                let h_blank = u32::from(d[3]) | (u32::from(d[4] & 0x0F) << 8);
                let v_blank = u32::from(d[6]) | (u32::from(d[7] & 0x0F) << 8);
                let total = u64::from(w + h_blank) * u64::from(h + v_blank);
                let hz = u32::try_from((clock + total / 2) / total).unwrap();
                modes.push((w, h, hz));
            }
        }
        // Bytes 35..37, most significant bit first, as VESA numbers them;
        // only the 60 Hz bits are named here, the others must stay clear.
        let established = [
            (35, 5, (640, 480)),
            (35, 0, (800, 600)),
            (36, 3, (1024, 768)),
        ];
        let mut expected_bits = [0u8; 3];
        for (byte, bit, (w, h)) in established {
            if e[byte] & (1 << bit) != 0 {
                modes.push((w, h, 60));
            }
            expected_bits[byte - 35] |= 1 << bit;
        }
        assert_eq!(
            e[35..38],
            expected_bits,
            "an established timing we did not mean"
        );
        for st in e[38..54].chunks_exact(2) {
            if st == [0x01, 0x01] {
                continue; // unused slot
            }
            let w = (u32::from(st[0]) + 31) * 8;
            let h = match st[1] >> 6 {
                0 => w * 10 / 16,
                1 => w * 3 / 4,
                2 => w * 4 / 5,
                _ => w * 9 / 16,
            };
            modes.push((w, h, u32::from(st[1] & 0x3F) + 60));
        }
        modes
    }

    #[test]
    fn offers_the_usual_modes_after_the_preferred_one() {
        let e = generate(0, 1280, 800);
        assert_eq!(e.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        // EDID 1.4 says the first detailed timing is the preferred mode.
        assert_eq!(e[24] & 0x02, 0x02);
        assert_eq!(
            offered_modes(&e),
            [
                (1280, 800, 60),
                (1366, 768, 60),
                (640, 480, 60),
                (800, 600, 60),
                (1024, 768, 60),
                (1280, 720, 60),
                (1280, 800, 60),
                (1280, 1024, 60),
                (1440, 900, 60),
                (1600, 900, 60),
                (1680, 1050, 60),
                (1920, 1080, 60),
                (1920, 1200, 60),
            ]
        );
    }

    #[test]
    fn the_configured_mode_stays_preferred_whatever_it_is() {
        for (w, h) in [(1920, 1080), (1024, 600), (3840, 2160), (16, 16)] {
            let e = generate(1, w, h);
            assert_eq!(e.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            assert_eq!(offered_modes(&e)[0], (w, h, 60));
            assert_eq!(detailed_size(&e[72..90]), (1366, 768));
        }
    }
}
