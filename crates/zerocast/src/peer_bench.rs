//! `zerocast bench --peer qemu-vnc`: zerocast against the display users get
//! for free, QEMU's own virtio-gpu with its VNC server, side by side in one
//! run on the same guest (the test guest's flipper at `--fps`).
//!
//! Each repeat boots the guest twice, with the same QEMU command line apart
//! from the display ([`Gpu::VirtioVnc`] against our vhost-user GPU), and
//! measures each the same way:
//!
//! 1. boot, wait for the flipper's frames;
//! 2. baseline: QEMU's CPU with nobody watching (the guest's TCG emulation
//!    and the device model, whatever the display);
//! 3. a viewer connects (our RFB client asking for incremental updates
//!    after each one, as a VNC viewer does; for zerocast an HXFR
//!    subscriber, then a WebSocket viewer that asks for stripes as
//!    zerocast's page does), warms up, then counts frames and bytes for
//!    `--seconds` while QEMU's CPU (`/proc/PID/stat`) and, for zerocast,
//!    this process's CPU are read.
//!
//! CPU is given raw (QEMU + zerocast) and as display cost: raw minus
//! QEMU's baseline rate over the window. Every viewer runs in this process;
//! zerocast's viewers' reading is counted in zerocast's CPU, the RFB one's
//! is not.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use zerocast_hxfr::{Decoder, Limits, Message};
use zerocast_hxfr_server::ListenerRole;
use zerocast_qemu::{Gpu, Vm, VmConfig};
use zerocast_web::Role;

use crate::bench::BenchArgs;
use crate::process::Proc;
use crate::rfb::{Event, RfbClient};
use crate::runtime_dir::RuntimeDir;

/// How long a TCG guest may take to boot and flip its first frames.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// What the serial console says once the flipper flips.
const FLIPPING: &str = "zerocast-flipper: frame";
/// Viewer connected, first frames through, before the window opens.
const WARM_UP: Duration = Duration::from_secs(3);
/// Longest baseline: enough ticks of /proc's 10 ms clock to be stable.
const BASELINE_MAX: f64 = 10.0;
/// Read size for either viewer's socket.
const READ_CHUNK: usize = 64 * 1024;

/// The displays compared.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// QEMU's virtio-gpu-pci and its VNC server, watched over RFB.
    QemuVnc,
}

/// One side of one repeat.
#[derive(Serialize, Debug, Clone)]
struct Side {
    display: &'static str,
    seconds: f64,
    /// Frames the viewer got per second (VNC: updates with pixels).
    delivered_fps: f64,
    /// Bytes on the wire per delivered frame, headers included.
    bytes_per_frame: f64,
    /// VNC only: rectangles per update and the share of the screen they cover.
    rects_per_update: Option<f64>,
    screen_share_per_update: Option<f64>,
    /// QEMU plus zerocast per delivered frame, and cores.
    cpu_per_frame_ms: f64,
    cores: f64,
    /// The same minus QEMU's no-viewer baseline.
    display_cpu_per_frame_ms: f64,
    display_cores: f64,
    /// QEMU's cores with nobody watching.
    baseline_qemu_cores: f64,
    qemu_cores: f64,
    zerocast_cores: f64,
}

#[derive(Serialize)]
struct Report {
    peer: &'static str,
    append: String,
    seconds: f64,
    baseline_seconds: f64,
    repeats: u32,
    /// Per side, the median of each figure over the repeats.
    medians: Vec<Side>,
    runs: Vec<Side>,
}

