#!/usr/bin/env bash
# The quick start: makes a local image from Debian's static busybox (no
# registry needed), builds muster, and applies this directory's
# services.toml. Run it again after editing the file, or use `muster watch`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="muster-example/busybox:1"

if ! docker image inspect "$image" >/dev/null 2>&1; then
  busybox=""
  for candidate in /bin/busybox /usr/bin/busybox; do
    [ -x "$candidate" ] && busybox="$candidate" && break
  done
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
fi

cd "$here/../.."
exec cargo run --quiet -- -f "$here/services.toml" apply "$@"
