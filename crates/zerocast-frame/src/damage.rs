//! [`Damage`]: the parts of a picture that changed since the last one a
//! reader saw, so that converting and encoding cost what changed, not the
//! whole screen. A small, fixed list of rectangles (no allocation, `Copy`),
//! coalesced as changes pile up between encodes.

/// A rectangle in pixels (of a picture, or of a guest's resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    fn right(&self) -> u64 {
        u64::from(self.x) + u64::from(self.width)
    }

    fn bottom(&self) -> u64 {
        u64::from(self.y) + u64::from(self.height)
    }

    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// True when the rectangle is non-empty and lies inside `width` x `height`.
    pub fn is_inside(&self, width: u32, height: u32) -> bool {
        !self.is_empty() && self.right() <= u64::from(width) && self.bottom() <= u64::from(height)
    }

    /// True when the two rectangles' column and row spans overlap.
    pub fn intersects(&self, other: &Rect) -> bool {
        let spans = |a: u32, len_a: u32, b: u32, len_b: u32| {
            let (a, b) = (u64::from(a), u64::from(b));
            a < b + u64::from(len_b) && b < a + u64::from(len_a)
        };
        spans(self.x, self.width, other.x, other.width)
            && spans(self.y, self.height, other.y, other.height)
    }

    /// The part both cover (empty when they do not meet).
    pub fn intersection(&self, other: &Rect) -> Rect {
        let (x, y) = (self.x.max(other.x), self.y.max(other.y));
        Rect {
            x,
            y,
            width: span(x, self.right().min(other.right())),
            height: span(y, self.bottom().min(other.bottom())),
        }
    }

    /// The smallest rectangle holding both (an empty one adds nothing).
    pub fn union(&self, other: &Rect) -> Rect {
        if self.is_empty() {
            return *other;
        }
        if other.is_empty() {
            return *self;
        }
        let (x, y) = (self.x.min(other.x), self.y.min(other.y));
        Rect {
            x,
            y,
            width: span(x, self.right().max(other.right())),
            height: span(y, self.bottom().max(other.bottom())),
        }
    }

    /// The part inside `width` x `height` (empty if none).
    pub fn clip(&self, width: u32, height: u32) -> Rect {
        let (x, y) = (self.x.min(width), self.y.min(height));
        Rect {
            x,
            y,
            width: span(x, self.right().min(u64::from(width))),
            height: span(y, self.bottom().min(u64::from(height))),
        }
    }

    /// Grown outward to even coordinates and sizes (whole 2x2 chroma
    /// blocks), then clipped to `width` x `height`.
    pub fn to_even(&self, width: u32, height: u32) -> Rect {
        let (x, y) = (self.x & !1, self.y & !1);
        let right = (self.right() + 1) & !1;
        let bottom = (self.bottom() + 1) & !1;
        Rect {
            x,
            y,
            width: span(x, right),
            height: span(y, bottom),
        }
        .clip(width & !1, height & !1)
    }
}

/// `end - start`, saturating: ends come from u32 coordinates plus u32 sizes.
fn span(start: u32, end: u64) -> u32 {
    u32::try_from(end.saturating_sub(u64::from(start))).unwrap_or(u32::MAX)
}

/// What changed: nothing, some rectangles, or everything (unknown counts as
/// everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    full: bool,
    len: u8,
    rects: [Rect; Damage::MAX_RECTS],
}

impl Default for Damage {
    fn default() -> Self {
        Damage::none()
    }
}

impl Damage {
    /// Beyond this many rectangles, the two whose union grows least merge:
    /// a blinking cursor, a clock and a typed character stay apart.
    pub const MAX_RECTS: usize = 8;

    pub const fn none() -> Self {
        Damage {
            full: false,
            len: 0,
            rects: [Rect::new(0, 0, 0, 0); Damage::MAX_RECTS],
        }
    }

    pub const fn full() -> Self {
        Damage {
            full: true,
            ..Damage::none()
        }
    }

