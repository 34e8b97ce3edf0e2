//! The host side of zerocast: encodes scanouts and resources, and serves
//! them over HXFR.
//!
//! Design map:
//! - [`pipeline`]: one thread per scanout that waits on its frame source,
//!   encodes only what changed and only while someone watches, and publishes
//!   each access unit once for every subscriber.
//! - [`subscription`]: a subscriber's view of a pipeline: starts at a
//!   keyframe, and skips to the next keyframe when it falls behind.
//! - [`registry`]: the scanouts and resources a server exposes.
//! - [`session`]: request/response mode: per-session encoders for
//!   FRAME_REQUESTs naming a resource id, with every request checked.
//! - [`connection`]: one HXFR peer: reads requests, writes replies and pushed frames.
//! - [`listener`]: TCP and Unix listeners.
//! - [`stats`]: counters and timing percentiles.

pub mod connection;
pub mod listener;
pub mod pipeline;
pub mod registry;
pub mod session;
pub mod stats;
pub mod subscription;

pub use listener::{Endpoint, Server};
pub use pipeline::{EncodedFrame, PipelineConfig, ScanoutPipeline};
pub use registry::{Registry, ResourceError, ResourceTable, ScanoutControl};
pub use subscription::Subscription;
