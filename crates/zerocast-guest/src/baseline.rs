//! Baseline mode: the guest encodes, as helix's software x264 path does.
//! After each flip the agent maps the framebuffer on screen, converts its
//! pixels to I420 and encodes them with x264, all on the guest's CPU: the
//! cost zero-copy mode exists to remove. Same output file and stats line
//! as zero-copy mode; the latency reported is capture to access unit.

use std::thread;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use zerocast_frame::{Frame, I420};
use zerocast_x264::X264;

use crate::args::Args;
use crate::link::Link;
use crate::publish::Reply;
use crate::screen::Screen;
use crate::sink::Sink;
use crate::transport;
use crate::watch::Watch;

pub fn run(args: &Args, mut screen: Screen, mut sink: Sink) -> Result<()> {
    println!("zerocast-guest: encoding in the guest with x264");
    let mut watch = Watch::new(args.refresh(), args.frame());
    let mut pic = I420::default();
    let mut encoder: Option<X264> = None;
    let mut next_keyframe = args.keyframe_every().map(|every| Instant::now() + every);
    let start = Instant::now();
    // Publishing needs the host; without it the baseline runs on its own.
    let mut publishing = match args.publisher() {
        Some(p) => {
            let target = args.target();
            let (reader, writer) = transport::connect(&target, start + args.timeout())?;
            println!(
                "zerocast-guest: publishing stream {} to {target}",
                args.publish
            );
            Some((p, Link::new(reader, writer)?))
        }
        None => None,
    };
    let mut keyframe_asked = false;
    loop {
        let now = Instant::now();
        let Some(fb) = screen.current()? else {
            thread::sleep(args.poll());
            continue;
        };
        watch.observe(fb);
        if !watch.due(now) {
            thread::sleep(args.poll());
            continue;
        }
        let (info, pixels) = screen.pixels(fb)?;
        let frame = Frame::new(info.width, info.height, info.pitch, info.format, pixels)
            .context("the framebuffer's geometry does not fit its mapping")?;
        pic.convert(&frame)?;
        watch.captured(now);

        let size = (pic.width(), pic.height());
        let enc = match &mut encoder {
            Some(enc) if enc.size() == size => enc,
            _ => encoder.insert(X264::new(size.0, size.1, args.fps, args.bitrate, 0)?),
        };
        if let Some((publisher, link)) = &publishing {
            while let Some(p) = link.try_recv()? {
                keyframe_asked |= publisher.reply(&p) == Reply::Keyframe;
            }
        }
        let periodic = match (next_keyframe, args.keyframe_every()) {
            (Some(at), Some(every)) if now >= at => {
                next_keyframe = Some(now + every);
                true
            }
            _ => false,
        };
        let force = std::mem::take(&mut keyframe_asked) || periodic;
        let Some(au) = enc.encode(&pic, force, None, None)? else {
            continue;
        };
        if let Some((publisher, link)) = &mut publishing {
            let pts_ns = i64::try_from(now.duration_since(start).as_nanos()).unwrap_or(i64::MAX);
            let nals = vec![Bytes::copy_from_slice(au.data)];
            publisher.send(link, nals, au.keyframe, pts_ns, size)?;
        }
        if sink.frame(&[au.data], au.keyframe, now.elapsed())? {
            sink.finish();
            return Ok(());
        }
    }
}
