//! A synthetic desktop: moving windows, a scrolling terminal, a live chart, a
//! clock, a frame counter and a pointer that follows the viewer's mouse. It is
//! what `zerocast demo` streams when there is no VM, and the load the
//! benchmark encodes.
//!
//! Design map:
//! - [`canvas`]: clipped rectangle and text drawing on a packed BGRX buffer.
//! - [`scene`]: what is on screen at frame N (windows, text, chart, cursor).
//! - [`desktop`]: [`SyntheticDesktop`], the [`zerocast_frame::FrameSource`]
//!   that paces frames, applies input and reports damage.
//! - [`workload`]: [`WorkloadScene`], deterministic desktop activity (typing,
//!   a clock, a dragged window, scrolling, video) that reports exactly what
//!   each frame redrew, for the damage benchmark.
//! - [`workload_source`]: [`WorkloadSource`], a workload paced as a frame
//!   source (`zerocast demo --workload`).

#![forbid(unsafe_code)]

pub mod canvas;
pub mod desktop;
pub mod scene;
pub mod workload;
pub mod workload_source;

pub use desktop::{Motion, SyntheticDesktop};
pub use workload::{Workload, WorkloadScene};
pub use workload_source::WorkloadSource;
