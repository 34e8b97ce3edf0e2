//! `zerocast bench --workload still-after-motion --disk IMG --kernel K
//! --initrd I`: the "sharp when still" measure on the real desktop image
//! (`scripts/build-desktop.sh`). The image boots under an in-process
//! `zerocast vm`; its xterm is dragged by its title bar and stops, then a
//! full-screen scroll (`seq` in the terminal) runs and stops. Each motion
//! runs twice on the same boot: before (OpenH264's constant bitrate, no
//! refinement: zerocast until quality rate control) and after (the settings
//! given). Once the screen has been still for a second, the last picture
//! decoded from the stream (OpenH264's decoder, in-process) is compared
//! with the guest's framebuffer, read from guest memory.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use openh264::decoder::Decoder;
use serde::Serialize;
use zerocast_encode::{EncoderSettings, RateControl};
use zerocast_frame::{FrameSource, SourceEvent, I420};
use zerocast_input::{Button, InputEvent, InputSink};
use zerocast_pipeline::{EncodedFrame, Stream};

use crate::bench::BenchArgs;
use crate::picture_quality::{psnr, squared_error, ssim};
use crate::vm::VmStack;

/// Frames a subscriber got, with when each arrived.
type Received = Vec<(Instant, Arc<EncodedFrame>)>;

/// How long the screen must stay still before the picture is measured.
const SETTLE: Duration = Duration::from_secs(1);

/// One motion, one rate control.
#[derive(Serialize, Clone)]
struct Stop {
    motion: &'static str,
    path: &'static str,
    frames: usize,
    bytes_per_frame: f64,
    /// Frames published after the last change (the refinement, if any).
    after_stop: usize,
    after_stop_bytes: usize,
    /// Share of the screen's luma the motion changed (the check that it
    /// happened).
    changed_share: f64,
    still_psnr_db: f64,
    still_ssim: f64,
}

#[derive(Serialize)]
struct DesktopBench {
    image: String,
    boot_to_ready_s: f64,
    stops: Vec<Stop>,
}

/// The xterm as the session's ready line gives it.
struct Xterm {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
    title: u32,
}

fn ready_xterm(line: &str) -> anyhow::Result<Xterm> {
    let field = |name: &str| -> anyhow::Result<u32> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name}= in the desktop's ready line: {line}"))
    };
    Ok(Xterm {
        x: field("X")?,
        y: field("Y")?,
        width: field("WIDTH")?,
        height: field("HEIGHT")?,
        title: field("TITLE")?,
    })
}

pub async fn run(args: &BenchArgs, disk: &Path) -> anyhow::Result<()> {
    let (Some(kernel), Some(initrd)) = (&args.kernel, &args.initrd) else {
        anyhow::bail!(
            "--disk needs --kernel and --initrd (scripts/build-desktop.sh prints all three)"
        );
    };
    let listen = "127.0.0.1:0".parse()?;
    let append = args
        .append
        .clone()
        .unwrap_or_else(|| "root=/dev/vda rw".into());
    let mut vm_args = crate::vm::VmArgs::for_bench(kernel, initrd, &append, &args.video, listen);
    vm_args.disk = Some(disk.to_owned());
    vm_args.disk_snapshot = true;
    vm_args.memory = 2048;
    let t0 = Instant::now();
    let vm = VmStack::start(&vm_args).await?;
    let line = wait_for_line(
        &vm.serial_log,
        "zerocast-desktop: ready",
        Duration::from_secs(240),
    )
    .await?;
    let boot = t0.elapsed();
    let xterm = ready_xterm(&line)?;
    println!("desktop ready after {:.1} s: {line}", boot.as_secs_f64());

    let stream = vm.scanouts[0].clone();
    let after = args.video.settings();
    let before = EncoderSettings {
        rate_control: RateControl::Bitrate,
        ..after
    };
    let (width, height) = (1280.0f32, 800.0f32);
    let mut stops = Vec::new();
    // On the title bar, clear of the window menu's icon at its left end.
    let start = (xterm.x + 80, xterm.y.saturating_sub(xterm.title / 2));
    // Right by 200 pixels, then back from there.
    let there = (start.0 + 200, start.1);
    for (path, settings, from, dx) in [
        ("before", before, start, 200i32),
        ("after", after, there, -200),
    ] {
        let input = vm.input.clone();
        let drag = move || drag(&*input, from, dx, (width, height));
        stops.push(measure(&vm, &stream, "drag", path, settings, drag).await?);
    }
    // The drags took the window there and back: its middle, for focus.
    let middle = (xterm.x + xterm.width / 2, xterm.y + xterm.height / 2);
    // Different numbers each time: the same command would end on the same screen.
    for (path, settings, command) in [
        ("before", before, "seq 1 4000\n"),
        ("after", after, "seq 7 4007\n"),
    ] {
        let input = vm.input.clone();
        let scroll = move || {
            click(&*input, middle, (width, height));
            type_text(&*input, command);
        };
        stops.push(measure(&vm, &stream, "scroll", path, settings, scroll).await?);
    }
    println!(
        "{:<7} {:<6} | {:>7} | {:>6} {:>9} | {:>10} {:>9} | {:>7} {:>7}",
        "motion", "", "changed", "frames", "bytes", "after stop", "bytes", "PSNR", "SSIM"
    );
    for s in &stops {
        println!(
            "{:<7} {:<6} | {:>6.1}% | {:>6} {:>9.0} | {:>10} {:>9} | {:>7.2} {:>7.4}",
            s.motion,
            s.path,
            s.changed_share * 100.0,
            s.frames,
            s.bytes_per_frame,
            s.after_stop,
            s.after_stop_bytes,
            s.still_psnr_db,
            s.still_ssim
        );
    }
    let report = DesktopBench {
        image: disk.display().to_string(),
        boot_to_ready_s: boot.as_secs_f64(),
        stops,
    };
    crate::bench::write_json(&args.json, &report)
}

