//! `zerocast`: stream a desktop to a browser.
//!
//! Design map:
//! - [`options`]: command-line options shared by the commands.
//! - [`process`]: this process's CPU time, memory and file descriptors.
//! - [`serving`]: HXFR listeners and the web gateway, opened the same way by every command.
//! - [`stop`]: when a long-running command stops (duration, Ctrl-C, SIGTERM).
//! - [`web_access`]: the viewer's tokens and allowed Hosts and Origins, from options.
//! - [`demo`]: `zerocast demo`, the synthetic desktop served to browsers and HXFR peers.
//! - [`client`]: `zerocast client`, an HXFR subscriber or requester that writes raw H.264.
//! - [`vm`]: `zerocast vm`, a QEMU guest displayed through our GPU backend, streamed with input back.
//! - [`guest_session`]: the session agent's vsock channel for `vm`: viewers' resizes, clipboard and typed text in, the guest's clipboard out.
//! - [`attach`]: `zerocast attach`, a VM with QEMU's own GPU, through QEMU's D-Bus display.
//! - [`gpu_backend`]: `zerocast gpu-backend`, the vhost-user-gpu backend program libvirt starts.
//! - [`serve`]: `zerocast serve`, the host daemon: every registered VM's displays behind one gateway and HXFR endpoint, an index of VMs, input by QMP.
//! - [`registration`]: how a GPU backend introduces its VM to `serve` (one JSON line each way), checked.
//! - [`relay`]: one registered VM display: subscribed at its backend while watched, its frames handed on.
//! - [`install_libvirt`]: `zerocast install-libvirt`, the vhost-user descriptor that points libvirt at it.
//! - `zerocast kubevirt-hook`: KubeVirt's onDefineDomain domain XML rewrite, from the `zerocast-kubevirt` crate.
//! - [`gpu_streams`]: a GPU backend's scanouts as encoded streams, for `vm` and `gpu-backend`.
//! - [`runtime_dir`]: the VM's private folder for its sockets and serial log (0700, new or checked).
//! - [`mod@bench`]: `zerocast bench`, encoder throughput and the stream into a real browser, as JSON.
//! - [`stream_bench`]: one stream measured into a real headless Chromium: fps, latency and glass to glass, CPU, memory.
//! - [`stream_quality`]: after a stream run, its frames decoded and compared with the frames their stamps name.
//! - [`native_baseline`]: the guest agent's x264 work done by the host on the guest's flushes (`baseline-native`).
//! - [`progress`]: a progress bar on stderr that log lines do not tear (the suite's).
//! - [`damage_bench`]: `zerocast bench --workload desktop-damage`, whole-frame against damage-aware encoding per desktop workload.
//! - [`refresh_bench`]: `zerocast bench --workload still-after-motion`, how sharp a still picture is before and after refinement.
//! - [`desktop_bench`]: the same on the real desktop image: a drag and a scroll, before and after, against the guest's framebuffer.
//! - [`picture_quality`]: PSNR and SSIM of a decoded picture against its source.
//! - [`suite`]: `zerocast bench --suite`, every stream mode one after another in one run, with spreads and the zero-copy / x264 ratios.
//! - [`peer_bench`]: `zerocast bench --peer qemu-vnc`, zerocast against QEMU's own GPU and VNC server on the same guest.
//! - [`rfb`]: the viewer side of RFB 3.8 (VNC), sans I/O, counting updates and bytes for `peer_bench`.
//! - [`soak`]: `zerocast soak`, one scanout under many viewers, churn and floods, with its costs.

mod attach;
mod bench;
mod client;
mod damage_bench;
mod demo;
mod desktop_bench;
mod gpu_backend;
mod gpu_streams;
mod guest_session;
mod install_libvirt;
mod native_baseline;
mod options;
mod peer_bench;
mod picture_quality;
mod process;
mod progress;
mod refresh_bench;
mod registration;
mod relay;
mod rfb;
mod runtime_dir;
mod serve;
mod serving;
mod soak;
mod stop;
mod stream_bench;
mod stream_quality;
mod suite;
mod vm;
mod web_access;

use clap::{Parser, Subcommand};

/// Zero-copy VM desktop streaming: frames encoded to H.264 on the host,
/// decoded in the browser with WebCodecs.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream the built-in synthetic desktop: open the printed URL in a browser.
    Demo(demo::DemoArgs),
    /// Connect to an HXFR server and write the H.264 stream to a file.
    Client(client::ClientArgs),
    /// Boot a VM whose display is zerocast's own virtio-gpu, and stream it.
    Vm(Box<vm::VmArgs>),
    /// Stream a VM that keeps QEMU's own GPU, through QEMU's D-Bus display
    /// (-display dbus): frames out, keys and pointer in.
    Attach(Box<attach::AttachArgs>),
    /// Measure encoding at a given size: throughput, latency, CPU per frame.
    Bench(bench::BenchArgs),
    /// Be a vhost-user-gpu backend program, as libvirt starts one (QEMU's
    /// backend program conventions): --fd=N or --socket-path=PATH.
    GpuBackend(Box<gpu_backend::GpuBackendArgs>),
    /// Serve every VM on this host whose GPU backend registers (libvirt
    /// starts one per domain): one web gateway with an index of VMs, one
    /// HXFR endpoint.
    Serve(serve::ServeArgs),
    /// Install the vhost-user descriptor that makes libvirt start zerocast's
    /// GPU backend, and print the domain XML that uses it.
    InstallLibvirt(install_libvirt::InstallArgs),
    /// Rewrite a libvirt domain XML (--domain, or standard input) for
    /// zerocast's GPU, as KubeVirt's onDefineDomain hook does.
    KubevirtHook(zerocast_kubevirt::hook::HookArgs),
    /// Run one scanout under many viewers, churn and floods; report what it cost.
    Soak(soak::SoakArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Around `zerocast bench --suite`'s progress bar while it is shown.
        .with_writer(|| progress::LogOut)
        // No colour codes where stderr is a log (libvirt's domain log, a pipe).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Demo(a) => rt.block_on(demo::run(a)),
        Command::Client(a) => rt.block_on(client::run(a)),
        Command::Vm(a) => rt.block_on(vm::run(*a)),
        Command::Attach(a) => rt.block_on(attach::run(*a)),
        Command::Bench(a) => rt.block_on(bench::run(a)),
        Command::GpuBackend(a) => rt.block_on(gpu_backend::run(*a)),
        Command::Serve(a) => rt.block_on(serve::run(a)),
        Command::InstallLibvirt(a) => install_libvirt::run(&a),
        Command::KubevirtHook(a) => Ok(zerocast_kubevirt::hook::run_stdio(&a)?),
        Command::Soak(a) => rt.block_on(soak::run(a)),
    }
}
