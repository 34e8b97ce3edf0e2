#!/usr/bin/env bash
# Smoke test of the test guest (scripts/build-guest.sh) on QEMU's own
# virtio-gpu, under TCG. Checks that:
#   1. zerocast-flipper's frames advance (serial console),
#   2. keyboard, tablet and button input sent through QMP reaches the guest,
#   3. the picture QEMU displays carries the frame stamp, and it advances.
# Exits non-zero with a message on the first failure, keeping its work
# folder (serial log, QEMU log, screenshots) for a look.
#
#   scripts/run-guest-smoke.sh [--no-build]
#
# Environment:
#   SMOKE_FRAMES   frames to see on the serial console first (default 90)
#   SMOKE_FPS      the flipper's --fps (default 60; 0 = as fast as it can)
#   SMOKE_TIMEOUT  seconds allowed for the whole run (default 120)
#   SMOKE_KEEP     1 = keep the work folder after a pass too
#   ZEROCAST_WORK  where the guest is built (default <repo>/work/guest)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FRAMES=${SMOKE_FRAMES:-90}
FPS=${SMOKE_FPS:-60}
TIMEOUT=${SMOKE_TIMEOUT:-120}
START=$SECONDS

log() { echo "smoke: $*" >&2; }

for tool in qemu-system-x86_64 python3; do
  command -v "$tool" >/dev/null || { log "FAIL: $tool is not installed (scripts/install-deps.sh)"; exit 1; }
done

if [ "${1:-}" = --no-build ]; then
  GUEST=${ZEROCAST_WORK:-$REPO/work/guest}
  KERNEL=$GUEST/vmlinuz
  INITRD=$GUEST/initrd.img
else
  paths=$("$REPO/scripts/build-guest.sh") || { log "FAIL: scripts/build-guest.sh failed"; exit 1; }
  { read -r KERNEL; read -r INITRD; } <<<"$paths"
