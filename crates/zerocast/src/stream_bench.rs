//! `zerocast bench`'s stream measurement, which `--suite` runs for every
//! mode: the synthetic desktop or the test guest (its scanout, the guest
//! agent's stream, or the host's x264 baseline) into a real headless
//! Chromium, warmed up, then measured over a window: frames decoded there
//! (and per second), capture-to-decoded latency, CPU of zerocast, QEMU and
//! the guest's vCPUs, pixel bytes copied, peak memory; and after the
//! window, the decoded picture's quality ([`crate::stream_quality`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use zerocast_chromium::Chromium;
use zerocast_pipeline::stats::percentile;
use zerocast_pipeline::{PublishedStream, Stream};
use zerocast_synthetic::Motion;
use zerocast_web::Role;

use crate::bench::BenchArgs;
use crate::demo::Stack;
use crate::native_baseline::{AgentX264, NativeBaseline, AGENT_KEYFRAME_EVERY, NATIVE_STREAM};
use crate::options::HxfrArgs;
use crate::process::Proc;
use crate::stream_quality::{Quality, Source};
use crate::vm::VmStack;
use crate::web_access::WebAccessArgs;

/// How often the stream's measurement samples the page's decoded count.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Where a stream run is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// Booting the VM or starting the synthetic desktop, opening Chromium.
    Starting,
    /// Waiting for the decoder's first frames.
    WarmingUp,
    /// This much of the measurement window has passed.
    Measuring { done: Duration, window: Duration },
    /// After the window: decoding the stream to compare it with its source.
    Quality,
}

/// Glass-to-glass latency over the measured window, ms.
#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
pub(crate) struct GlassToGlass {
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    /// Pictures shown in the window whose flush was noted.
    pub(crate) frames: usize,
}

impl GlassToGlass {
    /// Joins the page's `[stamp, shown µs]` pairs shown from `since_us` on
    /// with the device's `(stamp, flushed ns)`; `None` when none join.
    fn join(shown: &[(u32, i64)], flushed: &[(u32, i64)], since_us: i64) -> Option<GlassToGlass> {
        let flushed: std::collections::HashMap<u32, i64> = flushed.iter().copied().collect();
        let micros: Vec<u32> = shown
            .iter()
            .filter(|(_, at)| *at >= since_us)
            .filter_map(|(n, at)| {
                let latency = at.checked_sub(flushed.get(n)? / 1000)?;
                u32::try_from(latency).ok()
            })
            .collect();
        let max = *micros.iter().max()?;
        Some(GlassToGlass {
            p50_ms: percentile_ms(&micros, 50.0),
            p95_ms: percentile_ms(&micros, 95.0),
            p99_ms: percentile_ms(&micros, 99.0),
            max_ms: f64::from(max) / 1000.0,
            frames: micros.len(),
        })
    }
}

#[cfg(test)]
mod glass_tests {
    use super::*;

    #[test]
    fn latency_joins_by_stamp_within_the_window() {
        // Flushed at 1.000 s, 1.010 s, 1.020 s; shown 30, 25, and never.
        let flushed = [(7, 1_000_000_000), (8, 1_010_000_000), (9, 1_020_000_000)];
        let shown = [
            (6, 990_000),
            (7, 1_030_000),
            (8, 1_035_000),
            (42, 1_040_000),
        ];
        let g = GlassToGlass::join(&shown, &flushed, 1_000_000).unwrap();
        assert_eq!(g.frames, 2, "one before the window, one never flushed");
        assert_eq!((g.p50_ms, g.max_ms), (25.0, 30.0));
        assert!(GlassToGlass::join(&shown, &[], 0).is_none());
    }
}

/// The `p`th percentile (nearest rank) of latencies in µs, in ms; 0 for none.
fn percentile_ms(micros: &[u32], p: f64) -> f64 {
    f64::from(percentile(micros.to_vec(), p).unwrap_or(0)) / 1000.0
}

/// The page's `stamps`: `[stamp, µs]` pairs.
fn page_stamps(page: &serde_json::Value) -> Vec<(u32, i64)> {
    let Some(all) = page["stamps"].as_array() else {
        return Vec::new();
    };
    all.iter()
        .filter_map(|e| Some((u32::try_from(e[0].as_u64()?).ok()?, e[1].as_i64()?)))
        .collect()
}

