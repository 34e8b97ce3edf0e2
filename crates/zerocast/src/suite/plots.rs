//! The suite's charts, as SVG files beside `bench.json`: decoded frames per
//! second over the measurement window, the latency distribution, and CPU
//! per delivered frame with the repeats' range. Drawn with plotters' SVG
//! backend: text stays text, so the files are small and searchable.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Spread;
use crate::stream_bench::FpsSample;

/// The CPU figures charted, by their summary name, with their legend.
pub(super) const CPU_FIGURES: [(&str, &str); 6] = [
    ("host_cpu_per_frame_ms", "zerocast process"),
    ("qemu_cpu_per_frame_ms", "QEMU process, vCPUs included"),
    ("vcpu_cpu_per_frame_ms", "QEMU's vCPU threads"),
    ("guest_cpu_per_frame_ms", "guest agent's own figure"),
    ("vsock_cpu_per_frame_ms", "vhost-device-vsock process"),
    ("total_cpu_per_frame_ms", "total: zerocast + QEMU + vsock"),
];

/// The total's place in [`CPU_FIGURES`]: the figure written on the chart.
const TOTAL: usize = CPU_FIGURES.len() - 1;

/// Slots per mode in the CPU chart: a gap, one bar per figure, a gap.
const CPU_SLOTS: usize = CPU_FIGURES.len() + 2;

const SIZE: (u32, u32) = (960, 540);
const FONT: &str = "sans-serif";

/// What the charts show of one mode.
pub(super) struct ModeData<'a> {
    pub(super) name: &'a str,
    /// Each run's decoded-fps samples.
    pub(super) fps_runs: Vec<&'a [FpsSample]>,
    /// Every run's measured latencies, pooled.
    pub(super) latencies_ms: Vec<f64>,
    /// [`CPU_FIGURES`]' spreads over the repeats, in that order (`None`
    /// where the mode has no such figure).
    pub(super) cpu: [Option<Spread>; CPU_FIGURES.len()],
}

