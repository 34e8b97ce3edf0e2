//! zerocast-flipper: the test guest's program, in the spirit of helix's
//! drm-flipper.
//!
//! It page-flips three KMS dumb buffers holding an animated picture with the
//! frame number stamped in the corner ([`zerocast_frame::stamp`]), so the
//! host sees a steady stream of virtio-gpu resource flushes whose content it
//! can check, and it prints every input event the guest receives. It shows
//! a hardware cursor that follows the guest's absolute pointer, or wanders
//! on its own until the pointer first moves. Everything goes to stdout,
//! which is the serial console in the test VM.
//!
//! Design map:
//! - [`kms`]: the DRM card, the output, the swapchain of dumb buffers.
//! - [`cursor`]: the hardware cursor: a recognisable 64x64 image, moved.
//! - [`scene`](zerocast_flipper::scene) (the library, which the host's benchmark draws too): what a
//!   frame looks like, drawn cheaply (the guest runs under TCG).
//! - [`input`]: evdev readers that print events.
//! - [`Pacer`] (here): holds the frame rate to `--fps`.

#![forbid(unsafe_code)]

mod cursor;
mod input;
mod kms;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;

use kms::{Card, Output, Swapchain};
use zerocast_flipper::scene::{Canvas, Rect, Scene};

/// How long to wait for the card and a connected display after start.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(10);
/// Print a progress line every this many frames.
const REPORT_EVERY: u64 = 30;
/// Until the pointer first moves, the cursor steps along a path every this
/// many frames.
const WANDER_EVERY: u64 = 5;

#[derive(Parser)]
#[command(
    version,
    about = "Page-flips frame-stamped test frames on a DRM card and prints input events"
)]
struct Args {
    /// Frames per second to aim for; 0 = as fast as the guest can flip.
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// Frames to show before exiting; 0 = run until killed.
    #[arg(long, default_value_t = 0)]
    frames: u64,
    /// The DRM card to draw on.
    #[arg(long, default_value = "/dev/dri/card0")]
    card: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let pointer = Arc::new(input::Pointer::default());
    let inputs = input::spawn_readers(&pointer);
    println!("zerocast-flipper: watching {inputs} input devices");

    let deadline = Instant::now() + DEVICE_TIMEOUT;
    let card = Card::open(&args.card, deadline)?;
    let output = Output::find(&card, deadline)?;
    let (width, height) = output.size();
    println!(
        "zerocast-flipper: {} connector {} mode {}x{}@{} crtc {}",
        args.card.display(),
        output.name,
        width,
        height,
        output.mode.vrefresh(),
        u32::from(output.crtc),
    );

    let mut dumbs = kms::create_dumb_buffers(&card, (width, height), kms::BUFFERS)?;
    let mut chain = Swapchain::new(&card, &output, &mut dumbs)?;
    let stride = chain.pitch() as usize;
    println!(
        "zerocast-flipper: {} dumb buffers XRGB8888 {}x{} pitch {} framebuffers {}",
        kms::BUFFERS,
        width,
        height,
        stride,
        chain
            .framebuffers()
            .map(|fb| u32::from(fb).to_string())
            .collect::<Vec<_>>()
            .join(" "),
    );

    let scene = Scene::new(width, height);
    for pixels in chain.all_pixels() {
        scene.paint_background(&mut Canvas::new(pixels, width, height, stride));
    }
    // What each buffer holds beyond the background, for the next redraw of it.
    let mut drawn: Vec<Vec<Rect>> = vec![Vec::new(); kms::BUFFERS];

    let mut pacer = Pacer::new(args.fps);
    let start = Instant::now();
    let (mut reported_at, mut reported_frame) = (start, 0);
    let mut frame = 0;
    let (mut cursor, mut follows) = (None, false);
    while args.frames == 0 || frame < args.frames {
        let (index, pixels) = chain.back();
        scene.render(
            &mut Canvas::new(pixels, width, height, stride),
            frame,
            &mut drawn[index],
        );
        pacer.wait();
        chain.present()?;
        if frame == 0 {
            // After the mode set: a cursor needs an active CRTC.
            cursor = show_cursor(&card, &output);
        }
        if let Some(cursor) = &cursor {
            move_cursor(cursor, &pointer, &mut follows, frame, (width, height));
        }
        frame += 1;
        if frame % REPORT_EVERY == 0 {
            let now = Instant::now();
            let fps = (frame - reported_frame) as f64 / (now - reported_at).as_secs_f64();
            println!("zerocast-flipper: frame {frame} ({fps:.1} fps)");
            (reported_at, reported_frame) = (now, frame);
        }
    }
    chain.wait_flip()?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "zerocast-flipper: done, {frame} frames in {secs:.2} s ({:.1} fps)",
        frame as f64 / secs
    );
    Ok(())
}

fn show_cursor<'a>(card: &'a Card, output: &Output) -> Option<cursor::Cursor<'a>> {
    match cursor::Cursor::show(card, output.crtc) {
        Ok(c) => {
            println!(
                "zerocast-flipper: cursor {0}x{0} hotspot {1},{2}",
                cursor::SIDE,
                cursor::HOTSPOT.0,
                cursor::HOTSPOT.1
            );
            Some(c)
        }
        Err(e) => {
            // The frames matter more than the pointer: go on without it.
            println!("zerocast-flipper: no hardware cursor: {e:#}");
            None
        }
    }
}

/// Moves the cursor to the guest's pointer once it has moved, until then
/// along a diagonal path every [`WANDER_EVERY`] frames.
fn move_cursor(
    cursor: &cursor::Cursor,
    pointer: &input::Pointer,
    follows: &mut bool,
    frame: u64,
    (width, height): (u32, u32),
) {
    let to = match pointer.take_moved() {
        Some((x, y)) => {
            *follows = true;
            let scale = |v: i32, size: u32| {
                let v = i64::from(v.clamp(0, input::ABS_MAX)) * i64::from(size.saturating_sub(1));
                i32::try_from(v / i64::from(input::ABS_MAX)).unwrap_or(0)
            };
            (scale(x, width), scale(y, height))
        }
        None if !*follows && frame % WANDER_EVERY == 0 => {
            let step = i32::try_from(frame / WANDER_EVERY % 100).unwrap_or(0);
            let (w, h) = (
                i32::try_from(width).unwrap_or(0),
                i32::try_from(height).unwrap_or(0),
            );
            (w / 4 + step * w / 200, h / 4 + step * h / 200)
        }
        None => return,
    };
    if let Err(e) = cursor.move_to(to.0, to.1) {
        println!("zerocast-flipper: {e:#}");
    }
}

/// Spaces frames `1/fps` apart. When it falls behind it starts afresh from
/// now instead of rushing frames out to catch up.
struct Pacer {
    period: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(fps: u32) -> Pacer {
        Pacer {
            period: (fps > 0).then(|| Duration::from_secs(1) / fps),
            next: Instant::now(),
        }
    }

    /// Sleeps until the next frame is due.
    fn wait(&mut self) {
        let Some(period) = self.period else {
            return;
        };
        let now = Instant::now();
        if now < self.next {
            thread::sleep(self.next - now);
            self.next += period;
        } else {
            self.next = now + period;
        }
    }
}
