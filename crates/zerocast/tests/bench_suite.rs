//! `zerocast bench --suite` as a user runs it, for 3 seconds a mode:
//! every mode runs (the synthetic desktop, the test guest's scanout, the
//! guest agent zero-copy and with x264, the agent's x264 work done by the
//! host), in a real headless Chromium, and
//! `bench.json` holds every figure, each plausible, with the ratios; every
//! mode's decoded pictures are compared with their source's (PSNR, SSIM).
//! The figures themselves are the command's to report, not this test's.

mod harness;

use std::process::Command;

use harness::{guest, require, tmp, BIN};
use serde_json::Value;

const MODES: [&str; 7] = [
    "synthetic",
    "scanout",
    "agent-zerocopy",
    "agent-x264",
    "baseline-native",
    "synthetic-openh264",
    "scanout-openh264",
];

#[test]
fn the_suite_runs_every_mode_and_reports_them() {
    require("chromium");
    require("qemu-system-x86_64");
    let (kernel, initrd) = guest();
    let json = tmp("suite.json");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--suite",
            "--seconds",
            // The guest's x264 makes about 4 frames a second under TCG and
            // reports its CPU every 10: 3 s holds a report in the window
            // alone, whenever the agent started.
            "3",
            "--repeats",
            "1",
            "--quiet",
            "--kernel",
        ])
        .arg(&kernel)
        .arg("--initrd")
        .arg(&initrd)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run zerocast bench --suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench --suite failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("bench.json written"))
            .expect("bench.json is JSON");
    assert_eq!(report["version"], 4);
    let machine = &report["machine"];
    assert!(machine["cores"].as_u64() >= Some(1), "{machine}");
    // The test's guests boot under TCG, as the suite's do.
    assert_eq!(machine["accel"], "tcg", "{machine}");
    assert!(
        machine["qemu"].as_str().is_some_and(|q| q.contains("QEMU")),
        "{machine}"
    );
    assert!(
        machine["kernel"].as_str().is_some_and(|k| !k.is_empty()),
        "{machine}"
    );
    assert!(
        machine["date"]
            .as_str()
            .is_some_and(|d| d.len() == 20 && d.ends_with('Z')),
        "{machine}"
    );
    for mode in MODES {
        let m = &report["modes"][mode];
        assert_eq!(m["runs"].as_array().map(Vec::len), Some(1), "{mode}: {m}");
        let median = |f: &str| m["summary"][f]["median"].as_f64();
        assert!(
            median("delivered_fps") > Some(0.0),
            "{mode} delivered frames: {m}"
        );
        assert!(median("latency_p50_ms") > Some(0.0), "{mode} latency: {m}");
        assert!(median("stream_fps") > Some(0.0), "{mode} stream: {m}");
        assert!(
            median("mean_frame_bytes") > Some(0.0),
            "{mode} frame size: {m}"
        );
        assert!(
            median("latency_max_ms") >= median("latency_p99_ms"),
            "{mode} latency max: {m}"
        );
        let series = m["runs"][0]["decoded_fps_series"].as_array();
        assert!(
            series.is_some_and(|s| !s.is_empty()
                && s.iter()
                    .all(|x| x["t_s"].as_f64() > Some(0.0) && x["fps"].as_f64() >= Some(0.0))),
            "{mode} per-second decoded fps: {m}"
        );
        assert!(
            median("host_cpu_per_frame_ms") > Some(0.0),
            "{mode} host CPU: {m}"
        );
        // The agent's vsock runs in a process of its own: counted, with
        // its memory (its CPU may round to 0 ticks over a short window).
        let vsock = &m["runs"][0]["vsock_cpu_per_frame_ms"];
        assert_eq!(vsock.is_number(), mode.starts_with("agent"), "{mode}: {m}");
        if mode.starts_with("agent") {
            assert!(
                median("vsock_peak_rss_bytes") > Some(1e5),
                "{mode} vsock backend's memory: {m}"
            );
            assert!(
                median("guest_cpu_per_frame_ms") > Some(0.0),
                "{mode} guest CPU: {m}"
            );
        }
        assert!(
            median("zerocast_peak_rss_bytes") > Some(1e6),
            "{mode} zerocast's peak memory: {m}"
        );
        assert!(
            median("total_cpu_per_frame_ms") >= median("host_cpu_per_frame_ms"),
            "{mode} total CPU: {m}"
        );
        if !mode.starts_with("synthetic") {
            assert_eq!(m["runs"][0]["accel"], "tcg", "{mode}: {m}");
            assert!(
                median("guest_flushes_per_second") > Some(0.0),
                "{mode} guest frames: {m}"
            );
            let qemu = median("qemu_cpu_per_frame_ms");
            assert!(qemu > Some(0.0), "{mode} QEMU's CPU: {m}");
            // The guest always runs something (its flipper at least).
            let vcpus = median("vcpu_cpu_per_frame_ms");
            assert!(vcpus > Some(0.0) && vcpus <= qemu, "{mode} vCPUs' CPU: {m}");
            assert!(
                median("qemu_peak_rss_bytes") > Some(1e6),
                "{mode} QEMU's peak memory: {m}"
            );
            // Encoded from guest memory, or by the guest itself: none copied by the host.
            assert_eq!(median("bytes_copied_per_frame"), Some(0.0), "{mode}: {m}");
            // From the guest's flush to the page, joined by frame stamp,
            // whichever side encoded: more than nothing, under a minute.
            let g2g = median("glass_to_glass_p50_ms");
            assert!(
                g2g > Some(0.0) && g2g < Some(60_000.0),
                "{mode} glass to glass: {m}"
            );
            assert!(
                median("glass_to_glass_max_ms") >= g2g,
                "{mode} glass to glass: {m}"
            );
        }
        // The decoded frames against their source's own (the test guest's,
        // the synthetic desktop's with its clock from the frame number):
        // compared, and close (a wrong frame, a shifted or torn picture, colours
        // converted otherwise fall far below; 99 would be lossless,
        // which no encode at this bitrate is).
        let quality = &m["runs"][0]["quality"];
        let compared = quality["frames_compared"].as_u64().unwrap_or(0);
        assert!(compared > 0, "{mode} compared no frame: {quality}");
        assert!(
            compared <= quality["frames_decoded"].as_u64().unwrap_or(0),
            "{mode}: {quality}"
        );
        let psnr = median("psnr_db");
        assert!(
            psnr.is_some_and(|p| (20.0..99.0).contains(&p)),
            "{mode} PSNR: {quality}"
        );
        let typical = median("psnr_median_db");
        assert!(
            typical.is_some_and(|p| (20.0..99.0).contains(&p)),
            "{mode} median frame's PSNR: {quality}"
        );
        assert!(
            median("psnr_min_db").is_some_and(|p| p >= 10.0 && Some(p) <= typical),
            "{mode} worst frame's PSNR: {quality}"
        );
        let ssim = median("ssim");
        assert!(
            ssim.is_some_and(|s| s > 0.5 && s <= 1.0),
            "{mode} SSIM: {quality}"
        );
        assert!(
            median("mean_keyframe_bytes") > Some(0.0),
            "{mode} keyframe size: {quality}"
        );
        assert!(quality["not_measured"].is_null(), "{mode}: {quality}");
    }
    // The charts beside the JSON, named after it, each naming every mode.
    for chart in ["fps", "latency", "cpu"] {
        let path = json.with_file_name(format!("suite-{chart}.svg"));
        let svg = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{} is not SVG: {svg:.80}",
            path.display()
        );
        assert!(
            svg.trim_end().ends_with("</svg>"),
            "{} is cut short",
            path.display()
        );
        for mode in MODES {
            assert!(
                svg.contains(mode),
                "{} does not name {mode}",
                path.display()
            );
        }
        assert!(
            stdout.contains(&path.display().to_string()),
            "{} is not announced:\n{stdout}",
            path.display()
        );
    }
    for baseline in [
        "zerocopy_over_x264",
        "zerocopy_over_native",
        "synthetic_over_openh264",
        "scanout_over_openh264",
    ] {
        let ratio = report[baseline]["total_cpu_per_frame_ms"].as_f64();
        assert!(
            ratio.is_some_and(|r| r > 0.0),
            "{baseline}: {}",
            report[baseline]
        );
    }
    // The plain modes ran the default encoder, x264 in a build with
    // libx264-dev; the OpenH264 modes, OpenH264.
    for (mode, encoder) in [
        ("synthetic", "-> x264"),
        ("scanout", "-> x264"),
        ("synthetic-openh264", "-> openh264"),
        ("scanout-openh264", "-> openh264"),
    ] {
        let run = &report["modes"][mode]["runs"][0];
        assert!(
            run["stream"]
                .as_str()
                .is_some_and(|e| e.contains(encoder)),
            "{mode} did not run {encoder} (is libx264-dev installed? scripts/install-deps.sh): {run}"
        );
    }
    // The host's x264 baseline is the host's: no agent figure, and its
    // encoding shows in zerocast's CPU rather than the guest's.
    let native = &report["modes"]["baseline-native"]["runs"][0];
    assert!(native["guest_cpu_per_frame_ms"].is_null(), "{native}");
    // The table shows the quality rows.
    for row in ["psnr_db (luma)", "ssim (luma)", "quality_frames"] {
        assert!(stdout.contains(row), "no {row} row:\n{stdout}");
    }
}
