//! `--hostile-first`: before streaming, the agent plays a hostile guest on a
//! second connection to the host: requests for resources it does not have
//! or with a geometry, stride or format unlike the real one, a truncated
//! message, a flood, an oversized message. Each must get its ERROR (or, for
//! the oversized one, a closed connection); the results go to the serial
//! console, and the agent then streams on its own session as usual, which
//! shows the host kept serving it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use zerocast_hxfr::{ErrorCode, FrameRequest, Message};

use crate::args::Args;
use crate::link::Link;
use crate::screen::Framebuffer;
use crate::transport;

/// Requests in the flood.
const FLOOD: usize = 500;
const NV12: u32 = 0x3231_564E;

pub fn run(args: &Args, real: &Framebuffer) -> Result<()> {
    let target = args.target();
    let (reader, writer) = transport::connect(&target, Instant::now() + args.timeout())?;
    let mut link = Link::new(reader, writer)?;
    let wait = args.timeout();
    let request = |resource_id, width, height, stride, format| {
        Message::FrameRequest(FrameRequest {
            resource_id,
            width,
            height,
            stride,
            format,
            ..FrameRequest::default()
        })
    };
    let format = real.format.fourcc();
    let (id, w, h, pitch) = (real.resource_id, real.width, real.height, real.pitch);
    let cases = [
        (
            "unknown resource",
            request(0xDEAD, w, h, pitch, format),
            ErrorCode::ResourceNotFound,
        ),
        (
            "geometry larger than the resource",
            request(id, w + 1000, h + 1000, pitch + 4000, format),
            ErrorCode::InvalidMessage,
        ),
        (
            "absurd stride",
            request(id, w, h, u32::MAX, format),
            ErrorCode::InvalidMessage,
        ),
        (
            "wrong format",
            request(id, w, h, pitch, NV12),
            ErrorCode::InvalidMessage,
        ),
    ];
    for (case, message, code) in cases {
        link.send(message)?;
        expect(&link, code, case, wait)?;
    }
    // A FRAME_REQUEST header that promises 4 bytes: too short for one.
    link.send_raw(b"HXFR\x01\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00")?;
    expect(&link, ErrorCode::InvalidMessage, "truncated message", wait)?;
    for _ in 0..FLOOD {
        link.send(request(0xDEAD, w, h, pitch, format))?;
    }
    for _ in 0..FLOOD {
        expect(&link, ErrorCode::ResourceNotFound, "flood", wait)?;
    }
    println!("zerocast-guest: hostile: flood of {FLOOD} requests: every one answered ERROR -2 ok");
    // A payload far over the host's limit: an ERROR, then the host hangs up.
    link.send_raw(b"HXFR\x01\x00\x00\x00\xff\xff\xff\x7f")?;
    expect(&link, ErrorCode::InvalidMessage, "oversized message", wait)?;
    match link.recv_timeout(wait) {
        Err(_) => println!("zerocast-guest: hostile: oversized message: connection closed ok"),
        Ok(other) => bail!("oversized message: the host kept the connection ({other:?})"),
    }
    println!("zerocast-guest: hostile: all cases answered as expected");
    Ok(())
}

fn expect(link: &Link, code: ErrorCode, case: &str, wait: Duration) -> Result<()> {
    let packet = link
        .recv_timeout(wait)?
        .with_context(|| format!("{case}: no answer within {wait:?}"))?;
    match packet.message {
        Message::Error(e) if ErrorCode::from_code(e.code) == code => {
            if case != "flood" {
                println!(
                    "zerocast-guest: hostile: {case}: ERROR {} ok ({})",
                    e.code, e.message
                );
            }
            Ok(())
        }
        other => bail!("{case}: expected ERROR {code:?}, got {other:?}"),
    }
}
