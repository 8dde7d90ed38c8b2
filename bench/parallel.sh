#!/usr/bin/env bash
# The --parallel sweep: bench/run.sh once per value of PARALLELS (muster
# and the engine's limit at the same concurrency, which is also the
# rollout's update.parallelism), then one table of medians: apply 0→N,
# recreate after an env change, down. The default of --parallel is chosen
# from it (BENCHMARKS.md). No other test or helper should run meanwhile.
#
#   bench/parallel.sh                 # N = 30 and 100, PARALLELS = 2 4 8 16 32, 3 rounds
#   NS=30 REPS=1 PARALLELS="4 8" bench/parallel.sh
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "$0")/.." && pwd)"
NS="${NS:-30 100}"
REPS="${REPS:-3}"
PARALLELS="${PARALLELS:-2 4 8 16 32}"
out="${BENCH_OUT:-${TMPDIR:-/tmp}/muster-parallel}"
mkdir -p "$out"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for p in $PARALLELS; do
  printf 'parallel %s\n' "$p" >&2
  NS="$NS" REPS="$REPS" PARALLEL="$p" TOOLS="muster limit" BENCH_OUT="$out/p$p" \
    "$root/bench/run.sh" >"$out/p$p.md"
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

median() { # FILE METRIC TOOL N
  awk -F'\t' -v m="$2" -v t="$3" -v n="$4" '$1 == m && $2 == t && $3 == n { print $4 }' "$1" |
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "–"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "Sweep of --parallel: N = $NS, $REPS rounds each; load average $load_before before, $load_after after."
echo "Medians in seconds (muster / the engine's limit at the same concurrency)."
echo
echo "| --parallel | N | apply 0→N | recreate (muster) | down |"
echo "| ---: | ---: | ---: | ---: | ---: |"
for p in $PARALLELS; do
  for n in $NS; do
    f="$out/p$p/samples.tsv"
    echo "| $p | $n | $(median "$f" up muster "$n") / $(median "$f" up limit "$n") | $(median "$f" recreate muster "$n") | $(median "$f" down muster "$n") / $(median "$f" down limit "$n") |"
  done
done
