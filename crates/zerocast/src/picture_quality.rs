//! How close a decoded picture is to its source, on luma: PSNR and SSIM,
//! for the benchmark modes that decode their own stream in-process.

use openh264::decoder::DecodedYUV;
use openh264::formats::YUVSource;
use zerocast_frame::I420;

/// A decoded picture's luma rows, cropped to the source's width, beside the
/// source's. `None` when the sizes differ.
fn rows<'a>(
    decoded: &'a DecodedYUV<'_>,
    source: &'a I420,
) -> Option<impl Iterator<Item = (&'a [u8], &'a [u8])>> {
    let (w, h) = (source.width() as usize, source.height() as usize);
    if decoded.dimensions() != (w, h) {
        return None;
    }
    let stride = decoded.strides().0;
    Some(
        decoded
            .y()
            .chunks(stride)
            .zip(source.y().chunks_exact(w))
            .take(h)
            .map(move |(got, want)| (&got[..w], want)),
    )
}

/// The sum of squared luma differences and the number of samples.
pub fn squared_error(decoded: &DecodedYUV<'_>, source: &I420) -> Option<(f64, f64)> {
    let sum: u64 = rows(decoded, source)?
        .map(|(got, want)| sum_of_squared_differences(got, want))
        .sum();
    let samples = f64::from(source.width()) * f64::from(source.height());
    Some((sum as f64, samples))
}

/// The sum of squared differences of two runs of samples, side by side.
pub fn sum_of_squared_differences(a: &[u8], b: &[u8]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)).pow(2))
        .sum()
}

/// PSNR in dB from a sum of squared errors over `samples`; 99 for identical.
pub fn psnr(squared_error: f64, samples: f64) -> f64 {
    let mse = squared_error / samples.max(1.0);
    if mse > 0.0 {
        (10.0 * (255.0f64 * 255.0 / mse).log10()).min(99.0)
    } else {
        99.0
    }
}

/// Luma SSIM, the mean over 8x8 blocks (non-overlapping, the usual
/// constants for 8-bit samples); 1 for identical pictures.
pub fn ssim(decoded: &DecodedYUV<'_>, source: &I420) -> Option<f64> {
    let rows: Vec<_> = rows(decoded, source)?.collect();
    ssim_of_rows(&rows, source.width() as usize)
}

/// [`ssim`] over rows `w` samples wide, (decoded, source) pairs.
fn ssim_of_rows(rows: &[(&[u8], &[u8])], w: usize) -> Option<f64> {
    const BLOCK: usize = 8;
    const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
    const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);
    let (mut total, mut blocks) = (0.0, 0u32);
    for band in rows.chunks_exact(BLOCK) {
        for x in (0..w.saturating_sub(BLOCK - 1)).step_by(BLOCK) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (got, want) in band {
                for (a, b) in got[x..x + BLOCK].iter().zip(&want[x..x + BLOCK]) {
                    let (a, b) = (f64::from(*a), f64::from(*b));
                    sa += a;
                    sb += b;
                    saa += a * a;
                    sbb += b * b;
                    sab += a * b;
                }
            }
            let n = (BLOCK * BLOCK) as f64;
            let (ma, mb) = (sa / n, sb / n);
            let (va, vb) = (saa / n - ma * ma, sbb / n - mb * mb);
            let cov = sab / n - ma * mb;
            total += ((2.0 * ma * mb + C1) * (2.0 * cov + C2))
                / ((ma * ma + mb * mb + C1) * (va + vb + C2));
            blocks += 1;
        }
    }
    (blocks > 0).then(|| total / f64::from(blocks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_known_errors() {
        assert_eq!(psnr(0.0, 100.0), 99.0);
        // Every sample off by one: MSE 1, 48.13 dB.
        assert!((psnr(100.0, 100.0) - 48.13).abs() < 0.01);
    }

    #[test]
    fn ssim_is_one_for_identical_and_low_for_lost_detail() {
        let a: Vec<u8> = (0..=255u8).map(|i| i.wrapping_mul(7)).collect();
        // The detail flattened away: what a coarse encode does to text.
        let b = vec![128u8; 256];
        let same: Vec<_> = a.chunks(16).map(|r| (r, r)).collect();
        assert!((ssim_of_rows(&same, 16).unwrap() - 1.0).abs() < 1e-9);
        let noisy: Vec<_> = b.chunks(16).zip(a.chunks(16)).collect();
        let s = ssim_of_rows(&noisy, 16).unwrap();
        assert!(s < 0.1 && s > -1.0, "{s}");
        assert_eq!(ssim_of_rows(&same[..7], 16), None, "no whole block");
    }
}
