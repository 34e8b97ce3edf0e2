#!/usr/bin/env bash
# Installs everything zerocast's tests and benchmarks use: Debian packages, and
# vhost-device-vsock from crates.io.
# Idempotent: installs only what is missing. Needs root (or sudo) on Debian 12.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }

have nasm || need+=(nasm)                       # openh264's SIMD assembly (else a 2x slower C build)
have ffprobe || need+=(ffmpeg)                  # the real decoder that checks our H.264
have chromium || need+=(chromium)               # headless browser for the WebCodecs viewer tests
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx cpio || need+=(busybox-static)
[ -f /usr/lib/x86_64-linux-gnu/libx264.a ] || need+=(libx264-dev) # static x264 for the guest agent's baseline
have qemu-system-x86_64 || need_qemu=1
# QEMU's D-Bus display (zerocast attach) is the module ui-dbus.so, packaged with the OpenGL modules.
ls /usr/lib/x86_64-linux-gnu/qemu/ui-dbus.so >/dev/null 2>&1 || need_qemu=1
have dbus-daemon || need+=(dbus-daemon)         # the private bus the attach tests put QEMU's display on
have ip && have tc || need+=(iproute2)            # network namespaces and tc for the slow-link test
# The desktop image (scripts/build-desktop.sh): a Debian tree without a
# chroot of our own, an ext4 disk made from a folder, the compressed cache.
have mmdebstrap || need+=(mmdebstrap)
have mke2fs || need+=(e2fsprogs)
have zstd || need+=(zstd)
# libvirt starting zerocast's GPU backend (the libvirt test runs its own libvirtd, no systemd).
have libvirtd && have virsh || need+=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)

# Real vsock for guests where /dev/vhost-vsock is missing: rust-vmm's
# vhost-device-vsock, from crates.io.
if ! command -v vhost-device-vsock >/dev/null 2>&1; then
  echo "install-deps: cargo install vhost-device-vsock" >&2
  cargo install --locked --quiet vhost-device-vsock
fi

# libvirtd without libvirt-daemon-system (which wants systemd) still needs the
# user it would run QEMU as, even when the test's qemu.conf names root.
libvirt_user() {
  if have libvirtd && ! getent passwd libvirt-qemu >/dev/null; then
    $([ "$(id -u)" -eq 0 ] || echo sudo) useradd --system --no-create-home --user-group \
      --shell /usr/sbin/nologin libvirt-qemu
  fi
}

if [ ${#need[@]} -eq 0 ] && [ -z "${need_qemu:-}" ]; then
  libvirt_user
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# QEMU 10 (vhost-user-gpu-pci, memfd shared memory, -display dbus) comes from bookworm-backports.
if [ -n "${need_qemu:-}" ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/zerocast-backports.list >/dev/null
fi

echo "install-deps: installing ${need[*]} ${need_qemu:+qemu-system-x86 (bookworm-backports)}" >&2
$SUDO apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ -n "${need_qemu:-}" ]; then
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-system-modules-opengl
fi
libvirt_user