/// Frames decoded per second in Chromium over one sampling interval.
#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
pub(crate) struct FpsSample {
    /// Seconds from the start of the measurement window to this sample.
    pub(crate) t_s: f64,
    /// Frames decoded since the previous sample, per second.
    pub(crate) fps: f64,
}

#[derive(Serialize, Clone)]
pub(crate) struct StreamReport {
    /// What made the stream: `source -> encoder`, or the producer of a
    /// published one.
    pub(crate) stream: String,
    seconds: f64,
    target_fps: u32,
    /// Frames decoded per second in Chromium.
    pub(crate) delivered_fps: f64,
    /// Decoded frames per second, sampled every [`SAMPLE_EVERY`] over the
    /// measurement window (drops and stalls show here, not in the mean).
    pub(crate) decoded_fps_series: Vec<FpsSample>,
    /// Host capture to decoded in the browser, over the measured frames.
    pub(crate) latency_p50_ms: f64,
    pub(crate) latency_p95_ms: f64,
    pub(crate) latency_p99_ms: f64,
    pub(crate) latency_max_ms: f64,
    /// The measured frames' latencies (the page keeps the last 600): for
    /// the suite's distribution chart, left out of the JSON, whose
    /// percentiles above say the same in a few numbers.
    #[serde(skip)]
    pub(crate) latency_samples_ms: Vec<f64>,
    /// VM modes: from the guest's flush of a picture (its stamp noted by
    /// the GPU device) to the page showing that picture (its stamp read
    /// off the canvas), whatever path the frame took: the only latency
    /// that compares the host's encoder with the guest agent's. Both ends
    /// are the host's clock (the page's through its ping offset); the
    /// guest's clock is not used.
    pub(crate) glass_to_glass: Option<GlassToGlass>,
    /// CPU time of the whole zerocast process (render, encode, network)
    /// per frame decoded by the page, as every `*_cpu_per_frame_ms` here
    /// but the agent's own figure.
    pub(crate) host_cpu_per_frame_ms: f64,
    /// Cores the zerocast process kept busy.
    host_cores: f64,
    /// Frames the measured stream carried per second: encoded by the host,
    /// or published by the agent or the host's baseline (more than
    /// `delivered_fps` when the page could not keep up).
    pub(crate) stream_fps: f64,
    /// Their mean size in bytes, and the keyframes among them.
    pub(crate) mean_frame_bytes: f64,
    keyframes: u64,
    /// The decoded picture against the source, luma PSNR and SSIM: taken
    /// after the measured window, from the stream this run measured.
    pub(crate) quality: Quality,
    /// Frames viewers lost by falling too far behind the stream.
    frames_lagged: u64,
    pub(crate) bitrate_bps: f64,
    pub(crate) decoder_errors: u64,
    /// VM only: frames the guest flushed per second, and pixel bytes the
    /// host copied per encoded frame.
    pub(crate) guest_flushes_per_second: Option<f64>,
    pub(crate) bytes_copied_per_frame: Option<f64>,
    /// With --agent: the agent's own figure of guest CPU per frame it made.
    pub(crate) guest_cpu_per_frame_ms: Option<f64>,
    agent: Option<String>,
    /// VM only: the accelerator the guest ran under (`tcg`, `kvm`).
    pub(crate) accel: Option<String>,
    /// VM only: QEMU's CPU per frame, all its threads: the device model,
    /// and the guest's vCPUs (whose emulation under TCG is most of it).
    pub(crate) qemu_cpu_per_frame_ms: Option<f64>,
    /// VM only: the part of QEMU's in its vCPU threads (named through
    /// `-name ...,debug-threads=on`): the guest's own work, as the host
    /// pays for it. The agent's figure above is inside it.
    pub(crate) vcpu_cpu_per_frame_ms: Option<f64>,
    /// The zerocast process's peak resident memory during this run (all of
    /// it: GPU backend, encoders, web server; the kernel's peak is reset
    /// as the run starts). None where the reset was refused.
    pub(crate) zerocast_peak_rss_bytes: Option<u64>,
    /// VM only: QEMU's peak resident memory (the guest RAM it touched
    /// included), read just before it is stopped.
    pub(crate) qemu_peak_rss_bytes: Option<u64>,
    /// Agent modes: the vhost-device-vsock process that carries the
    /// guest's vsock (a user-space backend here, on hosts without
    /// /dev/vhost-vsock): its CPU per frame and peak memory.
    pub(crate) vsock_cpu_per_frame_ms: Option<f64>,
    pub(crate) vsock_peak_rss_bytes: Option<u64>,
}

