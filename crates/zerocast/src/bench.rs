//! `zerocast bench`: encode the synthetic desktop as fast as the encoder
//! goes, and report throughput, encode latency and CPU per frame as text and
//! JSON. Numbers, not pass/fail: compare runs on the same machine.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use zerocast_encode::new_encoder;
use zerocast_frame::FrameSource;
use zerocast_server::stats::{percentile, thread_cpu_time};
use zerocast_synthetic::{Motion, SyntheticDesktop};

use crate::options::VideoArgs;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub video: VideoArgs,
    /// Frames to encode.
    #[arg(long, default_value_t = 600)]
    pub frames: u32,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench-encode.json")]
    pub json: PathBuf,
}

#[derive(Serialize)]
struct Report {
    encoder: String,
    width: u32,
    height: u32,
    frames: u32,
    bitrate_bps: u32,
    /// Frames per second the encoder sustains on one core.
    encode_fps: f64,
    encode_p50_ms: f64,
    encode_p99_ms: f64,
    cpu_per_frame_ms: f64,
    /// Cores busy if streaming at the requested fps.
    cores_at_target_fps: f64,
    target_fps: u32,
    mean_frame_bytes: u64,
    /// Full-frame pixel copies before the encoder's input: the converter
    /// reads the source buffer in place.
    bytes_copied_per_frame: u64,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    args.video.check()?;
    let v = &args.video;
    let mut source = SyntheticDesktop::new(v.width, v.height, v.fps, Motion::Static);
    let mut encoder = new_encoder(v.encoder, v.settings()).context("building the encoder")?;
    let mut out = Vec::new();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut bytes = 0u64;
    for i in 0..args.frames {
        source.render();
        let frame = source
            .frame()
            .context("the synthetic desktop drew nothing")?;
        out.clear();
        let (t, c) = (Instant::now(), thread_cpu_time());
        encoder.encode(&frame, i == 0, &mut out)?;
        wall.push(t.elapsed().as_micros() as u32);
        cpu.push(thread_cpu_time().saturating_sub(c).as_micros() as u32);
        bytes += out.len() as u64;
    }
    let n = f64::from(args.frames.max(1));
    let mean_wall_ms = wall.iter().map(|&u| f64::from(u)).sum::<f64>() / n / 1000.0;
    let cpu_ms = cpu.iter().map(|&u| f64::from(u)).sum::<f64>() / n / 1000.0;
    let ms = |p| f64::from(percentile(wall.clone(), p).unwrap_or(0)) / 1000.0;
    let report = Report {
        encoder: encoder.describe(),
        width: v.width,
        height: v.height,
        frames: args.frames,
        bitrate_bps: v.bitrate,
        encode_fps: 1000.0 / mean_wall_ms.max(1e-6),
        encode_p50_ms: ms(50.0),
        encode_p99_ms: ms(99.0),
        cpu_per_frame_ms: cpu_ms,
        cores_at_target_fps: cpu_ms * f64::from(v.fps) / 1000.0,
        target_fps: v.fps,
        mean_frame_bytes: bytes / u64::from(args.frames.max(1)),
        bytes_copied_per_frame: 0,
    };
    println!("encoder           {}", report.encoder);
    println!(
        "size              {}x{}, {} frames",
        report.width, report.height, report.frames
    );
    println!(
        "encode            {:.1} fps on one core; p50 {:.2} ms, p99 {:.2} ms",
        report.encode_fps, report.encode_p50_ms, report.encode_p99_ms
    );
    println!(
        "cpu per frame     {:.2} ms ({:.2} cores at {} fps)",
        report.cpu_per_frame_ms, report.cores_at_target_fps, report.target_fps
    );
    println!("frame size        {} bytes mean", report.mean_frame_bytes);
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("json              {}", args.json.display());
    Ok(())
}
