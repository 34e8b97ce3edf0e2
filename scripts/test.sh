#!/usr/bin/env bash
# The one test command: installs what the tests use (Debian packages, the
# test guest's kernel, cargo-fuzz) and runs every check. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

step "system packages (nasm, ffmpeg, chromium, busybox-static, QEMU 10)"
scripts/install-deps.sh

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test guest (Debian kernel + initramfs + zerocast-flipper + zerocast-guest)"
scripts/build-guest.sh

step "unit, integration, VM and browser tests"
cargo test --workspace --release --locked

step "fuzzing the HXFR decoder for ${ZEROCAST_FUZZ_SECONDS:=30} s"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# cargo-fuzz passes sanitizer flags that need nightly features; the stable
# compiler accepts them with RUSTC_BOOTSTRAP, so no second toolchain is needed.
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run hxfr_decode -- \
    -max_total_time="$ZEROCAST_FUZZ_SECONDS" -print_final_stats=1 2>&1 | tail -n 3)

step "all checks passed"