pub async fn run(args: &BenchArgs, peer: Peer) -> anyhow::Result<()> {
    let (Some(kernel), Some(initrd)) = (&args.kernel, &args.initrd) else {
        bail!("--peer needs the test guest: --kernel and --initrd (scripts/build-guest.sh)");
    };
    let Peer::QemuVnc = peer;
    anyhow::ensure!(args.seconds > 0.0, "--peer needs --seconds above 0");
    let append = args.guest_append();
    let baseline = Duration::from_secs_f64(args.seconds.min(BASELINE_MAX));
    let window = Duration::from_secs_f64(args.seconds);
    let mut runs = Vec::new();
    for repeat in 1..=args.repeats.max(1) {
        tracing::info!(repeat, "QEMU's VNC server");
        let vnc = vnc_side(kernel, initrd, &append, baseline, window).await?;
        print_side(&vnc);
        runs.push(vnc);
        tracing::info!(repeat, "zerocast");
        let ours = zerocast_side(args, kernel, initrd, &append, baseline, window).await?;
        for side in ours {
            print_side(&side);
            runs.push(side);
        }
    }
    let medians: Vec<Side> = ["qemu-vnc", "zerocast-hxfr", "zerocast-web"]
        .into_iter()
        .filter_map(|d| median_side(d, &runs))
        .collect();
    println!("\nmedians of {} repeats ({append}):", args.repeats.max(1));
    print_table(&medians);
    let report = Report {
        peer: "qemu-vnc",
        append,
        seconds: args.seconds,
        baseline_seconds: baseline.as_secs_f64(),
        repeats: args.repeats.max(1),
        medians,
        runs,
    };
    crate::bench::write_json(&args.json, &report)
}

/// QEMU's own GPU and VNC server, watched by our RFB client.
async fn vnc_side(
    kernel: &Path,
    initrd: &Path,
    append: &str,
    baseline: Duration,
    window: Duration,
) -> anyhow::Result<Side> {
    let work = RuntimeDir::create("zerocast-bench-vnc").context("creating the VM's folder")?;
    let socket = work.path().join("vnc.sock");
    let mut config = VmConfig::new(
        Gpu::VirtioVnc {
            socket: socket.clone(),
        },
        work.path().join("qmp.sock"),
        work.path().join("serial.log"),
    );
    config.kernel = Some(kernel.into());
    config.initrd = Some(initrd.into());
    config.append = append.into();
    let mut vm = Vm::spawn(&config).context("starting QEMU")?;
    let result = measure_vnc(&vm, &socket, baseline, window).await;
    vm.kill().await?;
    result
}

async fn measure_vnc(
    vm: &Vm,
    socket: &Path,
    baseline: Duration,
    window: Duration,
) -> anyhow::Result<Side> {
    vm.wait_for_serial(FLIPPING, BOOT_TIMEOUT).await?;
    let qemu = QemuCpu::new(vm)?;
    let base = qemu.cores_over(baseline).await?;
    let mut viewer = VncViewer::connect(socket).await?;
    viewer.run_for(WARM_UP).await?;
    anyhow::ensure!(
        viewer.totals.updates > 0,
        "QEMU's VNC server sent no update within {WARM_UP:?}"
    );
    let (before, q0, t0) = (viewer.totals, qemu.cpu()?, Instant::now());
    viewer.run_for(window).await?;
    let (after, q1, elapsed) = (viewer.totals, qemu.cpu()?, t0.elapsed());
    let updates = after.updates - before.updates;
    let per_update = |v: u64| v as f64 / updates.max(1) as f64;
    let mut side = side(
        "qemu-vnc",
        elapsed,
        updates,
        after.bytes - before.bytes,
        q1.saturating_sub(q0),
        Duration::ZERO,
        base,
    );
    side.rects_per_update = Some(per_update(after.rects - before.rects));
    let screen = f64::from(viewer.width) * f64::from(viewer.height);
    side.screen_share_per_update = Some(per_update(after.area - before.area) / screen.max(1.0));
    Ok(side)
}

/// Our GPU, encoder and servers, watched by an HXFR subscriber, then by a
/// striped WebSocket viewer.
async fn zerocast_side(
    args: &BenchArgs,
    kernel: &Path,
    initrd: &Path,
    append: &str,
    baseline: Duration,
    window: Duration,
) -> anyhow::Result<Vec<Side>> {
    let listen = "127.0.0.1:0".parse()?;
    let vm_args = crate::vm::VmArgs::for_bench(kernel, initrd, append, &args.video, listen);
    let stack = crate::vm::VmStack::start(&vm_args).await?;
    let result = measure_zerocast(&stack, baseline, window).await;
    stack.stop().await?;
    result
}

