//! `zerocast bench --suite`: the stream modes one after another in one run
//! on one machine, each `--repeats` times, so that they compare as ratios
//! measured together (these machines are shared and noisy). Each run is
//! the stream benchmark's: frames decoded per second in a real headless
//! Chromium, capture-to-decoded latency percentiles, CPU per delivered
//! frame (zerocast's process; the guest's own figure for the agent modes),
//! pixel bytes copied per frame, and after the window the decoded
//! picture's quality (luma PSNR and SSIM against the test guest's frames,
//! [`crate::stream_quality`]). The report: every run, the min/median/max
//! of each figure per mode, and agent-zerocopy / agent-x264 ratios; and
//! beside it, SVG charts of the same runs ([`plots`]).

mod machine;
mod plots;
mod progress;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use zerocast_encode::EncoderKind;

use crate::bench::{median, write_json, BenchArgs};
use crate::stream_bench::{stream, StreamReport};
use machine::Machine;
use plots::{ModeData, CPU_FIGURES};
use progress::SuiteProgress;

/// Version of `bench.json`'s layout under `--suite` (docs/bench-json.md).
/// 2: the machine's QEMU, kernel and date, QEMU's CPU and its vCPUs',
/// peak memory, per-second decoded fps, latency max, the stream's frame
/// rate and frame size; CPU per frame the page decoded, the total
/// zerocast's plus QEMU's plus the vsock backend's.
/// 3: each run's picture quality (luma PSNR and SSIM of the decoded frames
/// against the test guest's, the frames compared, the keyframes' size) and
/// glass-to-glass latency, summarised per mode; the host's x264 modes and
/// their ratios over OpenH264's.
/// 4: x264 became the default encoder (in builds with it), so the host's
/// second-encoder modes are OpenH264's (`synthetic-openh264`,
/// `scanout-openh264`) and the ratios `--encoder`'s over OpenH264's.
const SCHEMA_VERSION: u32 = 4;

/// The modes a suite runs.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// No VM: the synthetic desktop, encoded by the host.
    Synthetic,
    /// The test guest page-flipping; the host encodes each flush from guest memory.
    Scanout,
    /// The guest agent asks the host by resource id over vsock; the host
    /// encodes from guest memory (the seed's path).
    AgentZerocopy,
    /// The guest agent reads its own pixels and encodes with x264 in the
    /// guest (the baseline).
    AgentX264,
    /// The agent's x264 work (conversion from guest memory, x264 as the
    /// agent sets it) done by the host on the guest's flushes: the
    /// baseline without emulation, roughly what a KVM guest would spend.
    BaselineNative,
    /// `synthetic` with OpenH264 (`--encoder openh264`), the encoder of
    /// builds without x264.
    SyntheticOpenh264,
    /// `scanout` with OpenH264.
    ScanoutOpenh264,
}

impl Mode {
    pub const ALL: [Mode; 7] = [
        Mode::Synthetic,
        Mode::Scanout,
        Mode::AgentZerocopy,
        Mode::AgentX264,
        Mode::BaselineNative,
        Mode::SyntheticOpenh264,
        Mode::ScanoutOpenh264,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Synthetic => "synthetic",
            Mode::Scanout => "scanout",
            Mode::AgentZerocopy => "agent-zerocopy",
            Mode::AgentX264 => "agent-x264",
            Mode::BaselineNative => "baseline-native",
            Mode::SyntheticOpenh264 => "synthetic-openh264",
            Mode::ScanoutOpenh264 => "scanout-openh264",
        }
    }

    /// `args` for one run of this mode.
    fn args(self, base: &BenchArgs, kernel: &Path, initrd: &Path) -> BenchArgs {
        let mut a = base.clone();
        a.suite = false;
        (a.kernel, a.initrd) = match self {
            Mode::Synthetic | Mode::SyntheticOpenh264 => (None, None),
            _ => (Some(kernel.to_owned()), Some(initrd.to_owned())),
        };
        a.agent = match self {
            Mode::AgentZerocopy => Some("host".into()),
            Mode::AgentX264 => Some("x264".into()),
            _ => None,
        };
        a.baseline_native = self == Mode::BaselineNative;
        if matches!(self, Mode::SyntheticOpenh264 | Mode::ScanoutOpenh264) {
            a.video.encoder = EncoderKind::OpenH264;
        }
        a
    }
}

