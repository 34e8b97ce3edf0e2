//! `zerocast gpu-backend` (and `zerocast-vhost-user-gpu`, the same
//! program under the name a vhost-user descriptor points at): zerocast's
//! virtio-gpu as a backend program that QEMU's management starts, following
//! the "Backend program conventions" of QEMU's docs/interop/vhost-user.rst:
//! `--print-capabilities`, `--fd=N` or `--socket-path=PATH`, no
//! daemonizing, a quick end on SIGTERM, an early non-zero exit for what it
//! cannot do. It serves the guest's scanouts like `zerocast vm` does, from
//! its own web viewer and HXFR endpoint. libvirt passes nothing but `--fd`
//! and sends a backend's stdout and stderr to /dev/null (libvirt 9.0), so
//! besides stderr the backend announces its addresses in a file named
//! after the domain, in a private folder (`/run/zerocast/vms` for root).

use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use zerocast_frame::{Doorbell, FrameSource, SourceEvent};
use zerocast_gpu::GpuBackendHandle;
use zerocast_hxfr_server::{Endpoint, ListenerRole};
use zerocast_web::Gateway;

use crate::gpu_streams::{self, GpuStreams};
use crate::options::{DisplayArgs, HxfrArgs, VideoArgs};
use crate::registration::{Hello, Reply};
use crate::runtime_dir::RuntimeDir;
use crate::serving::Serving;
use crate::stop::Stop;
use crate::web_access::WebAccessArgs;

/// What `--print-capabilities` answers. QEMU's vhost-user.json knows two
/// gpu features, `render-node` and `virgl`; both are for 3D rendering,
/// which this backend does not do, so it claims neither.
pub const CAPABILITIES: &str = r#"{"type":"gpu","features":[]}"#;

/// Where the defaults libvirt cannot pass on the command line are read from.
pub const DEFAULT_CONFIG: &str = "/etc/zerocast/gpu-backend.json";

/// Where root's backends announce themselves by default.
pub const ROOT_ANNOUNCE_DIR: &str = "/run/zerocast/vms";

/// Where libvirt keeps a vhost-user-gpu backend's pid file,
/// `ID-NAME-VIDEO-vhost-user-gpu.pid` (the domain's short name: its id and
/// its name cut to 20 characters, then the video device's alias).
const LIBVIRT_PID_DIR: &str = "/run/libvirt/qemu";
const LIBVIRT_PID_SUFFIX: &str = "-vhost-user-gpu.pid";

#[derive(Args, Debug)]
pub struct GpuBackendArgs {
    /// Print the backend's capabilities as JSON and exit; every other
    /// option is then ignored.
    #[arg(long)]
    pub print_capabilities: bool,
    /// Serve the vhost-user connection already open as this file
    /// descriptor (libvirt starts backends so). Not with --socket-path.
    #[arg(long, value_name = "FDNUM", value_parser = clap::value_parser!(RawFd).range(0..))]
    pub fd: Option<RawFd>,
    /// Listen for QEMU on this Unix socket (mode 0600, a stale one
    /// replaced) and serve the first connection. Not with --fd.
    #[arg(long, value_name = "PATH")]
    pub socket_path: Option<PathBuf>,
    /// 3D rendering with virgl: not supported; asking for it is refused at once.
    #[arg(long)]
    pub virgl: bool,
    /// A DRM render node for 3D: not supported; refused at once.
    #[arg(long, value_name = "PATH")]
    pub render_node: Option<PathBuf>,
    #[command(flatten)]
    pub display: DisplayArgs,
    #[command(flatten)]
    pub video: VideoArgs,
    /// Where the web viewer listens. Default: the config file's `listen`,
    /// else a free port on loopback; the URL is printed on stderr.
    #[arg(long, env = "ZEROCAST_BACKEND_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// A private folder (0700, created if missing) where the backend also
    /// writes its addresses and viewer URLs, as `DOMAIN.txt` (0600, removed
    /// at exit). Default: the config file's `announce_dir`, else
    /// /run/zerocast/vms when root, else none.
    #[arg(long, env = "ZEROCAST_BACKEND_ANNOUNCE_DIR")]
    pub announce_dir: Option<PathBuf>,
    #[command(flatten)]
    pub access: WebAccessArgs,
    #[command(flatten)]
    pub hxfr: HxfrArgs,
    /// Register with `zerocast serve` on this socket: the daemon then
    /// serves this VM's displays (and its input), and this backend opens no
    /// web viewer of its own unless --listen is given. Default: the config
    /// file's `serve`, else the daemon's default socket if it exists
    /// (/run/zerocast/serve.sock for root). `none`: never.
    #[arg(long, env = crate::serve::SOCKET_ENV, value_name = "PATH")]
    pub serve: Option<PathBuf>,
    /// The VM's name for the daemon's list. Default: the libvirt domain's
    /// (from libvirt's status files), else `gpu-backend-PID`.
    #[arg(long)]
    pub name: Option<String>,
    /// A JSON file of defaults for what libvirt cannot pass: `listen`,
    /// `hxfr` (endpoints), `token_file`, `view_token_file`, `announce_dir`,
    /// `serve`. A missing file is no error.
    #[arg(long, env = "ZEROCAST_BACKEND_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// The config file: defaults the command line and environment override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    #[serde(default)]
    hxfr: Vec<String>,
    token_file: Option<PathBuf>,
    view_token_file: Option<PathBuf>,
    announce_dir: Option<PathBuf>,
    serve: Option<PathBuf>,
}

