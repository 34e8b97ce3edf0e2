//! `zerocast bench --workload still-after-motion`: how sharp the picture a
//! viewer is left with when motion stops, before and after refinement, in
//! the same run. Each workload (a window drag, a scroll, typing) moves for
//! `--frames` frames and stops; two encoders see the same frames:
//!
//! - before: the encoder's own constant-bitrate control, no refinement
//!   (what zerocast did before quality rate control);
//! - after: the settings given (default: constant quality with a ceiling),
//!   and the still picture refined once.
//!
//! Each workload stops twice; the second stop is reported (the first
//! refinement also refines the whole first keyframe).
//!
//! Both streams are decoded in-process with OpenH264's decoder. Reported:
//! during motion, CPU, bytes and PSNR per frame; when still, the PSNR and
//! SSIM of what the viewer shows, and for the refinement its bytes, CPU and
//! when the sharp picture is out (the refresh delay plus its encode).

use std::time::{Duration, Instant};

use anyhow::Context;
use openh264::decoder::Decoder;
use serde::Serialize;
use zerocast_encode::{new_encoder, EncoderSettings, Quality, RateControl, VideoEncoder};
use zerocast_frame::{Damage, Frame, I420};
use zerocast_pipeline::stats::process_cpu_time;
use zerocast_synthetic::{Workload, WorkloadScene};

use crate::bench::{median, BenchArgs};
use crate::picture_quality::{psnr, squared_error, ssim};

/// The workloads that move and then stop.
const WORKLOADS: [Workload; 3] = [Workload::Drag, Workload::Scroll, Workload::Typing];

#[derive(Serialize, Clone, Copy, Default)]
struct PathReport {
    /// Per frame while moving (the first frame, an IDR, left out).
    motion_cpu_ms: f64,
    motion_bytes: f64,
    motion_psnr_db: f64,
    /// What the viewer shows once motion stopped: the last motion frame,
    /// then (after) the refinement.
    still_psnr_db: f64,
    still_ssim: f64,
    /// The refinement (0 when there is none).
    refresh_bytes: f64,
    refresh_cpu_ms: f64,
    /// From the last change to the refined picture being out (0: none).
    sharp_after_ms: f64,
}

#[derive(Serialize)]
struct WorkloadReport {
    workload: String,
    before: PathReport,
    after: PathReport,
}

#[derive(Serialize)]
struct RefreshBench {
    width: u32,
    height: u32,
    motion_frames: u32,
    repeats: u32,
    bitrate_bps: u32,
    refresh_delay_ms: u64,
    encoder: String,
    workloads: Vec<WorkloadReport>,
}

/// One encoder and its decoder, with running sums.
struct Path {
    encoder: Box<dyn VideoEncoder>,
    decoder: Decoder,
    out: Vec<u8>,
    cpu: Duration,
    bytes: u64,
    squared_error: f64,
    samples: f64,
    frames: u32,
    /// PSNR and SSIM of the picture last decoded.
    shown: (f64, f64),
}

impl Path {
    fn new(args: &BenchArgs, settings: EncoderSettings) -> anyhow::Result<Self> {
        Ok(Path {
            encoder: new_encoder(args.video.encoder, settings).context("building the encoder")?,
            decoder: Decoder::new().context("building OpenH264's decoder")?,
            out: Vec::new(),
            cpu: Duration::ZERO,
            bytes: 0,
            squared_error: 0.0,
            samples: 0.0,
            frames: 0,
            shown: (0.0, 0.0),
        })
    }

    /// Encodes a moving frame and compares its decoded picture with
    /// `source`; the last one is what the viewer keeps.
    fn motion(
        &mut self,
        frame: &Frame<'_>,
        damage: &Damage,
        source: &I420,
        (first, last): (bool, bool),
    ) -> anyhow::Result<()> {
        self.out.clear();
        let cpu = process_cpu_time();
        self.encoder
            .encode(frame, damage, first, Quality::Motion, &mut self.out)?;
        let cpu = process_cpu_time().saturating_sub(cpu);
        let error = self.decode_compare(source, last)?;
        if !first {
            self.cpu += cpu;
            self.bytes += self.out.len() as u64;
            self.squared_error += error.0;
            self.samples += error.1;
            self.frames += 1;
        }
        Ok(())
    }

    /// Decodes the access unit in `out`: its squared error against
    /// `source`; with `keep`, its PSNR and SSIM become what is shown.
    fn decode_compare(&mut self, source: &I420, keep: bool) -> anyhow::Result<(f64, f64)> {
        let decoded = self
            .decoder
            .decode(&self.out)
            .context("decoding our own stream")?
            .context("the decoder returned no picture for an access unit")?;
        let (error, samples) = squared_error(&decoded, source).context("decoded size differs")?;
        if keep {
            let ssim = ssim(&decoded, source).context("picture too small for SSIM")?;
            self.shown = (psnr(error, samples), ssim);
        }
        Ok((error, samples))
    }

    /// Refines the still picture and decodes it: its wall and CPU time.
    fn refine(&mut self, source: &I420) -> anyhow::Result<(Duration, Duration)> {
        self.out.clear();
        let (start, cpu) = (Instant::now(), process_cpu_time());
        let refined = self.encoder.refine(&mut self.out)?;
        let (elapsed, cpu) = (start.elapsed(), process_cpu_time().saturating_sub(cpu));
        anyhow::ensure!(
            refined.is_some(),
            "the encoder did not refine the still picture (--rate-control quality refines)"
        );
        self.decode_compare(source, true)?;
        Ok((elapsed, cpu))
    }

