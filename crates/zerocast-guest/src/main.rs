//! zerocast-guest: the agent inside the VM. It finds the virtio-gpu
//! resource on screen through DRM and asks the host to encode it straight
//! from guest memory (HXFR request/response over vsock or TCP), or, as the
//! software baseline helix compares against, reads the pixels itself and
//! encodes them in the guest with x264.
//!
//! Design map:
//! - [`args`]: the command line.
//! - [`card`]: opening the DRM card beside the program that owns the display.
//! - [`ioctl`]: raw DRM ioctls: virtio-gpu RESOURCE_INFO (GEM handle to
//!   resource id) and MAP_DUMB.
//! - [`hostile`]: `--hostile-first`, the host's checks tried from inside the guest.
//! - [`dumb_map`]: a mapped view of a framebuffer's pixels.
//! - [`screen`]: what is on screen: the active CRTC's framebuffer, described and cached.
//! - [`wire_format`]: DRM fourcc to the format a FRAME_REQUEST names.
//! - [`watch`]: when to capture: on a flip, or when a refresh is due.
//! - [`in_flight`]: pipelined FRAME_REQUESTs waiting for their answer.
//! - [`transport`]: connecting to the host over AF_VSOCK or TCP.
//! - [`link`]: HXFR over a blocking stream: a reader thread and a writer.
//! - [`publish`]: handing access units to the host as a published stream.
//! - [`zerocopy`]: the host-encodes mode's loop.
//! - [`baseline`]: the guest-encodes (x264) mode's loop.
//! - [`sink`]: where access units go: the output file and the stats line.
//! - [`stats`]: counters, latency median and guest CPU per frame.
//! - [`session`]: `--session true`, the agent in the desktop session:
//!   resize, clipboard and typed text for the host.

mod args;
mod baseline;
mod card;
mod dumb_map;
mod hostile;
mod in_flight;
mod ioctl;
mod link;
mod publish;
mod screen;
mod session;
mod sink;
mod stats;
mod transport;
mod watch;
mod wire_format;
mod zerocopy;

use std::time::Instant;

use anyhow::Result;
use clap::Parser;

use args::{Args, EncoderMode};
use card::Card;
use screen::Screen;
use sink::Sink;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.session {
        return session::run(&args);
    }
    let deadline = Instant::now() + args.timeout();
    let card = Card::open_beside_owner(&args.card, deadline)?;
    let mut screen = Screen::new(card);
    let first = screen.wait_for_scanout(deadline)?;
    println!(
        "zerocast-guest: on screen fb {} resource {} {}x{} pitch {} {} (crtc {})",
        first.fb,
        first.resource_id,
        first.width,
        first.height,
        first.pitch,
        wire_format::fourcc_name(first.drm_fourcc),
        screen.crtc_id().unwrap_or(0),
    );
    if args.hostile_first {
        hostile::run(&args, &first)?;
    }
    let sink = Sink::new(&args.output, args.frames, args.report_every)?;
    match args.encoder {
        EncoderMode::Host => zerocopy::run(&args, screen, sink),
        EncoderMode::X264 => baseline::run(&args, screen, sink),
    }
}
