//! `zerocast bench`: two measurements of the synthetic desktop, printed and
//! written as JSON. Numbers, not pass/fail: compare runs on the same machine.
//!
//! - encode: frames converted and encoded back to back: throughput,
//!   encode time percentiles, CPU per frame (the encoder's threads too).
//! - stream: the full path at the requested frame rate into a real headless
//!   Chromium: frames per second decoded there, capture-to-decoded latency
//!   percentiles, host CPU per frame (the whole zerocast process); see
//!   [`crate::stream_bench`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use zerocast_encode::{new_encoder, Quality};
use zerocast_frame::{Damage, FrameSource};
use zerocast_pipeline::stats::{percentile, process_cpu_time, thread_cpu_time};
use zerocast_synthetic::{Motion, SyntheticDesktop};

use crate::options::{DesktopSize, VideoArgs};
use crate::stream_bench::{print_stream, stream, StreamReport};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The synthetic desktop's size, and the display mode the test guest
    /// is offered (and flips at) in the VM modes.
    #[command(flatten)]
    pub size: DesktopSize,
    #[command(flatten)]
    pub video: VideoArgs,
    /// Frames to encode.
    #[arg(long, default_value_t = 600)]
    pub frames: u32,
    /// Stream a VM's screen instead of the synthetic desktop: the guest kernel
    /// (e.g. work/guest/vmlinuz from scripts/build-guest.sh).
    #[arg(long, requires = "initrd")]
    pub kernel: Option<PathBuf>,
    /// The guest's initramfs.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// The guest's kernel command line (the test guest's flipper takes
    /// zerocast.fps=N; 0 flips as fast as it can). Default: flipping as
    /// fast as it can; with --peer, at --fps.
    #[arg(long)]
    pub append: Option<String>,
    /// With --kernel: run the guest agent beside the flipper and measure the
    /// stream it publishes: `host` (zero-copy, the host encodes) or `x264`
    /// (the baseline, the guest encodes).
    #[arg(long, requires = "kernel")]
    pub agent: Option<String>,
    /// With --kernel: the agent's x264 baseline done by the host instead,
    /// on scanout 0's flushes (the agent's conversion and x264 settings),
    /// and that stream measured: roughly what a KVM guest would spend.
    #[arg(long, requires = "kernel", conflicts_with = "agent")]
    pub baseline_native: bool,
    /// Seconds to measure the stream into the browser (0: encode only).
    #[arg(long, default_value_t = 15.0)]
    pub seconds: f64,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench.json")]
    pub json: PathBuf,
    /// Instead of the stream: a synthetic workload, encoded whole and by
    /// damage side by side (typing, a clock, a window drag, a full-screen
    /// scroll, video), with CPU, bytes and PSNR for each.
    #[arg(long, value_enum)]
    pub workload: Option<BenchWorkload>,
    /// With --workload still-after-motion, --kernel and --initrd: the
    /// desktop image (scripts/build-desktop.sh) to measure on, booted with
    /// snapshot=on.
    #[arg(long, requires = "kernel")]
    pub disk: Option<PathBuf>,
    /// With --workload or --peer: runs of each; the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    /// With --kernel: the same guest on another display server, side by
    /// side with zerocast in the same run (QEMU's own GPU and VNC server).
    #[arg(long, value_enum, requires = "kernel", conflicts_with = "agent")]
    pub peer: Option<crate::peer_bench::Peer>,
    /// Every stream mode one after another in this one run, --repeats
    /// times each, on the test guest (--kernel/--initrd, default
    /// work/guest/ from scripts/build-guest.sh): figures with their
    /// min/median/max, zero-copy against the x264 baseline as ratios.
    #[arg(long, conflicts_with_all = ["workload", "peer", "agent", "baseline_native"])]
    pub suite: bool,
    /// With --suite: the modes to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = crate::suite::Mode::ALL)]
    pub modes: Vec<crate::suite::Mode>,
    /// With --suite: no progress bar (CI, logs); tracing's log lines stay.
    #[arg(long)]
    pub quiet: bool,
}

impl BenchArgs {
    /// The kernel command line the guest boots with.
    pub fn guest_append(&self) -> String {
        let fps = match self.peer {
            Some(_) => self.video.fps,
            None => 0,
        };
        self.append
            .clone()
            .unwrap_or_else(|| format!("zerocast.fps={fps} drm_kms_helper.fbdev_emulation=0"))
    }
}

/// The benchmark's workloads.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchWorkload {
    /// What damage-aware encoding saves on desktop activity.
    DesktopDamage,
    /// How sharp the picture is once motion stops, before and after
    /// refinement.
    StillAfterMotion,
}

#[derive(Serialize)]
struct Bench {
    encode: Report,
    stream: Option<StreamReport>,
}