async fn measure_zerocast(
    stack: &crate::vm::VmStack,
    baseline: Duration,
    window: Duration,
) -> anyhow::Result<Vec<Side>> {
    stack.vm.wait_for_serial(FLIPPING, BOOT_TIMEOUT).await?;
    let qemu = QemuCpu::new(&stack.vm)?;
    let base = qemu.cores_over(baseline).await?;
    let endpoint = stack
        .serving
        .hxfr
        .iter()
        .find(|(_, role)| *role == ListenerRole::Subscriber)
        .map(|(e, _)| e.clone())
        .context("no HXFR subscriber endpoint")?;
    let hxfr = HxfrViewer::connect(&endpoint).await?;
    let hxfr = measure_viewer("zerocast-hxfr", hxfr, &qemu, base, window).await?;
    let url = stack.serving.ws_url(Role::View, 0) + "&stripes=1";
    let web = WebViewer::connect(&url).await?;
    let web = measure_viewer("zerocast-web", web, &qemu, base, window).await?;
    Ok(vec![hxfr, web])
}

/// A viewer of zerocast's that counts what it reads.
trait Counting {
    async fn run_for(&mut self, span: Duration) -> anyhow::Result<()>;
    /// (frames, bytes) so far.
    fn counts(&self) -> (u64, u64);
}

/// Warms `viewer` up, then measures it over `window`.
async fn measure_viewer(
    display: &'static str,
    mut viewer: impl Counting,
    qemu: &QemuCpu,
    base: f64,
    window: Duration,
) -> anyhow::Result<Side> {
    viewer.run_for(WARM_UP).await?;
    anyhow::ensure!(
        viewer.counts().0 > 0,
        "{display}: no frame within {WARM_UP:?}"
    );
    let (f0, b0) = viewer.counts();
    let (q0, z0, t0) = (qemu.cpu()?, crate::process::cpu_time(), Instant::now());
    viewer.run_for(window).await?;
    let (q1, z1, elapsed) = (qemu.cpu()?, crate::process::cpu_time(), t0.elapsed());
    let (f1, b1) = viewer.counts();
    Ok(side(
        display,
        elapsed,
        f1 - f0,
        b1 - b0,
        q1.saturating_sub(q0),
        z1.saturating_sub(z0),
        base,
    ))
}

fn side(
    display: &'static str,
    elapsed: Duration,
    frames: u64,
    bytes: u64,
    qemu: Duration,
    zerocast: Duration,
    baseline_qemu_cores: f64,
) -> Side {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let n = frames.max(1) as f64;
    let raw = (qemu + zerocast).as_secs_f64();
    let display_cost = (raw - baseline_qemu_cores * secs).max(0.0);
    Side {
        display,
        seconds: secs,
        delivered_fps: frames as f64 / secs,
        bytes_per_frame: bytes as f64 / n,
        rects_per_update: None,
        screen_share_per_update: None,
        cpu_per_frame_ms: raw * 1000.0 / n,
        cores: raw / secs,
        display_cpu_per_frame_ms: display_cost * 1000.0 / n,
        display_cores: display_cost / secs,
        baseline_qemu_cores,
        qemu_cores: qemu.as_secs_f64() / secs,
        zerocast_cores: zerocast.as_secs_f64() / secs,
    }
}

/// QEMU's CPU time from `/proc/PID/stat`.
struct QemuCpu(Proc);

impl QemuCpu {
    fn new(vm: &Vm) -> anyhow::Result<QemuCpu> {
        let pid = vm.pid().context("QEMU has no process id")?;
        Ok(QemuCpu(Proc::of(pid)))
    }

    /// utime + stime.
    fn cpu(&self) -> anyhow::Result<Duration> {
        self.0.cpu()
    }

