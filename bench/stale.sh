#!/usr/bin/env bash
# The engine's stale endpoints: ROUNDS times (50 by default), `muster
# apply` N containers (30) on the project network, then `muster down`;
# counts the downs after which the engine kept the network ("has active
# endpoints": muster says so and exits 0). Each stuck network holds one of
# the engine's address pools until dockerd restarts, so the count is also
# what a restart must free. PARALLEL sets `--parallel` (8). RECREATE=1
# adds a config change between the two (a rolling replacement of every
# container, `update.parallelism` = PARALLEL): apply, apply again, down.
# RECREATE="1 0" takes it from that list in turn, round by round, and
# counts each apart (the two kinds of cycle interleaved on one engine).
#
#   bench/stale.sh                    # 50 rounds, N = 30
#   ROUNDS=20 PARALLEL=1 bench/stale.sh
#   ROUNDS=15 RECREATE=1 bench/stale.sh
#
# VERSUS=path/to/muster runs the same cycle with that build too, right after
# muster's in every round (a fresh project of its own), and counts each.
# DOWN_WIDTHS="8 4" takes the `down`'s `--parallel` from that list in turn,
# round by round (the apply keeps PARALLEL), and counts and times each width:
#
#   N=200 ROUNDS=16 DOWN_WIDTHS="8 4" bench/stale.sh
#
# The project is named mb-x-<pid>; its network, if stuck, is named in the output.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
ROUNDS="${ROUNDS:-50}"
N="${N:-30}"
PARALLEL="${PARALLEL:-8}"
read -ra recreates <<<"${RECREATE:-0}"
project="mb-x-$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/$project.XXXXXX")"
file="$work/services.toml"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
builds=("$muster")
[ -n "${VERSUS:-}" ] && builds+=("$VERSUS")
read -ra widths <<<"${DOWN_WIDTHS:-$PARALLEL}"
declare -A kept=()
names=""
for ((r = 1; r <= ROUNDS; r++)); do
  width="${widths[(r - 1) % ${#widths[@]}]}"
  recreate="${recreates[(r - 1) % ${#recreates[@]}]}"
  for b in "${!builds[@]}"; do
    # A project of its own each round: a stuck network is not reused.
    p="$project-$r-$b"
    for gen in $(seq 0 "$recreate"); do
      printf '%s\n' "project = \"$p\"" "[services.svc]" "image = \"$IMAGE\"" "count = $N" \
        'command = ["sleep", "3600"]' "init = true" 'stop_grace_period = "1s"' \
        "env = { GEN = \"$gen\" }" "[services.svc.update]" "parallelism = $PARALLEL" >"$file"
      MUSTER_PARALLEL="$PARALLEL" "${builds[b]}" --color never -f "$file" apply -q >/dev/null
    done
    started="$(date +%s.%N)"
    if ! out="$(MUSTER_PARALLEL="$width" "${builds[b]}" --color never -f "$file" down 2>&1)"; then
      log "round $r: the down of $p (--parallel $width) failed:" "$out"
      exit 1
    fi
    took="$(echo "$(date +%s.%N) - $started" | bc)"
    echo "$took" >>"$work/down-$b-$width-$recreate"
    said=""
    if grep -q "kept network" <<<"$out"; then
      kept[$b-$width-$recreate]=$((${kept[$b-$width-$recreate]:-0} + 1))
      names="$names ${p}_default"
      said=", network kept"
    fi
    log "round $r, build $b, rolling update $recreate: down --parallel $width took $took s$said"
  done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "$ROUNDS cycles of N = $N, apply --parallel $PARALLEL, muster $built;" \
  "load average $load_before before, $load_after after. Networks kept by the engine:"
for b in "${!builds[@]}"; do
  label="muster"
  [ "$b" = 0 ] || label="$VERSUS"
  for width in "${widths[@]}"; do
    for recreate in $(printf '%s\n' "${recreates[@]}" | sort -u); do
      times="$work/down-$b-$width-$recreate"
      [ -f "$times" ] || continue
      what="apply, down"
      [ "$recreate" = 1 ] && what="apply, rolling update, down"
      printf '  %s, %s --parallel %s: %s of %s (down median %.2f s, %.2f-%.2f s)\n' "$label" "$what" "$width" \
        "${kept[$b-$width-$recreate]:-0}" "$(wc -l <"$times")" "$(median <"$times")" "$(sort -g "$times" | head -1)" "$(sort -g "$times" | tail -1)"
    done
  done
done
[ -z "$names" ] || echo "Kept:$names."
