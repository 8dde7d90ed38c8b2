#!/usr/bin/env bash
# Where the time of one command goes, read from the engine's events: runs
# CMD, then prints every engine event between its start and its exit (ms
# from the start, type, action, name), and the exit. The head (start →
# the first container create) and the tail (the last container start →
# exit) are what the command pays beyond the engine's own work.
#
#   bench/timeline.sh target/release/muster -f services.toml apply
set -euo pipefail
start="$(date +%s.%N)"
"$@" >/dev/null 2>&1 || true
end="$(date +%s.%N)"
docker events --since "$start" --until "$end" \
  --format '{{.TimeNano}} {{.Type}} {{.Action}} {{.Actor.Attributes.name}}' |
  awk -v s="$start" -v e="$end" '
    { printf "%7.0f %s %s %s\n", ($1 / 1e9 - s) * 1000, $2, $3, $4 }
    END { printf "%7.0f exit\n", (e - s) * 1000 }'
