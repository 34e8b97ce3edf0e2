//! [`Picture`]: the I420 picture a backend encodes next, brought up to
//! date from each frame by converting only its damage when it can. Every
//! backend takes its input through here, so they all read the same pixels.

use zerocast_frame::{Damage, Frame, I420};

use crate::macroblocks::ConstantBlocks;
use crate::EncodeError;

/// The picture last handed to an encoder; damage is converted into it in place.
#[derive(Default)]
pub(crate) struct Picture {
    i420: I420,
    /// `i420` holds the whole previous picture (false at start and after a
    /// failed conversion), so damage alone brings it up to date.
    valid: bool,
    /// With [`Picture::tracking_blocks`]: what the last update changed.
    blocks: Option<Blocks>,
}

struct Blocks {
    constant: ConstantBlocks,
    /// Where a whole new frame (a page flip, unknown damage) is converted,
    /// to be compared with the picture before it and swapped in.
    next: I420,
}

impl Picture {
    /// A picture that also notes which macroblocks each update left
    /// unchanged ([`constant_blocks`](Self::constant_blocks)). A frame
    /// damaged as a whole is compared with the picture before, block by
    /// block, as a VNC server finds its rectangles.
    pub(crate) fn tracking_blocks() -> Self {
        Picture {
            blocks: Some(Blocks {
                constant: ConstantBlocks::default(),
                next: I420::default(),
            }),
            ..Picture::default()
        }
    }

    /// Brings the picture up to `frame`: only `damage` when the previous
    /// picture is whole and of the same size, else everything. Frames past
    /// `max` (width, height) are refused for `encoder`.
    pub(crate) fn update(
        &mut self,
        frame: &Frame<'_>,
        damage: &Damage,
        encoder: &'static str,
        max: (u32, u32),
    ) -> Result<(), EncodeError> {
        if frame.width() > max.0 || frame.height() > max.1 {
            return Err(EncodeError::UnsupportedSize {
                encoder,
                width: frame.width(),
                height: frame.height(),
                max_width: max.0,
                max_height: max.1,
            });
        }
        let same_size =
            (frame.width() & !1, frame.height() & !1) == (self.i420.width(), self.i420.height());
        let valid = std::mem::replace(&mut self.valid, false) && same_size;
        let partial = valid && !damage.is_full();
        if partial {
            self.i420.convert_rects(frame, damage.rects())?;
        }
        match &mut self.blocks {
            None if !partial => self.i420.convert(frame)?,
            None => {}
            Some(blocks) if partial => {
                let (w, h) = (self.i420.width(), self.i420.height());
                blocks.constant.changed_in(w, h, damage.rects());
            }
            Some(blocks) if valid => {
                blocks.next.convert(frame)?;
                blocks.constant.changed_between(&self.i420, &blocks.next);
                std::mem::swap(&mut self.i420, &mut blocks.next);
            }
            Some(blocks) => {
                self.i420.convert(frame)?;
                blocks
                    .constant
                    .all_changed(self.i420.width(), self.i420.height());
            }
        }
        self.valid = true;
        Ok(())
    }

    /// With [`tracking_blocks`](Self::tracking_blocks): a flag per
    /// macroblock, 1 where the last [`update`](Self::update) left the
    /// picture as it was.
    pub(crate) fn constant_blocks(&self) -> Option<&[u8]> {
        self.blocks.as_ref().map(|b| b.constant.flags())
    }

    /// The picture, whole once [`is_valid`](Self::is_valid).
    pub(crate) fn i420(&self) -> &I420 {
        &self.i420
    }

    /// The last [`update`](Self::update) succeeded: there is a whole
    /// picture to encode (again).
    pub(crate) fn is_valid(&self) -> bool {
        self.valid
    }

    /// (width, height) of the picture.
    pub(crate) fn size(&self) -> (u32, u32) {
        (self.i420.width(), self.i420.height())
    }
}