    /// Cores QEMU keeps busy over `span`, nobody watching.
    async fn cores_over(&self, span: Duration) -> anyhow::Result<f64> {
        let (c0, t0) = (self.cpu()?, Instant::now());
        tokio::time::sleep(span).await;
        let (c1, elapsed) = (self.cpu()?, t0.elapsed());
        Ok(c1.saturating_sub(c0).as_secs_f64() / elapsed.as_secs_f64().max(1e-9))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct VncTotals {
    /// Updates carrying pixels (cursor-only ones are not frames).
    updates: u64,
    rects: u64,
    area: u64,
    bytes: u64,
}

/// A VNC viewer that only counts.
struct VncViewer {
    stream: UnixStream,
    client: RfbClient,
    buf: Vec<u8>,
    width: u16,
    height: u16,
    totals: VncTotals,
}

impl VncViewer {
    async fn connect(socket: &Path) -> anyhow::Result<VncViewer> {
        let stream = UnixStream::connect(socket)
            .await
            .with_context(|| format!("connecting to QEMU's VNC server at {}", socket.display()))?;
        Ok(VncViewer {
            stream,
            client: RfbClient::new(),
            buf: vec![0; READ_CHUNK],
            width: 0,
            height: 0,
            totals: VncTotals::default(),
        })
    }

    /// Reads, answers and counts until `span` has passed.
    async fn run_for(&mut self, span: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + span;
        loop {
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)).await {
                Err(_) => return Ok(()),
                Ok(read) => read.context("reading from the VNC server")?,
            };
            if n == 0 {
                bail!("the VNC server closed the connection");
            }
            self.client.feed(&self.buf[..n])?;
            let out = self.client.take_output();
            if !out.is_empty() {
                self.stream.write_all(&out).await?;
            }
            while let Some(event) = self.client.poll_event() {
                match event {
                    Event::Ready(info) => {
                        tracing::info!(?info, "VNC server ready");
                        (self.width, self.height) = (info.width, info.height);
                    }
                    Event::Update(u) if u.rects > 0 => {
                        let t = &mut self.totals;
                        t.updates += 1;
                        t.rects += u64::from(u.rects);
                        t.area += u.area;
                        t.bytes += u.bytes;
                    }
                    Event::Update(_) => {}
                }
            }
        }
    }
}

/// An HXFR subscriber of scanout 0 that only counts.
struct HxfrViewer {
    stream: Box<dyn crate::client::Stream>,
    decoder: Decoder,
    buf: BytesMut,
    frames: u64,
    /// Bytes read off the socket.
    bytes: u64,
}

impl Counting for HxfrViewer {
    async fn run_for(&mut self, span: Duration) -> anyhow::Result<()> {
        HxfrViewer::run_for(self, span).await
    }

    fn counts(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }
}

impl HxfrViewer {
    async fn connect(endpoint: &zerocast_hxfr_server::Endpoint) -> anyhow::Result<HxfrViewer> {
        let mut stream = crate::client::connect(endpoint).await?;
        crate::client::send(&mut stream, 0, Message::Subscribe { scanout_id: 0 }).await?;
        Ok(HxfrViewer {
            stream,
            decoder: Decoder::new(Limits::CLIENT),
            buf: BytesMut::with_capacity(READ_CHUNK),
            frames: 0,
            bytes: 0,
        })
    }

    async fn run_for(&mut self, span: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + span;
        loop {
            while let Some(packet) = self.decoder.decode(&mut self.buf)? {
                match packet.message {
                    Message::FrameResponse(_) => self.frames += 1,
                    Message::Error(e) => bail!("HXFR error {} ({})", e.code, e.message),
                    _ => {}
                }
            }
            let read = self.stream.read_buf(&mut self.buf);
            let n = match tokio::time::timeout_at(deadline, read).await {
                Err(_) => return Ok(()),
                Ok(read) => read.context("reading from the HXFR server")?,
            };
            if n == 0 {
                bail!("the HXFR server closed the connection");
            }
            self.bytes += n as u64;
        }
    }
}

/// A WebSocket viewer asking for stripes, as zerocast's page does; counts
/// video messages and their bytes on the wire (WebSocket header included).
struct WebViewer {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    frames: u64,
    bytes: u64,
}

