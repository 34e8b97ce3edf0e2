//! A viewer asks for its window's size in device pixels; the guest gets the
//! nearest mode that X's CVT modelines, virtio-gpu and the H.264 encoder
//! all take.

/// Smallest mode offered: below it desktops stop being usable.
pub const MIN: (u32, u32) = (640, 480);
/// Largest mode offered: the encoder's limit.
pub const MAX: (u32, u32) = (3840, 2160);

/// The mode for a window of `width` x `height` device pixels: within
/// [`MIN`]..=[`MAX`], the width a multiple of 8 (CVT's character cell) and
/// the height even (4:2:0 chroma), rounded down so the picture fits.
pub fn fit_mode(width: u32, height: u32) -> (u32, u32) {
    let w = width.clamp(MIN.0, MAX.0) / 8 * 8;
    let h = height.clamp(MIN.1, MAX.1) / 2 * 2;
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_windows() {
        assert_eq!(fit_mode(1920, 1080), (1920, 1080));
        assert_eq!(fit_mode(1366, 657), (1360, 656));
        assert_eq!(fit_mode(100, 100), MIN);
        assert_eq!(fit_mode(u32::MAX, u32::MAX), MAX);
    }

    proptest! {
        #[test]
        fn always_a_mode_that_fits(w in any::<u32>(), h in any::<u32>()) {
            let (fw, fh) = fit_mode(w, h);
            prop_assert!((MIN.0..=MAX.0).contains(&fw) && (MIN.1..=MAX.1).contains(&fh));
            prop_assert!(fw % 8 == 0 && fh % 2 == 0);
            prop_assert!(fw <= w.max(MIN.0) && fh <= h.max(MIN.1));
        }
    }
}
