//! `zerocast demo`: the synthetic desktop, served to browsers (WebSocket)
//! and to HXFR peers (scanout 0 by SUBSCRIBE, resource 1 by FRAME_REQUEST).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Args;
use zerocast_frame::FrameSource;
use zerocast_input::InputSink;
use zerocast_pipeline::{Registry, ResourceError, ResourceReader, ScanoutPipeline, Stream};
use zerocast_synthetic::{Motion, SyntheticDesktop, Workload, WorkloadScene, WorkloadSource};
use zerocast_web::Gateway;

use crate::options::{DesktopSize, HxfrArgs, VideoArgs};
use crate::runtime_dir::RuntimeDir;
use crate::serving::Serving;
use crate::stop::Stop;
use crate::web_access::WebAccessArgs;

/// The resource id request/response clients can ask for.
pub const DEMO_RESOURCE_ID: u32 = 1;

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub size: DesktopSize,
    #[command(flatten)]
    pub video: VideoArgs,
    /// Draw one picture and redraw only on input: a still screen costs no encoding.
    #[arg(long = "static", conflicts_with = "workload")]
    pub still: bool,
    /// Instead of the desktop, a benchmark workload (typing, clock, drag,
    /// scroll, video) at --fps, each frame damaging only what it redrew:
    /// what stripes save, as a viewer sees it. Input is not taken.
    #[arg(long)]
    pub workload: Option<Workload>,
    /// With --workload: stop after this many frames and stay still.
    #[arg(long, requires = "workload")]
    pub workload_frames: Option<u64>,
    /// Where the web viewer listens. Binds to loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub access: WebAccessArgs,
    #[command(flatten)]
    pub hxfr: HxfrArgs,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
}

/// Resource 1: a synthetic desktop rendered afresh for each FRAME_REQUEST.
struct SyntheticResources(Mutex<SyntheticDesktop>);

impl ResourceReader for SyntheticResources {
    fn read(
        &self,
        id: u32,
        f: &mut dyn FnMut(zerocast_frame::Frame<'_>),
    ) -> Result<(), ResourceError> {
        if id != DEMO_RESOURCE_ID {
            return Err(ResourceError::NotFound(id));
        }
        let mut desktop = self.0.lock().unwrap_or_else(|e| e.into_inner());
        desktop.render();
        let frame = desktop.frame().ok_or(ResourceError::NoPixels(id))?;
        f(frame);
        Ok(())
    }
}

/// A running synthetic desktop with its HXFR listeners and web gateway.
pub struct Stack {
    pub stream: Arc<Stream>,
    pub serving: Serving,
    /// Holds the default HXFR socket; removed when the demo stops.
    _private: RuntimeDir,
}

/// What a demo shows.
#[derive(Debug, Clone, Copy)]
pub enum Picture {
    /// The synthetic desktop, which takes input.
    Desktop(Motion),
    /// A workload, for at most this many frames.
    Workload(Workload, Option<u64>),
}

impl Stack {
    /// The synthetic desktop's stack.
    pub async fn start(
        size: DesktopSize,
        v: &VideoArgs,
        motion: Motion,
        listen: SocketAddr,
        access: &WebAccessArgs,
        hxfr: &HxfrArgs,
    ) -> anyhow::Result<Stack> {
        Self::start_picture(size, v, Picture::Desktop(motion), listen, access, hxfr).await
    }

    pub async fn start_picture(
        size: DesktopSize,
        v: &VideoArgs,
        picture: Picture,
        listen: SocketAddr,
        access: &WebAccessArgs,
        hxfr: &HxfrArgs,
    ) -> anyhow::Result<Stack> {
        size.check()?;
        let tls = access.tls(listen)?;
        let (source, input): (Box<dyn FrameSource>, Option<Arc<dyn InputSink>>) = match picture {
            Picture::Desktop(motion) => {
                let desktop = SyntheticDesktop::new(size.width, size.height, v.fps, motion);
                let input: Arc<dyn InputSink> = desktop.input();
                (Box::new(desktop), Some(input))
            }
            Picture::Workload(kind, frames) => {
                let scene = WorkloadScene::new(kind, size.width, size.height);
                (Box::new(WorkloadSource::new(scene, v.fps, frames)), None)
            }
        };
        let resources = SyntheticResources(Mutex::new(SyntheticDesktop::new(
            size.width,
            size.height,
            v.fps,
            Motion::Static,
        )));
        let config = v.pipeline(0);
        let pipeline = ScanoutPipeline::start(source, config).context("starting the encoder")?;
        let registry =
            Arc::new(Registry::new(v.encoder, v.settings()).with_resources(Arc::new(resources)));
        let stream = registry.add(Stream::Encoded(pipeline));
        tracing::info!("scanout 0: {}", stream.describe());

        let gateway = Gateway::new(registry.clone(), input, access.config()?);
        let private = RuntimeDir::create("zerocast-demo").context("creating the demo's folder")?;
        let endpoints = hxfr.endpoints(private.path())?;
        let limits = hxfr.limits();
        let serving =
            crate::serving::start(registry, gateway, &endpoints, limits, listen, tls).await?;
        Ok(Stack {
            stream,
            serving,
            _private: private,
        })
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let picture = match (args.workload, args.still) {
        (Some(kind), _) => Picture::Workload(kind, args.workload_frames),
        (None, true) => Picture::Desktop(Motion::Static),
        (None, false) => Picture::Desktop(Motion::Animated),
    };
    let stack = Stack::start_picture(
        args.size,
        &args.video,
        picture,
        args.listen,
        &args.access,
        &args.hxfr,
    )
    .await?;
    let encoder = format!("encoder: {}", stack.stream.describe());
    let stop = Stop::watch(args.duration);
    stack.serving.announce(&[encoder])?;

    stop.stopped().await;
    let s = stack.stream.stats();
    tracing::info!(
        "encoded {} frames ({} keyframes, {} bytes), encode p50 {:?} us, p99 {:?} us",
        s.frames,
        s.keyframes,
        s.bytes,
        s.encode.percentile_us(50.0),
        s.encode.percentile_us(99.0)
    );
    Ok(())
}
