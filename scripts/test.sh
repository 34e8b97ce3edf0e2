#!/usr/bin/env bash
# The one test command: installs what the tests use (Debian packages, the
# test guest's kernel, the desktop image, cargo-fuzz) and runs every check.
# CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

step "system packages (nasm, ffmpeg, chromium, busybox-static, QEMU 10, mmdebstrap)"
scripts/install-deps.sh

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test guest (Debian kernel + initramfs + zerocast-flipper + zerocast-guest)"
scripts/build-guest.sh

step "desktop image (Debian 12, Xorg, openbox, xterm; cached, built when missing)"
scripts/build-desktop.sh >/dev/null

step "unit, integration, VM and browser tests"
cargo test --workspace --release --locked

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# libFuzzer adds new inputs to the first corpus folder it is given: a scratch
# one, so runs read the committed corpus (fuzz/corpus/TARGET) but leave it be.
fuzz_scratch=$(mktemp -d)
trap 'rm -rf "$fuzz_scratch"' EXIT
# Each target for a bounded time (ZEROCAST_FUZZ_SECONDS sets one for all).
for target in hxfr_decode:30 gpu_commands:20 web_message:20; do
    seconds=${ZEROCAST_FUZZ_SECONDS:-${target#*:}}
    target=${target%%:*}
    step "fuzzing $target for $seconds s"
    mkdir "$fuzz_scratch/$target"
    # cargo-fuzz passes sanitizer flags that need nightly features; the stable
    # compiler accepts them with RUSTC_BOOTSTRAP, so no second toolchain is needed.
    if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build "$target" >"$fuzz_scratch/$target.log" 2>&1); then
        tail -n 60 "$fuzz_scratch/$target.log" >&2
        echo "fuzz target $target did not build" >&2
        exit 1
    fi
    if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" \
        "$fuzz_scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$fuzz_scratch/$target.log" 2>&1); then
        tail -n 60 "$fuzz_scratch/$target.log" >&2
        echo "fuzzing $target failed: the input is in fuzz/artifacts/$target" >&2
        exit 1
    fi
    grep -E '^(Done |stat::)' "$fuzz_scratch/$target.log" >&2
done

step "all checks passed"
