//! `zerocast bench --workload desktop-damage`: what damage-aware encoding
//! saves, workload by workload (typing, a clock, a dragged window, a
//! full-screen scroll, full-screen video). Each frame of a deterministic
//! synthetic desktop goes through three encoders in the same run: one given
//! the whole frame (the path before damage tracking), one given only the
//! damage, and the web viewers' striped one (only the changed stripes
//! encoded). Every stream is decoded in-process with OpenH264's decoder and
//! its luma compared with the source's, so savings that cost quality show.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use openh264::decoder::{DecodedYUV, Decoder};
use openh264::formats::YUVSource;
use serde::Serialize;
use zerocast_encode::stripes::records;
use zerocast_encode::{new_encoder, Quality, StripedEncoder, VideoEncoder};
use zerocast_frame::{Damage, Frame, I420};
use zerocast_pipeline::stats::process_cpu_time;
use zerocast_synthetic::{Workload, WorkloadScene};

use crate::bench::BenchArgs;
use crate::picture_quality::{psnr, squared_error, sum_of_squared_differences};

/// One workload's figures, each the median over the repeats.
#[derive(Serialize)]
struct WorkloadReport {
    workload: String,
    /// Share of the picture damaged per frame, mean.
    damaged_share: f64,
    whole: PathReport,
    damage: PathReport,
    /// Damage, in stripes of `stripe_height` rows.
    stripes: PathReport,
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
    stripe_height: u32,
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

/// How a path's stream is decoded.
enum Viewer {
    Whole(Decoder),
    /// A decoder per stripe (by its first row), and the luma they show
    /// together, row after row.
    Striped {
        decoders: BTreeMap<u16, Decoder>,
        shown: Vec<u8>,
    },
}

/// One encoder, its viewer, and its sums.
struct Path {
    encoder: Box<dyn VideoEncoder>,
    viewer: Viewer,
    out: Vec<u8>,
    tally: Tally,
}

impl Path {
    fn whole(args: &BenchArgs) -> anyhow::Result<Self> {
        let encoder = new_encoder(args.video.encoder, args.video.settings())
            .context("building the encoder")?;
        let decoder = Decoder::new().context("building OpenH264's decoder")?;
        Ok(Path::new(encoder, Viewer::Whole(decoder)))
    }

    fn striped(args: &BenchArgs) -> anyhow::Result<Self> {
        let stripe_height = args.video.stripe_height.max(16);
        let encoder = StripedEncoder::new(args.video.encoder, args.video.settings(), stripe_height)
            .context("building the striped encoder")?;
        let viewer = Viewer::Striped {
            decoders: BTreeMap::new(),
            shown: Vec::new(),
        };
        Ok(Path::new(Box::new(encoder), viewer))
    }

