#!/usr/bin/env bash
# Builds zerocast's desktop guest: Debian 12 with Xorg (modesetting), openbox
# and an xterm, as an ext4 disk plus the kernel and initrd taken from it.
# The guest logs in root on tty1, starts X, starts zerocast's session agent
# when the host shares it (zerocast vm --vsock --share DIR, DIR holding a
# static zerocast-guest: 9p tag `zerocast`), and writes
#   zerocast-desktop: ready xterm X=.. Y=.. WIDTH=.. HEIGHT=.. TITLE=.. uptime=SECONDS
# to its serial console (/dev/ttyS0) once openbox has framed the terminal
# window (the xterm's client area on the screen, without openbox's frame;
# the height of the frame's title bar above it; the guest's uptime then).
#
#   scripts/build-desktop.sh    # prints disk=PATH, kernel=PATH, initrd=PATH
#
# Boot it with:
#   zerocast vm --disk DISK --disk-snapshot --kernel KERNEL --initrd INITRD \
#     --memory 2048 --append 'root=/dev/vda rw'
#
# The build is cached, compressed, outside the repository in
# ${XDG_CACHE_HOME:-$HOME/.cache}/zerocast/desktop-KEY/ and unpacked on use
# into $ZEROCAST_DESKTOP_WORK (default <repo>/work/desktop). KEY hashes this
# script, the package list and the versions of the listed packages that the
# host's apt lists offer from bookworm, bookworm-updates and bookworm-security
# (apt-cache madison: no network, no download). So a new kernel or Xorg
# upload known to the host's lists makes a new image; a change deeper in the
# dependency closure alone does not (the image's full package list is kept
# beside it as packages.txt). Older desktop-* entries are removed.
#
# Needs root (or sudo): mmdebstrap --mode=root, and mke2fs -d copies each
# file's owner from the tree. Needs mmdebstrap, e2fsprogs, zstd
# (scripts/install-deps.sh) and network access to deb.debian.org.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/scripts/build-desktop.sh
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/zerocast
WORK=${ZEROCAST_DESKTOP_WORK:-$REPO/work/desktop}
SUITE=bookworm

# What the desktop is made of (FIELD-NOTES "A real desktop guest"): the
# kernel with its initrd tool, systemd with udev (input devices for Xorg's
# libinput), Xorg with its built-in modesetting driver, xinit to start it
# from a login shell, openbox, xterm, xdotool for the ready signal and the
# agent's typing, xclip for a shell's clipboard, fonts.
PACKAGES=(
  linux-image-amd64 initramfs-tools systemd-sysv udev passwd procps
  xserver-xorg-core xserver-xorg-input-libinput xinit xauth
  x11-xserver-utils x11-utils x11-apps xdotool xclip openbox xterm
  fonts-dejavu-core xfonts-base
)

