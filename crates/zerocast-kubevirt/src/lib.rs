//! zerocast for KubeVirt: the `onDefineDomain` hook that gives a VM
//! zerocast's GPU.
//!
//! Design map:
//! - [`domain_xml`]: the rewrite itself, sans I/O: domain XML in, domain XML
//!   out (vhost-user video, shared memfd memory, ACPI), with what it changed.
//! - [`hook`]: the program's edge: the sidecar-shim's calling convention
//!   (`--vmi JSON --domain XML`) or standard input, and standard output.

pub mod domain_xml;
pub mod hook;
