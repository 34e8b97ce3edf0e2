//! Shared by the end-to-end tests: starts `zerocast demo`, runs
//! `zerocast client`, checks streams with ffprobe/ffmpeg. Every process is
//! killed when its handle drops; every wait has a deadline.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod subscriber;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use zerocast_chromium::Chromium;
use zerocast_frame::stamp;

pub const BIN: &str = env!("CARGO_BIN_EXE_zerocast");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Makes sure a tool the test needs is there: installs what is missing with
/// the project's own script (apt and cargo; needs root or sudo), and fails,
/// never skips, if that does not bring it.
pub fn require(tool: &str) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    if installed(tool) {
        return;
    }
    INSTALL.call_once(|| {
        eprintln!("{tool} is missing: running scripts/install-deps.sh");
        let status = Command::new("bash")
            .arg(repo().join("scripts/install-deps.sh"))
            .status();
        eprintln!("scripts/install-deps.sh: {status:?}");
    });
    assert!(
        installed(tool),
        "{tool} is not installed and scripts/install-deps.sh could not install it (it needs root or sudo)"
    );
}

/// A running `zerocast` process: `zerocast demo` or `zerocast vm`.
pub struct Zerocast {
    child: Child,
    /// The HXFR endpoint in the subscriber role.
    pub hxfr: String,
    /// The HXFR endpoint in the guest role (FRAME_REQUEST).
    pub hxfr_guest: String,
    /// The printed viewer URL, with the `control` token.
    pub url: String,
    /// The printed view-only URL, with the `view` token.
    pub view_url: String,
    /// The guest's serial log (`zerocast vm` only).
    pub serial: Option<PathBuf>,
}

impl Zerocast {
    /// Starts the demo on free loopback ports with extra arguments.
    pub fn demo(extra: &[&str]) -> Zerocast {
        Zerocast::run("demo", extra)
    }