/// The VM's host processes besides zerocast: QEMU, and the vsock
/// backend when the guest has vsock.
struct VmProcesses {
    qemu: Proc,
    vsock: Option<Proc>,
}

/// Their CPU time, with the share of QEMU's in its vCPU threads.
#[derive(Clone, Copy)]
struct VmCpu {
    qemu: Duration,
    vcpus: Duration,
    vsock: Option<Duration>,
}

impl VmProcesses {
    fn of(vm: &VmStack) -> anyhow::Result<VmProcesses> {
        let qemu = vm.vm.pid().context("QEMU has no process id")?;
        Ok(VmProcesses {
            qemu: Proc::of(qemu),
            vsock: vm.vsock_pid().map(Proc::of),
        })
    }

    fn cpu(&self) -> anyhow::Result<VmCpu> {
        // QEMU names them "CPU 0/TCG", "CPU 1/KVM", or (one thread for
        // every vCPU under single-threaded TCG) "ALL CPUs/TCG".
        let vcpu = |name: &str| name.ends_with("/TCG") || name.ends_with("/KVM");
        let vsock = self.vsock.as_ref().map(Proc::cpu).transpose();
        Ok(VmCpu {
            qemu: self.qemu.cpu().context("QEMU's CPU time")?,
            vcpus: self.qemu.threads_cpu(vcpu).context("QEMU's vCPU threads")?,
            vsock: vsock.context("vhost-device-vsock's CPU time")?,
        })
    }
}

impl VmCpu {
    /// What was spent from `self` to `later`.
    fn until(self, later: VmCpu) -> VmCpu {
        VmCpu {
            qemu: later.qemu.saturating_sub(self.qemu),
            vcpus: later.vcpus.saturating_sub(self.vcpus),
            vsock: later
                .vsock
                .zip(self.vsock)
                .map(|(b, a)| b.saturating_sub(a)),
        }
    }
}

/// Milliseconds (from the page) in whole microseconds.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped at 0; `as` saturates at u32::MAX and maps NaN to 0
fn ms_to_micros(ms: f64) -> u32 {
    (ms.max(0.0) * 1000.0) as u32
}

