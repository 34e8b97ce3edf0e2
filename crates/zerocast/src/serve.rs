//! `zerocast serve`: the host's one web gateway and HXFR endpoint for every
//! VM whose GPU backend registers (libvirt starts one per domain). Each
//! backend encodes beside its guest's memory and says hello on the
//! registration socket (`registration`); its displays join the registry
//! as published streams fed by a `relay` while watched, and leave it when
//! the registration connection closes (the domain stopped). `/` lists the
//! VMs; keys and pointer reach a guest through the QMP socket the domain
//! offers (`--qmp-dir`), when it does.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use zerocast_encode::{EncoderKind, EncoderSettings};
use zerocast_frame::Doorbell;
use zerocast_input::{InputEvent, InputSink};
use zerocast_pipeline::{PublishedStream, Registry, Stream};
use zerocast_qemu::{Qmp, QmpInput};
use zerocast_web::{Directory, Gateway, VmEntry};

use crate::options::HxfrArgs;
use crate::registration::{Hello, Reply, MAX_LINE};
use crate::relay::Relay;
use crate::runtime_dir::RuntimeDir;
use crate::stop::Stop;
use crate::web_access::WebAccessArgs;

/// Where root's daemon listens for backends, and where its VMs' QMP
/// sockets are looked for.
pub const ROOT_SOCKET: &str = "/run/zerocast/serve.sock";
const ROOT_QMP_DIR: &str = "/run/zerocast/qmp";
/// The variable a backend (and the daemon) read the socket's path from.
pub const SOCKET_ENV: &str = "ZEROCAST_SERVE_SOCKET";

/// How long after its registration a VM's QMP socket is waited for.
const QMP_WAIT: Duration = Duration::from_secs(60);
/// A backend gets this long to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the web gateway listens (the index of VMs at `/`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub access: WebAccessArgs,
    #[command(flatten)]
    pub hxfr: HxfrArgs,
    /// The Unix socket GPU backends register on (0600: only this user,
    /// and root, may register). Default: /run/zerocast/serve.sock for
    /// root, else $XDG_RUNTIME_DIR/zerocast/serve.sock.
    #[arg(long, env = SOCKET_ENV)]
    pub socket: Option<PathBuf>,
    /// Where a VM's QMP socket for input is found, as NAME.qmp (the domain
    /// XML `zerocast install-libvirt` prints adds one). Without it a VM is
    /// view-only. Default: /run/zerocast/qmp for root, else none.
    #[arg(long)]
    pub qmp_dir: Option<PathBuf>,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
}

/// The registration socket's default path.
pub fn default_socket() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from(ROOT_SOCKET));
    }
    std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("zerocast/serve.sock"))
}

/// The VMs registered now.
#[derive(Default)]
struct Vms(Mutex<BTreeMap<u64, VmEntry>>);