log() { echo "build-desktop: $*" >&2; }
die() { echo "build-desktop: error: $*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
for tool in mmdebstrap mke2fs zstd apt-cache; do
  command -v "$tool" >/dev/null || die "$tool missing: run scripts/install-deps.sh"
done

# Every version of each listed package the host's lists know, backports
# left out (mmdebstrap uses the stable suite with its updates and security).
package_versions() {
  apt-cache madison "${PACKAGES[@]}" | grep -v -- '-backports' | awk -F' *[|] *' '{ print $1, $2 }' | LC_ALL=C sort -u
}
versions=$(package_versions)
[ -n "$versions" ] || die "apt-cache knows none of the packages: run apt-get update"
KEY=$( {
  cat "$SELF"
  printf '%s\n' "${PACKAGES[@]}"
  echo "$versions"
} | sha256sum | cut -c1-16)
CACHE=$CACHE_ROOT/desktop-$KEY

# The cache entry is complete once its last file (build.txt) is there.
if [ ! -f "$CACHE/build.txt" ]; then
  log "building desktop-$KEY (about 250 MB to download, a few minutes)"
  mkdir -p "$CACHE_ROOT"
  # Left by an interrupted run. --one-file-system: a killed mmdebstrap may
  # leave the host's /dev, /proc or /sys mounted inside its tree.
  rm -rf --one-file-system "$CACHE_ROOT"/desktop-*.partial
  STAGE=$CACHE.partial
  mkdir -p "$STAGE/overlay/etc/systemd/system/getty@tty1.service.d" "$STAGE/overlay/root"
  O=$STAGE/overlay

  # The guest's root is the virtio disk; rw since it runs under snapshot=on.
  echo '/dev/vda / ext4 rw,relatime 0 1' >"$O/etc/fstab"
  echo zerocast-desktop >"$O/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 zerocast-desktop\n' >"$O/etc/hosts"
  # Root logged in on tty1 with no password prompt.
  cat >"$O/etc/systemd/system/getty@tty1.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear %I $TERM
EOF
  # The login shell on tty1 becomes the X session; other terminals stay shells.
  cat >"$O/root/.profile" <<'EOF'
if [ -f ~/.bashrc ]; then . ~/.bashrc; fi
# UTF-8 everywhere (glibc's built-in C.UTF-8): text the agent types, such
# as an IME's, reaches the terminal and the shell intact.
export LANG=C.UTF-8
if [ -z "${DISPLAY:-}" ] && [ "$(tty)" = /dev/tty1 ]; then exec startx; fi
EOF
  cat >"$O/root/.xinitrc" <<'EOF'
#!/bin/sh
# The zerocast desktop session: one xterm at a fixed place and openbox, then
# the ready line on the serial console once openbox has framed the xterm.
say() { echo "zerocast-desktop: $*" >/dev/ttyS0; }
# The session's own errors go to the serial console too, where a failed
# boot can be read.
exec 2>/dev/ttyS0
# Selecting text in the terminal copies it to the clipboard, which the
# agent shares with the viewer.
echo 'XTerm*selectToClipboard: true' | xrdb -merge
# zerocast's session agent, from the host's 9p share when there is one:
# started again whenever it ends (the host went, or is not there yet).
if modprobe 9pnet_virtio 2>/dev/null && mkdir -p /run/zerocast &&
  mount -t 9p -o trans=virtio,version=9p2000.L,ro zerocast /run/zerocast 2>/dev/null &&
  [ -x /run/zerocast/zerocast-guest ]; then
  (while :; do /run/zerocast/zerocast-guest --session true --timeout-secs 30 >/dev/ttyS0 2>&1; sleep 2; done) &
fi
# The xterm first, mapped before openbox starts: openbox frames the windows
# it finds at its start, while one mapped during its start (slow under TCG)
# was seen left unmanaged, a 1x1 window. --sync waits until the window
# exists and is visible; timeout bounds it.
xterm -T zerocast-xterm -geometry 80x24+160+120 &
wid=$(timeout 60 xdotool search --sync --onlyvisible --name '^zerocast-xterm$' | head -n 1)
openbox &
wm=$!
# Framed: openbox sets _NET_FRAME_EXTENTS on the windows it manages. At
# most 30 s.
tries=0
until [ -z "$wid" ] || xprop -id "$wid" _NET_FRAME_EXTENTS 2>/dev/null | grep -q '='; do
  tries=$((tries + 1))
  [ "$tries" -lt 150 ] || break
  sleep 0.2
done
if [ -n "$wid" ] && [ "$tries" -lt 150 ]; then
  # Keyboard focus on the terminal, as a new window gets it: it was mapped
  # before openbox, which gives focus only on a click, and keys typed while
  # openbox has yet to act on that click would go nowhere.
  timeout 30 xdotool windowfocus --sync "$wid"
  # xwininfo's absolute position (xdotool's getwindowgeometry adds the
  # frame's offset twice for a framed window); TITLE is the frame's top
  # (title bar) height.
  geometry=$(xwininfo -id "$wid" | awk '/Absolute upper-left X:/ { x = $NF } /Absolute upper-left Y:/ { y = $NF }
    /^ *Width:/ { w = $NF } /^ *Height:/ { h = $NF } END { print "X=" x, "Y=" y, "WIDTH=" w, "HEIGHT=" h }')
  title=$(xprop -id "$wid" _NET_FRAME_EXTENTS | awk -F', *' '{ print $3 }')
  say "ready xterm $geometry TITLE=$title uptime=$(cut -d' ' -f1 /proc/uptime)"
else
  say "the xterm did not appear (window '$wid', openbox framed it: no)"
fi
wait "$wm"
EOF
  chmod 755 "$O/root/.xinitrc"
  # sync-in copies the overlay's folders' modes too (its owners are made
  # root's by the hook after it).
  chmod 755 "$O" "$O/etc"
  chmod 700 "$O/root"

  started=$(date +%s)
  # Only what is listed and what it depends on (no Recommends); no
  # documentation, manual pages or translations. The hooks record the
  # download size (the .debs before cleanup removes them) and every
  # installed package's version.
  $SUDO mmdebstrap --variant=apt --mode=root --format=directory \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --customize-hook="sync-in $O /" \
    --customize-hook="cd '$O' && find . -print0 | (cd \"\$1\" && xargs -0 chown -h 0:0)" \
    --customize-hook="du -cb \"\$1\"/var/cache/apt/archives/*.deb | tail -n 1 | cut -f1 >'$STAGE/download-bytes'" \
    --customize-hook="chroot \"\$1\" dpkg-query -W >'$STAGE/packages.txt'" \
    "$SUITE" "$STAGE/root" >&2
  built=$(date +%s)

  # The kernel and the initrd initramfs-tools made, for booting with -kernel.
  $SUDO cp "$(ls "$STAGE"/root/boot/vmlinuz-* | head -n 1)" "$STAGE/vmlinuz"
  $SUDO cp "$(ls "$STAGE"/root/boot/initrd.img-* | head -n 1)" "$STAGE/initrd.img"
  # The disk: the tree plus 512 MiB of room for what the session writes.
  tree_mib=$($SUDO du -sm "$STAGE/root" | cut -f1)
  disk_mib=$((tree_mib * 11 / 10 + 512))
  $SUDO mke2fs -q -t ext4 -m 0 -L zerocast-desktop -d "$STAGE/root" "$STAGE/disk.raw" "${disk_mib}M"
  $SUDO rm -rf --one-file-system "$STAGE/root" "$STAGE/overlay"
  $SUDO chown -R "$(id -u):$(id -g)" "$STAGE"
  zstd -q -3 -T0 --rm "$STAGE/disk.raw" -o "$STAGE/disk.raw.zst"
  done_at=$(date +%s)
  {
    echo "key=$KEY"
    echo "packages=$(wc -l <"$STAGE/packages.txt")"
    echo "download_bytes=$(cat "$STAGE/download-bytes")"
    echo "tree_mib=$tree_mib"
    echo "disk_mib=$disk_mib"
    echo "compressed_bytes=$(stat -c %s "$STAGE/disk.raw.zst")"
    echo "mmdebstrap_seconds=$((built - started))"
    echo "total_seconds=$((done_at - started))"
  } >"$STAGE/build.txt"
  rm -f "$STAGE/download-bytes"
  # Only the current image is kept: each is about 350 MB.
  find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -name 'desktop-*' ! -name "desktop-$KEY.partial" -exec rm -rf --one-file-system {} +
  mv "$STAGE" "$CACHE"
  log "built: $(tr '\n' ' ' <"$CACHE/build.txt")"
fi

# Unpacked into the work folder once per key; sparse, so the disk's free
# space costs nothing.
if [ "$(cat "$WORK/key" 2>/dev/null)" != "$KEY" ]; then
  log "unpacking desktop-$KEY into $WORK"
  mkdir -p "$WORK"
  rm -f "$WORK/key"
  zstd -q -d -f --sparse "$CACHE/disk.raw.zst" -o "$WORK/disk.raw"
  cp "$CACHE/vmlinuz" "$CACHE/initrd.img" "$WORK/"
  echo "$KEY" >"$WORK/key"
fi

echo "disk=$WORK/disk.raw"
echo "kernel=$WORK/vmlinuz"
echo "initrd=$WORK/initrd.img"