/// The last `cpu_ms_per_frame=` the guest agent printed on the serial console.
fn agent_cpu(serial_log: &std::path::Path) -> Option<f64> {
    let log = std::fs::read_to_string(serial_log).ok()?;
    log.lines()
        .rev()
        .filter(|l| l.starts_with("zerocast-guest: frames="))
        .find_map(|l| {
            l.split("cpu_ms_per_frame=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

async fn page(c: &mut Chromium) -> anyhow::Result<serde_json::Value> {
    Ok(
        c.eval("JSON.parse(JSON.stringify(window.zerocastStats || null))")
            .await?,
    )
}

/// Frames the page has decoded so far.
fn decoded_count(page: &serde_json::Value) -> u64 {
    page["decoded"].as_u64().unwrap_or(0)
}

/// What a run measures: the stream, the page that shows it, and what
/// makes it.
struct Measured {
    url: String,
    stream: Arc<Stream>,
    vm: Option<VmStack>,
    /// The VM's accelerator.
    accel: Option<String>,
    /// With --baseline-native: the host's x264 baseline.
    native: Option<NativeBaseline>,
    /// Without a VM: the synthetic desktop's stack, held while measured.
    _synthetic: Option<Stack>,
}

/// Starts what `args` measures: the test guest (--kernel) or the
/// synthetic desktop, each served on a free loopback port.
async fn start(args: &BenchArgs) -> anyhow::Result<Measured> {
    let listen: SocketAddr = "127.0.0.1:0".parse()?;
    let (Some(kernel), Some(initrd)) = (&args.kernel, &args.initrd) else {
        let (access, hxfr) = (WebAccessArgs::default(), HxfrArgs::default());
        // Its clock from the frame number: frames the quality measurement
        // can draw again.
        let stack = Stack::start(
            args.size,
            &args.video,
            Motion::Replayable,
            listen,
            &access,
            &hxfr,
        )
        .await?;
        let query = format!("scanout={}&", stack.stream.id());
        return Ok(Measured {
            url: stack.serving.url(Role::View, &query),
            stream: stack.stream.clone(),
            vm: None,
            accel: None,
            native: None,
            _synthetic: Some(stack),
        });
    };
    let v = &args.video;
    let append = args.guest_append();
    let mut vm_args = crate::vm::VmArgs::for_bench(kernel, initrd, &append, v, listen);
    // The guest's preferred mode is the benchmark's size: the test guest
    // flips at the mode its display offers.
    (vm_args.display.mode_width, vm_args.display.mode_height) = (args.size.width, args.size.height);
    // Named threads: the vCPUs' CPU time apart from the rest of QEMU's.
    vm_args
        .qemu_args
        .extend(["-name".into(), "zerocast-bench,debug-threads=on".into()]);
    let accel = clap::ValueEnum::to_possible_value(&vm_args.accel).map(|a| a.get_name().to_owned());
    if let Some(mode) = &args.agent {
        vm_args.vsock = true;
        // The agent's stats line (its guest CPU per frame) every 10
        // frames: the baseline makes a few a second under TCG. Its x264
        // set as the host's baseline sets its own.
        vm_args.append = format!(
            "{} zerocast.also=guest zerocast.also.encoder={mode} zerocast.also.publish={} zerocast.also.fps={} zerocast.also.bitrate={} zerocast.also.keyframe-every-secs={} zerocast.also.report-every=10",
            vm_args.append,
            crate::vm::GUEST_STREAM,
            v.fps,
            v.bitrate,
            AGENT_KEYFRAME_EVERY.as_secs()
        );
    }
    let vm = VmStack::start(&vm_args).await?;
    vm.gpu.flush_stamps().record(true);
    let mut native = None;
    let stream = match &vm.guest_stream {
        Some(stream) => stream.clone(),
        None if args.baseline_native => {
            let stream = vm.registry.add(Stream::Published(PublishedStream::new(
                NATIVE_STREAM,
                "the guest agent's x264 baseline, done by the host",
            )));
            let settings = AgentX264 {
                fps: v.fps,
                bitrate: v.bitrate,
            };
            let source = Box::new(vm.gpu.scanout(0)?);
            native = Some(NativeBaseline::start(source, stream.clone(), settings)?);
            stream
        }
        None => vm.scanouts[0].clone(),
    };
    let query = format!("scanout={}&stamps=on&", stream.id());
    Ok(Measured {
        url: vm.serving.url(Role::View, &query),
        stream,
        vm: Some(vm),
        accel,
        native,
        _synthetic: None,
    })
}

/// One measured stream into a headless Chromium, telling `on_phase` where
/// it is.
pub(crate) async fn stream(
    args: &BenchArgs,
    on_phase: &mut dyn FnMut(Phase),
) -> anyhow::Result<StreamReport> {
    on_phase(Phase::Starting);
    let me = Proc::me();
    let peak_reset = me.reset_peak_rss();
    if let Err(e) = &peak_reset {
        tracing::warn!("no peak memory figure for this run: resetting the kernel's failed: {e}");
    }
    let Measured {
        url,
        stream: pipeline,
        vm,
        accel,
        native,
        _synthetic,
    } = start(args).await?;
    let fps = args.video.fps;
    let gpu_counters = || vm.as_ref().map(|vm| vm.gpu.stats());
    let processes = vm.as_ref().map(VmProcesses::of).transpose()?;
    let vm_cpu = || processes.as_ref().map(VmProcesses::cpu).transpose();
    let mut chromium = Chromium::open(&url)
        .await
        .context("starting headless Chromium (scripts/install-deps.sh installs it)")?;
    // Warm up: the decoder configured and two seconds of frames at the
    // target rate, or, for a slow mode (the guest's x264 makes a few a
    // second under TCG), frames for five seconds.
    on_phase(Phase::WarmingUp);
    let started = Instant::now();
    let warm_until = started + Duration::from_secs(60);
    loop {
        let p = page(&mut chromium).await?;
        let decoded = decoded_count(&p);
        let slow_but_going = decoded > 0 && started.elapsed() >= Duration::from_secs(5);
        if decoded >= u64::from(fps) * 2 || slow_but_going {
            break;
        }
        anyhow::ensure!(
            Instant::now() < warm_until,
            "Chromium decoded nothing within 60 s: {p}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (p0, s0, cpu0, g0, q0, t0) = (
        page(&mut chromium).await?,
        pipeline.stats(),
        crate::process::cpu_time(),
        gpu_counters(),
        vm_cpu()?,
        Instant::now(),
    );
    let window_start_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let window = Duration::from_secs_f64(args.seconds);
    let mut decoded_fps_series = Vec::new();
    let (mut p1, mut sampled) = (p0.clone(), t0);
    while t0.elapsed() < window {
        tokio::time::sleep(window.saturating_sub(t0.elapsed()).min(SAMPLE_EVERY)).await;
        let p = page(&mut chromium).await?;
        let now = Instant::now();
        decoded_fps_series.push(FpsSample {
            t_s: now.duration_since(t0).as_secs_f64(),
            fps: decoded_count(&p).saturating_sub(decoded_count(&p1)) as f64
                / now.duration_since(sampled).as_secs_f64(),
        });
        (p1, sampled) = (p, now);
        on_phase(Phase::Measuring {
            done: t0.elapsed(),
            window,
        });
    }
    // Read at the last sample: the series and the totals cover one window.
    let (s1, cpu1, g1, q1, elapsed) = (
        pipeline.stats(),
        crate::process::cpu_time(),
        gpu_counters(),
        vm_cpu()?,
        sampled.duration_since(t0),
    );
    let decoded = decoded_count(&p1).saturating_sub(decoded_count(&p0));
    let all: Vec<f64> = p1["latencies"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let recent = usize::try_from(decoded).unwrap_or(usize::MAX);
    let measured = &all[all.len().saturating_sub(recent)..];
    let micros: Vec<u32> = measured.iter().map(|&ms| ms_to_micros(ms)).collect();
    let pct = |p| percentile_ms(&micros, p);
    let latency_max_ms = measured.iter().copied().reduce(f64::max).unwrap_or(0.0);
    let frames = s1.frames.saturating_sub(s0.frames).max(1);
    let cpu = cpu1.saturating_sub(cpu0);
    // CPU per frame the page decoded: a mode that makes frames the viewer
    // never sees pays for them too.
    let per_frame_ms = |d: Duration| d.as_secs_f64() * 1000.0 / decoded.max(1) as f64;
    let vm_spent = q0.zip(q1).map(|(a, b)| a.until(b));
    let mut report = StreamReport {
        stream: pipeline.describe().to_owned(),
        seconds: elapsed.as_secs_f64(),
        target_fps: fps,
        delivered_fps: decoded as f64 / elapsed.as_secs_f64(),
        decoded_fps_series,
        latency_p50_ms: pct(50.0),
        latency_p95_ms: pct(95.0),
        latency_p99_ms: pct(99.0),
        latency_max_ms,
        latency_samples_ms: measured.to_vec(),
        glass_to_glass: vm.as_ref().and_then(|vm| {
            let flushed = vm.gpu.flush_stamps().entries();
            GlassToGlass::join(&page_stamps(&p1), &flushed, window_start_us)
        }),
        host_cpu_per_frame_ms: per_frame_ms(cpu),
        host_cores: cpu.as_secs_f64() / elapsed.as_secs_f64(),
        stream_fps: frames as f64 / elapsed.as_secs_f64(),
        mean_frame_bytes: s1.bytes.saturating_sub(s0.bytes) as f64 / frames as f64,
        keyframes: s1.keyframes.saturating_sub(s0.keyframes),
        quality: Quality::default(),
        frames_lagged: s1.lagged.saturating_sub(s0.lagged),
        bitrate_bps: p1["bitrate_bps"].as_f64().unwrap_or(0.0),
        decoder_errors: p1["errors"].as_u64().unwrap_or(0),
        guest_flushes_per_second: g0
            .zip(g1)
            .map(|(a, b)| b.flushes.saturating_sub(a.flushes) as f64 / elapsed.as_secs_f64()),
        bytes_copied_per_frame: g0
            .zip(g1)
            .map(|(a, b)| b.bytes_copied.saturating_sub(a.bytes_copied) as f64 / frames as f64),
        guest_cpu_per_frame_ms: None,
        agent: None,
        accel,
        qemu_cpu_per_frame_ms: vm_spent.map(|c| per_frame_ms(c.qemu)),
        vcpu_cpu_per_frame_ms: vm_spent.map(|c| per_frame_ms(c.vcpus)),
        vsock_cpu_per_frame_ms: vm_spent.and_then(|c| c.vsock).map(per_frame_ms),
        zerocast_peak_rss_bytes: peak_reset.ok().and_then(|()| me.peak_rss_bytes()),
        // Just before QEMU is stopped, below.
        qemu_peak_rss_bytes: processes.as_ref().and_then(|p| p.qemu.peak_rss_bytes()),
        vsock_peak_rss_bytes: processes
            .as_ref()
            .and_then(|p| p.vsock.as_ref()?.peak_rss_bytes()),
    };
    // After every figure above is read (the peak memory figures too):
    // decoding here would count in them.
    on_phase(Phase::Quality);
    let source = match &vm {
        Some(_) => Source::TestGuest,
        None => Source::Synthetic { fps },
    };
    report.quality = crate::stream_quality::measure(&pipeline, source)
        .await
        .context("measuring the decoded picture's quality")?;
    if let Some(native) = native {
        native.stop()?;
    }
    if let Some(vm) = vm {
        report.guest_cpu_per_frame_ms = agent_cpu(&vm.serial_log);
        if args.agent.is_some() && report.guest_cpu_per_frame_ms.is_none() {
            // The console goes with the VM's work folder: say what it ended with.
            let log = std::fs::read_to_string(&vm.serial_log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            tracing::warn!(
                "the guest agent printed no CPU figure; its console ended with: {:?}",
                tail
            );
        }
        report.agent = args.agent.clone();
        vm.stop().await?;
    }
    Ok(report)
}

pub(crate) fn print_stream(report: &StreamReport) {
    println!(
        "stream            {:.1} fps decoded in Chromium (target {})",
        report.delivered_fps, report.target_fps
    );
    println!(
        "latency           capture to decoded: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report.latency_p50_ms, report.latency_p95_ms, report.latency_p99_ms, report.latency_max_ms
    );
    if let Some(g) = report.glass_to_glass {
        println!(
            "glass to glass    guest flush to shown: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} frames)",
            g.p50_ms, g.p95_ms, g.p99_ms, g.max_ms, g.frames
        );
    }
    println!(
        "host cpu          {:.2} ms per frame decoded, {:.2} cores",
        report.host_cpu_per_frame_ms, report.host_cores
    );
    println!(
        "bitrate           {:.2} Mbit/s, decoder errors {}",
        report.bitrate_bps / 1e6,
        report.decoder_errors
    );
    if let (Some(f), Some(c)) = (
        report.guest_flushes_per_second,
        report.bytes_copied_per_frame,
    ) {
        println!("guest             {f:.1} flushes/s; {c:.0} pixel bytes copied per frame");
    }
    if let Some(cpu) = report.guest_cpu_per_frame_ms {
        let mode = report.agent.as_deref().unwrap_or("?");
        println!("guest agent       {cpu:.2} ms guest CPU per frame ({mode})");
    }
    let q = &report.quality;
    match (q.psnr_db, q.ssim, &q.not_measured) {
        (Some(psnr), Some(ssim), _) => println!(
            "quality           luma PSNR {psnr:.2} dB (median frame {:.2}, worst {:.2}), SSIM {ssim:.4}, over {} frames",
            q.psnr_median_db.unwrap_or(psnr),
            q.psnr_min_db.unwrap_or(psnr),
            q.frames_compared
        ),
        (_, _, reason) => println!(
            "quality           not measured: {}",
            reason.as_deref().unwrap_or("?")
        ),
    }
}