impl Directory for Vms {
    fn vms(&self) -> Vec<VmEntry> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// Input from viewers, to the VM whose display they watch.
#[derive(Default)]
struct InputRouter(RwLock<HashMap<u32, (Arc<QmpInput>, u32)>>);

impl InputSink for InputRouter {
    fn send(&self, stream: u32, event: InputEvent) {
        let routes = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((input, head)) = routes.get(&stream) {
            input.send(*head, event);
        }
    }
}

/// What the registrations share.
struct Daemon {
    registry: Arc<Registry>,
    vms: Arc<Vms>,
    input: Arc<InputRouter>,
    qmp_dir: Option<PathBuf>,
    next_vm: Mutex<u64>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let socket = args.socket.clone().or_else(default_socket).context(
        "no registration socket: give --socket PATH (or set XDG_RUNTIME_DIR, or run as root)",
    )?;
    let qmp_dir = args.qmp_dir.clone().or_else(|| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        (unsafe { libc::geteuid() } == 0).then(|| PathBuf::from(ROOT_QMP_DIR))
    });
    // The domains' QMP sockets go there: it must exist before they start.
    let _qmp_dir = match &qmp_dir {
        Some(dir) => Some(RuntimeDir::given(dir).context("checking --qmp-dir")?),
        None => None,
    };
    let tls = args.access.tls(args.listen)?;
    let private = RuntimeDir::create("zerocast-serve").context("creating the daemon's folder")?;
    let endpoints = args.hxfr.endpoints(private.path())?;
    let registry = Arc::new(Registry::new(
        EncoderKind::default(),
        EncoderSettings::default(),
    ));
    let daemon = Arc::new(Daemon {
        registry: registry.clone(),
        vms: Arc::new(Vms::default()),
        input: Arc::new(InputRouter::default()),
        qmp_dir,
        next_vm: Mutex::new(1),
    });
    let input: Arc<dyn InputSink> = daemon.input.clone();
    let gateway = Gateway::new(registry.clone(), Some(input), args.access.config()?)
        .with_directory(daemon.vms.clone());
    let serving = crate::serving::start(
        registry,
        gateway,
        &endpoints,
        args.hxfr.limits(),
        args.listen,
        tls,
    )
    .await?;
    let (listener, _dir) = bind_registration(&socket)?;
    let stop = Stop::watch(args.duration);
    serving.announce(&[format!("registration: {}", socket.display())])?;
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    tokio::spawn(daemon.clone().backend(conn));
                }
                Err(e) => tracing::warn!("registration socket: {e}"),
            }
        }
    };
    tokio::select! {
        () = stop.stopped() => {}
        () = accept => {}
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Binds the registration socket, 0600, in a folder only we may use
/// (created 0700 if missing); a stale socket is replaced.
fn bind_registration(socket: &Path) -> anyhow::Result<(UnixListener, RuntimeDir)> {
    let dir = socket
        .parent()
        .context("the registration socket needs a folder")?;
    let dir = RuntimeDir::given(dir).context("checking the registration socket's folder")?;
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("replacing {}", socket.display())),
    }
    let listener =
        UnixListener::bind(socket).with_context(|| format!("listening on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, dir))
}

impl Daemon {
    /// One backend, from its hello until its connection closes.
    async fn backend(self: Arc<Self>, conn: UnixStream) {
        let (rd, mut wr) = conn.into_split();
        let mut rd = BufReader::new(rd.take(MAX_LINE as u64));
        let mut line = String::new();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, rd.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 && line.ends_with('\n') => Hello::parse(line.trim_end()),
            Ok(Ok(_)) => {
                tracing::warn!("a backend sent no hello line (or one over {MAX_LINE} bytes)");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!("a backend's hello: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!("a backend said no hello within {HELLO_TIMEOUT:?}");
                return;
            }
        };
        let hello = match hello {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("refused a backend: {e}");
                let _ = reply(
                    &mut wr,
                    &Reply {
                        ok: false,
                        streams: Vec::new(),
                        error: Some(e.to_string()),
                    },
                )
                .await;
                return;
            }
        };
        let vm = self.clone().register(&hello);
        let answer = Reply {
            ok: true,
            streams: vm.streams.clone(),
            error: None,
        };
        if reply(&mut wr, &answer).await.is_ok() {
            // The backend says nothing more: the end of its connection is
            // the end of its VM.
            let mut rd = rd.into_inner().into_inner();
            let mut scratch = [0u8; 64];
            while matches!(rd.read(&mut scratch).await, Ok(n) if n > 0) {}
        }
        self.unregister(vm);
    }

    fn register(self: Arc<Self>, hello: &Hello) -> Registered {
        // Held until the streams are in the registry: two backends
        // registering at once must not pick the same free ids.
        let mut next = self.next_vm.lock().unwrap_or_else(PoisonError::into_inner);
        let id = *next;
        *next += 1;
        let streams = self.free_ids(hello.scanouts);
        let gone = Arc::new(AtomicBool::new(false));
        let mut bells = Vec::new();
        for (scanout, &stream_id) in (0..hello.scanouts).zip(&streams) {
            let bell = Doorbell::new();
            let describe = format!(
                "{} display {scanout} (relayed from its GPU backend)",
                hello.name
            );
            let stream = self
                .registry
                .add(Stream::Published(PublishedStream::with_bell(
                    stream_id,
                    describe,
                    bell.clone(),
                )));
            let relay = Relay {
                stream,
                bell: bell.clone(),
                hxfr: hello.hxfr.clone(),
                scanout,
                fps: hello.fps,
                gone: gone.clone(),
            };
            if let Err(e) = std::thread::Builder::new()
                .name(format!("relay-wait-{stream_id}"))
                .spawn(move || relay.run())
            {
                tracing::error!("no relay thread for {}: {e}", hello.name);
            }
            bells.push(bell);
        }
        drop(next);
        let entry = VmEntry {
            name: hello.name.clone(),
            uuid: hello.uuid.clone(),
            input: false,
            scanouts: streams.clone(),
        };
        self.vms
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, entry);
        tracing::info!(
            "VM {} registered ({} display(s), streams {streams:?})",
            hello.name,
            hello.scanouts
        );
        tokio::spawn(
            self.clone()
                .connect_input(id, hello.name.clone(), streams.clone()),
        );
        Registered {
            id,
            name: hello.name.clone(),
            streams,
            gone,
            bells,
        }
    }

    /// The smallest unused stream ids (HXFR sessions are numbered by
    /// them, so they stay small).
    fn free_ids(&self, count: u32) -> Vec<u32> {
        let used = self.registry.ids();
        (0..)
            .filter(|id| !used.contains(id))
            .take(count as usize)
            .collect()
    }

    /// Connects the VM's QMP socket for input, if its domain offers one.
    /// The backend registers before QEMU is up, so the socket is looked
    /// for every half second for [`QMP_WAIT`]; the VM is listed view-only
    /// until it is connected.
    async fn connect_input(self: Arc<Self>, vm: u64, name: String, streams: Vec<u32>) {
        let Some(dir) = &self.qmp_dir else {
            return;
        };
        let path = dir.join(format!("{name}.qmp"));
        let deadline = tokio::time::Instant::now() + QMP_WAIT;
        while !path.exists() {
            if tokio::time::Instant::now() > deadline || !self.listed(vm) {
                tracing::info!("{name}: no {} (view only)", path.display());
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let connect = async {
            let qmp = Qmp::connect(&path, Duration::from_secs(5)).await?;
            QmpInput::start(qmp, &path)
        };
        let input = match connect.await {
            Ok(input) => Arc::new(input),
            Err(e) => {
                tracing::warn!("{name}: QMP at {}: {e}; view only", path.display());
                return;
            }
        };
        {
            let mut routes = self.input.0.write().unwrap_or_else(PoisonError::into_inner);
            for (head, &id) in (0..).zip(&streams) {
                routes.insert(id, (input.clone(), head));
            }
        }
        let mut vms = self.vms.0.lock().unwrap_or_else(PoisonError::into_inner);
        match vms.get_mut(&vm) {
            Some(entry) => {
                entry.input = true;
                tracing::info!("{name}: input through {}", path.display());
            }
            // Gone meanwhile: its routes go too.
            None => {
                let mut routes = self.input.0.write().unwrap_or_else(PoisonError::into_inner);
                for id in &streams {
                    routes.remove(id);
                }
            }
        }
    }

    fn listed(&self, vm: u64) -> bool {
        self.vms
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&vm)
    }

    fn unregister(&self, vm: Registered) {
        vm.gone.store(true, Ordering::SeqCst);
        for bell in &vm.bells {
            bell.ring();
        }
        {
            let mut routes = self.input.0.write().unwrap_or_else(PoisonError::into_inner);
            for id in &vm.streams {
                routes.remove(id);
            }
        }
        for &id in &vm.streams {
            if let Some(stream) = self.registry.remove(id) {
                if let Some(p) = stream.as_published() {
                    p.end("the VM stopped");
                }
            }
        }
        self.vms
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&vm.id);
        tracing::info!("VM {} is gone", vm.name);
    }
}

/// A VM while registered.
struct Registered {
    id: u64,
    name: String,
    streams: Vec<u32>,
    gone: Arc<AtomicBool>,
    bells: Vec<Doorbell>,
}

async fn reply(wr: &mut tokio::net::unix::OwnedWriteHalf, r: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_string(r).map_err(std::io::Error::other)?;
    line.push('\n');
    wr.write_all(line.as_bytes()).await
}
