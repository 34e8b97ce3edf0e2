//! `zerocast bench --workload desktop-damage`: what damage-aware encoding
//! saves, workload by workload (typing, a clock, a dragged window, a
//! full-screen scroll, full-screen video). Each frame of a deterministic
//! synthetic desktop goes through two encoders in the same run: one given
//! the whole frame (the path before damage tracking) and one given only the
//! damage. Both streams are decoded in-process with OpenH264's decoder and
//! their luma compared with the source's, so savings that cost quality show.

use std::time::{Duration, Instant};

use anyhow::Context;
use openh264::decoder::Decoder;
use serde::Serialize;
use zerocast_encode::{new_encoder, Quality, VideoEncoder};
use zerocast_frame::{Damage, Frame, I420};
use zerocast_pipeline::stats::process_cpu_time;
use zerocast_synthetic::{Workload, WorkloadScene};

use crate::bench::BenchArgs;
use crate::picture_quality::{psnr, squared_error};

/// One workload's figures, each the median over the repeats.
#[derive(Serialize)]
struct WorkloadReport {
    workload: String,
    /// Share of the picture damaged per frame, mean.
    damaged_share: f64,
    whole: PathReport,
    damage: PathReport,
}

/// One encoding path over a workload (the first frame, an IDR of
/// everything for both, left out).
#[derive(Serialize, Clone, Copy)]
struct PathReport {
    /// CPU of conversion and encoding, per frame (the encoder's threads
    /// included).
    cpu_per_frame_ms: f64,
    /// Wall time of conversion and encoding, per frame.
    wall_per_frame_ms: f64,
    bytes_per_frame: f64,
    /// Luma PSNR of the decoded stream against the source, dB (99: identical).
    psnr_y_db: f64,
}

#[derive(Serialize)]
struct DamageBench {
    width: u32,
    height: u32,
    frames: u32,
    repeats: u32,
    bitrate_bps: u32,
    fps: u32,
    encoder: String,
    workloads: Vec<WorkloadReport>,
}

/// Sums for one path over one repeat.
#[derive(Default)]
struct Tally {
    cpu: Duration,
    wall: Duration,
    bytes: u64,
    squared_error: f64,
    samples: f64,
    frames: u32,
}

impl Tally {
    fn report(&self) -> PathReport {
        let n = f64::from(self.frames.max(1));
        PathReport {
            cpu_per_frame_ms: self.cpu.as_secs_f64() * 1000.0 / n,
            wall_per_frame_ms: self.wall.as_secs_f64() * 1000.0 / n,
            bytes_per_frame: self.bytes as f64 / n,
            psnr_y_db: psnr(self.squared_error, self.samples),
        }
    }
}

/// One encoder, its decoder, and its sums.
struct Path {
    encoder: Box<dyn VideoEncoder>,
    decoder: Decoder,
    out: Vec<u8>,
    tally: Tally,
}

