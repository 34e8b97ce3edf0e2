//! Options several commands share.

use std::time::Duration;

use clap::Args;
use zerocast_encode::{EncoderKind, EncoderSettings, Fps, RateControl};
use zerocast_hxfr_server::{Endpoint, ListenerRole, ServerLimits};
use zerocast_pipeline::PipelineConfig;

/// Encoder settings, for every command that encodes.
#[derive(Args, Debug, Clone)]
pub struct VideoArgs {
    /// Frames per second.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Bitrate in bit/s, k and M suffixes accepted (e.g. 8M): the ceiling
    /// with quality rate control, the target with bitrate rate control.
    #[arg(long, default_value = "8M", value_parser = parse_bitrate)]
    pub bitrate: u32,
    /// `quality`: each picture at --qp, coarser only while the stream runs
    /// above --bitrate, and a still screen refined at --refresh-qp.
    /// `bitrate`: the encoder aims at --bitrate whatever the content.
    #[arg(long, value_enum, default_value_t = RateControlArg::Quality)]
    pub rate_control: RateControlArg,
    /// Quality rate control: the QP of pictures in motion, 0 (finest) to 51.
    #[arg(long, default_value_t = 26, value_parser = clap::value_parser!(u8).range(0..=51))]
    pub qp: u8,
    /// Quality rate control: the QP a still screen's last picture is refined
    /// at, once, as a P-frame.
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u8).range(0..=51))]
    pub refresh_qp: u8,
    /// Milliseconds without a change before a still screen is refined.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub refresh_delay_ms: u64,
    /// Never refine a still screen.
    #[arg(long)]
    pub no_refresh: bool,
    /// A keyframe at least every this many frames (0: only when a viewer needs one).
    #[arg(long, default_value_t = 0)]
    pub keyframe_interval: u32,
    /// Encoder backend: `x264` (told which macroblocks did not change,
    /// which it skips unanalysed; sliced threads for large pictures; in
    /// builds made with libx264-dev, where it is the default), or
    /// `openh264` (always built in).
    #[arg(long, default_value_t = EncoderKind::default())]
    pub encoder: EncoderKind,
    /// Rows per stripe for web viewers, whole macroblock rows (16..=1088):
    /// each stripe is its own small stream and only changed ones are
    /// encoded. 0: web viewers get the single whole-frame stream, as
    /// helix's clients and HXFR subscribers always do.
    #[arg(long, default_value_t = 64, value_parser = parse_stripe_height)]
    pub stripe_height: u32,
}

fn parse_stripe_height(s: &str) -> Result<u32, String> {
    let h: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if h == 0 || (h % 16 == 0 && zerocast_encode::stripes::STRIPE_HEIGHTS.contains(&h)) {
        Ok(h)
    } else {
        Err("a multiple of 16 from 16 to 1088, or 0 for no stripes".into())
    }
}

/// `--rate-control`'s values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateControlArg {
    Quality,
    Bitrate,
}

impl VideoArgs {
    pub fn settings(&self) -> EncoderSettings {
        EncoderSettings {
            bitrate_bps: self.bitrate,
            fps: Fps::new(self.fps),
            keyframe_interval: self.keyframe_interval,
            rate_control: match self.rate_control {
                RateControlArg::Quality => RateControl::Quality {
                    qp: self.qp,
                    refresh_qp: self.refresh_qp,
                },
                RateControlArg::Bitrate => RateControl::Bitrate,
            },
        }
    }

    /// The configuration of scanout `id`'s pipeline.
    pub fn pipeline(&self, scanout_id: u32) -> PipelineConfig {
        let refresh = self.rate_control == RateControlArg::Quality && !self.no_refresh;
        PipelineConfig {
            scanout_id,
            encoder: self.encoder,
            settings: self.settings(),
            refresh_after: refresh.then(|| Duration::from_millis(self.refresh_delay_ms)),
            stripe_height: (self.stripe_height > 0).then_some(self.stripe_height),
        }
    }
}

