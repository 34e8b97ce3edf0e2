//! Where a scanout pipeline gets its pictures from.

use std::time::Instant;

use crate::Frame;

/// What happened while a source was waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEvent {
    /// New content is ready, captured at the given instant (the moment the
    /// picture was complete: a renderer's last write, a guest's RESOURCE_FLUSH).
    Changed { captured_at: Instant },
    /// Nothing changed before the deadline.
    Idle,
    /// The source is gone for good (the VM powered off).
    Closed,
}

/// A producer of pictures for one scanout, driven by damage: it reports
/// `Changed` only when there is something new to show, so a still screen
/// costs no encoding.
pub trait FrameSource: Send {
    /// Blocks until new content is ready or `deadline` passes.
    fn wait(&mut self, deadline: Instant) -> SourceEvent;

    /// The latest picture, if the source has one yet. The borrow ends before
    /// the next [`FrameSource::wait`], so a source may reuse its buffers.
    fn frame(&self) -> Option<Frame<'_>>;

    /// One line for logs and the viewer, e.g. `synthetic desktop 1920x1080@60`.
    fn describe(&self) -> String;
}
