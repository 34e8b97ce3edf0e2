//! `zerocast attach`: streams a VM that keeps QEMU's own GPU, through
//! QEMU's D-Bus display (`-display dbus,addr=...`, or libvirt's
//! `<graphics type='dbus' address=.../>`): the console's pictures are
//! encoded like a scanout of `zerocast vm`, served by the same gateway and
//! HXFR endpoints, and viewers' input goes back through the console.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use zerocast_input::InputSink;
use zerocast_pipeline::{Registry, ScanoutPipeline, Stream};
use zerocast_web::Gateway;

use crate::options::{HxfrArgs, VideoArgs};
use crate::runtime_dir::RuntimeDir;
use crate::stop::Stop;
use crate::web_access::WebAccessArgs;

/// How long each step of attaching may take before it is an error.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The D-Bus address of the bus QEMU's display is on (QEMU started with
    /// `-display dbus,addr=ADDRESS`), e.g. `unix:path=/run/vm/dbus.sock`.
    #[arg(long)]
    pub dbus: String,
    /// Which of QEMU's consoles to show (`/org/qemu/Display1/Console_N`).
    #[arg(long, default_value_t = 0)]
    pub console: u32,
    #[command(flatten)]
    pub video: VideoArgs,
    /// Where the web viewer listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub access: WebAccessArgs,
    #[command(flatten)]
    pub hxfr: HxfrArgs,
    /// Folder for the HXFR socket: yours alone (mode 0700), created if
    /// missing. Default: a new private one, removed at exit.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Stop after this many seconds (default: until Ctrl-C or QEMU goes).
    #[arg(long)]
    pub duration: Option<f64>,
}

pub async fn run(args: AttachArgs) -> anyhow::Result<()> {
    let tls = args.access.tls(args.listen)?;
    let work_dir = match &args.work_dir {
        Some(d) => RuntimeDir::given(d).context("checking --work-dir")?,
        None => RuntimeDir::create("zerocast-attach").context("creating a work folder")?,
    };
    let attached = zerocast_dbus_display::connect(&args.dbus, args.console, ATTACH_TIMEOUT)
        .await
        .with_context(|| format!("attaching to QEMU's D-Bus display at {}", args.dbus))?;
    let counters = attached.source.shared();
    let registry = Arc::new(Registry::new(args.video.encoder, args.video.settings()));
    // One console, shown as scanout 0 like the first display of `zerocast vm`.
    let stream = registry.add(Stream::Encoded(ScanoutPipeline::start(
        Box::new(attached.source),
        args.video.pipeline(0),
    )?));
    tracing::info!("scanout 0: {}", stream.describe());
    let input: Arc<dyn InputSink> = Arc::new(attached.input);
    let stats = counters.clone();
    let gateway = Gateway::new(registry.clone(), Some(input), args.access.config()?)
        .with_source_stats(Box::new(move || {
            serde_json::json!({
                "scanouts": stats.scanouts.load(Ordering::Relaxed),
                "updates": stats.updates.load(Ordering::Relaxed),
                "map_updates": stats.map_updates.load(Ordering::Relaxed),
                "bytes_received": stats.bytes_received.load(Ordering::Relaxed),
            })
        }));
    let endpoints = args.hxfr.endpoints(work_dir.path())?;
    let serving = crate::serving::start(
        registry,
        gateway,
        &endpoints,
        args.hxfr.limits(),
        args.listen,
        tls,
    )
    .await?;
    let stop = Stop::watch(args.duration);
    serving.announce(&[format!(
        "attached: console {} ({})",
        args.console, attached.label
    )])?;

    tokio::select! {
        _ = stop.stopped() => tracing::info!("detaching"),
        _ = counters.closed() => tracing::info!("QEMU's display went away"),
    }
    let ps = stream.stats();
    tracing::info!(
        "console {}: {} frames encoded, {} keyframes; QEMU sent {} pictures, {} updates with {} bytes of pixels, {} shared-memory updates",
        args.console,
        ps.frames,
        ps.keyframes,
        counters.scanouts.load(Ordering::Relaxed),
        counters.updates.load(Ordering::Relaxed),
        counters.bytes_received.load(Ordering::Relaxed),
        counters.map_updates.load(Ordering::Relaxed),
    );
    Ok(())
}
