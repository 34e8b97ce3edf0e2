//! Frame types that every zerocast part agrees on.
//!
//! Design map:
//! - [`cursor`]: [`Cursor`], a scanout's hardware cursor (image, hotspot, position), and the
//!   [`CursorSink`] a source publishes it to.
//! - [`damage`]: [`Damage`], the rectangles that changed between two pictures.
//! - [`format`](mod@format): DRM fourcc pixel formats and their byte layout.
//! - [`frame`]: a borrowed, bounds-checked view of one picture ([`Frame`]).
//! - [`i420`]: packed RGB to I420 (SIMD, buffers reused), what encoders take.
//! - [`pacer`]: [`FramePacer`], frames taken at most at a frame rate.
//! - [`source`]: the [`FrameSource`] trait a scanout pipeline pulls frames from, and the [`Doorbell`] that wakes it.
//! - [`stamp`]: a frame number drawn as blocks into a picture, readable after lossy
//!   H.264, so tests can see that frames advance.

#![forbid(unsafe_code)]

pub mod cursor;
pub mod damage;
pub mod format;
pub mod frame;
pub mod i420;
pub mod pacer;
pub mod source;
pub mod stamp;

pub use cursor::{Cursor, CursorFeed, CursorImage, CursorImageError, CursorSink, CursorUpdate};
pub use damage::{Damage, Rect};
pub use format::PixelFormat;
pub use frame::{Frame, FrameError};
pub use i420::{ConvertError, I420};
pub use pacer::FramePacer;
pub use source::{Doorbell, FrameSource, SourceEvent};