/// A figure over the repeats.
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        let min = values.iter().copied().reduce(f64::min)?;
        let max = values.iter().copied().reduce(f64::max)?;
        Some(Spread {
            min,
            median: median(values.to_vec()),
            max,
        })
    }
}

#[derive(Serialize)]
struct ModeReport {
    runs: Vec<StreamReport>,
    /// Each figure's min/median/max over the runs (absent when no run has it).
    summary: BTreeMap<&'static str, Spread>,
}

#[derive(Serialize)]
struct SuiteReport {
    version: u32,
    machine: Machine,
    width: u32,
    height: u32,
    fps: u32,
    seconds_per_run: f64,
    repeats: u32,
    modes: BTreeMap<&'static str, ModeReport>,
    /// agent-zerocopy's median over agent-x264's (the baseline in the
    /// guest, emulated), per figure: below 1 is less (better for CPU and
    /// latency, worse for fps).
    zerocopy_over_x264: BTreeMap<&'static str, f64>,
    /// agent-zerocopy's median over baseline-native's (the same x264 work
    /// done by the host), per figure.
    zerocopy_over_native: BTreeMap<&'static str, f64>,
    /// The host's encoders: `--encoder`'s median (x264 by default) over
    /// OpenH264's, on the synthetic desktop (1080p by default) and on the
    /// test guest's scanout, per figure.
    synthetic_over_openh264: BTreeMap<&'static str, f64>,
    scanout_over_openh264: BTreeMap<&'static str, f64>,
}

/// The figures summarised, by name, from one run.
#[allow(clippy::cast_precision_loss)] // bytes of memory: far below 2^52
fn figures(r: &StreamReport) -> Vec<(&'static str, Option<f64>)> {
    // Everything the host spent: QEMU's threads hold the guest's vCPUs,
    // the agent's own figure among them; the vsock backend carries the
    // agent's traffic.
    let total = r.host_cpu_per_frame_ms
        + r.qemu_cpu_per_frame_ms.unwrap_or(0.0)
        + r.vsock_cpu_per_frame_ms.unwrap_or(0.0);
    let bytes = |b: Option<u64>| b.map(|b| b as f64);
    vec![
        ("guest_flushes_per_second", r.guest_flushes_per_second),
        ("stream_fps", Some(r.stream_fps)),
        ("delivered_fps", Some(r.delivered_fps)),
        ("latency_p50_ms", Some(r.latency_p50_ms)),
        ("latency_p95_ms", Some(r.latency_p95_ms)),
        ("latency_p99_ms", Some(r.latency_p99_ms)),
        ("latency_max_ms", Some(r.latency_max_ms)),
        ("glass_to_glass_p50_ms", r.glass_to_glass.map(|g| g.p50_ms)),
        ("glass_to_glass_p95_ms", r.glass_to_glass.map(|g| g.p95_ms)),
        ("glass_to_glass_p99_ms", r.glass_to_glass.map(|g| g.p99_ms)),
        ("glass_to_glass_max_ms", r.glass_to_glass.map(|g| g.max_ms)),
        ("host_cpu_per_frame_ms", Some(r.host_cpu_per_frame_ms)),
        ("guest_cpu_per_frame_ms", r.guest_cpu_per_frame_ms),
        ("qemu_cpu_per_frame_ms", r.qemu_cpu_per_frame_ms),
        ("vcpu_cpu_per_frame_ms", r.vcpu_cpu_per_frame_ms),
        ("vsock_cpu_per_frame_ms", r.vsock_cpu_per_frame_ms),
        ("total_cpu_per_frame_ms", Some(total)),
        ("zerocast_peak_rss_bytes", bytes(r.zerocast_peak_rss_bytes)),
        ("qemu_peak_rss_bytes", bytes(r.qemu_peak_rss_bytes)),
        ("vsock_peak_rss_bytes", bytes(r.vsock_peak_rss_bytes)),
        ("bytes_copied_per_frame", r.bytes_copied_per_frame),
        ("bitrate_bps", Some(r.bitrate_bps)),
        ("mean_frame_bytes", Some(r.mean_frame_bytes)),
        ("psnr_db", r.quality.psnr_db),
        ("psnr_median_db", r.quality.psnr_median_db),
        ("psnr_min_db", r.quality.psnr_min_db),
        ("ssim", r.quality.ssim),
        (
            "quality_frames_compared",
            Some(r.quality.frames_compared as f64),
        ),
        ("mean_keyframe_bytes", r.quality.mean_keyframe_bytes),
    ]
}