impl ConfigFile {
    fn read(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected {{\"listen\": \"127.0.0.1:0\", \"hxfr\": [\"tcp:127.0.0.1:0\"], \
                 \"token_file\": PATH, \"view_token_file\": PATH, \"announce_dir\": PATH, \
                 \"serve\": PATH}}, each optional",
                path.display()
            )
        })
    }

    /// Fills in what the command line left out.
    fn apply(self, args: &mut GpuBackendArgs) -> anyhow::Result<()> {
        if args.listen.is_none() {
            args.listen = self.listen;
        }
        if args.hxfr.subscriber.is_empty() {
            for e in &self.hxfr {
                let endpoint = e
                    .parse::<Endpoint>()
                    .map_err(|err| anyhow::anyhow!("config hxfr {e:?}: {err}"))?;
                args.hxfr.subscriber.push(endpoint);
            }
        }
        if args.access.token_file.is_none() {
            args.access.token_file = self.token_file;
        }
        if args.access.view_token_file.is_none() {
            args.access.view_token_file = self.view_token_file;
        }
        if args.announce_dir.is_none() {
            args.announce_dir = self.announce_dir;
        }
        if args.serve.is_none() {
            args.serve = self.serve;
        }
        Ok(())
    }
}

/// Where QEMU's vhost-user connection comes from.
enum Connection {
    Fd(RawFd),
    Socket(PathBuf),
}

impl GpuBackendArgs {
    /// Refuses, before anything starts, what the conventions say must fail
    /// early: features it cannot give, and no or two ways to reach QEMU.
    fn connection(&self) -> anyhow::Result<Connection> {
        if self.virgl {
            bail!(
                "--virgl: zerocast's GPU does 2D only (it encodes the guest's framebuffers); \
                 use QEMU's vhost-user-gpu for virgl"
            );
        }
        if let Some(node) = &self.render_node {
            bail!(
                "--render-node {}: zerocast's GPU does 2D only and uses no render node",
                node.display()
            );
        }
        match (self.fd, &self.socket_path) {
            (Some(fd), None) => Ok(Connection::Fd(fd)),
            (None, Some(path)) => Ok(Connection::Socket(path.clone())),
            (Some(_), Some(_)) => {
                bail!("--fd and --socket-path both given: QEMU's connection comes from one of them")
            }
            (None, None) => bail!(
                "no vhost-user connection: give --fd=FDNUM (an open, connected socket, as libvirt \
                 passes) or --socket-path=PATH (to listen on)"
            ),
        }
    }
}

