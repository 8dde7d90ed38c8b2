#!/usr/bin/env bash
# Where the time of one command goes, read from the engine's events: runs
# CMD, then prints every engine event between its start and its exit (ms
# from the start, type, action, name), and the exit. The head (start →
# the first container create) and the tail (the last container start →
# exit) are what the command pays beyond the engine's own work.
#
#   bench/timeline.sh target/release/muster -f services.toml apply
#
# The events are followed live while CMD runs: asked for afterwards, the
# engine hands back only its last 256, fewer than a rollout of 100 makes.
set -euo pipefail
events="$(mktemp)"
trap 'rm -f "$events"' EXIT
docker events --format '{{.TimeNano}} {{.Type}} {{.Action}} {{.Actor.Attributes.name}}' >"$events" &
follower=$!
# A short pause lets `docker events` subscribe before CMD starts, and
# another lets it print what came last.
sleep 0.3
start="$(date +%s.%N)"
"$@" >/dev/null 2>&1 || true
end="$(date +%s.%N)"
sleep 0.3
kill "$follower" 2>/dev/null || true
wait "$follower" 2>/dev/null || true
awk -v s="$start" -v e="$end" '
  $1 / 1e9 >= s && $1 / 1e9 <= e { printf "%7.0f %s %s %s\n", ($1 / 1e9 - s) * 1000, $2, $3, $4 }
  END { printf "%7.0f exit\n", (e - s) * 1000 }' "$events"
