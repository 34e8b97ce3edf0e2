//! The command line. Every option takes a value, so the test guest's /init
//! can pass any of them from the kernel command line (`zerocast.KEY=VALUE`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::transport::Target;

#[derive(Parser)]
#[command(
    version,
    about = "Streams what is on this VM's screen: the host encodes it from guest memory, or x264 encodes it here"
)]
pub struct Args {
    /// Who encodes: `host` asks the host by resource id (zero-copy);
    /// `x264` maps the pixels and encodes in the guest (the baseline).
    #[arg(long, value_enum, default_value_t = EncoderMode::Host)]
    pub encoder: EncoderMode,
    /// vsock port of the host's HXFR server (the host is CID 2).
    #[arg(long, default_value_t = zerocast_hxfr::DEFAULT_VSOCK_PORT)]
    pub vsock_port: u32,
    /// Reach the host over TCP instead of vsock, e.g. 10.0.2.2:5001 (with
    /// --session true: the session channel's address).
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,
    /// Target bitrate in bit/s.
    #[arg(long, default_value_t = 8_000_000)]
    pub bitrate: u32,
    /// Frame rate: captures at most this many a second, and the rate
    /// control's.
    #[arg(long, default_value_t = 60)]
    pub fps: u32,
    /// A keyframe every this many seconds; 0 = only at start.
    #[arg(long, default_value_t = 10)]
    pub keyframe_every_secs: u64,
    /// Also hand every access unit to the host as this published stream id
    /// (zerocast's host offers 16), where browsers watch it; 0 = don't.
    #[arg(long, default_value_t = 0)]
    pub publish: u16,
    /// First play a hostile guest on a second connection (unknown resource,
    /// bad geometry, stride and format, truncated, flooded and oversized
    /// messages) and print how the host answered; then stream as usual.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub hostile_first: bool,
    /// Where to write the H.264 stream (Annex B); `-` = nowhere.
    #[arg(long, default_value = "-")]
    pub output: PathBuf,
    /// Frames to receive before exiting; 0 = run until killed.
    #[arg(long, default_value_t = 0)]
    pub frames: u64,
    /// Print a stats line every this many frames.
    #[arg(long, default_value_t = 30)]
    pub report_every: u64,
    /// How often to look at the CRTC for a flip, in milliseconds.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub poll_ms: u64,
    /// Capture again after this many milliseconds without a flip, for
    /// programs that draw into the buffer on screen; 0 = only on flips.
    #[arg(long, default_value_t = 1000)]
    pub refresh_ms: u64,
    /// Bound on every wait: the card, a display, the host, an answer.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
    /// Run as the session agent instead, inside the desktop session (with
    /// its $DISPLAY): the host resizes the screen (xrandr), shares the
    /// clipboard and types text (xdotool) through it.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub session: bool,
    /// vsock port of the host's session channel (with --session true).
    #[arg(long, default_value_t = zerocast_session::DEFAULT_VSOCK_PORT)]
    pub session_port: u32,
    /// The DRM card that shows the screen.
    #[arg(long, default_value = "/dev/dri/card0")]
    pub card: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncoderMode {
    Host,
    X264,
}

impl Args {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    /// `None` when only flips trigger a capture.
    pub fn refresh(&self) -> Option<Duration> {
        (self.refresh_ms > 0).then(|| Duration::from_millis(self.refresh_ms))
    }

    /// `None` when keyframes come only at start.
    pub fn keyframe_every(&self) -> Option<Duration> {
        (self.keyframe_every_secs > 0).then(|| Duration::from_secs(self.keyframe_every_secs))
    }

    /// One frame at `--fps`.
    pub fn frame(&self) -> Duration {
        Duration::from_secs(1) / self.fps.max(1)
    }

    /// [`Args::frame`] in nanoseconds, as HXFR carries it.
    pub fn frame_duration_ns(&self) -> i64 {
        i64::try_from(self.frame().as_nanos()).unwrap_or(i64::MAX)
    }

    /// The publisher, when `--publish` names a stream.
    pub fn publisher(&self) -> Option<crate::publish::Publisher> {
        (self.publish != 0).then(|| crate::publish::Publisher::new(self.publish))
    }

    pub fn target(&self) -> Target {
        self.target_port(self.vsock_port)
    }

    /// Where the host's session channel is (`--tcp`, with --session true,
    /// is its address).
    pub fn session_target(&self) -> Target {
        self.target_port(self.session_port)
    }

    fn target_port(&self, port: u32) -> Target {
        match &self.tcp {
            Some(addr) => Target::Tcp(addr.clone()),
            None => Target::Vsock {
                cid: libc::VMADDR_CID_HOST,
                port,
            },
        }
    }
}
