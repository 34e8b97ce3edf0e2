//! Serves zerocast's vhost-user-gpu to one QEMU, counts the guest's flushes
//! of scanout 0, reads the frame stamp of each, and dumps one frame to a PPM.
//!
//! With `--kernel`/`--initrd` it boots the guest itself (TCG, memfd guest
//! RAM) and stops it at the end; without, it only serves `--socket` and
//! waits for a QEMU started by hand.
//!
//! ```text
//! cargo run --release -p zerocast-gpu --example gpu_dump -- \
//!     --kernel work/guest/vmlinuz --initrd work/guest/initrd.img \
//!     --seconds 30 --out /tmp/frame.ppm
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zerocast_frame::{stamp, Doorbell, Frame, FrameSource, SourceEvent};
use zerocast_gpu::{GpuBackendHandle, GpuConfig};

struct Args {
    socket: PathBuf,
    out: PathBuf,
    seconds: u64,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: String,
    serial_log: PathBuf,
    config: GpuConfig,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        socket: PathBuf::from("/tmp/zerocast-gpu.sock"),
        out: PathBuf::from("/tmp/zerocast-gpu-frame.ppm"),
        seconds: 30,
        kernel: None,
        initrd: None,
        append: "zerocast.fps=60".to_string(),
        serial_log: PathBuf::from("/tmp/zerocast-gpu-serial.log"),
        config: GpuConfig::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--socket" => a.socket = value()?.into(),
            "--out" => a.out = value()?.into(),
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--kernel" => a.kernel = Some(value()?.into()),
            "--initrd" => a.initrd = Some(value()?.into()),
            "--append" => a.append = value()?,
            "--serial-log" => a.serial_log = value()?.into(),
            "--scanouts" => a.config.scanouts = parse_scanouts(&value()?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

/// `1280x800,1024x768` -> sizes.
fn parse_scanouts(list: &str) -> Result<Vec<(u32, u32)>, String> {
    list.split(',')
        .map(|wh| {
            let (w, h) = wh.split_once('x').ok_or(format!("bad size {wh}"))?;
            Ok((
                w.parse().map_err(|e| format!("{wh}: {e}"))?,
                h.parse().map_err(|e| format!("{wh}: {e}"))?,
            ))
        })
        .collect()
}

/// Boots the test guest on our socket. Output goes to `serial_log`.
fn start_qemu(a: &Args, kernel: &PathBuf, initrd: &PathBuf) -> std::io::Result<Child> {
    let log = File::create(&a.serial_log)?;
    Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "512", "-no-reboot"])
        .args(["-object", "memory-backend-memfd,id=mem,size=512M,share=on"])
        .args(["-machine", "memory-backend=mem"])
        .arg("-chardev")
        .arg(format!("socket,id=gpu,path={}", a.socket.display()))
        .arg("-device")
        .arg(format!(
            "vhost-user-gpu-pci,chardev=gpu,max_outputs={}",
            a.config.scanouts.len()
        ))
        .args(["-display", "none", "-vga", "none", "-nographic"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!("console=ttyS0 {}", a.append))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// The stamp in the frame's top-left corner (green channel as luma).
fn read_stamp(frame: &Frame<'_>) -> Option<u32> {
    let (w, h) = (
        frame.width().min(stamp::WIDTH),
        frame.height().min(stamp::BLOCK),
    );
    let stride = frame.stride() as usize;
    let luma: Vec<u8> = (0..h as usize)
        .flat_map(|y| (0..w as usize).map(move |x| (y, x)))
        .map(|(y, x)| frame.data()[y * stride + x * 4 + 1])
        .collect();
    stamp::read_luma(&luma, w, h, w as usize)
}

/// Writes a frame as a binary PPM (RGB).
fn write_ppm(frame: &Frame<'_>, path: &PathBuf) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    write!(out, "P6\n{} {}\n255\n", frame.width(), frame.height())?;
    let bgr = frame.format().is_bgr_order();
    for y in 0..frame.height() as usize {
        let row = &frame.data()[y * frame.stride() as usize..][..frame.width() as usize * 4];
        for px in row.chunks_exact(4) {
            let rgb = if bgr {
                [px[2], px[1], px[0]]
            } else {
                [px[0], px[1], px[2]]
            };
            out.write_all(&rgb)?;
        }
    }
    out.flush()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let a = parse_args()?;
    let gpu = GpuBackendHandle::start(&a.socket, a.config.clone())?;
    let mut source = gpu.scanout(0)?;
    let bell = Doorbell::new();
    source.attach(bell.clone());
    println!(
        "gpu_dump: serving {} ({})",
        a.socket.display(),
        source.describe()
    );
    let mut qemu = match (&a.kernel, &a.initrd) {
        (Some(k), Some(i)) => Some(start_qemu(&a, k, i)?),
        _ => None,
    };

    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut changes = 0u64;
    let mut first_change: Option<Instant> = None;
    let mut stamps = (None::<u32>, None::<u32>, 0u64); // first, last, readable
    let mut dumped = false;
    let mut window = (Instant::now(), 0u64);
    // Flush (captured_at) to this reader waking up, microseconds.
    let mut latencies_us: Vec<u64> = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        bell.wait(Some(end.min(now + Duration::from_secs(1))));
        match source.poll(Instant::now()) {
            SourceEvent::Closed => {
                println!("gpu_dump: QEMU has gone");
                break;
            }
            SourceEvent::Idle { .. } => {}
            SourceEvent::Changed { captured_at } => {
                changes += 1;
                latencies_us.push(captured_at.elapsed().as_micros() as u64);
                first_change.get_or_insert(captured_at);
                let Some(frame) = source.frame() else {
                    continue;
                };
                if let Some(n) = read_stamp(&frame) {
                    stamps.0.get_or_insert(n);
                    stamps.1 = Some(n);
                    stamps.2 += 1;
                }
                // Dump a frame well into the run, once the flipper is going.
                if !dumped && now >= start + Duration::from_secs(a.seconds * 3 / 4) {
                    write_ppm(&frame, &a.out)?;
                    let snap = source.snapshot().expect("a frame has a snapshot");
                    println!(
                        "gpu_dump: wrote {} ({}x{}, resource {}, zero-copy {}, stamp {:?})",
                        a.out.display(),
                        frame.width(),
                        frame.height(),
                        snap.resource_id(),
                        snap.is_zero_copy(),
                        read_stamp(&frame)
                    );
                    dumped = true;
                }
            }
        }
        if window.0.elapsed() >= Duration::from_secs(5) {
            let s = gpu.stats();
            println!(
                "gpu_dump: {:.1} changes/s, totals: {} flushes, {} transfers, {} bytes copied, {} commands, {} errors",
                (changes - window.1) as f64 / window.0.elapsed().as_secs_f64(),
                s.flushes,
                s.transfers,
                s.bytes_copied,
                s.commands,
                s.errors
            );
            window = (Instant::now(), changes);
        }
    }

    let steady = first_change
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0);
    let s = gpu.stats();
    println!(
        "gpu_dump: {changes} changes in {steady:.1} s since the first ({:.1}/s); stamps {:?}..{:?} ({} readable)",
        changes as f64 / steady.max(1e-9),
        stamps.0,
        stamps.1,
        stamps.2
    );
    latencies_us.sort_unstable();
    let pct = |p: usize| latencies_us.get(latencies_us.len() * p / 100).copied();
    println!(
        "gpu_dump: flush-to-wake latency us: p50 {:?} p99 {:?} max {:?}",
        pct(50),
        pct(99),
        latencies_us.last()
    );
    println!("gpu_dump: stats {s:?}");
    println!("gpu_dump: resources {:?}", gpu.resources().ids());
    if let Some(child) = qemu.as_mut() {
        let _ = child.kill();
        child.wait()?;
    }
    gpu.shutdown()?;
    if !dumped {
        return Err("no frame was dumped".into());
    }
    Ok(())
}
