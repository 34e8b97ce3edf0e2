//! `zerocast-kubevirt-hook`: KubeVirt's `onDefineDomain` hook program.
//! Copied into a sidecar-shim image as `/usr/bin/onDefineDomain`, it is run
//! as `onDefineDomain --vmi JSON --domain XML` and prints the domain XML
//! rewritten for zerocast's GPU (see docs/kubevirt.md); without `--domain`
//! it reads the XML on standard input.

use clap::Parser;
use zerocast_kubevirt::hook::{self, HookArgs};

/// Rewrite a libvirt domain XML for zerocast's vhost-user GPU: KubeVirt's
/// onDefineDomain hook.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    hook: HookArgs,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    hook::run_stdio(&Cli::parse().hook)?;
    Ok(())
}
