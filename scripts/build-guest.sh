#!/usr/bin/env bash
# Builds zerocast's test guest: Debian's stock kernel plus a small initramfs
# that loads the virtio modules and runs zerocast-flipper (or another program
# chosen on the kernel command line, such as the agent zerocast-guest), then
# powers off.
#
#   scripts/build-guest.sh          # prints the paths of vmlinuz and initrd.img
#
# Environment:
#   ZEROCAST_WORK     output folder (default: <repo>/work/guest)
#   GUEST_EXTRA_BINS  space-separated paths of extra static programs for /bin
#                     (e.g. the guest agent; run one with zerocast.run=NAME)
#
# Idempotent. The kernel is downloaded and unpacked once per kernel version;
# a rerun only rebuilds the flipper (incrementally) and repacks the initramfs.
# Needs apt-get, dpkg-deb, busybox-static, cargo (see scripts/install-deps.sh).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${ZEROCAST_WORK:-$REPO/work/guest}
BUSYBOX=/bin/busybox
TARGET=x86_64-unknown-linux-gnu

# Loaded in this order by /init (modprobe adds their dependencies):
# virtio transport, the GPU, input, vsock, network.
MODULES=(
  virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
  drm drm_kms_helper drm_shmem_helper virtio_dma_buf virtio-gpu
  virtio_input evdev
  vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport
  virtio_net
)

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

[ -x "$BUSYBOX" ] || die "$BUSYBOX missing: install busybox-static (scripts/install-deps.sh)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# The versioned package behind the linux-image-amd64 metapackage, e.g.
# linux-image-6.1.0-56-amd64. It changes with security updates.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

apt_update() {
  log "refreshing apt's package lists"
  $SUDO apt-get update -qq
}

# Downloads and unpacks the kernel package into $1, with a modules.dep.
fetch_kernel() {
  local pkg=$1 dest=$2 tmp deb
  tmp=$(mktemp -d "$OUT/download.XXXXXX")
  chmod 755 "$tmp" # apt downloads as its _apt user when it can
  # Old kernel versions leave the mirror: a failed download means stale lists.
  if ! (cd "$tmp" && apt-get download -q "$pkg" >&2); then
    apt_update
    (cd "$tmp" && apt-get download -q "$pkg" >&2) || die "cannot download $pkg"
  fi
  deb=$(echo "$tmp"/*.deb)
  [ -f "$deb" ] || die "apt-get download left no .deb for $pkg"
  dpkg-deb -x "$deb" "$tmp/root"
  local version
  version=$(ls "$tmp/root/lib/modules")
  # The .deb ships no modules.dep (the package's postinst makes it).
  "$BUSYBOX" depmod -b "$tmp/root" "$version"
  rm -f "$deb"
  rm -rf "$dest"
  mv "$tmp/root" "$dest"
  rmdir "$tmp"
}

mkdir -p "$OUT"
rm -rf "$OUT"/download.* # left by an interrupted run

pkg=$(kernel_package)
if [ -z "$pkg" ]; then
  apt_update
  pkg=$(kernel_package)
fi
[ -n "$pkg" ] || die "apt-cache cannot resolve linux-image-amd64 (is this Debian?)"
KROOT=$OUT/kernels/$pkg
if [ ! -d "$KROOT" ]; then
  log "downloading $pkg"
  mkdir -p "$OUT/kernels"
  fetch_kernel "$pkg" "$KROOT"
  # Unpacked kernels take ~400 MB each: keep only the current one.
  find "$OUT/kernels" -mindepth 1 -maxdepth 1 ! -name "$pkg" -exec rm -rf {} +
fi
KVER=$(ls "$KROOT/lib/modules")
KMODS=$KROOT/lib/modules/$KVER
log "kernel $KVER"

# The guest programs, static (glibc static-pie: there is no musl target
# here): the flipper and the agent. Their own target folder keeps these
# flags from invalidating other builds. Symbols stay for backtraces; debug
# info would triple the initramfs.
log "building zerocast-flipper and zerocast-guest"
(
  cd "$REPO"
  # The agent's baseline is x264: without libx264-dev, fail here, not in the guest.
  RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    ZEROCAST_REQUIRE_X264=1 CARGO_TARGET_DIR="$REPO/target/guest" \
    cargo build --release --quiet --target "$TARGET" -p zerocast-flipper -p zerocast-guest
)
GUEST_BINS=$REPO/target/guest/$TARGET/release

# Module files for MODULES and everything they depend on, relative to
# $KMODS. modules.dep lists each module's full dependency closure, so one
# lookup per module is enough. Module names treat '-' and '_' alike.
# Fails, naming them, if some are not there.
module_files() {
  awk -v want="$*" '
    function norm(s) { gsub("-", "_", s); return s }
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) wanted[norm(w[i])] = 1 }
    {
      file = $1; sub(":$", "", file)
      name = file; sub(".*/", "", name); sub("\\.ko.*$", "", name); name = norm(name)
      if (name in wanted) {
        found[name] = 1
        print file
        for (i = 2; i <= NF; i++) print $i
      }
    }
    END {
      for (m in wanted) if (!(m in found)) { print "build-guest: no module " m > "/dev/stderr"; bad = 1 }
      exit bad
    }
  ' "$KMODS/modules.dep" | sort -u
}

# Stage the initramfs tree.
STAGE=$OUT/initrd.root
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,dev,etc,proc,sys,tmp,lib/modules/"$KVER"}
cp "$BUSYBOX" "$STAGE/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$STAGE/bin/$applet"
done

