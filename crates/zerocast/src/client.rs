//! `zerocast client`: an HXFR peer that writes what it receives as a raw
//! H.264 Annex B file any player reads (`ffprobe out.h264`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use clap::Args;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use zerocast_frame::PixelFormat;
use zerocast_hxfr::{encode, Decoder, FrameRequest, Limits, Message, Packet};
use zerocast_hxfr_server::Endpoint;

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The HXFR server: tcp:HOST:PORT or unix:PATH.
    #[arg(long, default_value = "tcp:127.0.0.1:15937")]
    pub connect: Endpoint,
    /// Subscribe to this scanout (scanout mode).
    #[arg(long, default_value_t = 0, conflicts_with = "resource")]
    pub scanout: u32,
    /// Request this resource id instead (request/response mode); needs the
    /// resource's --width, --height and --stride.
    #[arg(long)]
    pub resource: Option<u32>,
    /// Resource width (request/response mode).
    #[arg(long, default_value_t = 1920)]
    pub width: u32,
    /// Resource height (request/response mode).
    #[arg(long, default_value_t = 1080)]
    pub height: u32,
    /// Resource stride in bytes (request/response mode; default width * 4).
    #[arg(long)]
    pub stride: Option<u32>,
    /// Number of frames to write.
    #[arg(long, default_value_t = 120)]
    pub frames: u64,
    /// Output file for the raw H.264 stream.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
}

pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub(crate) async fn connect(endpoint: &Endpoint) -> anyhow::Result<Box<dyn Stream>> {
    Ok(match endpoint {
        Endpoint::Tcp(a) => Box::new(
            TcpStream::connect(a)
                .await
                .with_context(|| format!("connecting to {endpoint}"))?,
        ),
        Endpoint::Unix(p) => Box::new(
            UnixStream::connect(p)
                .await
                .with_context(|| format!("connecting to {endpoint}"))?,
        ),
    })
}

pub(crate) async fn send(
    s: &mut Box<dyn Stream>,
    session_id: u16,
    message: Message,
) -> anyhow::Result<()> {
    let mut b = BytesMut::new();
    encode(&Packet::new(session_id, message), &mut b);
    s.write_all(&b).await?;
    Ok(())
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout.max(0.1));
    tokio::time::timeout_at(deadline.into(), receive(&args))
        .await
        .with_context(|| format!("no {} frames within {} s", args.frames, args.timeout))?
}

async fn receive(args: &ClientArgs) -> anyhow::Result<()> {
    let mut stream = connect(&args.connect).await?;
    let request = args.resource.map(|id| FrameRequest {
        resource_id: id,
        width: args.width,
        height: args.height,
        format: PixelFormat::Xrgb8888.fourcc(),
        stride: args.stride.unwrap_or(args.width.saturating_mul(4)),
        duration_ns: 16_666_667,
        ..FrameRequest::default()
    });
    match request {
        Some(req) => send(&mut stream, 1, Message::FrameRequest(req)).await?,
        None => {
            let id = args.scanout;
            // The session is named after the scanout; none is numbered past u16.
            let Ok(session) = u16::try_from(id) else {
                bail!("scanout {id} does not exist");
            };
            send(&mut stream, session, Message::Subscribe { scanout_id: id }).await?;
        }
    }
    let mut out = tokio::fs::File::create(&args.output)
        .await
        .with_context(|| format!("creating {}", args.output.display()))?;
    let decoder = Decoder::new(Limits::CLIENT);
    let mut buf = BytesMut::with_capacity(1 << 20);
    let (mut written, mut keyframes, mut bytes) = (0u64, 0u64, 0u64);
    while written < args.frames {
        let packet = loop {
            if let Some(p) = decoder.decode(&mut buf)? {
                break p;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("server closed the connection after {written} frames");
            }
        };
        match packet.message {
            Message::FrameResponse(r) => {
                for nal in &r.nals {
                    out.write_all(nal).await?;
                    bytes += nal.len() as u64;
                }
                written += 1;
                keyframes += u64::from(r.is_keyframe);
                if let Some(mut req) = request {
                    if written < args.frames {
                        req.pts_ns = i64::try_from(written * 16_666_667).unwrap_or(i64::MAX);
                        send(&mut stream, 1, Message::FrameRequest(req)).await?;
                    }
                }
            }
            Message::SubscribeResp(r) if !r.success => {
                bail!("scanout {} does not exist", r.scanout_id)
            }
            Message::Error(e) => bail!("server refused: error {} ({})", e.code, e.message),
            _ => {}
        }
    }
    out.flush().await?;
    println!(
        "wrote {written} frames ({keyframes} keyframes, {bytes} bytes) to {}",
        args.output.display()
    );
    Ok(())
}