/// Runs `motion` under `settings` with a subscriber of its own, waits for
/// the screen to be still, and compares the last decoded picture with the
/// guest's framebuffer.
async fn measure(
    vm: &VmStack,
    stream: &Arc<Stream>,
    motion_name: &'static str,
    path: &'static str,
    settings: EncoderSettings,
    motion: impl FnOnce() + Send + 'static,
) -> anyhow::Result<Stop> {
    let pipeline = stream.as_encoded().context("the scanout is encoded here")?;
    pipeline.reconfigure(settings);
    let frames: Arc<Mutex<Received>> = Arc::default();
    let mut sub = stream.subscribe();
    let collector = {
        let frames = frames.clone();
        tokio::spawn(async move {
            while let Some(f) = sub.next().await {
                frames
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((Instant::now(), f));
            }
        })
    };
    // The new subscriber's keyframe, then a quiet screen before the motion.
    tokio::time::sleep(SETTLE).await;
    let start = framebuffer(vm)?;
    tokio::task::spawn_blocking(motion).await?;
    // Still: no frame for SETTLE (bounded: a minute at most).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let last = frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .map(|f| f.0);
        if last.is_some_and(|t| t.elapsed() >= SETTLE) || Instant::now() > deadline {
            break;
        }
    }
    collector.abort();
    let frames = std::mem::take(&mut *frames.lock().unwrap_or_else(PoisonError::into_inner));
    let source = framebuffer(vm)?;
    let changed = start
        .y()
        .iter()
        .zip(source.y())
        .filter(|(a, b)| a != b)
        .count();
    let changed_share = changed as f64 / source.y().len().max(1) as f64;
    anyhow::ensure!(
        changed > 0,
        "the {motion_name} changed nothing on the screen"
    );
    let mut decoder = Decoder::new().context("building OpenH264's decoder")?;
    let mut shown = None;
    for (_, f) in &frames {
        if let Some(d) = decoder
            .decode(&f.access_unit)
            .context("decoding the stream")?
        {
            let (error, samples) = squared_error(&d, &source).context("decoded size differs")?;
            shown = Some((psnr(error, samples), ssim(&d, &source).unwrap_or(0.0)));
        }
    }
    let (still_psnr_db, still_ssim) = shown.context("no picture decoded")?;
    // A refinement comes alone, the refresh delay after the last change (a
    // motion's frames are a frame interval apart).
    let refined = match frames.as_slice() {
        [.., (_, a), (_, b)] => {
            !b.keyframe && b.captured_at.duration_since(a.captured_at) >= Duration::from_millis(100)
        }
        _ => false,
    };
    let after_stop = usize::from(refined);
    let motion_frames = frames.len() - after_stop;
    let bytes: usize = frames.iter().map(|(_, f)| f.access_unit.len()).sum();
    let after_stop_bytes = frames
        .iter()
        .rev()
        .take(after_stop)
        .map(|(_, f)| f.access_unit.len())
        .sum();
    Ok(Stop {
        motion: motion_name,
        path,
        frames: motion_frames,
        bytes_per_frame: (bytes - after_stop_bytes) as f64 / motion_frames.max(1) as f64,
        after_stop,
        after_stop_bytes,
        changed_share,
        still_psnr_db,
        still_ssim,
    })
}

