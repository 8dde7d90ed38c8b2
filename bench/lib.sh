# Sourced by bench/daemon.sh, order.sh, sequential.sh, settle.sh and
# stale.sh: strict mode, the repository's root as working directory, the
# image every benchmark runs (imported by bench/run.sh or
# examples/quickstart/up.sh), `log`, `median`, and
# `muster`: the release build, made here, or MUSTER=path/to/muster to
# measure another build (e.g. an older commit's) as it is; and the cleanup
# on exit: `down` of the file `$file`, removal of the directory `$work`.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
IMAGE="muster-example/busybox:1"

log() { printf '%s\n' "$*" >&2; }

# The median of the numbers on stdin, one per line (empty when none).
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else if (NR) print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "the image $IMAGE is missing: bench/run.sh or examples/quickstart/up.sh imports it"
  exit 1
fi

muster="${MUSTER:-${CARGO_TARGET_DIR:-$root/target}/release/muster}"
if [ -z "${MUSTER:-}" ]; then
  log "building muster (release)"
  cargo build --release --locked --quiet --bin muster
fi
# What was measured, for the tables.
built="${MUSTER:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')}"

# On exit (and Ctrl-C): `down` of the benchmark's project, whose file is
# $file, and its work directory $work. A script with more to stop defines
# `before_cleanup`.
cleanup() {
  if declare -F before_cleanup >/dev/null; then before_cleanup; fi
  if [ -n "${file:-}" ] && [ -f "$file" ]; then
    "$muster" --color never -f "$file" down >/dev/null 2>&1 || true
  fi
  if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'log "interrupted; cleaning up"; exit 130' INT TERM
