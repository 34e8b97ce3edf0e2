//! `zerocast soak`: one animated scanout under load for a while, in this
//! process, and what it cost: healthy viewers (WebSocket and HXFR) that
//! should get every frame, a throttled viewer that must not hold them back,
//! a viewer that reconnects in a loop, and a hostile client trying the
//! floods the budgets are for. Prints figures and writes JSON.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use zerocast_hxfr::{encode, Decoder, FrameRequest, Limits, Message, Packet};
use zerocast_hxfr_server::{Endpoint, ListenerRole};
use zerocast_synthetic::Motion;
use zerocast_web::Role;

use crate::demo::Stack;
use crate::options::{DesktopSize, HxfrArgs, VideoArgs};
use crate::web_access::WebAccessArgs;

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// How long to measure, after a few seconds of warm-up.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Healthy WebSocket viewers.
    #[arg(long, default_value_t = 16)]
    pub viewers: usize,
    /// Healthy HXFR subscribers.
    #[arg(long, default_value_t = 4)]
    pub subscribers: usize,
    #[command(flatten)]
    pub size: DesktopSize,
    #[command(flatten)]
    pub video: VideoArgs,
    /// Where to write the JSON report.
    #[arg(long, default_value = "soak.json")]
    pub json: PathBuf,
}

/// Before the measured window: everyone connected and past its first keyframe.
const WARM_UP: Duration = Duration::from_secs(3);
/// How often memory, descriptors and CPU are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The throttled viewer reads one message this often: far slower than the stream.
const THROTTLED_READ_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub seconds: f64,
    pub frames_encoded: u64,
    pub keyframes_encoded: u64,
    /// Per healthy viewer (WebSocket then HXFR): frames received in the window.
    pub delivered: Vec<u64>,
    /// The least and most of `delivered` over `frames_encoded`.
    pub delivered_ratio_min: f64,
    pub delivered_ratio_max: f64,
    pub throttled_delivered: u64,
    /// Whether the server let the throttled viewer go (it should skip instead).
    pub throttled_dropped: bool,
    /// Whether the server let any healthy WebSocket viewer go.
    pub healthy_dropped: bool,
    pub lagged_frames: u64,
    pub reconnects: u64,
    pub hostile_attempts: u64,
    pub rss_start_mib: f64,
    pub rss_end_mib: f64,
    /// Least-squares slope of resident memory over the window.
    pub rss_slope_mib_per_min: f64,
    /// The server's descriptors before the clients came and after they left.
    pub fds_start: usize,
    pub fds_end: usize,
    pub cpu_cores: f64,
    pub cpu_ms_per_frame: f64,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let report = soak(&args).await?;
    print(&report);
    crate::bench::write_json(&args.json, &report)
}

fn print(r: &SoakReport) {
    println!("window            {:.1} s", r.seconds);
    println!(
        "encoded           {} frames, {} keyframes",
        r.frames_encoded, r.keyframes_encoded
    );
    println!(
        "healthy viewers   {} got {:.3}..{:.3} of the frames encoded",
        r.delivered.len(),
        r.delivered_ratio_min,
        r.delivered_ratio_max
    );
    println!(
        "throttled viewer  {} frames{}; {} frames skipped by laggards",
        r.throttled_delivered,
        if r.throttled_dropped {
            ", then let go"
        } else {
            ", kept"
        },
        r.lagged_frames
    );
    println!(
        "churn             {} reconnects, {} hostile attempts",
        r.reconnects, r.hostile_attempts
    );
    println!(
        "memory            RSS {:.1} -> {:.1} MiB, slope {:+.2} MiB/min",
        r.rss_start_mib, r.rss_end_mib, r.rss_slope_mib_per_min
    );
    println!("descriptors       {} -> {}", r.fds_start, r.fds_end);
    println!(
        "cpu               {:.2} cores, {:.2} ms per frame encoded",
        r.cpu_cores, r.cpu_ms_per_frame
    );
}

/// Frames one client has received.
type Counter = Arc<AtomicU64>;

