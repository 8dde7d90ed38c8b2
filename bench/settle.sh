#!/usr/bin/env bash
# The settle check on a busy machine: ROUNDS times (40 by default), `muster
# apply` of a parallel service whose command fails at once (2 containers,
# `sh -c 'echo …; exit 3'`) beside 3 sleepers, then `down`; counts the
# applies that exited 0, having missed the failing containers. Meanwhile
# SPIN shells (4) spin on the CPU and a project of BUSY sleepers (8) is
# applied and taken down in a loop, so that the engine is slow to handle
# exits, as under a test suite.
#
#   bench/settle.sh
#   ROUNDS=50 VERSUS=path/to/old/muster bench/settle.sh
#
# VERSUS=path/to/muster runs the same apply with that build too, right
# after muster's in every round, and counts each.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
ROUNDS="${ROUNDS:-40}"
SPIN="${SPIN:-4}"
BUSY="${BUSY:-8}"
work="$(mktemp -d)"
file="$work/services.toml"
busy="$work/busy.toml"
cat >"$file" <<TOML
project = "mb-settle-$$"

[services.web]
image = "$IMAGE"
count = 3
command = ["sleep", "3600"]
init = true

[services.bad]
image = "$IMAGE"
count = 2
command = ["sh", "-c", "echo cannot bind the port; exit 3"]
TOML
cat >"$busy" <<TOML
project = "mb-busy-$$"

[services.web]
image = "$IMAGE"
count = $BUSY
command = ["sleep", "3600"]
init = true
TOML
spinners=()
busy_loop=""
# The busy loop ends after its current apply and down; the spinners at once.
# (Both builds apply the one project of $file, which lib.sh's cleanup downs.)
before_cleanup() {
  touch "$work/stop"
  kill "${spinners[@]}" 2>/dev/null || true
  if [ -n "$busy_loop" ]; then wait "$busy_loop" 2>/dev/null || true; fi
  "$muster" --color never -f "$busy" down >/dev/null 2>&1 || true
}
for _ in $(seq "$SPIN"); do
  (while :; do :; done) &
  spinners+=($!)
done
(while [ ! -e "$work/stop" ]; do
  "$muster" --color never -f "$busy" apply >/dev/null 2>&1 || true
  "$muster" --color never -f "$busy" down >/dev/null 2>&1 || true
done) &
busy_loop=$!
builds=("$muster")
if [ -n "${VERSUS:-}" ]; then builds+=("$VERSUS"); fi
declare -A missed
for b in "${builds[@]}"; do missed[$b]=0; done
log "$ROUNDS rounds, $SPIN spinning shells, $BUSY busy sleepers; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for b in "${builds[@]}"; do
    if "$b" --color never -f "$file" apply >/dev/null 2>&1; then
      missed[$b]=$((missed[$b] + 1))
      log "round $r: $b missed the failing containers"
    fi
    "$b" --color never -f "$file" down >/dev/null 2>&1 || true
  done
done
log "load $(cut -d' ' -f1-3 /proc/loadavg)"
for b in "${builds[@]}"; do
  label="$b"
  [ "$b" = "$muster" ] && label="$built"
  printf '%s: %d of %d applies exited 0, missing the failing containers\n' "$label" "${missed[$b]}" "$ROUNDS"
done