/// Takes the connected socket `fd` the process was started with.
fn connected_socket(fd: RawFd) -> anyhow::Result<UnixStream> {
    let int_opt = |opt| -> anyhow::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())?;
        // SAFETY: getsockopt writes at most `len` bytes into `value`, an int
        // we own; an fd that is not an open socket only makes it fail.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                std::ptr::addr_of_mut!(value).cast(),
                &mut len,
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            bail!("--fd={fd} is not an open socket ({e}): libvirt passes the vhost-user socket");
        }
        Ok(value)
    };
    if int_opt(libc::SO_DOMAIN)? != libc::AF_UNIX || int_opt(libc::SO_TYPE)? != libc::SOCK_STREAM {
        bail!("--fd={fd} is not a Unix stream socket, as a vhost-user connection is");
    }
    if int_opt(libc::SO_ACCEPTCONN)? != 0 {
        bail!("--fd={fd} is a listening socket: pass a connected one, or use --socket-path");
    }
    // SAFETY: the fd is an open socket (checked above) that this process
    // was started with; nothing else in the process refers to it, so the
    // stream may own and close it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = UnixStream::from(owned);
    // Nothing we start later should inherit QEMU's connection.
    // SAFETY: F_SETFD on the fd the stream owns; no memory is involved.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(stream)
}

pub async fn run(mut args: GpuBackendArgs) -> anyhow::Result<()> {
    if args.print_capabilities {
        println!("{CAPABILITIES}");
        return Ok(());
    }
    let connection = args.connection()?;
    ConfigFile::read(&args.config)?.apply(&mut args)?;
    let daemon = daemon_socket(&args);
    let private = RuntimeDir::create("zerocast-gpu").context("creating the backend's folder")?;
    let endpoints = args.hxfr.endpoints(private.path())?;

    let config = args.display.gpu_config();
    let gpu = match connection {
        Connection::Fd(fd) => GpuBackendHandle::from_stream(connected_socket(fd)?, config),
        Connection::Socket(path) => GpuBackendHandle::start(path, config),
    }
    .context("starting the GPU backend")?;
    let gpu = Arc::new(gpu);
    let ended = session_end(&gpu)?;

    let GpuStreams { registry, scanouts } =
        GpuStreams::start(&gpu, args.display.scanouts, &args.video)?;
    let _announced;
    let _registration;
    // Serving until the backend stops.
    let (_listeners, _serving);
    let stop = Stop::watch(None);
    match daemon {
        // The daemon serves the viewers: HXFR for it, a viewer of our own
        // only if asked for.
        Some(socket) if args.listen.is_none() => {
            let (bound, listeners) =
                crate::serving::start_hxfr(registry, &endpoints, args.hxfr.limits()).await?;
            _listeners = listeners;
            let hxfr = bound
                .iter()
                .find_map(|(e, role)| match (e, role) {
                    (Endpoint::Unix(path), ListenerRole::Subscriber) => Some(path.clone()),
                    _ => None,
                })
                .context(
                    "registering with zerocast serve needs an HXFR Unix socket (--hxfr unix:PATH)",
                )?;
            let (name, scanouts, fps) = (args.name.clone(), args.display.scanouts, args.video.fps);
            // Who we are may take a while to learn (libvirt's status file):
            // the device serves QEMU meanwhile.
            _registration = tokio::spawn(async move {
                let hello = hello(name, hxfr, scanouts, fps).await;
                eprintln!(
                    "registering {} with zerocast serve at {}",
                    hello.name,
                    socket.display()
                );
                register(socket, hello).await;
            });
        }
        _ => {
            let listen = args
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let tls = args.access.tls(listen)?;
            // Input for libvirt's VMs goes through the daemon (its QMP
            // route, docs/libvirt.md); a backend alone only shows.
            let gateway = Gateway::new(registry.clone(), None, args.access.config()?)
                .with_source_stats(gpu_streams::source_stats(gpu.clone()));
            let serving = crate::serving::start(
                registry,
                gateway,
                &endpoints,
                args.hxfr.limits(),
                listen,
                tls,
            )
            .await?;
            serving.announce_to(&mut std::io::stderr().lock(), &[])?;
            let announce_dir = args.announce_dir.clone().or_else(|| {
                // SAFETY: geteuid has no preconditions and cannot fail.
                let root = unsafe { libc::geteuid() } == 0;
                root.then(|| PathBuf::from(ROOT_ANNOUNCE_DIR))
            });
            _announced = match announce_dir {
                Some(dir) => Some(Announcement::write(&dir, &serving)?),
                None => None,
            };
            _serving = serving;
        }
    }

    tokio::select! {
        _ = stop.stopped() => tracing::info!("stopping the GPU backend"),
        _ = ended => tracing::info!("QEMU closed the vhost-user connection"),
    }
    gpu_streams::log_totals(&gpu, &scanouts);
    // The device stops when its last holder (the registry, served by tasks
    // the runtime drops at exit) lets go; the folder goes with `private`.
    Ok(())
}