fi
[ -f "$KERNEL" ] && [ -f "$INITRD" ] || { log "FAIL: no guest at $KERNEL / $INITRD"; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/zerocast-smoke.XXXXXX")
SERIAL=$DIR/serial.log
QMP=$DIR/qmp.sock
QEMU_PID=""

cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

fail() {
  log "FAIL: $*"
  log "last serial lines:"
  tail -n 15 "$SERIAL" >&2 2>/dev/null || true
  log "QEMU log:"
  cat "$DIR/qemu.log" >&2 2>/dev/null || true
  log "logs and screenshots kept in $DIR"
  exit 1
}

# Waits up to $2 seconds until the command "${@:3}" succeeds; $1 says what for.
# Fails at once if QEMU or the guest program has exited.
wait_for() {
  local what=$1 limit=$2 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    grep -q 'zerocast-guest: .* exited with status' "$SERIAL" 2>/dev/null &&
      fail "the guest program exited before $what"
    kill -0 "$QEMU_PID" 2>/dev/null || fail "QEMU exited before $what"
    [ "$SECONDS" -lt "$deadline" ] || fail "no $what within $limit s"
    sleep 0.2
  done
}

# The serial log has a line matching the extended regex $1 (lines end in CR LF).
has_line() { grep -Eq -- "$1[[:space:]]*\$" "$SERIAL" 2>/dev/null; }

# The flipper has reported frame $1 or later.
frames_reached() {
  local last
  last=$(grep -Eo 'zerocast-flipper: frame [0-9]+' "$SERIAL" 2>/dev/null | tail -n 1)
  [ "${last##* }" -ge "$1" ] 2>/dev/null
}

# fbdev emulation off: fbcon would flush its own resource now and then.
# No PS/2 controller: QMP input then has to go through the virtio devices.
# -serial file + -display none is -nographic without a terminal.
timeout "$TIMEOUT" qemu-system-x86_64 \
  -machine pc,i8042=off -accel tcg -m 512 -no-reboot \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 quiet drm_kms_helper.fbdev_emulation=0 zerocast.run=flipper zerocast.fps=$FPS" \
  -device virtio-gpu-pci \
  -device virtio-keyboard-pci,id=kbd -device virtio-tablet-pci,id=tablet \
  -display none -vga none -monitor none \
  -serial "file:$SERIAL" -qmp "unix:$QMP,server=on,wait=off" \
  </dev/null >"$DIR/qemu.log" 2>&1 &
QEMU_PID=$!
BOOTED=$EPOCHREALTIME
log "QEMU pid $QEMU_PID, work folder $DIR"

# Seconds since QEMU started, to a tenth.
since_boot() { awk -v a="$BOOTED" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

wait_for "'modules loaded'" 60 has_line 'zerocast-guest: modules loaded.*'
wait_for "the flipper's mode set" 30 has_line 'zerocast-flipper: [0-9]+ dumb buffers.*'
log "mode set $(since_boot) s after QEMU started"
wait_for "$FRAMES frames" 60 frames_reached "$FRAMES"
log "frames advance: $(grep -Eo 'frame [0-9]+ \([0-9.]+ fps\)' "$SERIAL" | tail -n 1)"

# QMP: input, then two screenshots; records the frame stamp of each.
python3 - "$QMP" "$DIR" <<'EOF' || fail "QMP conversation failed"
import json, re, socket, sys, time

sock_path, out = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX)
sock.settimeout(10)
sock.connect(sock_path)
stream = sock.makefile("rw")
json.loads(stream.readline())  # greeting


def qmp(name, **arguments):
    stream.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
    stream.flush()
    while True:
        reply = json.loads(stream.readline())
        if "error" in reply:
            sys.exit(f"QMP {name}: {reply['error']}")
        if "return" in reply:
            return reply["return"]  # anything else is an asynchronous event


def send(*events):
    qmp("input-send-event", events=list(events))
    time.sleep(0.1)


def key(down):
    return {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": "a"}}}


def abs_axis(axis, value):
    return {"type": "abs", "data": {"axis": axis, "value": value}}


def button(down, name="left"):
    return {"type": "btn", "data": {"down": down, "button": name}}


def stamp(ppm_path):
    """The frame number in the stamp (crates/zerocast-frame/src/stamp.rs):
    16x16 blocks along the top: white, black, then 24 bits of the number and
    8 check bits, white = 1."""
    with open(ppm_path, "rb") as f:
        data = f.read()
    header = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    assert header, "not an 8-bit PPM"
    width, pixels = int(header[1]), data[header.end():]
    green = [pixels[(8 * width + 16 * i + 8) * 3 + 1] >= 128 for i in range(34)]
    if green[:2] != [True, False]:
        return None
    word = int("".join("1" if b else "0" for b in green[2:]), 2)
    n = word >> 8
    ok = (n ^ (n >> 8) ^ (n >> 16) ^ 0x5A) & 0xFF == word & 0xFF
    return n if ok else None


qmp("qmp_capabilities")
send(key(True))
send(key(False))
send(abs_axis("x", 16384), abs_axis("y", 8192))
send(button(True))
send(button(False))
send(button(True, "wheel-up"))
send(button(False, "wheel-up"))

stamps = []
for i in range(2):
    path = f"{out}/screen{i}.ppm"
    qmp("screendump", filename=path)
    stamps.append(stamp(path))
    time.sleep(0.5)
qmp("screendump", filename=f"{out}/screen.png", format="png")
with open(f"{out}/stamps", "w") as f:
    print(" ".join(str(s) for s in stamps), file=f)
EOF

read -r stamp0 stamp1 <"$DIR/stamps"
[ "$stamp0" != None ] && [ "$stamp1" != None ] || fail "no readable frame stamp in the screenshots ($stamp0, $stamp1)"
[ "$stamp1" -gt "$stamp0" ] || fail "the displayed frame did not advance (stamps $stamp0, $stamp1)"
log "display shows frame stamps $stamp0 then $stamp1"

for line in 'type=EV_KEY code=30 value=1' 'type=EV_KEY code=30 value=0' \
  'type=EV_ABS code=0 value=[0-9]+' 'type=EV_ABS code=1 value=[0-9]+' \
  'type=EV_KEY code=272 value=1' 'type=EV_KEY code=272 value=0' 'type=EV_REL code=8 value=1'; do
  wait_for "'$line'" 10 has_line "zerocast-input: $line"
done
log "input arrives: key a down/up, tablet x/y, left button down/up, wheel"

grep -E 'zerocast-guest: modules loaded' "$SERIAL" | tr -d '\r' | sed 's/^/smoke: /' >&2
log "PASS in $((SECONDS - START)) s"
if [ "${SMOKE_KEEP:-0}" = 1 ]; then
  log "logs and screenshots kept in $DIR"
else
  rm -rf "$DIR"
fi