/// The displays our virtio-gpu offers a guest.
#[derive(Args, Debug, Clone, Copy)]
pub struct DisplayArgs {
    /// Displays (scanouts) the guest gets, 1 up to the GPU backend's limit
    /// (a value past it is refused with the limit). Under libvirt, the
    /// video device's `heads` must match.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(zerocast_gpu::MAX_SCANOUTS)))]
    pub scanouts: u32,
    /// Preferred display mode the guest is offered (the usual others too).
    #[arg(long, default_value_t = 1280)]
    pub mode_width: u32,
    #[arg(long, default_value_t = 800)]
    pub mode_height: u32,
}

impl Default for DisplayArgs {
    fn default() -> Self {
        DisplayArgs {
            scanouts: 1,
            mode_width: 1280,
            mode_height: 800,
        }
    }
}

impl DisplayArgs {
    /// The GPU device's configuration for these displays.
    pub fn gpu_config(&self) -> zerocast_gpu::GpuConfig {
        let count = usize::try_from(self.scanouts).unwrap_or(usize::MAX);
        zerocast_gpu::GpuConfig {
            scanouts: vec![(self.mode_width, self.mode_height); count],
            ..zerocast_gpu::GpuConfig::default()
        }
    }
}

/// The size of the synthetic desktop (a VM's size is the guest's choice).
#[derive(Args, Debug, Clone, Copy)]
pub struct DesktopSize {
    /// Width of the synthetic desktop in pixels.
    #[arg(long, default_value_t = 1920)]
    pub width: u32,
    /// Height of the synthetic desktop in pixels.
    #[arg(long, default_value_t = 1080)]
    pub height: u32,
}

impl DesktopSize {
    /// Checks the size before anything starts, with a message that says what to do.
    pub fn check(&self) -> anyhow::Result<()> {
        if !(16..=3840).contains(&self.width) || !(16..=2160).contains(&self.height) {
            anyhow::bail!(
                "--width/--height {}x{} is outside 16x16..3840x2160, what the encoder supports",
                self.width,
                self.height
            );
        }
        Ok(())
    }
}

/// The HXFR endpoints, each with the role its peers get (docs/hxfr.md).
#[derive(Args, Debug, Clone)]
pub struct HxfrArgs {
    /// HXFR endpoint for watchers (subscriber role: PING, SUBSCRIBE,
    /// KEYFRAME_REQ), tcp:HOST:PORT or unix:PATH; repeatable. Default: a
    /// Unix socket (mode 0600) in this run's private folder; helix's
    /// clients want tcp:127.0.0.1:15937.
    #[arg(long = "hxfr")]
    pub subscriber: Vec<Endpoint>,
    /// HXFR endpoint in the guest role (FRAME_REQUEST by resource id, its
    /// own sessions' CONFIG_REQ/KEYFRAME_REQ, publishing); repeatable. A VM's
    /// vsock endpoint always has this role.
    #[arg(long = "hxfr-guest")]
    pub guest: Vec<Endpoint>,
    /// HXFR endpoint in the admin role (also the shared encoder's settings
    /// and switching displays); a Unix socket only; repeatable.
    #[arg(long = "hxfr-admin")]
    pub admin: Vec<Endpoint>,
    /// Allow HXFR TCP endpoints on addresses other than loopback, where
    /// anyone who can reach them gets their role.
    #[arg(long)]
    pub hxfr_allow_remote: bool,
    /// Memory, in MiB, that all request/response encoder sessions may hold
    /// together (about 18 MiB per 720p session); past it a new session is
    /// refused with an ERROR.
    #[arg(long, default_value_t = 512)]
    pub encoder_memory_mib: u64,
}

