#!/usr/bin/env bash
# zerocast attach (QEMU's own virtio-gpu, through its D-Bus display) against
# zerocast vm (zerocast's vhost-user GPU), on the same test guest (flipper,
# 1280x800 at 60 fps, TCG), one after the other in one run: 600 frames
# subscribed over HXFR from each, CPU per frame of zerocast and of QEMU
# (from /proc/PID/stat). Writes attach.json.
#
#   cargo build --release && scripts/build-guest.sh && scripts/bench-attach.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$REPO/target/release
GUEST=${ZEROCAST_WORK:-$REPO/work/guest}
FRAMES=${FRAMES:-600}
APPEND="zerocast.fps=60 drm_kms_helper.fbdev_emulation=0"
D=$(mktemp -d /tmp/zc-attach.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
per() { awk -v a="$1" -v b="$2" -v hz="$hz" -v n="$FRAMES" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / n }'; }
wait_for() { for _ in $(seq 480); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.25; done; echo "no '$2' in $1" >&2; exit 1; }

# Measures $FRAMES frames from HXFR endpoint $1, zerocast pid $2, QEMU pid $3.
measure() {
    local z0 q0 z1 q1 t0 t1
    z0=$(ticks "$2"); q0=$(ticks "$3"); t0=$(date +%s.%N)
    "$BIN/zerocast" client --connect "$1" --frames "$FRAMES" -o "$D/out.h264" >/dev/null
    z1=$(ticks "$2"); q1=$(ticks "$3"); t1=$(date +%s.%N)
    local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    cores() { awk -v a="$1" -v b="$2" -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.3f", (b - a) / hz / s }'; }
    echo "\"seconds\":$(printf '%.2f' "$secs"),\"fps\":$(awk -v n="$FRAMES" -v s="$secs" 'BEGIN { printf "%.1f", n / s }'),\"zerocast_cpu_ms_per_frame\":$(per "$z0" "$z1"),\"qemu_cpu_ms_per_frame\":$(per "$q0" "$q1"),\"zerocast_cores\":$(cores "$z0" "$z1"),\"qemu_cores\":$(cores "$q0" "$q1")"
}

# zerocast attach: QEMU's virtio-vga, its D-Bus display on a private bus.
dbus-daemon --session --nofork "--address=unix:path=$D/bus" &
pids+=($!)
for _ in $(seq 100); do [ -S "$D/bus" ] && break; sleep 0.1; done
qemu-system-x86_64 -nodefaults -accel tcg -m 512M -machine pc -device virtio-vga \
    -device virtio-keyboard-pci -device virtio-tablet-pci \
    -display "dbus,addr=unix:path=$D/bus" -monitor none -serial "file:$D/attach.log" \
    -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" -append "console=ttyS0 $APPEND" &
qemu=$!; pids+=("$qemu")
wait_for "$D/attach.log" "Linux version"
"$BIN/zerocast" attach --dbus "unix:path=$D/bus" --listen 127.0.0.1:0 \
    --hxfr "unix:$D/attach-hxfr.sock" --fps 60 >"$D/attach.out" 2>"$D/attach.err" &
zc=$!; pids+=("$zc")
wait_for "$D/attach.log" "zerocast-flipper: frame"
sleep 2
attach=$(measure "unix:$D/attach-hxfr.sock" "$zc" "$qemu")
kill "$zc" "$qemu"; wait "$zc" "$qemu" 2>/dev/null || true

# zerocast vm: the same guest on zerocast's vhost-user GPU.
"$BIN/zerocast" vm --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initrd.img" --append "$APPEND" \
    --listen 127.0.0.1:0 --hxfr "unix:$D/vm-hxfr.sock" --fps 60 >"$D/vm.out" 2>"$D/vm.err" &
vm=$!; pids+=("$vm")
for _ in $(seq 240); do serial=$(sed -n 's/^serial: //p' "$D/vm.out"); [ -n "$serial" ] && break; sleep 0.25; done
wait_for "$serial" "zerocast-flipper: frame"
vmqemu=$(pgrep -P "$vm" -f qemu-system | head -1)
sleep 2
vhost=$(measure "unix:$D/vm-hxfr.sock" "$vm" "$vmqemu")

echo "{\"frames\":$FRAMES,\"attach_dbus\":{$attach},\"vm_vhost_user\":{$vhost}}" >attach.json
echo "attach (QEMU's GPU, D-Bus):  {$attach}"
echo "vm (zerocast's vhost-user):  {$vhost}"
echo "json                         attach.json"
