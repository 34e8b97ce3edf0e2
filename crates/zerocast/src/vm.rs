//! `zerocast vm`: boots a QEMU guest whose display is our own virtio-gpu
//! backend, encodes each scanout straight from guest memory, serves it to
//! browsers and HXFR peers, and sends the viewers' input back through QMP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use zerocast_gpu::GpuBackendHandle;
use zerocast_hxfr_server::{Endpoint, ListenerRole};
use zerocast_input::InputSink;
use zerocast_pipeline::{PublishedStream, Registry, Stream};
use zerocast_qemu::{Accel, Gpu, Qmp, QmpInput, Vm, VmConfig, VsockDevice};
use zerocast_web::Gateway;

use crate::gpu_streams::{self, GpuStreams};
use crate::guest_session::AgentSession;
use crate::options::{DisplayArgs, HxfrArgs, VideoArgs};
use crate::runtime_dir::RuntimeDir;
use crate::serving::Serving;
use crate::stop::Stop;
use crate::web_access::WebAccessArgs;

/// The stream id under which a guest agent publishes the frames it encoded
/// (past every scanout id, which are below [`zerocast_gpu::MAX_SCANOUTS`]).
pub const GUEST_STREAM: u32 = 16;

/// How long viewers of a VM that stopped get to hear why before the
/// process exits.
const FAREWELL: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub struct VmArgs {
    /// Linux kernel to boot (with --initrd), e.g. work/guest/vmlinuz from scripts/build-guest.sh; with --disk, that image is its /dev/vda (say root=/dev/vda in --append).
    #[arg(long, required_unless_present = "disk")]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk for --kernel.
    #[arg(long, requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (console=ttyS0 is always added).
    #[arg(long, default_value = "")]
    pub append: String,
    /// A disk image (qcow2 or raw), the guest's /dev/vda: booted itself without --kernel, e.g. a Debian cloud image with a desktop.
    #[arg(long)]
    pub disk: Option<PathBuf>,
    /// Open --disk with QEMU's snapshot=on: the guest's writes are dropped at exit and the image is never modified.
    #[arg(long, requires = "disk")]
    pub disk_snapshot: bool,
    /// Guest memory in MiB (shared with zerocast through a memfd).
    #[arg(long, default_value_t = 1024)]
    pub memory: u32,
    /// CPU virtualisation: tcg works everywhere; kvm needs a working /dev/kvm.
    #[arg(long, value_enum, default_value_t = AccelArg::Tcg)]
    pub accel: AccelArg,
    #[command(flatten)]
    pub display: DisplayArgs,
    #[command(flatten)]
    pub video: VideoArgs,
    /// Where the web viewer listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub access: WebAccessArgs,
    #[command(flatten)]
    pub hxfr: HxfrArgs,
    /// Give the guest vsock (through rust-vmm's vhost-device-vsock) and serve
    /// HXFR on host port --vsock-port there, for a guest agent
    /// (`zerocast-guest`): request/response by resource id, and stream
    /// 16 for what the agent publishes (docs/hxfr.md).
    #[arg(long)]
    pub vsock: bool,
    /// The vsock port HXFR is served on (helix's deployment uses 5001).
    #[arg(long, default_value_t = zerocast_hxfr::DEFAULT_VSOCK_PORT)]
    pub vsock_port: u32,
    /// With --vsock, the vsock port where the agent in the guest's desktop
    /// session (`zerocast-guest --session true`) connects: viewers with
    /// control resize the guest's screen, share its clipboard and type text
    /// through it.
    #[arg(long, default_value_t = zerocast_session::DEFAULT_VSOCK_PORT)]
    pub session_port: u32,
    /// A host folder the guest may read, over 9p with mount tag `zerocast`
    /// (read-only): how a guest image without the agent gets it, e.g. a
    /// folder holding zerocast-guest.
    #[arg(long, value_name = "DIR")]
    pub share: Option<PathBuf>,
    /// Folder for the VM's sockets and serial log: yours alone (mode 0700,
    /// not a symlink), created if missing, kept afterwards. Default: a new
    /// private one in $XDG_RUNTIME_DIR (/run/zerocast for root, else the
    /// temp dir), removed at exit.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Extra arguments passed to QEMU as they are.
    #[arg(long = "qemu-arg", allow_hyphen_values = true)]
    pub qemu_args: Vec<String>,
    /// Stop after this many seconds (default: until Ctrl-C or the guest powers off).
    #[arg(long)]
    pub duration: Option<f64>,
}

