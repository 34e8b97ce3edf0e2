//! [`Stream`]: what viewers subscribe to: a scanout encoded here, or a
//! stream a guest agent encoded and publishes.

use tokio::sync::watch;
use zerocast_frame::Cursor;

use crate::fanout::Fanout;
use crate::published::PublishedStream;
use crate::stats::PipelineStats;
use crate::{ScanoutPipeline, Subscription};

#[derive(Debug)]
// One per stream, behind an Arc: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Stream {
    /// Encoded here from a frame source.
    Encoded(ScanoutPipeline),
    /// Encoded elsewhere and handed in.
    Published(PublishedStream),
}

impl Stream {
    fn fanout(&self) -> &Fanout {
        match self {
            Stream::Encoded(p) => &p.fanout,
            Stream::Published(p) => &p.fanout,
        }
    }

    /// The stream id (the scanout id in HXFR, `?scanout=` for viewers).
    pub fn id(&self) -> u32 {
        self.fanout().id()
    }

    /// A new subscriber: its first frame is a keyframe, produced at once
    /// even if the screen is still (for a published stream, asked of its
    /// producer).
    pub fn subscribe(&self) -> Subscription {
        self.fanout().subscribe()
    }

    /// A new subscriber of the striped output when the stream has one
    /// (frames of [`crate::Layout::Stripes`]), else of the whole picture.
    pub fn subscribe_striped(&self) -> Subscription {
        match self {
            Stream::Encoded(ScanoutPipeline {
                stripes: Some(s), ..
            }) => s.subscribe(),
            _ => self.subscribe(),
        }
    }

    /// The fanouts of every output.
    fn fanouts(&self) -> impl Iterator<Item = &Fanout> {
        let stripes = match self {
            Stream::Encoded(p) => p.stripes.as_deref(),
            Stream::Published(_) => None,
        };
        std::iter::once(self.fanout()).chain(stripes)
    }

    /// The hardware cursor's latest state and its changes; `None` when the
    /// stream has none (a picture that draws its own pointer, or one
    /// encoded elsewhere).
    pub fn cursor(&self) -> Option<watch::Receiver<Cursor>> {
        match self {
            Stream::Encoded(p) => p.cursor().map(|c| c.subscribe()),
            Stream::Published(_) => None,
        }
    }

    pub fn request_keyframe(&self) {
        for f in self.fanouts() {
            f.inbox().event(crate::core::Event::KeyframeRequested);
        }
    }

    pub fn subscribers(&self) -> usize {
        self.fanouts().map(Fanout::subscribers).sum()
    }

    pub fn stats(&self) -> PipelineStats {
        self.fanout().stats().clone()
    }

    /// `source -> encoder`, for logs and the viewer.
    pub fn describe(&self) -> &str {
        match self {
            Stream::Encoded(p) => &p.describe,
            Stream::Published(p) => &p.describe,
        }
    }

    pub fn as_encoded(&self) -> Option<&ScanoutPipeline> {
        match self {
            Stream::Encoded(p) => Some(p),
            Stream::Published(_) => None,
        }
    }

    pub fn as_published(&self) -> Option<&PublishedStream> {
        match self {
            Stream::Encoded(_) => None,
            Stream::Published(p) => Some(p),
        }
    }
}