impl WebViewer {
    async fn connect(url: &str) -> anyhow::Result<WebViewer> {
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("connecting to zerocast's viewer WebSocket")?;
        let init = tokio_tungstenite::tungstenite::Message::text(r#"{"type":"init"}"#);
        ws.send(init).await.context("sending the viewer's init")?;
        Ok(WebViewer {
            ws,
            frames: 0,
            bytes: 0,
        })
    }
}

impl Counting for WebViewer {
    async fn run_for(&mut self, span: Duration) -> anyhow::Result<()> {
        use tokio_tungstenite::tungstenite::Message as Ws;
        let deadline = tokio::time::Instant::now() + span;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(()),
                Ok(next) => next,
            };
            match next {
                Some(Ok(Ws::Binary(b))) => {
                    self.bytes += (ws_header_len(b.len()) + b.len()) as u64;
                    if matches!(b.first(), Some(0x01 | 0x02)) {
                        self.frames += 1;
                    }
                }
                Some(Ok(Ws::Close(reason))) => bail!("the viewer was closed: {reason:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading the viewer WebSocket"),
                None => bail!("the viewer WebSocket ended"),
            }
        }
    }

    fn counts(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }
}

/// Bytes of an unmasked (server to client) WebSocket frame header for a
/// payload of `len` bytes (RFC 6455, 5.2).
fn ws_header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// The median of each figure over the runs of `display`.
fn median_side(display: &'static str, runs: &[Side]) -> Option<Side> {
    let of: Vec<&Side> = runs.iter().filter(|s| s.display == display).collect();
    let first = *of.first()?;
    let med = |f: fn(&Side) -> f64| crate::bench::median(of.iter().map(|s| f(s)).collect());
    let med_opt = |f: fn(&Side) -> Option<f64>| {
        let v: Vec<f64> = of.iter().filter_map(|s| f(s)).collect();
        (!v.is_empty()).then(|| crate::bench::median(v))
    };
    Some(Side {
        display: first.display,
        seconds: med(|s| s.seconds),
        delivered_fps: med(|s| s.delivered_fps),
        bytes_per_frame: med(|s| s.bytes_per_frame),
        rects_per_update: med_opt(|s| s.rects_per_update),
        screen_share_per_update: med_opt(|s| s.screen_share_per_update),
        cpu_per_frame_ms: med(|s| s.cpu_per_frame_ms),
        cores: med(|s| s.cores),
        display_cpu_per_frame_ms: med(|s| s.display_cpu_per_frame_ms),
        display_cores: med(|s| s.display_cores),
        baseline_qemu_cores: med(|s| s.baseline_qemu_cores),
        qemu_cores: med(|s| s.qemu_cores),
        zerocast_cores: med(|s| s.zerocast_cores),
    })
}

fn print_side(s: &Side) {
    println!(
        "{:<9} {:.1} fps, {:.0} B/frame, {:.2} ms CPU/frame ({:.2} cores; display {:.2} ms, {:.2} cores; QEMU idle {:.2} cores)",
        s.display,
        s.delivered_fps,
        s.bytes_per_frame,
        s.cpu_per_frame_ms,
        s.cores,
        s.display_cpu_per_frame_ms,
        s.display_cores,
        s.baseline_qemu_cores
    );
    if let (Some(rects), Some(share)) = (s.rects_per_update, s.screen_share_per_update) {
        println!(
            "          {rects:.1} rectangles per update, {:.1}% of the screen",
            share * 100.0
        );
    }
}

fn print_table(sides: &[Side]) {
    println!(
        "| display | fps delivered | bytes per frame | host CPU per frame (cores) | display CPU per frame (cores) | QEMU with nobody watching |"
    );
    println!("|---|---|---|---|---|---|");
    for s in sides {
        println!(
            "| {} | {:.1} | {:.0} | {:.2} ms ({:.2}) | {:.2} ms ({:.2}) | {:.2} cores |",
            s.display,
            s.delivered_fps,
            s.bytes_per_frame,
            s.cpu_per_frame_ms,
            s.cores,
            s.display_cpu_per_frame_ms,
            s.display_cores,
            s.baseline_qemu_cores
        );
    }
}
