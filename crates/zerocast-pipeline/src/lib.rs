//! zerocast's stream core: what is encoded when, and who gets it. No
//! sockets: the HXFR server (`zerocast-server`) and the web gateway
//! (`zerocast-web`) are the edges that carry [`EncodedFrame`]s away.
//!
//! Design map:
//! - [`core`]: [`PipelineCore`], the sans-IO rules of a pipeline (damage,
//!   frame-rate cap, keyframes for new and lagging subscribers), driven in
//!   virtual time by its tests.
//! - [`driver`]: [`ScanoutPipeline`], the thread that runs a core per
//!   output (the whole picture; stripes for zerocast's web viewer) with a
//!   frame source and an encoder each, sleeping on a doorbell between events.
//! - [`published`]: [`PublishedStream`], frames encoded elsewhere (a guest agent).
//! - [`stream`]: [`Stream`], either kind, as viewers and the registry see it.
//! - [`subscription`]: one subscriber's frames, skipping to a keyframe after a loss.
//! - [`cursor`]: [`CursorChannel`], a stream's hardware cursor, latest state wins,
//!   published by the source beside the frames, not through the encoder.
//! - `fanout` and `inbox`: frames out to subscribers, events back in.
//! - [`frame`]: [`EncodedFrame`], an access unit with no transport's framing.
//! - [`registry`]: the streams, resources and display switch a host exposes.
//! - [`stats`]: counters and timing percentiles.
//!
//! # One frame's path, from the guest to the browser
//!
//! 1. The guest's driver sends `RESOURCE_FLUSH`. The GPU backend's vring
//!    thread (`zerocast-gpu`) notes the flush on the scanout showing that
//!    resource and rings the scanout pipeline's [`zerocast_frame::Doorbell`].
//! 2. The pipeline's thread (`scanout-N`, [`driver`]) wakes, polls the
//!    source (`Changed`), and its [`PipelineCore`] decides: encode now, or
//!    wait for the frame-rate slot (later flushes coalesce; the latest wins).
//! 3. On the same thread the encoder reads the picture where the guest drew
//!    it (guest RAM mapped read-only, no copy), converts it to I420 into a
//!    reused buffer and encodes one access unit into another. The striped
//!    output, when a web viewer watches, encodes only the stripes that
//!    changed, each its own small stream ([`Layout::Stripes`]).
//! 4. The access unit is copied once into a shared [`bytes::Bytes`] and
//!    broadcast as an [`EncodedFrame`]; the pipeline thread never waits
//!    for a subscriber.
//! 5. Each HXFR subscriber's writer task (tokio, `zerocast-server`) writes
//!    the FRAME_RESPONSE header and the shared access unit in one vectored
//!    write. Each browser viewer's task (`zerocast-web`) sends it in a
//!    WebSocket message framed once per frame for all viewers of the scanout.
//! 6. A subscriber that fell behind loses frames in the broadcast, skips to
//!    the next keyframe and tells the core, which makes one.

pub mod core;
pub mod cursor;
pub mod driver;
mod fanout;
pub mod frame;
mod inbox;
pub mod published;
pub mod registry;
pub mod stats;
pub mod stream;
pub mod subscription;

pub use crate::core::{Action, Event, Outcome, PipelineCore, KEYFRAME_IN_FLIGHT};
pub use cursor::CursorChannel;
pub use driver::{PipelineConfig, ScanoutPipeline, StartError};
pub use frame::{EncodedFrame, Layout};
pub use published::{PublishedFrame, PublishedStream};
pub use registry::{Registry, ResourceError, ResourceReader, ScanoutControl, ScanoutError};
pub use stats::PipelineStats;
pub use stream::Stream;
pub use subscription::{Subscription, MAX_BEHIND};
