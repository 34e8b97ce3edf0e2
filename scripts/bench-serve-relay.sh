#!/usr/bin/env bash
# What `zerocast serve` adds to a display's cost: the test guest (flipper,
# 1280x800 at 60 fps, TCG) on a GPU backend registered with a daemon; 600
# frames subscribed through the daemon, then 600 at the backend directly,
# in the same run. Prints CPU per frame of the daemon, the backend and QEMU
# (from /proc/PID/stat) and writes serve-relay.json.
#
#   cargo build --release && scripts/build-guest.sh && scripts/bench-serve-relay.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$REPO/target/release
GUEST=${ZEROCAST_WORK:-$REPO/work/guest}
FRAMES=${FRAMES:-600}
D=$(mktemp -d /tmp/zc-relay.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT

"$BIN/zerocast" serve --socket "$D/run/serve.sock" --listen 127.0.0.1:0 \
    --hxfr "unix:$D/serve-hxfr.sock" --qmp-dir "$D/qmp" >"$D/serve.out" 2>"$D/serve.err" &
serve=$!; pids+=("$serve")
for _ in $(seq 100); do [ -S "$D/run/serve.sock" ] && break; sleep 0.1; done
"$BIN/zerocast-vhost-user-gpu" --socket-path="$D/gpu.sock" --serve "$D/run/serve.sock" \
    --name bench --hxfr "unix:$D/backend-hxfr.sock" --fps 60 2>"$D/backend.err" &
backend=$!; pids+=("$backend")
for _ in $(seq 100); do [ -S "$D/gpu.sock" ] && break; sleep 0.1; done
qemu-system-x86_64 -machine q35,accel=tcg -m 512 -display none \
    -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
    -chardev "socket,id=gpu,path=$D/gpu.sock" -device vhost-user-gpu-pci,chardev=gpu \
    -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" \
    -append "console=ttyS0 zerocast.fps=60 drm_kms_helper.fbdev_emulation=0" \
    -serial "file:$D/serial.log" &
qemu=$!; pids+=("$qemu")
for _ in $(seq 240); do grep -q "zerocast-flipper: frame" "$D/serial.log" 2>/dev/null && break; sleep 0.5; done
grep -q "zerocast-flipper: frame" "$D/serial.log" || { echo "the guest did not start flipping" >&2; exit 1; }
sleep 2

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
json="{"
for mode in daemon backend; do
    if [ "$mode" = daemon ]; then conn=unix:$D/serve-hxfr.sock; else conn=unix:$D/backend-hxfr.sock; fi
    s0=$(ticks "$serve"); b0=$(ticks "$backend"); q0=$(ticks "$qemu"); t0=$(date +%s.%N)
    "$BIN/zerocast" client --connect "$conn" --scanout 0 --frames "$FRAMES" -o "$D/$mode.h264" >/dev/null
    s1=$(ticks "$serve"); b1=$(ticks "$backend"); q1=$(ticks "$qemu"); t1=$(date +%s.%N)
    # A leading zero, as JSON wants.
    per() { awk -v a="$1" -v b="$2" -v hz="$hz" -v n="$FRAMES" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / n }'; }
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    printf '%-8s %d frames in %.1f s: daemon %s ms, backend %s ms, QEMU %s ms CPU per frame\n' \
        "$mode" "$FRAMES" "$secs" "$(per "$s0" "$s1")" "$(per "$b0" "$b1")" "$(per "$q0" "$q1")"
    json+="\"$mode\":{\"frames\":$FRAMES,\"seconds\":$secs,\"daemon_cpu_ms_per_frame\":$(per "$s0" "$s1"),\"backend_cpu_ms_per_frame\":$(per "$b0" "$b1"),\"qemu_cpu_ms_per_frame\":$(per "$q0" "$q1")},"
done
echo "${json%,}}" >serve-relay.json
echo "json     serve-relay.json"
