//! [`Picture`]: the I420 picture a backend encodes next, brought up to
//! date from each frame by converting only its damage when it can. Every
//! backend takes its input through here, so they all read the same pixels.

use zerocast_frame::{Damage, Frame, I420};

use crate::EncodeError;

/// The picture last handed to an encoder; damage is converted into it in place.
#[derive(Default)]
pub(crate) struct Picture {
    i420: I420,
    /// `i420` holds the whole previous picture (false at start and after a
    /// failed conversion), so damage alone brings it up to date.
    valid: bool,
}

impl Picture {
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
        let valid = std::mem::replace(&mut self.valid, false);
        if valid && same_size && !damage.is_full() {
            self.i420.convert_rects(frame, damage.rects())?;
        } else {
            self.i420.convert(frame)?;
        }
        self.valid = true;
        Ok(())
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