#[derive(Serialize)]
struct Report {
    encoder: String,
    width: u32,
    height: u32,
    frames: u32,
    bitrate_bps: u32,
    /// Frames per second the encoder sustains, back to back (on as many
    /// threads as it uses: see cpu_per_frame_ms).
    encode_fps: f64,
    encode_p50_ms: f64,
    encode_p99_ms: f64,
    cpu_per_frame_ms: f64,
    /// CPU to draw one synthetic frame (the source, not the encoder).
    render_cpu_per_frame_ms: f64,
    /// Cores busy if streaming at the requested fps.
    cores_at_target_fps: f64,
    target_fps: u32,
    mean_frame_bytes: u64,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match (args.workload, &args.disk, &args.kernel) {
        (Some(BenchWorkload::StillAfterMotion), Some(disk), _) => {
            return crate::desktop_bench::run(&args, disk).await;
        }
        (Some(_), None, Some(_)) => anyhow::bail!(
            "--workload runs the synthetic desktop; --kernel goes with it only for \
             still-after-motion on the desktop image (--disk)"
        ),
        (Some(BenchWorkload::DesktopDamage), _, _) => return crate::damage_bench::run(&args),
        (Some(BenchWorkload::StillAfterMotion), None, _) => {
            return crate::refresh_bench::run(&args)
        }
        (None, Some(_), _) => anyhow::bail!("--disk goes with --workload still-after-motion"),
        (None, None, _) => {}
    }
    if let Some(peer) = args.peer {
        return crate::peer_bench::run(&args, peer).await;
    }
    if args.suite {
        return crate::suite::run(&args).await;
    }
    let encode = encode(&args)?;
    let stream = if args.seconds > 0.0 {
        let report = stream(&args, &mut |_| {}).await?;
        print_stream(&report);
        Some(report)
    } else {
        None
    };
    let bench = Bench { encode, stream };
    write_json(&args.json, &bench)
}

fn encode(args: &BenchArgs) -> anyhow::Result<Report> {
    args.size.check()?;
    let v = &args.video;
    let size = args.size;
    let mut source = SyntheticDesktop::new(size.width, size.height, v.fps, Motion::Static);
    let mut encoder = new_encoder(v.encoder, v.settings()).context("building the encoder")?;
    let mut out = Vec::new();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut bytes = 0u64;
    let mut render = Duration::ZERO;
    for i in 0..args.frames {
        let r = thread_cpu_time();
        source.render();
        render += thread_cpu_time().saturating_sub(r);
        let frame = source
            .frame()
            .context("the synthetic desktop drew nothing")?;
        out.clear();
        // The process's CPU: an encoder's worker threads count too.
        let (t, c) = (Instant::now(), process_cpu_time());
        encoder.encode(&frame, &Damage::full(), i == 0, Quality::Motion, &mut out)?;
        wall.push(duration_micros(t.elapsed()));
        cpu.push(duration_micros(process_cpu_time().saturating_sub(c)));
        bytes += out.len() as u64;
    }
    let n = f64::from(args.frames.max(1));
    let mean_wall_ms = wall.iter().map(|&u| f64::from(u)).sum::<f64>() / n / 1000.0;
    let cpu_ms = cpu.iter().map(|&u| f64::from(u)).sum::<f64>() / n / 1000.0;
    let ms = |p| f64::from(percentile(wall.clone(), p).unwrap_or(0)) / 1000.0;
    let report = Report {
        encoder: encoder.describe(),
        width: size.width,
        height: size.height,
        frames: args.frames,
        bitrate_bps: v.bitrate,
        encode_fps: 1000.0 / mean_wall_ms.max(1e-6),
        encode_p50_ms: ms(50.0),
        encode_p99_ms: ms(99.0),
        cpu_per_frame_ms: cpu_ms,
        render_cpu_per_frame_ms: render.as_secs_f64() * 1000.0 / n,
        cores_at_target_fps: cpu_ms * f64::from(v.fps) / 1000.0,
        target_fps: v.fps,
        mean_frame_bytes: bytes / u64::from(args.frames.max(1)),
    };
    println!("encoder           {}", report.encoder);
    println!(
        "size              {}x{}, {} frames",
        report.width, report.height, report.frames
    );
    println!(
        "encode            {:.1} fps back to back; p50 {:.2} ms, p99 {:.2} ms",
        report.encode_fps, report.encode_p50_ms, report.encode_p99_ms
    );
    println!(
        "cpu per frame     {:.2} ms ({:.2} cores at {} fps)",
        report.cpu_per_frame_ms, report.cores_at_target_fps, report.target_fps
    );
    println!(
        "render (source)   {:.2} ms CPU per frame",
        report.render_cpu_per_frame_ms
    );
    println!("frame size        {} bytes mean", report.mean_frame_bytes);
    Ok(report)
}

/// A duration in whole microseconds, saturating at u32::MAX (71 minutes,
/// far past one frame's encode).
fn duration_micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Writes a benchmark's report as JSON to `path` and says where.
pub(crate) fn write_json(path: &std::path::Path, report: &impl Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("json              {}", path.display());
    Ok(())
}

/// The middle value of the repeats of a figure (the mean of the two middle
/// ones for an even count; 0 for none).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