fn summarise(runs: &[StreamReport]) -> BTreeMap<&'static str, Spread> {
    let mut values: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for (name, v) in figures(r) {
            if let Some(v) = v {
                values.entry(name).or_default().push(v);
            }
        }
    }
    values
        .into_iter()
        .filter_map(|(name, v)| Some((name, Spread::of(&v)?)))
        .collect()
}

/// Mode `of`'s median over mode `over`'s, for the figures both have
/// (none unless both ran).
fn ratios(
    modes: &BTreeMap<&'static str, ModeReport>,
    of: Mode,
    over: Mode,
) -> BTreeMap<&'static str, f64> {
    let (Some(of), Some(over)) = (modes.get(of.name()), modes.get(over.name())) else {
        return BTreeMap::new();
    };
    of.summary
        .iter()
        .filter_map(|(name, s)| {
            let base = over.summary.get(name)?.median;
            (base != 0.0).then(|| (*name, s.median / base))
        })
        .collect()
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds > 0.0,
        "--suite measures streams: give --seconds above 0"
    );
    let guest = PathBuf::from("work/guest");
    let kernel = args.kernel.clone().unwrap_or_else(|| guest.join("vmlinuz"));
    let initrd = args
        .initrd
        .clone()
        .unwrap_or_else(|| guest.join("initrd.img"));
    let needs_guest = args
        .modes
        .iter()
        .any(|m| !matches!(m, Mode::Synthetic | Mode::SyntheticOpenh264));
    if needs_guest && !(kernel.exists() && initrd.exists()) {
        anyhow::bail!(
            "the test guest ({} and {}) is missing: run scripts/build-guest.sh, or give --kernel and --initrd",
            kernel.display(),
            initrd.display()
        );
    }
    let mut modes: Vec<Mode> = args.modes.clone();
    modes.sort();
    modes.dedup();
    let repeats = args.repeats.max(1);
    let runs_in_all = u32::try_from(modes.len())? * repeats;
    let mut progress = SuiteProgress::new(runs_in_all, args.quiet)?;
    let mut reports = BTreeMap::new();
    for mode in modes {
        let mut runs = Vec::new();
        for repeat in 1..=repeats {
            progress.start_run(mode.name(), repeat, repeats);
            let run = stream(&mode.args(args, &kernel, &initrd), &mut |p| {
                progress.phase(p);
            })
            .await
            .with_context(|| format!("suite mode {}, run {repeat}", mode.name()))?;
            progress.end_run();
            tracing::info!(
                fps = run.delivered_fps,
                latency_p50_ms = run.latency_p50_ms,
                host_cpu_per_frame_ms = run.host_cpu_per_frame_ms,
                "suite: {} {repeat}/{repeats} measured",
                mode.name()
            );
            runs.push(run);
        }
        let summary = summarise(&runs);
        reports.insert(mode.name(), ModeReport { runs, summary });
    }
    // Every VM run boots its guest the same way: any run's accelerator.
    let accel = reports
        .values()
        .flat_map(|m: &ModeReport| &m.runs)
        .find_map(|r| r.accel.clone());
    let report = SuiteReport {
        version: SCHEMA_VERSION,
        machine: Machine::describe(accel),
        width: args.size.width,
        height: args.size.height,
        fps: args.video.fps,
        seconds_per_run: args.seconds,
        repeats,
        zerocopy_over_x264: ratios(&reports, Mode::AgentZerocopy, Mode::AgentX264),
        zerocopy_over_native: ratios(&reports, Mode::AgentZerocopy, Mode::BaselineNative),
        synthetic_over_openh264: ratios(&reports, Mode::Synthetic, Mode::SyntheticOpenh264),
        scanout_over_openh264: ratios(&reports, Mode::Scanout, Mode::ScanoutOpenh264),
        modes: reports,
    };
    drop(progress);
    print_table(&report);
    write_json(&args.json, &report)?;
    for path in write_plots(&args.json, &report.modes)? {
        println!("chart             {}", path.display());
    }
    Ok(())
}