/// The daemon to register with: `--serve` (or the config's), else the
/// default socket when a daemon listens there; `none` for never.
fn daemon_socket(args: &GpuBackendArgs) -> Option<PathBuf> {
    match &args.serve {
        Some(path) if path.as_os_str() == "none" => None,
        Some(path) => Some(path.clone()),
        None => crate::serve::default_socket().filter(|p| p.exists()),
    }
}

/// This backend's introduction: the VM's name (`name`, else the libvirt
/// domain's, else `gpu-backend-PID`) and UUID, and the HXFR socket the
/// daemon subscribes on.
async fn hello(name: Option<String>, hxfr: PathBuf, scanouts: u32, fps: u32) -> Hello {
    let domain = match &name {
        Some(_) => None,
        None => libvirt_domain_waiting(Path::new(LIBVIRT_PID_DIR)).await,
    };
    let name = name
        .or_else(|| domain.as_ref().map(|d| d.0.clone()))
        .unwrap_or_else(|| format!("gpu-backend-{}", std::process::id()));
    Hello {
        version: crate::registration::VERSION,
        name,
        uuid: domain.map(|d| d.1).unwrap_or_default(),
        hxfr,
        scanouts,
        fps,
    }
}

/// [`libvirt_domain`], given time: libvirt starts a GPU backend before
/// QEMU, and writes the domain's status file only once QEMU runs. Not
/// under libvirt (no pid file of ours within 2 s): `None` at once.
async fn libvirt_domain_waiting(dir: &Path) -> Option<(String, String)> {
    let start = Instant::now();
    loop {
        if let Some(found) = libvirt_domain(dir) {
            return Some(found);
        }
        let ours = libvirt_instance(dir).is_some();
        let waited = start.elapsed();
        if (!ours && waited > Duration::from_secs(2)) || waited > Duration::from_secs(60) {
            if ours {
                tracing::warn!("libvirt's status file for this domain did not appear within 60 s");
            }
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Registers with the daemon and stays registered while the backend runs:
/// if the daemon restarts, registers again (every second until it is back).
async fn register(socket: PathBuf, hello: Hello) {
    let mut line = serde_json::to_string(&hello).expect("a hello serializes");
    line.push('\n');
    let mut told = false;
    loop {
        match registered(&socket, &line).await {
            Ok(streams) => {
                tracing::info!(
                    "zerocast serve at {} dropped us (streams {streams:?}); registering again",
                    socket.display()
                );
                told = false;
            }
            Err(e) if !told => {
                tracing::warn!(
                    "cannot register with zerocast serve at {}: {e}; trying every second",
                    socket.display()
                );
                told = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One registration: hello, answer, then wait until the daemon hangs up.
async fn registered(socket: &Path, line: &str) -> anyhow::Result<Vec<u32>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let conn = tokio::net::UnixStream::connect(socket).await?;
    let (rd, mut wr) = conn.into_split();
    wr.write_all(line.as_bytes()).await?;
    let mut rd = tokio::io::BufReader::new(rd.take(crate::registration::MAX_LINE as u64));
    let mut answer = String::new();
    rd.read_line(&mut answer).await?;
    let reply: Reply = serde_json::from_str(answer.trim_end())
        .with_context(|| format!("the daemon answered {answer:?}"))?;
    if !reply.ok {
        bail!("refused: {}", reply.error.unwrap_or_default());
    }
    tracing::info!(
        "registered with zerocast serve: streams {:?}",
        reply.streams
    );
    let mut rd = rd.into_inner().into_inner();
    let mut scratch = [0u8; 64];
    while matches!(rd.read(&mut scratch).await, Ok(n) if n > 0) {}
    Ok(reply.streams)
}

/// The backend's announcement in a file, for whoever cannot see its
/// stderr; removed when the backend ends.
struct Announcement {
    path: PathBuf,
    _dir: RuntimeDir,
}

impl Announcement {
    fn write(dir: &Path, serving: &Serving) -> anyhow::Result<Announcement> {
        // The viewer URLs carry their tokens: a folder and a file only we may read.
        let dir = RuntimeDir::given(dir).context("checking the announcement folder")?;
        let name = libvirt_instance(Path::new(LIBVIRT_PID_DIR))
            .unwrap_or_else(|| format!("gpu-backend-{}", std::process::id()));
        let path = dir.path().join(format!("{name}.txt"));
        let mut text = Vec::new();
        serving.announce_to(&mut text, &[format!("pid: {}", std::process::id())])?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&text))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("announced in {}", path.display());
        Ok(Announcement { path, _dir: dir })
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The libvirt instance this process serves (`ID-NAME-VIDEO`): libvirt
/// writes a backend's pid file, named after the domain and its video
/// device, before running it.
fn libvirt_instance(pid_dir: &Path) -> Option<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir(pid_dir).ok()?.find_map(|entry| {
        let path = entry.ok()?.path();
        let stem = path
            .file_name()?
            .to_str()?
            .strip_suffix(LIBVIRT_PID_SUFFIX)?;
        let pid = std::fs::read_to_string(&path).ok()?;
        (pid.trim() == me).then(|| stem.to_owned())
    })
}

/// The name and UUID of the libvirt domain this process serves: its id is
/// the first part of [`libvirt_instance`]; libvirt's status file of the
/// running domain with that id (`NAME.xml` beside the pid files, a
/// `<domstatus>` around the live `<domain id='ID'>`) has the rest.
fn libvirt_domain(dir: &Path) -> Option<(String, String)> {
    let instance = libvirt_instance(dir)?;
    let id = instance.split('-').next()?;
    std::fs::read_dir(dir).ok()?.find_map(|entry| {
        let path = entry.ok()?.path();
        if path.extension()? != "xml" {
            return None;
        }
        let text = std::fs::read_to_string(&path).ok()?;
        domain_in_status(&text, id)
    })
}

/// The name and UUID in a libvirt status file, if its domain has `id`.
fn domain_in_status(text: &str, id: &str) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let domain = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name("domain"))?;
    if domain.attribute("id")? != id {
        return None;
    }
    let child = |tag: &str| {
        domain
            .children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_owned())
    };
    Some((child("name")?, child("uuid").unwrap_or_default()))
}

/// Resolves once the vhost-user session is over (QEMU gone). A thread
/// waits on a scanout source of its own, which reports `Closed` then.
fn session_end(gpu: &GpuBackendHandle) -> anyhow::Result<tokio::sync::oneshot::Receiver<()>> {
    let mut source = gpu.scanout(0)?;
    let bell = Doorbell::new();
    source.attach(bell.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("zerocast-gpu-end".into())
        .spawn(move || {
            while !matches!(source.poll(Instant::now()), SourceEvent::Closed) {
                bell.wait(None);
            }
            let _ = tx.send(());
        })
        .context("starting a thread")?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A running domain's status file, as libvirt 9.0 writes it (trimmed).
    const STATUS: &str = "<domstatus state='running' reason='booted' pid='4242'>
  <monitor path='/var/lib/libvirt/qemu/domain-7-desk/monitor.sock' type='unix'/>
  <domain type='qemu' id='7'>
    <name>desk</name>
    <uuid>463d7962-7929-46a4-861c-ae1b63404a02</uuid>
  </domain>
</domstatus>";

    #[test]
    fn the_domain_comes_from_the_status_file_with_our_id() {
        assert_eq!(
            domain_in_status(STATUS, "7"),
            Some(("desk".into(), "463d7962-7929-46a4-861c-ae1b63404a02".into()))
        );
        assert_eq!(domain_in_status(STATUS, "8"), None, "another domain's");
        assert_eq!(domain_in_status("<domstatus><domain", "7"), None, "not XML");
    }
}