/// The scanout's picture as the guest has it now, converted as the
/// encoder's input is.
fn framebuffer(vm: &VmStack) -> anyhow::Result<I420> {
    let mut source = vm.gpu.scanout(0)?;
    anyhow::ensure!(
        matches!(source.poll(Instant::now()), SourceEvent::Changed { .. }),
        "the guest shows nothing"
    );
    let frame = source.frame().context("the guest shows nothing")?;
    let mut i420 = I420::default();
    i420.convert(&frame)?;
    Ok(i420)
}

/// Drags from `start` (scanout pixels) by `dx` over a second, at 60 moves
/// a second, then lets go.
fn drag(input: &dyn InputSink, start: (u32, u32), dx: i32, (w, h): (f32, f32)) {
    let at = |x: f32, y: f32| InputEvent::MoveAbs {
        x: (x / w).clamp(0.0, 1.0),
        y: (y / h).clamp(0.0, 1.0),
    };
    #[allow(clippy::cast_precision_loss)]
    let (x0, y0) = (start.0 as f32, start.1 as f32);
    input.send(0, at(x0, y0));
    std::thread::sleep(Duration::from_millis(100));
    input.send(
        0,
        InputEvent::Button {
            button: Button::Left,
            down: true,
        },
    );
    for step in 1..=60u16 {
        std::thread::sleep(Duration::from_micros(16_667));
        #[allow(clippy::cast_precision_loss)]
        let x = x0 + dx as f32 * f32::from(step) / 60.0;
        input.send(0, at(x, y0));
    }
    input.send(
        0,
        InputEvent::Button {
            button: Button::Left,
            down: false,
        },
    );
}

/// A left click at `at` (scanout pixels).
fn click(input: &dyn InputSink, at: (u32, u32), (w, h): (f32, f32)) {
    #[allow(clippy::cast_precision_loss)]
    input.send(
        0,
        InputEvent::MoveAbs {
            x: (at.0 as f32 / w).clamp(0.0, 1.0),
            y: (at.1 as f32 / h).clamp(0.0, 1.0),
        },
    );
    for down in [true, false] {
        input.send(
            0,
            InputEvent::Button {
                button: Button::Left,
                down,
            },
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Types `text` (digits, lower-case letters, space, newline) key by key.
fn type_text(input: &dyn InputSink, text: &str) {
    for c in text.chars() {
        let Some(code) = evdev_code(c) else {
            continue;
        };
        for down in [true, false] {
            input.send(0, InputEvent::Key { code, down });
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Linux evdev codes of the characters [`type_text`] knows.
fn evdev_code(c: char) -> Option<u16> {
    const LETTERS: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
    const CODES: [u16; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17,
        45, 21, 44,
    ];
    match c {
        '1'..='9' => Some(2 + c as u16 - '1' as u16),
        '0' => Some(11),
        ' ' => Some(57),
        '\n' => Some(28),
        c => LETTERS
            .iter()
            .position(|&l| char::from(l) == c)
            .map(|i| CODES[i]),
    }
}

/// Waits for a line containing `needle` in the serial log; returns it.
async fn wait_for_line(log: &Path, needle: &str, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return Ok(line.to_owned());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {needle:?} on the guest's serial console within {timeout:?} ({})",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_for_the_scroll_command() {
        let codes: Vec<_> = "seq 1 40\n".chars().map(evdev_code).collect();
        assert_eq!(
            codes,
            [31, 18, 16, 57, 2, 57, 5, 11, 28].map(Some),
            "KEY_S, KEY_E, KEY_Q, space, 1, space, 4, 0, enter"
        );
        assert_eq!(evdev_code('A'), None);
    }

    #[test]
    fn the_ready_line_gives_the_xterm() {
        let x = ready_xterm(
            "zerocast-desktop: ready xterm X=10 Y=40 WIDTH=484 HEIGHT=316 TITLE=21 uptime=27.1",
        )
        .unwrap();
        assert_eq!(
            (x.x, x.y, x.width, x.height, x.title),
            (10, 40, 484, 316, 21)
        );
        assert!(ready_xterm("zerocast-desktop: ready").is_err());
    }
}
