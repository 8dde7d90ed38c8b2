#!/usr/bin/env bash
# The engine's stale endpoints: ROUNDS times (50 by default), `muster
# apply` N containers (30) on the project network, then `muster down`;
# counts the downs after which the engine kept the network ("has active
# endpoints": muster says so and exits 0). Each stuck network holds one of
# the engine's address pools until dockerd restarts, so the count is also
# what a restart must free. PARALLEL sets `--parallel` (8). RECREATE=1
# adds a config change between the two (a rolling replacement of every
# container, `update.parallelism` = PARALLEL): apply, apply again, down.
#
#   bench/stale.sh                    # 50 rounds, N = 30
#   ROUNDS=20 PARALLEL=1 bench/stale.sh
#   ROUNDS=15 RECREATE=1 bench/stale.sh
#
# VERSUS=path/to/muster runs the same cycle with that build too, right after
# muster's in every round (a fresh project of its own), and counts each.
#
# The project is named mb-x-<pid>; its network, if stuck, is named in the output.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
ROUNDS="${ROUNDS:-50}"
N="${N:-30}"
PARALLEL="${PARALLEL:-8}"
RECREATE="${RECREATE:-0}"
project="mb-x-$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/$project.XXXXXX")"
file="$work/services.toml"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
builds=("$muster")
[ -n "${VERSUS:-}" ] && builds+=("$VERSUS")
stuck=(0 0)
names=""
for ((r = 1; r <= ROUNDS; r++)); do
  for b in "${!builds[@]}"; do
    # A project of its own each round: a stuck network is not reused.
    p="$project-$r-$b"
    for gen in $(seq 0 "$RECREATE"); do
      printf '%s\n' "project = \"$p\"" "[services.svc]" "image = \"$IMAGE\"" "count = $N" \
        'command = ["sleep", "3600"]' "init = true" 'stop_grace_period = "1s"' \
        "env = { GEN = \"$gen\" }" "[services.svc.update]" "parallelism = $PARALLEL" >"$file"
      MUSTER_PARALLEL="$PARALLEL" "${builds[b]}" --color never -f "$file" apply -q >/dev/null
    done
    out="$(MUSTER_PARALLEL="$PARALLEL" "${builds[b]}" --color never -f "$file" down 2>&1)"
    if grep -q "kept network" <<<"$out"; then
      stuck[b]=$((stuck[b] + 1))
      names="$names ${p}_default"
    fi
  done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

what="downs"
[ "$RECREATE" = 1 ] && what="rolling replacements then downs"
versus=""
[ -n "${VERSUS:-}" ] && versus=" ($VERSUS: ${stuck[1]})"
echo "$ROUNDS $what of N = $N, --parallel $PARALLEL, muster $built;" \
  "load average $load_before before, $load_after after: ${stuck[0]} networks kept by the engine$versus.${names:+ Kept:$names.}"