list=$(module_files "${MODULES[@]}") || die "modules missing from $KVER's modules.dep"
mapfile -t files <<<"$list"
(cd "$KMODS" && cp --parents "${files[@]}" "$STAGE/lib/modules/$KVER/")
# A modules.dep for just the copied modules, so modprobe resolves them.
"$BUSYBOX" depmod -b "$STAGE" "$KVER"

cp "$GUEST_BINS/zerocast-flipper" "$GUEST_BINS/zerocast-guest" "$STAGE/bin/"
# GUEST_EXTRA_BINS is split on spaces on purpose.
for bin in ${GUEST_EXTRA_BINS:-}; do
  [ -f "$bin" ] || die "GUEST_EXTRA_BINS: $bin is not a file"
  cp "$bin" "$STAGE/bin/"
done
for bin in "$GUEST_BINS/zerocast-flipper" "$GUEST_BINS/zerocast-guest" ${GUEST_EXTRA_BINS:-}; do
  # A dynamic program would fail in the guest with a bare "not found".
  if readelf -l "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
    die "$bin is dynamically linked; the guest has no libc"
  fi
done

printf '%s\n' "${MODULES[@]}" >"$STAGE/etc/modules"
cat >"$STAGE/init" <<'EOF'
#!/bin/busybox sh
# zerocast test guest (made by scripts/build-guest.sh). Kernel command line:
#   zerocast.run=NAME   program to run: /bin/zerocast-NAME or /bin/NAME
#                       (default flipper; "shell" gives a console shell)
#   zerocast.KEY=VALUE  passed to it as --KEY VALUE, e.g. zerocast.fps=60
#   zerocast.also=NAME  a second program started in the background first,
#                       with zerocast.also.KEY=VALUE as its --KEY VALUE
#   zerocast.also_loop=1  start it again whenever it exits (an agent that
#                       reconnects, e.g. with zerocast.also.frames=N)
#   zerocast.ip=A/P     address for eth0 (virtio-net), e.g. 10.0.2.15/24
#   zerocast.reboot_after=N  reboot (reboot -f) N seconds after start, at
#                       every boot: tests of a guest rebooting mid-stream
# Module options work too (busybox modprobe reads them from the command
# line), e.g. drm_kms_helper.fbdev_emulation=0. It powers off when the
# program exits.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

up() { read -r secs _ </proc/uptime; echo "(uptime ${secs} s)"; }
echo "zerocast-guest: init started, kernel $(uname -r) $(up)"
for m in $(cat /etc/modules); do
  modprobe "$m" || echo "zerocast-guest: modprobe $m failed"
done
echo "zerocast-guest: modules loaded $(up)"
# The modes each connector offers, as the EDID gave them (what xrandr would
# list). Writing "detect" probes the connector now: with fbdev emulation off
# nothing else has yet.
for conn in /sys/class/drm/card*-*; do
  [ -f "$conn/modes" ] || continue
  echo detect >"$conn/status"
  echo "zerocast-guest: ${conn##*/} modes: $(tr '\n' ' ' <"$conn/modes")"
done

run=flipper
also=
also_args=
also_loop=
ip=
reboot_after=
set --
for word in $(cat /proc/cmdline); do
  case "$word" in
    zerocast.run=*) run=${word#zerocast.run=} ;;
    zerocast.also=*) also=${word#zerocast.also=} ;;
    zerocast.also_loop=*) also_loop=${word#zerocast.also_loop=} ;;
    zerocast.also.*=*) kv=${word#zerocast.also.}; also_args="$also_args --${kv%%=*} ${kv#*=}" ;;
    zerocast.ip=*) ip=${word#zerocast.ip=} ;;
    zerocast.reboot_after=*) reboot_after=${word#zerocast.reboot_after=} ;;
    zerocast.*=*) kv=${word#zerocast.}; set -- "$@" "--${kv%%=*}" "${kv#*=}" ;;
  esac
done

if [ -n "$ip" ]; then
  ip link set lo up
  ip addr add "$ip" dev eth0 && ip link set eth0 up && echo "zerocast-guest: eth0 $ip"
fi
if [ -n "$also" ]; then
  aprog=/bin/zerocast-$also
  [ -x "$aprog" ] || aprog=/bin/$also
  echo "zerocast-guest: also running $aprog$also_args"
  # Words on the kernel command line hold no spaces: splitting is safe.
  # shellcheck disable=SC2086
  if [ "$also_loop" = 1 ]; then
    (while :; do
      "$aprog" $also_args
      echo "zerocast-guest: $also exited with status $?, restarting $(up)"
      sleep 1
    done) &
  else
    "$aprog" $also_args &
  fi
fi

if [ -n "$reboot_after" ]; then
  (sleep "$reboot_after" && echo "zerocast-guest: rebooting $(up)" && reboot -f) &
fi

if [ "$run" = shell ]; then
  echo "zerocast-guest: shell (exit to power off)"
  setsid cttyhack sh
else
  prog=/bin/zerocast-$run
  [ -x "$prog" ] || prog=/bin/$run
  echo "zerocast-guest: running $prog $*"
  "$prog" "$@"
  status=$?
  echo "zerocast-guest: $run exited with status $status $(up)"
fi
echo "zerocast-guest: powering off"
poweroff -f
EOF
chmod +x "$STAGE/init"

# Newc cpio, gzipped, as the kernel unpacks it. (Not bit-reproducible:
# busybox cpio records inode numbers. Its "N blocks" note is dropped.)
(cd "$STAGE" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2> >(grep -v ' blocks$' >&2)) |
  gzip -n >"$OUT/initrd.img.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

log "initramfs $(du -h "$OUT/initrd.img" | cut -f1), ${#files[@]} modules"
echo "$OUT/vmlinuz"
echo "$OUT/initrd.img"