impl VmArgs {
    /// A VM for the benchmark: the given guest on free loopback ports.
    pub fn for_bench(
        kernel: &std::path::Path,
        initrd: &std::path::Path,
        append: &str,
        video: &VideoArgs,
        listen: SocketAddr,
    ) -> VmArgs {
        VmArgs {
            kernel: Some(kernel.into()),
            initrd: Some(initrd.into()),
            append: append.into(),
            disk: None,
            disk_snapshot: false,
            memory: 512,
            accel: AccelArg::Tcg,
            display: DisplayArgs::default(),
            video: video.clone(),
            listen,
            access: WebAccessArgs::default(),
            hxfr: HxfrArgs::default(),
            vsock: false,
            vsock_port: zerocast_hxfr::DEFAULT_VSOCK_PORT,
            session_port: zerocast_session::DEFAULT_VSOCK_PORT,
            share: None,
            work_dir: None,
            qemu_args: Vec::new(),
            duration: None,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AccelArg {
    Tcg,
    Kvm,
}

/// A running VM with its GPU backend, pipelines, HXFR listeners and gateway.
pub struct VmStack {
    pub vm: Vm,
    pub gpu: Arc<GpuBackendHandle>,
    pub scanouts: Vec<Arc<Stream>>,
    /// Every stream viewers and HXFR peers can reach: another can be added
    /// while the VM runs (the benchmark's host-side baseline).
    pub registry: Arc<Registry>,
    pub serving: Serving,
    pub serial_log: PathBuf,
    /// Keys and pointer into the guest (QMP), as viewers' input goes.
    pub input: Arc<dyn InputSink>,
    /// What a guest agent publishes (with `--vsock`).
    pub guest_stream: Option<Arc<Stream>>,
    /// Kept alive as long as the VM.
    vsock: Option<VsockDevice>,
    /// Dropped last: removes a work folder zerocast made itself.
    _work: RuntimeDir,
}

impl VmStack {
    pub async fn start(args: &VmArgs) -> anyhow::Result<VmStack> {
        // Before anything is started: a refused --listen costs no boot.
        let tls = args.access.tls(args.listen)?;
        let work_dir = match &args.work_dir {
            Some(d) => RuntimeDir::given(d).context("checking --work-dir")?,
            None => RuntimeDir::create("zerocast-vm").context("creating the VM's work folder")?,
        };
        let work = work_dir.path().to_owned();
        let gpu_socket = work.join("gpu.sock");
        let qmp_socket = work.join("qmp.sock");
        let serial_log = work.join("serial.log");

        let gpu = GpuBackendHandle::start(&gpu_socket, args.display.gpu_config())
            .context("starting the GPU backend")?;
        let gpu = Arc::new(gpu);
        let vsock = match args.vsock {
            true => Some(
                VsockDevice::spawn(&work, 3)
                    .await
                    .context("starting the vsock device")?,
            ),
            false => None,
        };
        let mut config = VmConfig::new(
            Gpu::VhostUser {
                socket: gpu_socket.clone(),
            },
            &qmp_socket,
            &serial_log,
        );
        config.kernel = args.kernel.clone();
        config.initrd = args.initrd.clone();
        config.append = args.append.clone();
        config.disk = args.disk.clone();
        config.disk_snapshot = args.disk_snapshot;
        config.memory_mb = args.memory;
        config.accel = match args.accel {
            AccelArg::Tcg => Accel::Tcg,
            AccelArg::Kvm => Accel::Kvm,
        };
        config.scanouts = args.display.scanouts;
        config.vsock = vsock.as_ref().map(|v| v.socket().to_owned());
        config.share = args.share.clone();
        config.extra_args = args.qemu_args.clone();
        let vm = Vm::spawn(&config).context("starting QEMU")?;
        let qmp = Qmp::connect(&qmp_socket, Duration::from_secs(30))
            .await
            .context("connecting to QEMU's QMP socket")?;
        let input: Arc<dyn InputSink> =
            Arc::new(QmpInput::start(qmp, &qmp_socket).context("starting QMP input")?);

        let GpuStreams { registry, scanouts } =
            GpuStreams::start(&gpu, args.display.scanouts, &args.video)?;
        let mut endpoints = args.hxfr.endpoints(&work)?;
        let limits = args.hxfr.limits();
        let mut guest_stream = None;
        let mut session = None;
        if let Some(v) = &vsock {
            session = Some(AgentSession::listen(&v.host_listener(args.session_port))?);
            // The guest's own endpoint: it reaches its own resources and stream.
            endpoints.push((
                Endpoint::Unix(v.host_listener(args.vsock_port)),
                ListenerRole::Guest,
            ));
            let stream = registry.add(Stream::Published(PublishedStream::new(
                GUEST_STREAM,
                "frames published by the guest agent",
            )));
            guest_stream = Some(stream);
        }
        let mut gateway =
            Gateway::new(registry.clone(), Some(input.clone()), args.access.config()?)
                .with_source_stats(gpu_streams::source_stats(gpu.clone()));
        if let Some(session) = session {
            gateway = gateway.with_session(session);
        }
        let serving = crate::serving::start(
            registry.clone(),
            gateway,
            &endpoints,
            limits,
            args.listen,
            tls,
        )
        .await?;
        Ok(VmStack {
            vm,
            gpu,
            scanouts,
            registry,
            serving,
            serial_log,
            input,
            guest_stream,
            vsock,
            _work: work_dir,
        })
    }

    /// After QEMU has gone: its scanouts' streams end as the GPU backend sees
    /// the socket close, and the guest's own stream is ended here; waits
    /// (at most [`FAREWELL`]) until every viewer has been told "the VM
    /// stopped" and let go.
    async fn farewell(&self) {
        let published = self.guest_stream.as_deref().and_then(Stream::as_published);
        if let Some(p) = published {
            p.end("the VM stopped");
        }
        let deadline = Instant::now() + FAREWELL;
        let streams = || self.scanouts.iter().chain(&self.guest_stream);
        while streams().any(|s| s.subscribers() > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The vhost-device-vsock process giving the guest vsock (with
    /// `--vsock`), while it runs.
    pub fn vsock_pid(&self) -> Option<u32> {
        self.vsock.as_ref().and_then(VsockDevice::pid)
    }

    /// Stops QEMU and logs what the GPU and the encoders did.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.vm.kill().await?;
        gpu_streams::log_totals(&self.gpu, &self.scanouts);
        Ok(())
    }
}

pub async fn run(args: VmArgs) -> anyhow::Result<()> {
    let stack = VmStack::start(&args).await?;
    let serial = format!("serial: {}", stack.serial_log.display());
    let stop = Stop::watch(args.duration);
    stack.serving.announce(&[serial])?;

    let exited = tokio::select! {
        _ = stop.stopped() => {
            tracing::info!("stopping the VM");
            None
        }
        status = stack.vm.exited() => Some(status),
    };
    if exited.is_some() {
        stack.farewell().await;
    }
    stack.stop().await?;
    match exited {
        None => Ok(()),
        // The guest powered off: a normal end.
        Some(Ok(status)) if status.success() => Ok(()),
        Some(Ok(status)) => anyhow::bail!("QEMU ended by itself ({status}): the VM is gone"),
        Some(Err(e)) => Err(e).context("waiting for QEMU"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        vm: VmArgs,
    }

    fn parse(args: &[&str]) -> Result<VmArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("vm").chain(args.iter().copied())).map(|c| c.vm)
    }

    #[test]
    fn a_disk_goes_with_a_kernel_or_alone() {
        let a = parse(&[
            "--disk",
            "desktop.raw",
            "--disk-snapshot",
            "--kernel",
            "vmlinuz",
            "--initrd",
            "initrd.img",
            "--append",
            "root=/dev/vda rw",
        ])
        .unwrap();
        assert_eq!(a.disk, Some("desktop.raw".into()));
        assert_eq!(a.kernel, Some("vmlinuz".into()));
        assert_eq!(a.append, "root=/dev/vda rw");
        assert!(a.disk_snapshot);

        let a = parse(&["--disk", "desktop.qcow2"]).unwrap();
        assert_eq!((a.kernel, a.disk_snapshot), (None, false));

        // A snapshot of no disk, and nothing to boot, are refused.
        assert!(parse(&["--kernel", "vmlinuz", "--disk-snapshot"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
