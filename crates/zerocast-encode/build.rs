//! Records whether OpenH264's SIMD assembly can be built. `openh264-sys2`
//! falls back to plain C without telling anyone when `nasm` is missing, which
//! halves encode speed; the encoder reports what this script saw.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=OPENH264_NO_ASM");
    let nasm = Command::new("nasm")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let build = if std::env::var_os("OPENH264_NO_ASM").is_some() {
        "plain C (OPENH264_NO_ASM set)"
    } else if nasm {
        "SIMD assembly (nasm)"
    } else {
        "plain C: nasm was missing at build time, encoding is ~2x slower"
    };
    println!("cargo:rustc-env=ZEROCAST_OPENH264_BUILD={build}");
}