/// The charts beside `json`, named after it (bench.json: bench-fps.svg, ...).
fn write_plots(
    json: &Path,
    modes: &BTreeMap<&'static str, ModeReport>,
) -> anyhow::Result<Vec<PathBuf>> {
    let dir = json.parent().unwrap_or(Path::new(""));
    let stem = json.file_stem().and_then(|s| s.to_str()).unwrap_or("bench");
    let data: Vec<ModeData> = modes
        .iter()
        .map(|(name, m)| ModeData {
            name,
            fps_runs: m.runs.iter().map(|r| &r.decoded_fps_series[..]).collect(),
            latencies_ms: m
                .runs
                .iter()
                .flat_map(|r| r.latency_samples_ms.iter().copied())
                .collect(),
            cpu: CPU_FIGURES.map(|(figure, _)| m.summary.get(figure).copied()),
        })
        .collect();
    plots::write(dir, stem, &data)
}

/// The table's rows: a figure, its label and the factor it is shown at.
const TABLE: [(&str, &str, f64); 27] = [
    ("guest_flushes_per_second", "guest_flushes/s", 1.0),
    ("stream_fps", "stream_fps", 1.0),
    ("delivered_fps", "delivered_fps", 1.0),
    ("latency_p50_ms", "latency_p50_ms", 1.0),
    ("latency_p95_ms", "latency_p95_ms", 1.0),
    ("latency_max_ms", "latency_max_ms", 1.0),
    ("glass_to_glass_p50_ms", "glass_to_glass_p50_ms", 1.0),
    ("glass_to_glass_p95_ms", "glass_to_glass_p95_ms", 1.0),
    ("glass_to_glass_max_ms", "glass_to_glass_max_ms", 1.0),
    ("host_cpu_per_frame_ms", "zerocast_cpu_ms/frame", 1.0),
    ("qemu_cpu_per_frame_ms", "qemu_cpu_ms/frame", 1.0),
    ("vcpu_cpu_per_frame_ms", " of which vcpus", 1.0),
    ("guest_cpu_per_frame_ms", " agent's own figure", 1.0),
    ("vsock_cpu_per_frame_ms", "vsock_cpu_ms/frame", 1.0),
    ("total_cpu_per_frame_ms", "total_cpu_ms/frame", 1.0),
    ("bytes_copied_per_frame", "bytes_copied/frame", 1.0),
    ("bitrate_bps", "bitrate_mbit/s", 1e-6),
    ("mean_frame_bytes", "mean_frame_kib", 1.0 / 1024.0),
    ("mean_keyframe_bytes", "mean_keyframe_kib", 1.0 / 1024.0),
    ("psnr_db", "psnr_db (luma)", 1.0),
    ("psnr_median_db", " median frame", 1.0),
    ("psnr_min_db", " worst frame", 1.0),
    ("ssim", "ssim (luma)", 1.0),
    ("quality_frames_compared", "quality_frames", 1.0),
    (
        "zerocast_peak_rss_bytes",
        "zerocast_peak_rss_mib",
        1.0 / 1048576.0,
    ),
    ("qemu_peak_rss_bytes", "qemu_peak_rss_mib", 1.0 / 1048576.0),
    (
        "vsock_peak_rss_bytes",
        "vsock_peak_rss_mib",
        1.0 / 1048576.0,
    ),
];

