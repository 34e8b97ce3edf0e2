//! The hook binary as KubeVirt's sidecar-shim runs it
//! (`cmd/sidecars/sidecar_shim.go`, `runOnDefineDomain`): found in `$PATH`
//! under the name `onDefineDomain`, started as
//! `onDefineDomain --vmi VMI_JSON --domain DOMAIN_XML`, its whole standard
//! output taken as the new domain XML and a non-zero exit as failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const DOMAIN: &str = include_str!("../testdata/kubevirt-vga.xml");
const VMI: &str = r#"{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachineInstance","metadata":{"name":"fedora-desktop","namespace":"default","annotations":{"hooks.kubevirt.io/hookSidecars":"[{\"args\":[\"--version\",\"v1alpha3\"],\"image\":\"registry.example/zerocast-hook:latest\"}]"}},"spec":{"domain":{"devices":{}}}}"#;

/// A folder holding the hook binary copied as `onDefineDomain`, removed on drop.
struct ShimPath(PathBuf);

impl ShimPath {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("zerocast-kubevirt-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp folder");
        std::fs::copy(
            env!("CARGO_BIN_EXE_zerocast-kubevirt-hook"),
            dir.join("onDefineDomain"),
        )
        .expect("copy the hook as onDefineDomain");
        Self(dir)
    }

    /// `exec.Command("onDefineDomain", args...)` with this folder as `$PATH`.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new("onDefineDomain")
            .args(args)
            .env("PATH", &self.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("onDefineDomain found in PATH");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    }
}

impl Drop for ShimPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_shims_calling_convention_gets_the_rewritten_domain_on_stdout() {
    let shim = ShimPath::new("convention");
    let out = shim.run(&["--vmi", VMI, "--domain", DOMAIN], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = String::from_utf8(out.stdout).expect("UTF-8");
    let expected = zerocast_kubevirt::domain_xml::rewrite(DOMAIN).expect("rewrite");
    assert_eq!(
        xml, expected.xml,
        "stdout is the domain XML and nothing else"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("replaced the primary video (vga)"), "{log}");

    // The same domain through a pipe, and the output fed back: unchanged.
    let piped = shim.run(&[], DOMAIN);
    assert_eq!(String::from_utf8_lossy(&piped.stdout), xml);
    let again = shim.run(&["--vmi", VMI, "--domain", &xml], "");
    assert_eq!(String::from_utf8_lossy(&again.stdout), xml);
}

#[test]
fn refused_input_fails_the_hook_with_nothing_on_stdout() {
    let shim = ShimPath::new("refused");
    let out = shim.run(&["--vmi", VMI, "--domain", "<network/>"], "");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a libvirt domain"), "{err}");

    let out = shim.run(&["--vmi", VMI, "--domain", DOMAIN, "--unknown"], "");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}