    fn new(encoder: Box<dyn VideoEncoder>, viewer: Viewer) -> Self {
        Path {
            encoder,
            viewer,
            out: Vec::new(),
            tally: Tally::default(),
        }
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

    /// Decodes the last access unit and compares the luma shown with `source`'s.
    fn compare(&mut self, source: &I420) -> anyhow::Result<()> {
        let (error, samples) = match &mut self.viewer {
            Viewer::Whole(decoder) => {
                let decoded = decode(decoder, &self.out)?;
                squared_error(&decoded, source).context("decoded size differs")?
            }
            Viewer::Striped { decoders, shown } => {
                let (w, h) = (source.width() as usize, source.height() as usize);
                shown.resize(w * h, 0);
                for record in records(&self.out) {
                    let (header, au) =
                        record.map_err(|()| anyhow::anyhow!("a striped access unit is cut"))?;
                    let decoder = match decoders.entry(header.y) {
                        std::collections::btree_map::Entry::Occupied(d) => d.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(Decoder::new().context("building OpenH264's decoder")?)
                        }
                    };
                    let decoded = decode(decoder, au)?;
                    let (y, (dw, dh)) = (usize::from(header.y), decoded.dimensions());
                    anyhow::ensure!(dw == w && y + dh <= h, "a stripe outside the picture");
                    let stride = decoded.strides().0;
                    for (row, got) in decoded.y().chunks(stride).take(dh).enumerate() {
                        shown[(y + row) * w..][..w].copy_from_slice(&got[..w]);
                    }
                }
                let error = sum_of_squared_differences(shown, source.y());
                (error as f64, (w * h) as f64)
            }
        };
        self.tally.squared_error += error;
        self.tally.samples += samples;
        Ok(())
    }
}

/// One run of a workload: each path's figures (whole, damage, stripes),
/// the damaged share, the encoder's description.
struct Run {
    paths: [PathReport; 3],
    damaged_share: f64,
    encoder: String,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    args.size.check()?;
    let (width, height) = (args.size.width, args.size.height);
    let repeats = args.repeats.max(1);
    let stripe_height = args.video.stripe_height.max(16);
    let mut workloads = Vec::new();
    let mut encoder = String::new();
    println!(
        "desktop-damage    {width}x{height}, {} frames x {repeats} runs per workload, {} bit/s, \
         stripes of {stripe_height} rows; ms = CPU of conversion + encoding per frame (wall in \
         the JSON), medians of the runs",
        args.frames, args.video.bitrate
    );
    println!(
        "{:<9} {:>8} | {:>9} {:>7} {:>6} | {:>9} {:>7} {:>6} | {:>9} {:>7} {:>6}",
        "workload",
        "damaged",
        "whole ms",
        "bytes",
        "PSNR",
        "damage ms",
        "bytes",
        "PSNR",
        "stripe ms",
        "bytes",
        "PSNR"
    );
    for kind in Workload::ALL {
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let run = one_run(args, kind)?;
            encoder = run.encoder.clone();
            runs.push(run);
        }
        let median = |f: &dyn Fn(&Run) -> f64| crate::bench::median(runs.iter().map(f).collect());
        let path = |i: usize| PathReport {
            cpu_per_frame_ms: median(&|r| r.paths[i].cpu_per_frame_ms),
            wall_per_frame_ms: median(&|r| r.paths[i].wall_per_frame_ms),
            bytes_per_frame: median(&|r| r.paths[i].bytes_per_frame),
            psnr_y_db: median(&|r| r.paths[i].psnr_y_db),
        };
        let report = WorkloadReport {
            workload: kind.name().to_string(),
            damaged_share: median(&|r| r.damaged_share),
            whole: path(0),
            damage: path(1),
            stripes: path(2),
        };
        print!(
            "{:<9} {:>7.1}%",
            report.workload,
            report.damaged_share * 100.0
        );
        for p in [&report.whole, &report.damage, &report.stripes] {
            print!(
                " | {:>9.2} {:>7.0} {:>6.2}",
                p.cpu_per_frame_ms, p.bytes_per_frame, p.psnr_y_db
            );
        }
        println!();
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
        stripe_height,
        workloads,
    };
    println!("encoder           {}", bench.encoder);
    crate::bench::write_json(&args.json, &bench)
}

/// Decodes one access unit, which must give a picture.
fn decode<'a>(decoder: &'a mut Decoder, au: &[u8]) -> anyhow::Result<DecodedYUV<'a>> {
    decoder
        .decode(au)
        .context("decoding our own stream")?
        .context("the decoder returned no picture for an access unit")
}

/// One run of a workload through the three paths.
fn one_run(args: &BenchArgs, kind: Workload) -> anyhow::Result<Run> {
    let mut scene = WorkloadScene::new(kind, args.size.width, args.size.height);
    let mut paths = [Path::whole(args)?, Path::whole(args)?, Path::striped(args)?];
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
        // Rotate which goes first, so none always finds the frame in the cache.
        for k in 0..paths.len() {
            let p = (k + i as usize) % paths.len();
            let given = if p == 0 { Damage::full() } else { damage };
            paths[p].encode(&frame, &given, first)?;
        }
        reference.convert(&frame)?;
        for path in &mut paths {
            path.compare(&reference)?;
        }
    }
    let share = damaged / f64::from(args.frames.saturating_sub(1).max(1));
    Ok(Run {
        paths: paths.each_ref().map(|p| p.tally.report()),
        damaged_share: share.min(1.0),
        encoder: paths[1].encoder.describe(),
    })
}
