//! [`ConstantBlocks`]: which 16x16 macroblocks of a picture are the same as
//! in the previous one, for an encoder that takes the hint (x264's
//! constant-macroblock flags) and then skips them without analysing them:
//! a picture where one window changed costs that window's analysis, not
//! the screen's.

use zerocast_frame::{Rect, I420};

/// Macroblock size in luma samples (and twice the chroma block's).
const MB: u32 = 16;

/// A flag per macroblock in raster order: 1 where the picture did not
/// change, 0 where it did. Reused from picture to picture.
#[derive(Debug, Default)]
pub(crate) struct ConstantBlocks {
    cols: usize,
    flags: Vec<u8>,
}

impl ConstantBlocks {
    /// The flags, one per macroblock.
    pub(crate) fn flags(&self) -> &[u8] {
        &self.flags
    }

    /// Every block of a `width` x `height` picture changed.
    pub(crate) fn all_changed(&mut self, width: u32, height: u32) {
        self.reset(width, height, false);
    }

    /// Only the blocks that `rects` touch changed.
    pub(crate) fn changed_in(&mut self, width: u32, height: u32, rects: &[Rect]) {
        self.reset(width, height, true);
        for r in rects {
            let r = r.clip(width, height);
            if r.is_empty() {
                continue;
            }
            let (x0, x1) = ((r.x / MB) as usize, ((r.x + r.width - 1) / MB) as usize);
            for row in r.y / MB..=(r.y + r.height - 1) / MB {
                let start = row as usize * self.cols;
                if let Some(blocks) = self.flags.get_mut(start + x0..=start + x1) {
                    blocks.fill(0);
                }
            }
        }
    }

    /// The blocks whose samples differ between `before` and `after` changed
    /// (all of them when the sizes differ).
    pub(crate) fn changed_between(&mut self, before: &I420, after: &I420) {
        let (w, h) = (after.width(), after.height());
        if (before.width(), before.height()) != (w, h) {
            self.all_changed(w, h);
            return;
        }
        self.reset(w, h, true);
        let (luma, chroma) = (w as usize, w.div_ceil(2) as usize);
        self.mark_differences(before.y(), after.y(), luma, MB as usize);
        self.mark_differences(before.u(), after.u(), chroma, MB as usize / 2);
        self.mark_differences(before.v(), after.v(), chroma, MB as usize / 2);
    }

    fn reset(&mut self, width: u32, height: u32, constant: bool) {
        self.cols = width.div_ceil(MB) as usize;
        self.flags.clear();
        self.flags
            .resize(self.cols * height.div_ceil(MB) as usize, u8::from(constant));
    }

    /// Clears the flag of every block where planes `a` and `b` (`width`
    /// samples a row, blocks of `block` x `block`) differ. Rows that are
    /// the same, most of a desktop's, cost one comparison each.
    fn mark_differences(&mut self, a: &[u8], b: &[u8], width: usize, block: usize) {
        let rows = a.chunks_exact(width).zip(b.chunks_exact(width));
        for (row, (ra, rb)) in rows.enumerate() {
            if ra == rb {
                continue;
            }
            let start = row / block * self.cols;
            let blocks = ra.chunks(block).zip(rb.chunks(block));
            for (col, (ba, bb)) in blocks.enumerate() {
                if ba != bb {
                    if let Some(flag) = self.flags.get_mut(start + col) {
                        *flag = 0;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_frame::{Frame, PixelFormat};

    /// A `w` x `h` grey picture with the pixels in `rects` white.
    fn picture(w: u32, h: u32, rects: &[Rect]) -> I420 {
        let mut px = vec![0x40u8; (w * h * 4) as usize];
        for r in rects {
            for y in r.y..r.y + r.height {
                let row = (y * w * 4) as usize;
                px[row + (r.x * 4) as usize..row + ((r.x + r.width) * 4) as usize].fill(0xff);
            }
        }
        let mut i420 = I420::default();
        i420.convert(&Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap())
            .unwrap();
        i420
    }

    /// The changed blocks as (column, row) pairs.
    fn changed(blocks: &ConstantBlocks) -> Vec<(usize, usize)> {
        (0..blocks.flags.len())
            .filter(|&i| blocks.flags[i] == 0)
            .map(|i| (i % blocks.cols, i / blocks.cols))
            .collect()
    }

    #[test]
    fn rectangles_mark_every_block_they_touch_and_no_other() {
        let mut blocks = ConstantBlocks::default();
        // 100x40: 7x3 blocks, the last column and row partial.
        blocks.changed_in(
            100,
            40,
            &[Rect::new(15, 0, 2, 1), Rect::new(96, 33, 50, 50)],
        );
        assert_eq!(blocks.flags().len(), 21);
        assert_eq!(changed(&blocks), vec![(0, 0), (1, 0), (6, 2)]);
        blocks.changed_in(100, 40, &[Rect::new(200, 200, 5, 5), Rect::new(3, 3, 0, 9)]);
        assert!(changed(&blocks).is_empty(), "outside and empty rectangles");
        blocks.all_changed(32, 32);
        assert_eq!(changed(&blocks).len(), 4);
    }

    #[test]
    fn comparing_pictures_finds_the_blocks_whose_samples_differ() {
        let before = picture(96, 64, &[Rect::new(0, 0, 8, 8)]);
        // The first block back to grey, one pixel in another, one chroma
        // sample's pixels in a third (a 2x2 block: luma changes too).
        let after = picture(96, 64, &[Rect::new(50, 20, 1, 1), Rect::new(94, 62, 2, 2)]);
        let mut blocks = ConstantBlocks::default();
        blocks.changed_between(&before, &after);
        assert_eq!(changed(&blocks), vec![(0, 0), (3, 1), (5, 3)]);
        blocks.changed_between(&after, &after);
        assert!(changed(&blocks).is_empty());
        blocks.changed_between(&picture(32, 32, &[]), &after);
        assert_eq!(changed(&blocks).len(), 24, "another size: everything");
    }
}
