#!/usr/bin/env bash
# Does the order of a rolling replacement's calls buy anything? The
# engine's limit (bench/engine_limit.rs) replaces N containers, 8 in
# flight, in three orders, one right after the other within a round, the
# order rotating from round to round: `recreate` (stop, remove, create,
# start: muster's), `recreate-ahead` (the replacement created while the old
# one stops and goes) and `recreate-renamed` (the old one renamed, the
# replacement created under the name while the old one stops, the old ones
# removed at the end). Prints each round and the medians in seconds, and
# counts the project networks the engine kept (a stale endpoint).
#
#   bench/order.sh                    # NS = "30 100", REPS = 3
#
# Projects are named mb-o-<pid>-… and removed at the end, also on Ctrl-C.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
NS="${NS:-30 100}"
REPS="${REPS:-3}"
log "building bench/engine_limit.rs (release)"
cargo build --release --locked --quiet --example engine_limit
limit="${CARGO_TARGET_DIR:-$root/target}/release/examples/engine_limit"
work="$(mktemp -d "${TMPDIR:-/tmp}/mb-o-$$.XXXXXX")"
orders=(recreate recreate-ahead recreate-renamed)
project=""
before_cleanup() {
  if [ -n "$project" ]; then "$limit" down "$project" >/dev/null 2>&1 || true; fi
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for n in $NS; do
  for ((r = 0; r < REPS; r++)); do
    rotated=("${orders[@]:r%3}" "${orders[@]:0:r%3}")
    for order in "${rotated[@]}"; do
      project="mb-o-$$-$n-$r-$order"
      "$limit" up "$project" "$n" >/dev/null
      sleep 1
      start="$EPOCHREALTIME"
      "$limit" "$order" "$project" "$n"
      seconds="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')"
      # Docker 20.10 at times keeps a stale endpoint, and then the network:
      # counted, and the sample kept (its containers are gone).
      if ! "$limit" down "$project" >/dev/null 2>"$work/down.err"; then
        grep -q "has active endpoints" "$work/down.err" || { cat "$work/down.err" >&2; exit 1; }
        log "the engine kept the network of $project"
        printf '%s\t%s\n' "$n" "$order" >>"$work/stuck"
      fi
      project=""
      printf '%s\t%s\t%s\t%s\n' "$n" "$((r + 1))" "$order" "$seconds" | tee -a "$work/samples"
    done
  done
done
log "load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$work/stuck" ]; then
  log "networks the engine kept (N, order; remove them after restarting dockerd):"
  sort "$work/stuck" | uniq -c >&2
fi
printf '\nN\torder\tmedian (s)\n'
for n in $NS; do
  for order in "${orders[@]}"; do
    printf '%s\t%s\t%s\n' "$n" "$order" \
      "$(awk -F'\t' -v n="$n" -v o="$order" '$1 == n && $3 == o { print $4 }' "$work/samples" | median)"
  done
done