fn print_table(r: &SuiteReport) {
    let m = &r.machine;
    let unknown = || "?".to_owned();
    println!(
        "\n{}, {} cores; {}; {}; kernel {}; {}",
        m.cpu,
        m.cores,
        m.accel
            .as_ref()
            .map_or("no guest".to_owned(), |a| format!("guests under {a}")),
        m.qemu.clone().unwrap_or_else(unknown),
        m.kernel.clone().unwrap_or_else(unknown),
        m.date
    );
    println!(
        "synthetic desktop {}x{} (the guest's mode for the others), {} fps, {} s x {} per mode; medians [min-max]",
        r.width, r.height, r.fps, r.seconds_per_run, r.repeats
    );
    let names: Vec<&str> = r.modes.keys().copied().collect();
    print!("{:<24}", "");
    for n in &names {
        print!("{n:>26}");
    }
    println!();
    for (figure, label, scale) in TABLE {
        print!("{label:<24}");
        for n in &names {
            let cell = r.modes[n].summary.get(figure).map_or("-".to_owned(), |s| {
                let (lo, mid, hi) = (s.min * scale, s.median * scale, s.max * scale);
                // SSIM's differences are in the third decimal; frames are whole.
                let d = match figure {
                    "ssim" => 4,
                    "quality_frames_compared" => 0,
                    _ => 2,
                };
                format!("{mid:.d$} [{lo:.d$}-{hi:.d$}]")
            });
            print!("{cell:>26}");
        }
        println!();
    }
    // A mode without a quality figure says why.
    for (name, m) in &r.modes {
        let reasons: BTreeSet<&str> = m
            .runs
            .iter()
            .filter(|run| run.quality.psnr_db.is_none())
            .filter_map(|run| run.quality.not_measured.as_deref())
            .collect();
        for reason in reasons {
            println!("{name}: no PSNR/SSIM: {reason}");
        }
    }
    let ratios = [
        (
            "agent-zerocopy / agent-x264 (guest x264, emulated)",
            &r.zerocopy_over_x264,
        ),
        (
            "agent-zerocopy / baseline-native (host x264)",
            &r.zerocopy_over_native,
        ),
        (
            "synthetic / synthetic-openh264 (the host's encoders)",
            &r.synthetic_over_openh264,
        ),
        (
            "scanout / scanout-openh264 (the host's encoders)",
            &r.scanout_over_openh264,
        ),
    ];
    for (title, figures) in ratios.into_iter().filter(|(_, f)| !f.is_empty()) {
        println!("{title}:");
        for (f, ratio) in figures {
            println!("  {f:<24} {ratio:.3}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_and_ratios() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Some(Spread {
                min: 1.0,
                median: 2.0,
                max: 3.0
            })
        );
        assert_eq!(Spread::of(&[]), None);
        let mode = |cpu: f64| ModeReport {
            runs: Vec::new(),
            summary: BTreeMap::from([("host_cpu_per_frame_ms", Spread::of(&[cpu]).unwrap())]),
        };
        let modes = BTreeMap::from([
            ("agent-zerocopy", mode(2.0)),
            ("agent-x264", mode(8.0)),
            ("baseline-native", mode(4.0)),
        ]);
        let (zc, x264, native) = (Mode::AgentZerocopy, Mode::AgentX264, Mode::BaselineNative);
        assert_eq!(
            ratios(&modes, zc, x264),
            BTreeMap::from([("host_cpu_per_frame_ms", 0.25)])
        );
        assert_eq!(
            ratios(&modes, zc, native),
            BTreeMap::from([("host_cpu_per_frame_ms", 0.5)])
        );
        let one = BTreeMap::from([("agent-x264", mode(1.0))]);
        assert!(ratios(&one, zc, x264).is_empty());
    }
}