    /// Starts `zerocast COMMAND` on free loopback ports; waits for its URL.
    pub fn run(command: &str, extra: &[&str]) -> Zerocast {
        let mut child = Command::new(BIN)
            .args([
                command,
                "--listen",
                "127.0.0.1:0",
                "--hxfr",
                "tcp:127.0.0.1:0",
                "--hxfr-guest",
                "tcp:127.0.0.1:0",
                "--duration",
                "300",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start zerocast {command}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut hxfr, mut hxfr_guest, mut url, mut view_url, mut serial) = (
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            None,
        );
        while url.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("zerocast {command} printed no viewer URL within 60 s"));
            if let Some(a) = line.strip_prefix("hxfr: ") {
                hxfr = a.to_owned();
            }
            if let Some(p) = line.strip_prefix("serial: ") {
                serial = Some(PathBuf::from(p));
            }
            if let Some(a) = line.strip_prefix("hxfr-guest: ") {
                hxfr_guest = a.to_owned();
            }
            if let Some(u) = line.strip_prefix("view-only: ") {
                view_url = u.to_owned();
            }
            if let Some(u) = line.strip_prefix("viewer: ") {
                url = u.to_owned();
            }
        }
        Zerocast {
            child,
            hxfr,
            hxfr_guest,
            url,
            view_url,
            serial,
        }
    }

    /// Starts `zerocast serve` with its registration socket and QMP folder.
    pub fn serve(registration: &Path, qmp_dir: &Path) -> Zerocast {
        let (registration, qmp_dir) = (registration.to_str().unwrap(), qmp_dir.to_str().unwrap());
        Zerocast::run("serve", &["--socket", registration, "--qmp-dir", qmp_dir])
    }

    /// Waits (at most 60 s) until `zerocast serve` lists exactly the VMs
    /// named (sorted), each with input when `input`; returns the list.
    pub fn wait_for_vms(&self, names: &[&str], input: bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let vms = self.json("/api/vms");
            let list = vms.as_array().unwrap();
            let mut got: Vec<&str> = list.iter().map(|v| v["name"].as_str().unwrap()).collect();
            got.sort_unstable();
            if got == names && (!input || list.iter().all(|v| v["input"] == true)) {
                return vms;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "zerocast serve lists {vms}, not {names:?} (input: {input})"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the zerocast process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pids fit pid_t");
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits up to `timeout` for the process to exit; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The pids of the processes zerocast started (QEMU, vhost-device-vsock).
    pub fn children(&self) -> Vec<u32> {
        let tasks = PathBuf::from(format!("/proc/{}/task", self.child.id()));
        std::fs::read_dir(tasks)
            .map(|dir| {
                dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
                    .flat_map(|c| {
                        c.split_whitespace()
                            .filter_map(|p| p.parse().ok())
                            .collect::<Vec<u32>>()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `host:port` of the web gateway.
    pub fn web_addr(&self) -> &str {
        let rest = self
            .url
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        rest.split('/').next().unwrap_or(rest)
    }

    /// The `control` token from the printed URL.
    pub fn token(&self) -> &str {
        self.url
            .split("token=")
            .nth(1)
            .expect("the viewer URL carries a token")
    }

    /// The WebSocket URL of a viewer with the control token and `query`.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}&token={}", self.web_addr(), self.token())
    }

    /// Context switches of every thread of the process so far (voluntary
    /// and not): how often it woke up.
    pub fn context_switches(&self) -> u64 {
        let tasks = PathBuf::from(format!("/proc/{}/task", self.child.id()));
        std::fs::read_dir(&tasks)
            .unwrap_or_else(|e| panic!("{}: {e}", tasks.display()))
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
            .flat_map(|status| {
                status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// `host:port` of the HXFR listener in the subscriber role.
    pub fn hxfr_addr(&self) -> &str {
        self.hxfr.strip_prefix("tcp:").unwrap_or(&self.hxfr)
    }

    /// `host:port` of the HXFR listener in the guest role.
    pub fn hxfr_guest_addr(&self) -> &str {
        self.hxfr_guest
            .strip_prefix("tcp:")
            .unwrap_or(&self.hxfr_guest)
    }

    /// GET /api/stats as JSON.
    pub fn stats(&self) -> serde_json::Value {
        self.json("/api/stats")
    }

    /// GET `path` (no query) with the control token, as JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(&format!("{path}?token={}", self.token()));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// GET `target` (path and query) from the gateway: status and body.
    pub fn get(&self, target: &str) -> (u16, String) {
        let host = self.web_addr();
        let mut s = TcpStream::connect(host).expect("connect to the gateway");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status code");
        (status, body.to_owned())
    }
}

impl Drop for Zerocast {
    /// SIGTERM first, so zerocast stops QEMU and its helpers in order; a
    /// SIGKILL if it has not exited within 10 s.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `zerocast client` with a 60 s limit of its own.
pub fn client(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("client")
        .args(args)
        .args(["--timeout", "60"])
        .output()
        .expect("run zerocast client")
}

/// The test guest from `scripts/build-guest.sh`: (kernel, initrd). Built
/// here when it is missing.
pub fn guest() -> (PathBuf, PathBuf) {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let dir = repo().join("work/guest");
    let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.img"));
    if !(kernel.exists() && initrd.exists()) {
        BUILD.call_once(|| {
            require("busybox");
            let status = Command::new("bash")
                .arg(repo().join("scripts/build-guest.sh"))
                .status();
            eprintln!("scripts/build-guest.sh: {status:?}");
        });
    }
    assert!(
        kernel.exists() && initrd.exists(),
        "the test guest is missing and scripts/build-guest.sh could not build it"
    );
    (kernel, initrd)
}

/// The desktop guest from `scripts/build-desktop.sh`: (disk, kernel,
/// initrd). The script is run every time: it is the one that knows whether
/// the cached image is current (its key covers the script and the package
/// versions), answers in about a second when it is, and builds it (a few
/// minutes, about 250 MB downloaded) when it is missing. A failure is
/// fatal with the script's own words, never a skip.
pub fn desktop() -> (PathBuf, PathBuf, PathBuf) {
    for tool in ["mmdebstrap", "mke2fs", "zstd"] {
        require(tool);
    }
    let script = repo().join("scripts/build-desktop.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the desktop image is missing and {} could not build it ({}; its log is above):\n{text}",
        script.display(),
        out.status
    );
    let path = |key: &str| {
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{} printed no {key}=PATH:\n{text}", script.display()));
        assert!(path.exists(), "{key} {} does not exist", path.display());
        path
    };
    (path("disk"), path("kernel"), path("initrd"))
}

/// Waits until the file contains `needle`; returns its text.
pub fn wait_for_text(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} not in {} within {timeout:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `zerocast client` with `args`, writing `name` in the test folder;
/// asserts it succeeded and returns the file with ffprobe's view of it.
pub fn record(args: &[&str], name: &str) -> (PathBuf, Probe) {
    let out = tmp(name);
    let mut all = args.to_vec();
    all.extend(["-o", out.to_str().unwrap()]);
    let run = client(&all);
    assert!(
        run.status.success(),
        "zerocast client failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let p = probe(&out);
    (out, p)
}

pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zerocast-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// What ffprobe says about an H.264 file: size and per-frame keyframe flags.
pub struct Probe {
    pub width: u32,
    pub height: u32,
    pub keyframes: Vec<bool>,
}

pub fn probe(path: &Path) -> Probe {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height:frame=key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffprobe reported errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (mut width, mut height, mut keyframes) = (0, 0, Vec::new());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // A frame with side data (x264's SEI naming itself, on its first
        // keyframe) gets an empty field after its flag.
        let fields: Vec<&str> = line.split(',').filter(|f| !f.is_empty()).collect();
        if fields.len() >= 2 {
            width = fields[0].parse().unwrap();
            height = fields[1].parse().unwrap();
        } else {
            keyframes.push(fields[0] == "1");
        }
    }
    Probe {
        width,
        height,
        keyframes,
    }
}

/// Decodes every frame with ffmpeg (errors are fatal) and reads its stamp.
pub fn stamps(path: &Path, width: u32, height: u32) -> Vec<Option<u32>> {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not decode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (width * height) as usize;
    out.stdout
        .chunks_exact(size)
        .map(|luma| stamp::read_luma(luma, width, height, width as usize))
        .collect()
}

/// Opens `url` in headless Chromium and waits (at most 90 s) until the
/// viewer has decoded `frames` frames; returns the browser and the page's
/// stats. Fails on decoder errors.
pub async fn watch_in_chromium(url: &str, frames: u64) -> (Chromium, serde_json::Value) {
    watch_in_chromium_with(url, frames, &[]).await
}

/// [`watch_in_chromium`] with extra Chromium flags.
pub async fn watch_in_chromium_with(
    url: &str,
    frames: u64,
    flags: &[&str],
) -> (Chromium, serde_json::Value) {
    require("chromium");
    let mut c = Chromium::open_with(url, flags)
        .await
        .expect("start chromium");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let stats = loop {
        let s = c
            .eval("JSON.parse(JSON.stringify(window.zerocastStats || null))")
            .await
            .expect("read window.zerocastStats");
        if s["decoded"].as_u64().unwrap_or(0) >= frames || std::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        stats["decoded"].as_u64().unwrap_or(0) >= frames,
        "Chromium decoded fewer than {frames} frames: {stats}"
    );
    assert_eq!(stats["errors"], 0, "decoder errors: {}", stats["lastError"]);
    (c, stats)
}

/// Reads every frame's stamp; asserts they never go back and do move on.
pub fn assert_frames_advance(path: &Path, width: u32, height: u32) {
    let read: Vec<u32> = stamps(path, width, height)
        .into_iter()
        .map(|s| s.expect("every frame carries a readable stamp"))
        .collect();
    assert!(
        read.windows(2).all(|w| w[1] >= w[0]) && read.last() > read.first(),
        "frame numbers advance: {read:?}"
    );
}

/// A stream that fills socket buffers within seconds: all-keyframe 1080p at
/// 100 Mbit/s, for tests of a peer that stops reading.
pub const HEAVY_STREAM: &[&str] = &[
    "--fps",
    "30",
    "--keyframe-interval",
    "1",
    "--bitrate",
    "100M",
];

/// Boots the test guest with `zerocast vm` (TCG, 512 MiB) on free ports.
pub fn boot_test_guest(append: &str, extra: &[&str]) -> Zerocast {
    require("qemu-system-x86_64");
    let (kernel, initrd) = guest();
    let mut args = vec![
        "--kernel",
        kernel.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
        "--append",
        append,
        "--memory",
        "512",
    ];
    args.extend_from_slice(extra);
    Zerocast::run("vm", &args)
}

/// Types `a` and clicks the left button at (x, y) through DevTools, as a
/// user's input would arrive in the page.
pub async fn type_a_and_click(c: &mut Chromium, x: u32, y: u32) {
    for kind in ["keyDown", "keyUp"] {
        c.call(
            "Input.dispatchKeyEvent",
            serde_json::json!({ "type": kind, "code": "KeyA", "key": "a", "windowsVirtualKeyCode": 65 }),
        )
        .await
        .expect("dispatch a key");
    }
    for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
        c.call(
            "Input.dispatchMouseEvent",
            serde_json::json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
        )
        .await
        .expect("dispatch a mouse event");
    }
}

/// A folder holding the static guest agent `scripts/build-guest.sh` builds,
/// for `zerocast vm --share`: how the desktop image gets its session agent.
pub fn session_agent_share() -> PathBuf {
    guest();
    let agent = repo().join("target/guest/x86_64-unknown-linux-gnu/release/zerocast-guest");
    assert!(
        agent.exists(),
        "{} is missing: run scripts/build-guest.sh",
        agent.display()
    );
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("agent-share-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the agent's share");
    std::fs::copy(&agent, dir.join("zerocast-guest")).expect("copy the agent into its share");
    dir
}