impl HxfrArgs {
    /// What peers may take.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            encoder_memory: self.encoder_memory_mib.saturating_mul(1 << 20),
            ..ServerLimits::default()
        }
    }

    /// Every endpoint with its role, checked: admin on Unix sockets only, TCP
    /// on loopback unless allowed. Without `--hxfr`, watchers get a Unix
    /// socket in `private_dir`.
    pub fn endpoints(
        &self,
        private_dir: &std::path::Path,
    ) -> anyhow::Result<Vec<(Endpoint, ListenerRole)>> {
        let default = vec![Endpoint::Unix(private_dir.join("hxfr.sock"))];
        let subscriber = if self.subscriber.is_empty() {
            &default
        } else {
            &self.subscriber
        };
        let all = [
            (subscriber, ListenerRole::Subscriber),
            (&self.guest, ListenerRole::Guest),
            (&self.admin, ListenerRole::Admin),
        ];
        let mut out = Vec::new();
        for (endpoints, role) in all {
            for e in endpoints {
                check_endpoint(e, role, self.hxfr_allow_remote)?;
                out.push((e.clone(), role));
            }
        }
        Ok(out)
    }
}

impl Default for HxfrArgs {
    /// No endpoints given: the defaults the options have.
    fn default() -> Self {
        HxfrArgs {
            subscriber: Vec::new(),
            guest: Vec::new(),
            admin: Vec::new(),
            hxfr_allow_remote: false,
            encoder_memory_mib: 512,
        }
    }
}

/// Whether `endpoint` may be opened in `role`.
fn check_endpoint(
    endpoint: &Endpoint,
    role: ListenerRole,
    allow_remote: bool,
) -> anyhow::Result<()> {
    match (endpoint, role) {
        (Endpoint::Tcp(_), ListenerRole::Admin) => anyhow::bail!(
            "--hxfr-admin {endpoint}: the admin role is offered on a Unix socket only (unix:PATH), \
             where the file's permissions say who may use it"
        ),
        (Endpoint::Tcp(a), _) if !a.ip().is_loopback() && !allow_remote => anyhow::bail!(
            "HXFR endpoint {endpoint} is not on loopback: anyone who reaches it gets the {} role; \
             pass --hxfr-allow-remote if that is what you want",
            role.name()
        ),
        _ => Ok(()),
    }
}

/// Parses `8000000`, `8000k`, `8M`.
pub fn parse_bitrate(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000u32),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000u32),
        _ => (s, 1u32),
    };
    let v: f64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a bitrate like 8M, 500k or 2000000"))?;
    let bps = (v * f64::from(mult)).round();
    let range = EncoderSettings::BITRATE_RANGE;
    if !(f64::from(*range.start())..=f64::from(*range.end())).contains(&bps) {
        return Err(format!(
            "bitrate {s} is outside {}..{} bit/s",
            range.start(),
            range.end()
        ));
    }
    Ok(in_range_u32(bps))
}

/// A whole number already checked to lie within `u32`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn in_range_u32(v: f64) -> u32 {
    v as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_for_their_role() {
        let tcp = |s: &str| s.parse::<Endpoint>().unwrap();
        let unix = tcp("unix:/run/zerocast/admin.sock");
        assert!(check_endpoint(&unix, ListenerRole::Admin, false).is_ok());
        assert!(check_endpoint(&tcp("tcp:127.0.0.1:1"), ListenerRole::Admin, true).is_err());
        assert!(check_endpoint(&tcp("tcp:[::1]:1"), ListenerRole::Subscriber, false).is_ok());
        assert!(check_endpoint(&tcp("tcp:0.0.0.0:1"), ListenerRole::Subscriber, false).is_err());
        assert!(check_endpoint(&tcp("tcp:0.0.0.0:1"), ListenerRole::Guest, true).is_ok());
    }

    #[test]
    fn bitrates_parse_with_suffixes() {
        assert_eq!(parse_bitrate("8M"), Ok(8_000_000));
        assert_eq!(parse_bitrate("500k"), Ok(500_000));
        assert_eq!(parse_bitrate("2.5M"), Ok(2_500_000));
        assert_eq!(parse_bitrate("2000000"), Ok(2_000_000));
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("1").is_err());
        assert!(parse_bitrate("9999M").is_err());
    }
}