async fn soak(args: &SoakArgs) -> anyhow::Result<SoakReport> {
    let any_port: Endpoint = "tcp:127.0.0.1:0".parse().map_err(anyhow::Error::msg)?;
    let hxfr = HxfrArgs {
        subscriber: vec![any_port.clone()],
        guest: vec![any_port],
        ..HxfrArgs::default()
    };
    let listen: SocketAddr = "127.0.0.1:0".parse()?;
    let stack = Stack::start(
        args.size,
        &args.video,
        Motion::Animated,
        listen,
        &WebAccessArgs::default(),
        &hxfr,
    )
    .await?;
    let endpoint = |role| {
        stack.serving.hxfr.iter().find_map(|(e, r)| match e {
            Endpoint::Tcp(a) if *r == role => Some(*a),
            _ => None,
        })
    };
    let subscriber = endpoint(ListenerRole::Subscriber).context("subscriber endpoint")?;
    let guest = endpoint(ListenerRole::Guest).context("guest endpoint")?;
    let ws_url = stack.serving.ws_url(Role::Control, 0);
    // The server's own descriptors, before any client (they share this process).
    let fds_start = crate::process::open_fds().unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    let mut healthy: Vec<Counter> = Vec::new();
    let healthy_dropped = Arc::new(AtomicBool::new(false));
    for _ in 0..args.viewers {
        let count = Counter::default();
        healthy.push(count.clone());
        tasks.spawn(ws_viewer(
            ws_url.clone(),
            (count, healthy_dropped.clone()),
            None,
            stop.clone(),
        ));
    }
    for _ in 0..args.subscribers {
        let count = Counter::default();
        healthy.push(count.clone());
        tasks.spawn(hxfr_subscriber(subscriber, count, stop.clone()));
    }
    let throttled = Counter::default();
    let throttled_dropped = Arc::new(AtomicBool::new(false));
    tasks.spawn(ws_viewer(
        ws_url.clone(),
        (throttled.clone(), throttled_dropped.clone()),
        Some(THROTTLED_READ_EVERY),
        stop.clone(),
    ));
    let reconnects = Counter::default();
    tasks.spawn(reconnecting_viewer(
        ws_url.clone(),
        reconnects.clone(),
        stop.clone(),
    ));
    let hostile = Counter::default();
    tasks.spawn(hostile_client(
        subscriber,
        guest,
        ws_url,
        hostile.clone(),
        stop.clone(),
    ));

    tokio::time::sleep(WARM_UP).await;
    let counts =
        |c: &[Counter]| -> Vec<u64> { c.iter().map(|c| c.load(Ordering::Relaxed)).collect() };
    let (healthy0, throttled0, stats0) = (
        counts(&healthy),
        throttled.load(Ordering::Relaxed),
        stack.stream.stats(),
    );
    let (t0, cpu0) = (Instant::now(), crate::process::cpu_time());
    let mut rss = Vec::new();
    let window = Duration::from_secs_f64(args.seconds.max(1.0));
    while t0.elapsed() < window {
        rss.push((
            t0.elapsed().as_secs_f64(),
            mib(crate::process::rss_bytes().unwrap_or(0)),
        ));
        tokio::time::sleep(SAMPLE_EVERY.min(window.saturating_sub(t0.elapsed()))).await;
    }
    let (healthy1, throttled1, stats1) = (
        counts(&healthy),
        throttled.load(Ordering::Relaxed),
        stack.stream.stats(),
    );
    let (elapsed, cpu) = (
        t0.elapsed().as_secs_f64(),
        crate::process::cpu_time().saturating_sub(cpu0),
    );
    rss.push((elapsed, mib(crate::process::rss_bytes().unwrap_or(0))));
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    // The clients are gone; what is still open is the server's own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_end = crate::process::open_fds().unwrap_or(0);

    let encoded = stats1.frames.saturating_sub(stats0.frames);
    let delivered: Vec<u64> = healthy1
        .iter()
        .zip(&healthy0)
        .map(|(b, a)| b.saturating_sub(*a))
        .collect();
    let ratio = |d: u64| ratio(d, encoded);
    Ok(SoakReport {
        seconds: elapsed,
        frames_encoded: encoded,
        keyframes_encoded: stats1.keyframes.saturating_sub(stats0.keyframes),
        delivered_ratio_min: delivered
            .iter()
            .copied()
            .map(ratio)
            .fold(f64::MAX, f64::min),
        delivered_ratio_max: delivered.iter().copied().map(ratio).fold(0.0, f64::max),
        delivered,
        throttled_delivered: throttled1.saturating_sub(throttled0),
        throttled_dropped: throttled_dropped.load(Ordering::Relaxed),
        healthy_dropped: healthy_dropped.load(Ordering::Relaxed),
        lagged_frames: stats1.lagged.saturating_sub(stats0.lagged),
        reconnects: reconnects.load(Ordering::Relaxed),
        hostile_attempts: hostile.load(Ordering::Relaxed),
        rss_start_mib: rss.first().map_or(0.0, |s| s.1),
        rss_end_mib: rss.last().map_or(0.0, |s| s.1),
        rss_slope_mib_per_min: slope(&rss) * 60.0,
        fds_start,
        fds_end,
        cpu_cores: cpu.as_secs_f64() / elapsed,
        cpu_ms_per_frame: cpu.as_secs_f64() * 1000.0
            / f64::from(u32::try_from(encoded.max(1)).unwrap_or(u32::MAX)),
    })
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    // Far below 2^52 bytes: exact enough.
    bytes as f64 / f64::from(1u32 << 20)
}

