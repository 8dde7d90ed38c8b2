#!/usr/bin/env bash
# The daemon's figures: how long from a save of services.toml to the start
# of the apply it causes (SAVES saves; median and worst), and what
# `muster watch` costs when idle (VmRSS, and utime+stime over IDLE seconds,
# from /proc). Prints a markdown table.
#
#   bench/watch.sh                   # 20 saves, 60 s idle, default debounce
#   SAVES=10 IDLE=30 DEBOUNCE=100ms bench/watch.sh
#
# Each save scales the service between 1 and 2 containers, written to a
# temporary file and renamed over services.toml, as editors do. The start
# of the apply is the timestamped line the daemon prints when a pass finds
# changes (`<time> services.toml saved`), read from its output. The
# project is named mb-w-<pid> and removed at the end, also on Ctrl-C.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
SAVES="${SAVES:-20}"
IDLE="${IDLE:-60}"
DEBOUNCE="${DEBOUNCE:-200ms}"
IMAGE="muster-example/busybox:1"
project="mb-w-$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/$project.XXXXXX")"
file="$work/services.toml"
out="$work/watch.out"
daemon=""

log() { printf '%s\n' "$*" >&2; }

cleanup() {
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
  fi
  local ids
  ids="$(docker ps -aq --filter "name=^/$project-" 2>/dev/null || true)"
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086 # one id per word
    docker rm -f $ids >/dev/null 2>&1 || true
  fi
  docker network rm "${project}_default" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'log "interrupted; cleaning up"; exit 130' INT TERM

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "the image $IMAGE is missing: bench/run.sh or examples/quickstart/up.sh imports it"
  exit 1
fi
log "building muster (release)"
cargo build --release --locked --quiet --bin muster
muster="${CARGO_TARGET_DIR:-$root/target}/release/muster"

write() { # COUNT: a new file renamed over the old one
  cat >"$work/.services.toml.new" <<EOF
project = "$project"
[services.svc]
image = "$IMAGE"
count = $1
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
EOF
  mv "$work/.services.toml.new" "$file"
}

# wait_for PATTERN N: until N lines of the daemon's output match PATTERN.
wait_for() {
  local deadline=$((SECONDS + 60))
  until [ "$(grep -cE "$1" "$out" || true)" -ge "$2" ]; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$daemon" 2>/dev/null; then
      log "the daemon did not print /$1/ (${2}x); its output:"
      tail -20 "$out" >&2
      exit 1
    fi
    sleep 0.02
  done
}

# Seconds since the epoch of a daemon timestamp (2026-11-28T12:00:00.123Z).
epoch() { date -u -d "$1" +%s.%N; }

# /proc/PID/stat fields 14 and 15: utime and stime, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$daemon/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status"; }

write 1
"$muster" --color never -f "$file" watch --debounce "$DEBOUNCE" >"$out" 2>&1 &
daemon=$!
applied='^[^ ]+Z Applied: '
wait_for "$applied" 1
sleep 1
rss_start="$(rss_kib)"

saved='^[^ ]+Z (.*, )?services\.toml saved(, .*)?$'
: >"$work/latency"
for ((i = 1; i <= SAVES; i++)); do
  sleep 0.5 # let the engine's events of the last apply pass
  before="$EPOCHREALTIME"
  write $((1 + i % 2))
  wait_for "$saved" "$i"
  wait_for "$applied" "$((i + 1))"
  line="$(grep -E "$saved" "$out" | sed -n "${i}p")"
  awk -v a="$before" -v b="$(epoch "${line%% *}")" 'BEGIN { printf "%.0f\n", (b - a) * 1000 }' >>"$work/latency"
done

sleep 5
ticks_before="$(cpu_ticks)"
rss_idle="$(rss_kib)"
sleep "$IDLE"
ticks_after="$(cpu_ticks)"
rss_end="$(rss_kib)"
hz="$(getconf CLK_TCK)"
passes="$(grep -cE '^[^ ]+Z resync' "$out" || true)"

sort -n "$work/latency" >"$work/latency.sorted"
median="$(awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' "$work/latency.sorted")"
worst="$(tail -1 "$work/latency.sorted")"
cpu_ms="$(awk -v t="$((ticks_after - ticks_before))" -v hz="$hz" 'BEGIN { printf "%.0f", t * 1000 / hz }')"

echo
echo "Machine: $(nproc) cores; Docker engine $(docker version --format '{{.Server.Version}}');" \
  "muster $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'); debounce $DEBOUNCE;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| figure | value | target |"
echo "| --- | ---: | --- |"
echo "| save → apply start, median of $SAVES saves | ${median} ms | ≤ debounce + 50 ms |"
echo "| save → apply start, worst of $SAVES saves | ${worst} ms | ≤ debounce + 50 ms |"
echo "| VmRSS idle after start | $((rss_start / 1024)).$(((rss_start % 1024) * 10 / 1024)) MiB | < 15 MB |"
echo "| VmRSS idle after $SAVES applies | $((rss_idle / 1024)).$(((rss_idle % 1024) * 10 / 1024)) MiB | < 15 MB |"
echo "| VmRSS after ${IDLE} s idle | $((rss_end / 1024)).$(((rss_end % 1024) * 10 / 1024)) MiB | < 15 MB |"
echo "| CPU (utime+stime) over ${IDLE} s idle | ${cpu_ms} ms | none when idle |"
echo
echo "Latencies (ms, sorted): $(paste -sd' ' "$work/latency.sorted"). Resync passes in the whole run: $passes."
