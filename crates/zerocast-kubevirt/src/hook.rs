//! The hook program's edge: where the domain XML comes from and where the
//! rewrite goes.
//!
//! KubeVirt's sidecar-shim (`cmd/sidecars/sidecar_shim.go`) answers the
//! `OnDefineDomain` gRPC call by running the program named `onDefineDomain`
//! found in `$PATH` as `onDefineDomain --vmi VMI_JSON --domain DOMAIN_XML`
//! and taking its standard output, whole, as the new domain XML; a non-zero
//! exit fails the call, and so the VM's start. Without `--domain` the XML
//! is read from standard input instead, for use in a pipe.

use std::io::{Read, Write};

use crate::domain_xml::{self, Change, RewriteError, MAX_DOMAIN_XML};

/// The sidecar-shim's arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HookArgs {
    /// The VirtualMachineInstance as JSON, as the sidecar-shim passes it. Not
    /// read: attaching the sidecar to a VM is what asks for zerocast.
    #[arg(long, value_name = "JSON")]
    pub vmi: Option<String>,
    /// The libvirt domain XML to rewrite; read from standard input without it.
    #[arg(long, value_name = "XML")]
    pub domain: Option<String>,
}

/// Why the hook gave no domain XML.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot read the domain XML from standard input: {0}")]
    Read(#[source] std::io::Error),
    #[error("the domain XML on standard input is not UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    #[error("cannot write the domain XML to standard output: {0}")]
    Write(#[source] std::io::Error),
}

/// Rewrites the domain given by `args` (or read from `input`) and writes it,
/// and nothing else, to `output`; returns what changed.
pub fn run(
    args: &HookArgs,
    input: impl Read,
    mut output: impl Write,
) -> Result<Vec<Change>, HookError> {
    let rewritten = match &args.domain {
        Some(xml) => domain_xml::rewrite(xml)?,
        None => domain_xml::rewrite(&read_limited(input)?)?,
    };
    output
        .write_all(rewritten.xml.as_bytes())
        .and_then(|()| output.flush())
        .map_err(HookError::Write)?;
    Ok(rewritten.changes)
}

/// [`run`] on this process's standard input and output, logging the changes
/// on standard error (which the sidecar-shim keeps out of the XML).
pub fn run_stdio(args: &HookArgs) -> Result<(), HookError> {
    let changes = run(args, std::io::stdin().lock(), std::io::stdout().lock())?;
    if changes.is_empty() {
        tracing::info!("the domain already has zerocast's GPU; returned unchanged");
    }
    for change in &changes {
        tracing::info!(%change, "domain XML rewritten for zerocast");
    }
    Ok(())
}

/// Reads at most one byte over the limit, so a huge input is refused
/// without being held in memory.
fn read_limited(input: impl Read) -> Result<String, HookError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_DOMAIN_XML).unwrap_or(u64::MAX);
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(HookError::Read)?;
    if bytes.len() > MAX_DOMAIN_XML {
        return Err(RewriteError::TooLarge {
            len: bytes.len(),
            max: MAX_DOMAIN_XML,
        }
        .into());
    }
    String::from_utf8(bytes).map_err(|_| HookError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "<domain type='kvm'><name>x</name></domain>\n";

    fn run_to_string(args: &HookArgs, input: &[u8]) -> Result<String, HookError> {
        let mut out = Vec::new();
        run(args, input, &mut out)?;
        Ok(String::from_utf8(out).expect("UTF-8 out"))
    }

    #[test]
    fn the_domain_argument_wins_over_standard_input() {
        let args = HookArgs {
            vmi: Some("{}".into()),
            domain: Some(DOMAIN.into()),
        };
        let out = run_to_string(&args, b"<not-read/>").expect("run");
        assert_eq!(out, domain_xml::rewrite(DOMAIN).expect("rewrite").xml);
    }

    #[test]
    fn standard_input_is_read_without_the_domain_argument() {
        let out = run_to_string(&HookArgs::default(), DOMAIN.as_bytes()).expect("run");
        assert!(
            out.ends_with("<features><acpi/></features></domain>\n"),
            "{out}"
        );
    }

    #[test]
    fn nothing_is_written_for_refused_input() {
        let mut out = Vec::new();
        let e = run(&HookArgs::default(), &b"<network/>"[..], &mut out).unwrap_err();
        assert!(matches!(
            e,
            HookError::Rewrite(RewriteError::NotADomain { .. })
        ));
        assert!(out.is_empty());
        let e = run(
            &HookArgs::default(),
            &b"<domain>\xff</domain>"[..],
            &mut out,
        )
        .unwrap_err();
        assert!(matches!(e, HookError::NotUtf8));
    }

    #[test]
    fn endless_input_is_cut_at_the_limit() {
        let endless = std::io::repeat(b' ');
        let e = run(&HookArgs::default(), endless, Vec::new()).unwrap_err();
        assert!(matches!(
            e,
            HookError::Rewrite(RewriteError::TooLarge { len, .. }) if len == MAX_DOMAIN_XML + 1
        ));
    }
}
