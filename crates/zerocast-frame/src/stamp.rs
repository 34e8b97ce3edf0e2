//! A frame number drawn as a row of black and white blocks in the top-left
//! corner. Blocks are large enough to survive lossy H.264, so a test can read
//! the number back from a decoded picture and check that frames advance.
//!
//! Layout: `START` marker blocks (white, black), then 24 bits of the number
//! (most significant first), then 8 check bits; each block is
//! [`BLOCK`]x[`BLOCK`] pixels. 1 is white, 0 is black.

/// Side of one block, in pixels.
pub const BLOCK: u32 = 16;
/// Number of blocks in a stamp.
pub const BLOCKS: u32 = 2 + 24 + 8;
/// Width of a stamp in pixels.
pub const WIDTH: u32 = BLOCKS * BLOCK;

/// The largest number a stamp carries; larger numbers wrap.
pub const MAX: u32 = (1 << 24) - 1;

/// The number a stamp shows for frame counter `n`: its low 24 bits.
pub fn number(n: u64) -> u32 {
    u32::try_from(n & u64::from(MAX)).expect("masked to 24 bits")
}

fn check_bits(n: u32) -> u32 {
    (n ^ (n >> 8) ^ (n >> 16) ^ 0x5A) & 0xFF
}

/// The stamp's bits, one per block, left to right.
pub fn bits(n: u32) -> impl Iterator<Item = bool> {
    let n = n & MAX;
    let word = (n << 8) | check_bits(n);
    [true, false]
        .into_iter()
        .chain((0..32).rev().map(move |i| (word >> i) & 1 == 1))
}

/// Draws the stamp into a packed 4-byte-per-pixel picture. Does nothing if
/// the picture is smaller than the stamp.
pub fn draw(pixels: &mut [u8], width: u32, height: u32, stride: usize, n: u32) {
    if width < WIDTH || height < BLOCK {
        return;
    }
    for (i, bit) in bits(n).enumerate() {
        let v = if bit { 0xFF } else { 0x00 };
        let x0 = i * BLOCK as usize * 4;
        for y in 0..BLOCK as usize {
            let start = y * stride + x0;
            if let Some(row) = pixels.get_mut(start..start + BLOCK as usize * 4) {
                row.fill(v);
            }
        }
    }
}

/// Reads a stamp from a decoded 8-bit luma plane. Samples the centre of each
/// block; returns `None` when there is no valid stamp (wrong marker or check).
pub fn read_luma(luma: &[u8], width: u32, height: u32, stride: usize) -> Option<u32> {
    if width < WIDTH || height < BLOCK {
        return None;
    }
    let c = (BLOCK / 2) as usize;
    let sample = |i: u32| -> Option<bool> {
        let v = *luma.get(c * stride + i as usize * BLOCK as usize + c)?;
        Some(v >= 128)
    };
    decode(sample)
}

/// The number whose blocks `sample` reads (block index -> white), if the
/// marker and check bits are right.
fn decode(sample: impl Fn(u32) -> Option<bool>) -> Option<u32> {
    if !sample(0)? || sample(1)? {
        return None;
    }
    let mut word = 0u32;
    for i in 2..BLOCKS {
        word = (word << 1) | u32::from(sample(i)?);
    }
    let n = word >> 8;
    (check_bits(n) == word & 0xFF).then_some(n)
}

/// Reads a stamp from a packed-RGB picture (byte 1 of each pixel, green
/// in every 4-byte layout zerocast takes: the stamp is black and white).
/// Reads 34 pixels; allocates nothing.
pub fn read_frame(frame: &crate::Frame<'_>) -> Option<u32> {
    if frame.format().bytes_per_pixel() != 4 || frame.width() < WIDTH || frame.height() < BLOCK {
        return None;
    }
    let c = (BLOCK / 2) as usize;
    let row = frame.data().get(c * frame.stride() as usize..)?;
    let sample = |i: u32| -> Option<bool> {
        Some(*row.get((i as usize * BLOCK as usize + c) * 4 + 1)? >= 128)
    };
    decode(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luma_of(bgra: &[u8]) -> Vec<u8> {
        bgra.chunks_exact(4).map(|p| p[1]).collect()
    }

    #[test]
    fn round_trips_through_luma() {
        let (w, h) = (WIDTH + 8, BLOCK + 2);
        for n in [0, 1, 59, 1000, 123_456, MAX] {
            let mut px = vec![0x80u8; (w * h * 4) as usize];
            draw(&mut px, w, h, (w * 4) as usize, n);
            assert_eq!(read_luma(&luma_of(&px), w, h, w as usize), Some(n));
        }
    }

    #[test]
    fn reads_from_a_packed_picture() {
        let (w, h) = (WIDTH + 8, BLOCK + 2);
        let stride = w * 4 + 12;
        let mut px = vec![0x80u8; (stride * h) as usize];
        draw(&mut px, w, h, stride as usize, 4242);
        let frame = crate::Frame::new(w, h, stride, crate::PixelFormat::Xrgb8888, &px).unwrap();
        assert_eq!(read_frame(&frame), Some(4242));
        let blank = vec![0u8; (stride * h) as usize];
        let frame = crate::Frame::new(w, h, stride, crate::PixelFormat::Xrgb8888, &blank).unwrap();
        assert_eq!(read_frame(&frame), None);
    }

    #[test]
    fn rejects_noise_and_small_pictures() {
        let (w, h) = (WIDTH, BLOCK);
        assert_eq!(
            read_luma(&vec![200u8; (w * h) as usize], w, h, w as usize),
            None
        );
        assert_eq!(read_luma(&[0u8; 16], 4, 4, 4), None);
        let mut tiny = vec![0u8; 64];
        draw(&mut tiny, 4, 4, 16, 7);
        assert!(tiny.iter().all(|&b| b == 0));
    }
}