impl Path {
    fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        Ok(Path {
            encoder: new_encoder(args.video.encoder, args.video.settings())
                .context("building the encoder")?,
            decoder: Decoder::new().context("building OpenH264's decoder")?,
            out: Vec::new(),
            tally: Tally::default(),
        })
    }

    /// Encodes and times one frame; counts it unless it is the first.
    fn encode(&mut self, frame: &Frame<'_>, damage: &Damage, first: bool) -> anyhow::Result<()> {
        self.out.clear();
        let (wall, cpu) = (Instant::now(), process_cpu_time());
        self.encoder
            .encode(frame, damage, first, Quality::Motion, &mut self.out)?;
        let (wall, cpu) = (wall.elapsed(), process_cpu_time().saturating_sub(cpu));
        if !first {
            self.tally.cpu += cpu;
            self.tally.wall += wall;
            self.tally.bytes += self.out.len() as u64;
            self.tally.frames += 1;
        }
        Ok(())
    }

    /// Decodes the last access unit and compares its luma with `source`'s.
    fn compare(&mut self, source: &I420) -> anyhow::Result<()> {
        let decoded = self
            .decoder
            .decode(&self.out)
            .context("decoding our own stream")?
            .context("the decoder returned no picture for an access unit")?;
        let (error, samples) = squared_error(&decoded, source).context("decoded size differs")?;
        self.tally.squared_error += error;
        self.tally.samples += samples;
        Ok(())
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    args.size.check()?;
    let (width, height) = (args.size.width, args.size.height);
    let repeats = args.repeats.max(1);
    let mut workloads = Vec::new();
    let mut encoder = String::new();
    println!(
        "desktop-damage    {width}x{height}, {} frames x {repeats} runs per workload, {} bit/s; \
         ms = CPU of conversion + encoding per frame (wall in the JSON), medians of the runs",
        args.frames, args.video.bitrate
    );
    println!(
        "{:<9} {:>8} | {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7}",
        "workload", "damaged", "whole ms", "bytes", "PSNR", "damage ms", "bytes", "PSNR"
    );
    for kind in Workload::ALL {
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let (whole, damage, share, name) = one_run(args, kind)?;
            encoder = name;
            runs.push((whole, damage, share));
        }
        let median = |f: &dyn Fn(&(PathReport, PathReport, f64)) -> f64| {
            crate::bench::median(runs.iter().map(f).collect())
        };
        let path = |pick: fn(&(PathReport, PathReport, f64)) -> PathReport| PathReport {
            cpu_per_frame_ms: median(&|r| pick(r).cpu_per_frame_ms),
            wall_per_frame_ms: median(&|r| pick(r).wall_per_frame_ms),
            bytes_per_frame: median(&|r| pick(r).bytes_per_frame),
            psnr_y_db: median(&|r| pick(r).psnr_y_db),
        };
        let report = WorkloadReport {
            workload: kind.name().to_string(),
            damaged_share: median(&|r| r.2),
            whole: path(|r| r.0),
            damage: path(|r| r.1),
        };
        println!(
            "{:<9} {:>7.1}% | {:>9.2} {:>9.0} {:>7.2} | {:>9.2} {:>9.0} {:>7.2}",
            report.workload,
            report.damaged_share * 100.0,
            report.whole.cpu_per_frame_ms,
            report.whole.bytes_per_frame,
            report.whole.psnr_y_db,
            report.damage.cpu_per_frame_ms,
            report.damage.bytes_per_frame,
            report.damage.psnr_y_db,
        );
        workloads.push(report);
    }
    let bench = DamageBench {
        width,
        height,
        frames: args.frames,
        repeats,
        bitrate_bps: args.video.bitrate,
        fps: args.video.fps,
        encoder,
        workloads,
    };
    println!("encoder           {}", bench.encoder);
    crate::bench::write_json(&args.json, &bench)
}

/// One run of a workload through both paths: (whole, damage, damaged share,
/// encoder description).
fn one_run(
    args: &BenchArgs,
    kind: Workload,
) -> anyhow::Result<(PathReport, PathReport, f64, String)> {
    let mut scene = WorkloadScene::new(kind, args.size.width, args.size.height);
    let (mut whole, mut part) = (Path::new(args)?, Path::new(args)?);
    let mut reference = I420::default();
    let mut damaged = 0.0;
    let pixels = f64::from(args.size.width) * f64::from(args.size.height);
    for i in 0..args.frames {
        let damage = scene.advance();
        let frame = scene.frame();
        let first = i == 0;
        if i > 0 {
            damaged += damage.area().map_or(pixels, |a| a as f64) / pixels;
        }
        // Alternate which goes first, so neither always finds the frame
        // in the cache.
        if i % 2 == 0 {
            whole.encode(&frame, &Damage::full(), first)?;
            part.encode(&frame, &damage, first)?;
        } else {
            part.encode(&frame, &damage, first)?;
            whole.encode(&frame, &Damage::full(), first)?;
        }
        reference.convert(&frame)?;
        whole.compare(&reference)?;
        part.compare(&reference)?;
    }
    let share = damaged / f64::from(args.frames.saturating_sub(1).max(1));
    Ok((
        whole.tally.report(),
        part.tally.report(),
        share.min(1.0),
        part.encoder.describe(),
    ))
}