#[allow(clippy::cast_precision_loss)]
fn ratio(part: u64, whole: u64) -> f64 {
    // Frame counts of one run: far below 2^52.
    part as f64 / whole.max(1) as f64
}

/// Least-squares slope of `y` over `x`; 0 with fewer than two points.
#[allow(clippy::cast_precision_loss)]
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// A WebSocket viewer: counts video frames; `pace` reads one message per
/// interval, like a viewer on a very slow link.
async fn ws_viewer(
    url: String,
    (count, dropped): (Counter, Arc<AtomicBool>),
    pace: Option<Duration>,
    stop: Arc<AtomicBool>,
) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    if ws
        .send(WsMessage::text(r#"{"type":"init"}"#))
        .await
        .is_err()
    {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let next = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
        match next {
            Ok(Some(Ok(WsMessage::Binary(b)))) if b.first() == Some(&0x01) => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(None | Some(Err(_))) => {
                // The server let this viewer go before the soak ended.
                dropped.store(true, Ordering::Relaxed);
                return;
            }
        }
        if let Some(pace) = pace {
            tokio::time::sleep(pace).await;
        }
    }
}

/// An HXFR subscriber of scanout 0: counts pushed frames.
async fn hxfr_subscriber(addr: SocketAddr, count: Counter, stop: Arc<AtomicBool>) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let mut out = BytesMut::new();
    encode(
        &Packet::new(0, Message::Subscribe { scanout_id: 0 }),
        &mut out,
    );
    if s.write_all(&out).await.is_err() {
        return;
    }
    let decoder = Decoder::new(Limits::CLIENT);
    let mut buf = BytesMut::new();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(Some(p)) = decoder.decode(&mut buf) {
            if matches!(p.message, Message::FrameResponse(_)) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let read = tokio::time::timeout(Duration::from_millis(200), s.read_buf(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return;
        }
    }
}

/// A viewer that connects, watches for a second and leaves, again and again.
async fn reconnecting_viewer(url: String, count: Counter, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let frames = Counter::default();
        let one = Arc::new(AtomicBool::new(false));
        let gone = Arc::new(AtomicBool::new(false));
        let viewer = tokio::spawn(ws_viewer(url.clone(), (frames, gone), None, one.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        one.store(true, Ordering::Relaxed);
        let _ = viewer.await;
        count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Tries, in turn, the floods the budgets are for: junk on HXFR, a session
/// flood on the guest endpoint, a keyframe-request flood, a WebSocket that
/// never says hello.
async fn hostile_client(
    subscriber: SocketAddr,
    guest: SocketAddr,
    ws_url: String,
    count: Counter,
    stop: Arc<AtomicBool>,
) {
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let mut out = BytesMut::new();
        let target = match round % 4 {
            0 => {
                for _ in 0..64 {
                    encode(
                        &Packet::new(1, Message::DisableScanout { scanout_id: 0 }),
                        &mut out,
                    );
                }
                Some(subscriber)
            }
            1 => {
                let request = Message::FrameRequest(FrameRequest {
                    resource_id: 1,
                    ..FrameRequest::default()
                });
                for session in 0..16 {
                    encode(&Packet::new(session, request.clone()), &mut out);
                }
                Some(guest)
            }
            2 => {
                encode(
                    &Packet::new(0, Message::Subscribe { scanout_id: 0 }),
                    &mut out,
                );
                for _ in 0..200 {
                    encode(&Packet::new(0, Message::KeyframeReq), &mut out);
                }
                Some(subscriber)
            }
            _ => {
                // Connected, and silent until the gateway gives up on it.
                if let Ok((ws, _)) = tokio_tungstenite::connect_async(ws_url.as_str()).await {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    drop(ws);
                }
                None
            }
        };
        if let Some(addr) = target {
            if let Ok(mut s) = TcpStream::connect(addr).await {
                let _ = s.write_all(&out).await;
                // Read whatever comes back for a moment, then leave.
                let mut sink = vec![0u8; 65536];
                let _ = tokio::time::timeout(Duration::from_millis(300), async {
                    while let Ok(n) = s.read(&mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
        round = round.wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_too_little() {
        let line: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 3.0 + 0.5 * f64::from(i)))
            .collect();
        assert!((slope(&line) - 0.5).abs() < 1e-9);
        assert!(slope(&line[..1]).abs() < f64::EPSILON);
        assert!(slope(&[(1.0, 1.0), (1.0, 2.0)]).abs() < f64::EPSILON);
    }
}
