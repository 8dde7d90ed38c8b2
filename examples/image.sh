#!/usr/bin/env bash
# Makes the examples' image, muster-example/busybox:1, from Debian's static
# busybox (no registry needed), unless the engine has it. Installs
# busybox-static with apt-get when it is missing on a Debian machine.
set -euo pipefail
image="muster-example/busybox:1"
if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
busybox=""
for candidate in /bin/busybox /usr/bin/busybox; do
  [ -x "$candidate" ] && busybox="$candidate" && break
done
if [ -z "$busybox" ] && command -v apt-get >/dev/null; then
  # A fresh Debian machine: install it, as root or through sudo.
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
  echo "installing Debian's static busybox (apt-get install busybox-static)" >&2
  $sudo apt-get install -y -qq busybox-static >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq busybox-static >/dev/null; } ||
    true
  [ -x /bin/busybox ] && busybox=/bin/busybox
fi
if [ -z "$busybox" ]; then
  echo "need Debian's static busybox: apt-get install busybox-static" >&2
  exit 1
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin"
cp "$busybox" "$root/bin/busybox"
for applet in sh sleep env cat echo hostname mkdir grep sort httpd wget nc true; do
  ln -s busybox "$root/bin/$applet"
done
tar -C "$root" -cf - bin | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$image" >/dev/null
echo "imported $image"