/// Writes the three charts as `<stem>-fps.svg`, `<stem>-latency.svg` and
/// `<stem>-cpu.svg` in `dir`; returns their paths.
pub(super) fn write(dir: &Path, stem: &str, modes: &[ModeData]) -> anyhow::Result<Vec<PathBuf>> {
    let fps = dir.join(format!("{stem}-fps.svg"));
    let latency = dir.join(format!("{stem}-latency.svg"));
    let cpu = dir.join(format!("{stem}-cpu.svg"));
    // plotters' errors borrow nothing but are not all Send + Sync: keep their text.
    let text = |path: &Path| {
        let path = path.display().to_string();
        move |e: Box<dyn std::error::Error>| anyhow!("drawing {path}: {e}")
    };
    fps_chart(&fps, modes).map_err(text(&fps))?;
    latency_chart(&latency, modes).map_err(text(&latency))?;
    cpu_chart(&cpu, modes).map_err(text(&cpu))?;
    Ok(vec![fps, latency, cpu])
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn colour(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

/// One line per run, a colour per mode.
fn fps_chart(path: &Path, modes: &[ModeData]) -> DrawResult {
    let samples = || {
        modes
            .iter()
            .flat_map(|m| m.fps_runs.iter().copied().flatten())
    };
    let t_max = samples().map(|s| s.t_s).fold(1.0, f64::max);
    let fps_max = samples().map(|s| s.fps).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Frames decoded in Chromium per second", (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..t_max, 0.0..fps_max)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("seconds into the measurement window (each line one run)")
        .y_desc("decoded fps")
        .draw()?;
    for (i, mode) in modes.iter().enumerate() {
        let style = colour(i).stroke_width(2);
        // A mode without samples still gets its legend entry.
        let no_samples: [&[FpsSample]; 1] = [&[]];
        let runs = match mode.fps_runs.is_empty() {
            true => &no_samples[..],
            false => &mode.fps_runs[..],
        };
        for (k, run) in runs.iter().enumerate() {
            let line = LineSeries::new(run.iter().map(|s| (s.t_s, s.fps)), style);
            let series = chart.draw_series(line)?;
            if k == 0 {
                series
                    .label(mode.name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
            }
        }
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

/// The fraction of frames at or under each latency, per mode, on a
/// logarithmic axis (the modes differ by orders of magnitude under TCG).
fn latency_chart(path: &Path, modes: &[ModeData]) -> DrawResult {
    // The axis starts at a tenth of a millisecond: a log scale cannot hold 0.
    let floor = 0.1;
    let all = || modes.iter().flat_map(|m| m.latencies_ms.iter().copied());
    let lo = all().fold(f64::INFINITY, f64::min).max(floor);
    let hi = all().fold(0.0, f64::max).max(lo * 10.0);
    let lo = if lo.is_finite() { lo / 1.5 } else { floor };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Capture to decoded in Chromium: latency distribution (all repeats)",
            (FONT, 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo..hi * 1.2).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        // A log axis's minor lines crowd it grey: majors only.
        .light_line_style(TRANSPARENT)
        .x_desc("latency, ms (log scale)")
        .y_desc("fraction of frames at or under")
        .draw()?;
    for (i, mode) in modes.iter().enumerate() {
        let style = colour(i).stroke_width(2);
        let mut sorted: Vec<f64> = mode.latencies_ms.iter().map(|&l| l.max(lo)).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let cdf = sorted
            .into_iter()
            .enumerate()
            .map(|(k, l)| (l, (k + 1) as f64 / n));
        chart
            .draw_series(LineSeries::new(cdf, style))?
            .label(mode.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

/// Per mode, a bar per CPU figure at its median, a whisker from the
/// repeats' min to max, and the total's median written above its bar (the
/// others' would overlap; the table has them); a log axis, since the
/// guest's x264 under TCG costs a hundred times what the host's encode does.
fn cpu_chart(path: &Path, modes: &[ModeData]) -> DrawResult {
    let spreads = || modes.iter().flat_map(|m| m.cpu.iter().flatten());
    let floor = spreads().map(|s| s.min).fold(f64::INFINITY, f64::min);
    let floor = if floor.is_finite() && floor > 0.0 {
        floor / 3.0
    } else {
        0.01
    };
    let top = spreads().map(|s| s.max).fold(floor * 10.0, f64::max) * 3.0;
    let slots = i32::try_from(modes.len() * CPU_SLOTS)?;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "CPU per delivered frame: median, min..max of the repeats",
            (FONT, 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((0..slots).into_segmented(), (floor..top).log_scale())?;
    let mode_at = |slot: &SegmentValue<i32>| match slot {
        SegmentValue::CenterOf(k) => {
            let k = usize::try_from(*k).ok()?;
            if k % CPU_SLOTS != CPU_SLOTS / 2 {
                return None;
            }
            modes.get(k / CPU_SLOTS).map(|m| m.name)
        }
        _ => None,
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(modes.len() * CPU_SLOTS)
        .x_label_formatter(&|slot| mode_at(slot).unwrap_or_default().to_owned())
        .y_desc("CPU ms per delivered frame (log scale)")
        .draw()?;
    let value_style =
        TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (f, (_, label)) in CPU_FIGURES.iter().enumerate() {
        let fill = colour(f + modes.len()).filled();
        let bars = modes.iter().enumerate().filter_map(|(m, mode)| {
            let spread = mode.cpu[f]?;
            let slot = i32::try_from(m * CPU_SLOTS + 1 + f).ok()?;
            Some((slot, spread))
        });
        let bars: Vec<(i32, Spread)> = bars.collect();
        chart
            .draw_series(bars.iter().map(|&(slot, s)| {
                let corners = [
                    (SegmentValue::Exact(slot), floor),
                    (SegmentValue::Exact(slot + 1), s.median.max(floor)),
                ];
                Rectangle::new(corners, fill)
            }))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], fill));
        chart.draw_series(bars.iter().map(|&(slot, s)| {
            let whisker = [
                (SegmentValue::CenterOf(slot), s.min.max(floor)),
                (SegmentValue::CenterOf(slot), s.max.max(floor)),
            ];
            PathElement::new(whisker, BLACK.stroke_width(2))
        }))?;
        if f == TOTAL {
            chart.draw_series(bars.iter().map(|&(slot, s)| {
                let at = (SegmentValue::CenterOf(slot), s.max.max(floor) * 1.1);
                Text::new(format!("{:.2}", s.median), at, value_style.clone())
            }))?;
        }
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

fn legend<'a, X, Y>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>) -> DrawResult
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(median: f64) -> Option<Spread> {
        Some(Spread {
            min: median * 0.9,
            median,
            max: median * 1.2,
        })
    }

    #[test]
    fn writes_three_svg_charts_naming_every_mode() {
        let dir = std::env::temp_dir().join(format!("zerocast-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = [
            FpsSample {
                t_s: 1.0,
                fps: 58.0,
            },
            FpsSample {
                t_s: 2.0,
                fps: 61.0,
            },
        ];
        let modes = [
            ModeData {
                name: "scanout",
                fps_runs: vec![&run, &run[..1]],
                latencies_ms: vec![12.0, 15.5, 40.0],
                cpu: [spread(2.0), None, None, None, None, spread(3.0)],
            },
            // Nothing measured at all: still charted, still named.
            ModeData {
                name: "agent-x264",
                fps_runs: Vec::new(),
                latencies_ms: Vec::new(),
                cpu: [None; CPU_FIGURES.len()],
            },
        ];
        let paths = write(&dir, "bench", &modes).unwrap();
        assert_eq!(paths.len(), 3);
        for path in paths {
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.starts_with("<svg"), "{}: {svg:.80}", path.display());
            assert!(svg.trim_end().ends_with("</svg>"), "{}", path.display());
            for name in ["scanout", "agent-x264"] {
                assert!(svg.contains(name), "{} lacks {name}", path.display());
            }
        }
        let cpu = std::fs::read_to_string(dir.join("bench-cpu.svg")).unwrap();
        assert!(cpu.contains("\n3.00\n"), "the total's median above its bar");
        assert!(!cpu.contains("\n2.00\n"), "only the total's is written");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