    /// Motion is over: refines the still picture if asked, and reports.
    fn still(&mut self, source: &I420, refine: Option<Duration>) -> anyhow::Result<PathReport> {
        let n = f64::from(self.frames.max(1));
        let mut report = PathReport {
            motion_cpu_ms: self.cpu.as_secs_f64() * 1000.0 / n,
            motion_bytes: self.bytes as f64 / n,
            motion_psnr_db: psnr(self.squared_error, self.samples),
            ..PathReport::default()
        };
        if let Some(delay) = refine {
            let (elapsed, cpu) = self.refine(source)?;
            report.refresh_bytes = self.out.len() as f64;
            report.refresh_cpu_ms = cpu.as_secs_f64() * 1000.0;
            report.sharp_after_ms = (delay + elapsed).as_secs_f64() * 1000.0;
        }
        (report.still_psnr_db, report.still_ssim) = self.shown;
        Ok(report)
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    args.size.check()?;
    let (width, height) = (args.size.width, args.size.height);
    let repeats = args.repeats.max(1);
    let after = args.video.settings();
    let refine = args.video.pipeline(0).refresh_after;
    let before = EncoderSettings {
        rate_control: RateControl::Bitrate,
        ..after
    };
    println!(
        "still-after-motion  {width}x{height}, {} moving frames then still, x {repeats} runs; \
         before: constant bitrate {} bit/s, no refinement; after: the settings given; medians",
        args.frames, args.video.bitrate
    );
    println!(
        "{:<7} {:<6} | {:>8} {:>8} {:>6} | {:>6} {:>6} | {:>8} {:>7} {:>8}",
        "", "", "motion", "bytes", "PSNR", "still", "SSIM", "refresh", "CPU ms", "sharp at"
    );
    let mut workloads = Vec::new();
    let mut encoder = String::new();
    for kind in WORKLOADS {
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let (b, a, name) = one_run(args, kind, before, after, refine)?;
            encoder = name;
            runs.push((b, a));
        }
        let pick = |path: fn(&(PathReport, PathReport)) -> PathReport| {
            let m = |f: fn(&PathReport) -> f64| median(runs.iter().map(|r| f(&path(r))).collect());
            PathReport {
                motion_cpu_ms: m(|p| p.motion_cpu_ms),
                motion_bytes: m(|p| p.motion_bytes),
                motion_psnr_db: m(|p| p.motion_psnr_db),
                still_psnr_db: m(|p| p.still_psnr_db),
                still_ssim: m(|p| p.still_ssim),
                refresh_bytes: m(|p| p.refresh_bytes),
                refresh_cpu_ms: m(|p| p.refresh_cpu_ms),
                sharp_after_ms: m(|p| p.sharp_after_ms),
            }
        };
        let report = WorkloadReport {
            workload: kind.name().to_string(),
            before: pick(|r| r.0),
            after: pick(|r| r.1),
        };
        for (label, p) in [("before", &report.before), ("after", &report.after)] {
            println!(
                "{:<7} {:<6} | {:>6.2}ms {:>8.0} {:>6.2} | {:>6.2} {:>6.4} | {:>8.0} {:>7.2} {:>6.0}ms",
                report.workload,
                label,
                p.motion_cpu_ms,
                p.motion_bytes,
                p.motion_psnr_db,
                p.still_psnr_db,
                p.still_ssim,
                p.refresh_bytes,
                p.refresh_cpu_ms,
                p.sharp_after_ms,
            );
        }
        workloads.push(report);
    }
    let bench = RefreshBench {
        width,
        height,
        motion_frames: args.frames,
        repeats,
        bitrate_bps: args.video.bitrate,
        refresh_delay_ms: refine.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        encoder,
        workloads,
    };
    println!("encoder             {}", bench.encoder);
    crate::bench::write_json(&args.json, &bench)
}

/// One run of a workload through both paths: (before, after, encoder).
fn one_run(
    args: &BenchArgs,
    kind: Workload,
    before: EncoderSettings,
    after: EncoderSettings,
    refine: Option<Duration>,
) -> anyhow::Result<(PathReport, PathReport, String)> {
    let mut scene = WorkloadScene::new(kind, args.size.width, args.size.height);
    let (mut old, mut new) = (Path::new(args, before)?, Path::new(args, after)?);
    let mut source = I420::default();
    let frames = args.frames.max(2);
    // Two stops: the first refinement also refines what the first keyframe
    // left coarse everywhere; the second, reported, only what moved since.
    for stop in 0..2 {
        for i in 0..frames {
            let damage = scene.advance();
            let frame = scene.frame();
            source.convert(&frame)?;
            let at = (stop == 0 && i == 0, i + 1 == frames);
            // Alternate which goes first, so neither always finds the frame
            // in the cache.
            if i % 2 == 0 {
                old.motion(&frame, &damage, &source, at)?;
                new.motion(&frame, &damage, &source, at)?;
            } else {
                new.motion(&frame, &damage, &source, at)?;
                old.motion(&frame, &damage, &source, at)?;
            }
        }
        if stop == 0 && refine.is_some() {
            new.refine(&source)?;
        }
    }
    Ok((
        old.still(&source, None)?,
        new.still(&source, refine)?,
        new.encoder.describe(),
    ))
}