    pub fn rect(r: Rect) -> Self {
        let mut d = Damage::none();
        d.add_rect(r);
        d
    }

    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.full && self.len == 0
    }

    /// The rectangles (none when full: the whole picture changed).
    pub fn rects(&self) -> &[Rect] {
        &self.rects[..usize::from(self.len)]
    }

    /// Pixels covered, counting overlaps twice; `None` when full.
    pub fn area(&self) -> Option<u64> {
        (!self.full).then(|| self.rects().iter().map(Rect::area).sum())
    }

    pub fn add_rect(&mut self, r: Rect) {
        if self.full || r.is_empty() {
            return;
        }
        // Already covered, or covering ones already there.
        if self.rects().iter().any(|have| have.union(&r) == *have) {
            return;
        }
        let mut kept = 0;
        for i in 0..usize::from(self.len) {
            let have = self.rects[i];
            if r.union(&have) != r {
                self.rects[kept] = have;
                kept += 1;
            }
        }
        self.len = u8::try_from(kept).unwrap_or(u8::MAX);
        if usize::from(self.len) == Self::MAX_RECTS {
            self.merge_cheapest();
        }
        self.rects[usize::from(self.len)] = r;
        self.len += 1;
    }

    /// Adds everything `other` has.
    pub fn add(&mut self, other: &Damage) {
        if other.full {
            *self = Damage::full();
            return;
        }
        for r in other.rects() {
            self.add_rect(*r);
        }
    }

    /// What of this damage falls in `band`, in the band's own coordinates
    /// (full stays full).
    pub fn within(&self, band: &Rect) -> Damage {
        if self.full {
            return Damage::full();
        }
        let mut d = Damage::none();
        for r in self.rects() {
            let part = r.intersection(band);
            d.add_rect(Rect {
                x: part.x.saturating_sub(band.x),
                y: part.y.saturating_sub(band.y),
                ..part
            });
        }
        d
    }

    /// Takes what was collected, leaving nothing.
    pub fn take(&mut self) -> Damage {
        std::mem::take(self)
    }

    /// Merges the two rectangles whose union adds the least area.
    fn merge_cheapest(&mut self) {
        let rects = self.rects();
        let mut best = (u64::MAX, 0, 1);
        for i in 0..rects.len() {
            for j in i + 1..rects.len() {
                let grown = rects[i]
                    .union(&rects[j])
                    .area()
                    .saturating_sub(rects[i].area() + rects[j].area());
                if grown < best.0 {
                    best = (grown, i, j);
                }
            }
        }
        let (_, i, j) = best;
        self.rects[i] = self.rects[i].union(&self.rects[j]);
        let last = usize::from(self.len) - 1;
        self.rects[j] = self.rects[last];
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_within_a_band_is_in_the_band_s_coordinates() {
        let mut d = Damage::rect(Rect::new(10, 60, 20, 10));
        d.add_rect(Rect::new(0, 200, 4, 4));
        let band = Rect::new(0, 64, 1920, 64);
        assert_eq!(d.within(&band).rects(), &[Rect::new(10, 0, 20, 6)]);
        assert_eq!(
            d.within(&Rect::new(0, 0, 1920, 64)).rects(),
            &[Rect::new(10, 60, 20, 4)]
        );
        assert!(d.within(&Rect::new(0, 128, 1920, 64)).is_empty());
        assert!(Damage::full().within(&band).is_full());
    }

    #[test]
    fn rect_bounds_never_overflow() {
        let rect = Rect::new;
        assert!(rect(0, 0, 10, 10).is_inside(10, 10));
        assert!(!rect(1, 0, 10, 10).is_inside(10, 10));
        assert!(!rect(0, 0, 0, 10).is_inside(10, 10));
        assert!(!rect(u32::MAX, u32::MAX, u32::MAX, u32::MAX).is_inside(u32::MAX, u32::MAX));
        assert!(rect(0, 0, 10, 10).intersects(&rect(9, 9, 5, 5)));
        assert!(!rect(0, 0, 10, 10).intersects(&rect(10, 0, 5, 5)));
        assert!(!rect(u32::MAX, 0, 1, 1).intersects(&rect(0, 0, 1, 1)));
        assert_eq!(
            rect(0, 0, 10, 10).intersection(&rect(9, 8, 5, 5)),
            rect(9, 8, 1, 2)
        );
        assert!(rect(0, 0, 10, 10)
            .intersection(&rect(10, 0, 5, 5))
            .is_empty());
        assert_eq!(
            rect(u32::MAX - 1, 0, u32::MAX, 1).intersection(&rect(u32::MAX - 2, 0, 5, 1)),
            rect(u32::MAX - 1, 0, 4, 1),
            "ends past u32 do not wrap"
        );
    }

    #[test]
    fn rects_union_clip_and_align() {
        let a = Rect::new(10, 10, 5, 5);
        let b = Rect::new(20, 0, 2, 2);
        assert_eq!(a.union(&b), Rect::new(10, 0, 12, 15));
        assert_eq!(a.union(&Rect::default()), a);
        assert_eq!(
            Rect::new(30, 30, 100, 100).clip(64, 48),
            Rect::new(30, 30, 34, 18)
        );
        assert!(Rect::new(70, 0, 4, 4).clip(64, 48).is_empty());
        assert_eq!(Rect::new(3, 5, 2, 2).to_even(64, 48), Rect::new(2, 4, 4, 4));
        // An odd picture: the odd last column and row are not encoded.
        assert_eq!(
            Rect::new(60, 40, 5, 5).to_even(63, 45),
            Rect::new(60, 40, 2, 4)
        );
        assert_eq!(
            Rect::new(u32::MAX, u32::MAX, u32::MAX, u32::MAX).clip(8, 8),
            Rect::new(8, 8, 0, 0)
        );
    }

    #[test]
    fn damage_coalesces_and_saturates_at_full() {
        let mut d = Damage::none();
        assert!(d.is_empty());
        d.add_rect(Rect::new(0, 0, 10, 10));
        d.add_rect(Rect::new(2, 2, 3, 3));
        assert_eq!(
            d.rects(),
            &[Rect::new(0, 0, 10, 10)],
            "covered: no new rect"
        );
        d.add_rect(Rect::new(0, 0, 20, 20));
        assert_eq!(d.rects(), &[Rect::new(0, 0, 20, 20)], "covering: replaces");
        d.add_rect(Rect::new(100, 100, 0, 5));
        assert_eq!(d.rects().len(), 1, "empty rects add nothing");
        d.add(&Damage::full());
        assert!(d.is_full() && d.rects().is_empty() && d.area().is_none());
        d.add_rect(Rect::new(1, 1, 1, 1));
        assert!(d.is_full(), "full stays full");
        assert!(d.take().is_full());
        assert!(d.is_empty(), "take leaves nothing");
    }

    #[test]
    fn past_the_limit_the_closest_rects_merge() {
        let mut d = Damage::none();
        // A cursor in a corner and characters typed along a line far away.
        d.add_rect(Rect::new(0, 0, 8, 16));
        for i in 0..Damage::MAX_RECTS {
            let x = 1000 + 16 * u32::try_from(i).unwrap();
            d.add_rect(Rect::new(x, 500, 16, 16));
        }
        assert_eq!(d.rects().len(), Damage::MAX_RECTS);
        assert!(
            d.rects().contains(&Rect::new(0, 0, 8, 16)),
            "the far-away cursor is not merged with the text: {:?}",
            d.rects()
        );
        assert_eq!(d.area(), Some(8 * 16 + 16 * 16 * 8));
    }
}
