//! A scanout's hardware cursor (the guest's pointer image, its hotspot and
//! where it is), as every edge carries it: beside the video, never in it,
//! so a viewer can draw the pointer itself and move it at its own speed.

use std::sync::Arc;

/// Largest cursor side accepted: virtio-gpu's cursors are 64x64, browsers
/// show CSS cursors up to 128x128.
pub const MAX_CURSOR_SIDE: u32 = 128;

/// Why a cursor image was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorImageError {
    #[error(
        "cursor size {width}x{height} is empty or larger than {MAX_CURSOR_SIDE}x{MAX_CURSOR_SIDE}"
    )]
    Size { width: u32, height: u32 },
    #[error("cursor hotspot {hot_x},{hot_y} is outside the {width}x{height} image")]
    Hotspot {
        hot_x: u32,
        hot_y: u32,
        width: u32,
        height: u32,
    },
    #[error("cursor pixels are {got} bytes, a {width}x{height} RGBA image is {want}")]
    Length {
        got: usize,
        want: usize,
        width: u32,
        height: u32,
    },
}

/// A cursor image: straight-alpha RGBA, 4 bytes a pixel, rows packed, and
/// the hotspot (the pixel that points). Owned: it outlives the guest's
/// resource it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorImage {
    width: u32,
    height: u32,
    hot_x: u32,
    hot_y: u32,
    rgba: Vec<u8>,
}

impl CursorImage {
    /// Checks the size, the hotspot and the pixel count.
    pub fn new(
        width: u32,
        height: u32,
        (hot_x, hot_y): (u32, u32),
        rgba: Vec<u8>,
    ) -> Result<Self, CursorImageError> {
        if width == 0 || height == 0 || width > MAX_CURSOR_SIDE || height > MAX_CURSOR_SIDE {
            return Err(CursorImageError::Size { width, height });
        }
        if hot_x >= width || hot_y >= height {
            return Err(CursorImageError::Hotspot {
                hot_x,
                hot_y,
                width,
                height,
            });
        }
        // At most 128 * 128 * 4: no overflow.
        let want = usize::try_from(width * height * 4).unwrap_or(usize::MAX);
        if rgba.len() != want {
            return Err(CursorImageError::Length {
                got: rgba.len(),
                want,
                width,
                height,
            });
        }
        Ok(CursorImage {
            width,
            height,
            hot_x,
            hot_y,
            rgba,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The hotspot, in image pixels.
    pub fn hotspot(&self) -> (u32, u32) {
        (self.hot_x, self.hot_y)
    }

    /// The pixels: R, G, B, A (straight alpha), row by row.
    pub fn rgba(&self) -> &[u8] {
        &self.rgba
    }
}

/// A scanout's cursor as of its latest change: what a new viewer is sent
/// first, and what a viewer compares with what it sent last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Counts image changes (each guest cursor update, a hide included), so
    /// an edge tells a new image from a move without comparing pixels.
    /// Compared first: equal serials almost always mean equal images.
    pub serial: u64,
    /// Where the hotspot is, in scanout pixels; may lie off the picture.
    pub x: i32,
    pub y: i32,
    /// The image shown; `None`: no hardware cursor (never set, or hidden).
    pub image: Option<Arc<CursorImage>>,
}

/// One thing to tell a viewer about the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorUpdate {
    /// A new image (always followed by a [`CursorUpdate::Position`]).
    Image(Arc<CursorImage>),
    /// Whether a hardware cursor is shown, and where its hotspot is.
    Position { visible: bool, x: i32, y: i32 },
}

/// What one viewer has been told of a stream's cursor, and so what to tell
/// it next: the image only when it changed, the position when it moved.
/// Fed the latest state only, so moves a slow viewer missed cost nothing.
/// Each protocol (browser, HXFR) writes the updates in its own bytes.
#[derive(Debug, Default)]
pub struct CursorFeed {
    serial: Option<u64>,
    position: Option<(bool, i32, i32)>,
}

impl CursorFeed {
    /// The updates that bring the viewer to `cursor`, in order.
    pub fn update(&mut self, cursor: &Cursor) -> Vec<CursorUpdate> {
        let mut out = Vec::new();
        if self.serial != Some(cursor.serial) {
            self.serial = Some(cursor.serial);
            if let Some(image) = &cursor.image {
                out.push(CursorUpdate::Image(image.clone()));
            }
        }
        let position = (cursor.image.is_some(), cursor.x, cursor.y);
        if self.position != Some(position) || !out.is_empty() {
            self.position = Some(position);
            let (visible, x, y) = position;
            out.push(CursorUpdate::Position { visible, x, y });
        }
        out
    }
}

/// Where a source with a hardware cursor publishes it (a stream's cursor
/// channel). Called on every change from whatever thread made it, so it
/// must be cheap and never block nor call back into the source.
pub trait CursorSink: Send + Sync {
    fn publish(&self, cursor: Cursor);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(serial: u64, x: i32, y: i32) -> Cursor {
        let image = CursorImage::new(2, 2, (1, 1), vec![7; 16]).unwrap();
        Cursor {
            serial,
            x,
            y,
            image: Some(Arc::new(image)),
        }
    }

    fn at(visible: bool, x: i32, y: i32) -> CursorUpdate {
        CursorUpdate::Position { visible, x, y }
    }

    #[test]
    fn a_viewer_is_told_the_image_once_and_then_only_moves() {
        let mut feed = CursorFeed::default();
        // No hardware cursor yet: the viewer learns it is hidden.
        assert_eq!(feed.update(&Cursor::default()), [at(false, 0, 0)]);
        assert!(feed.update(&Cursor::default()).is_empty());
        let sent = feed.update(&image(1, 10, 20));
        assert!(matches!(sent[..], [CursorUpdate::Image(_), _]));
        assert_eq!(sent[1], at(true, 10, 20));
        // Moves: position only; the same state again: nothing.
        assert_eq!(feed.update(&image(1, 11, 20)), [at(true, 11, 20)]);
        assert!(feed.update(&image(1, 11, 20)).is_empty());
        // A new image at the same place: image and position again.
        let sent = feed.update(&image(2, 11, 20));
        assert!(matches!(
            sent[..],
            [CursorUpdate::Image(_), CursorUpdate::Position { .. }]
        ));
        // Hidden.
        let hidden = Cursor {
            serial: 3,
            x: 11,
            y: 20,
            image: None,
        };
        assert_eq!(feed.update(&hidden), [at(false, 11, 20)]);
    }

    #[test]
    fn images_are_checked() {
        let ok = CursorImage::new(2, 1, (1, 0), vec![0; 8]).unwrap();
        assert_eq!((ok.width(), ok.height(), ok.hotspot()), (2, 1, (1, 0)));
        assert!(matches!(
            CursorImage::new(0, 1, (0, 0), vec![]),
            Err(CursorImageError::Size { .. })
        ));
        assert!(matches!(
            CursorImage::new(129, 1, (0, 0), vec![0; 129 * 4]),
            Err(CursorImageError::Size { .. })
        ));
        assert!(matches!(
            CursorImage::new(2, 2, (2, 0), vec![0; 16]),
            Err(CursorImageError::Hotspot { .. })
        ));
        assert!(matches!(
            CursorImage::new(2, 2, (0, 0), vec![0; 15]),
            Err(CursorImageError::Length { want: 16, .. })
        ));
    }
}
