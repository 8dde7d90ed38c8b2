#!/usr/bin/env bash
# Sequential mode: a 10-ordinal sequential service whose containers turn
# healthy at their first healthcheck (interval 1s). From the engine's
# events: for each ordinal k > 1, the time from "k-1 healthy" to muster's
# create of k (what muster adds), and to k's start (with the engine's own
# create → start). ROUNDS applies from zero, medians and worst over all.
#
#   bench/sequential.sh               # COUNT = 10, ROUNDS = 3
#
# The project is named mb-s-<pid> and removed at the end, also on Ctrl-C.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COUNT="${COUNT:-10}"
ROUNDS="${ROUNDS:-3}"
project="mb-s-$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/$project.XXXXXX")"
file="$work/services.toml"

printf '%s\n' "project = \"$project\"" "[services.db]" "image = \"$IMAGE\"" "count = $COUNT" \
  'mode = "sequential"' 'command = ["sleep", "3600"]' "init = true" 'stop_grace_period = "1s"' \
  "[services.db.healthcheck]" 'test = ["CMD", "true"]' 'interval = "1s"' 'timeout = "1s"' "retries = 3" >"$file"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
: >"$work/gaps"
total=""
for ((r = 1; r <= ROUNDS; r++)); do
  since="$(date +%s.%N)"
  start="$EPOCHREALTIME"
  "$muster" --color never -f "$file" apply >/dev/null
  total="$total $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')"
  until_="$(date +%s.%N)"
  docker events --since "$since" --until "$until_" --filter "label=io.muster.project=$project" \
    --filter type=container --format '{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}' |
    awk -v p="$project-db-" '
      index($NF, p) != 1 { next }
      { k = substr($NF, length(p) + 1) }
      $2 == "create" { create[k] = $1 }
      $2 == "start" { start[k] = $1 }
      $2 == "health_status:" && $3 == "healthy" && !(k in healthy) { healthy[k] = $1 }
      END {
        for (k = 2; (k - 1) in healthy; k++) {
          if (!(k in create)) break
          printf "%.1f %.1f %.1f\n", (create[k] - healthy[k - 1]) / 1e6, (start[k] - healthy[k - 1]) / 1e6, (start[k] - create[k]) / 1e6
        }
      }' >>"$work/gaps"
  "$muster" --color never -f "$file" down >/dev/null 2>&1
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

stat() { # COLUMN: "median / worst"
  awk -v c="$1" '{ print $c }' "$work/gaps" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%s / %s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR] }'
}

echo
echo "Machine: $(nproc) cores; Docker engine $(docker version --format '{{.Server.Version}}');" \
  "muster $built; $COUNT ordinals, $ROUNDS rounds" \
  "($(wc -l <"$work/gaps") gaps); load average $load_before before, $load_after after."
echo
echo "| per ordinal k > 1 (ms), median / worst | value | target |"
echo "| --- | ---: | --- |"
echo "| k-1 healthy → muster creates k | $(stat 1) | ≤ 100 ms |"
echo "| k-1 healthy → k started | $(stat 2) | |"
echo "| the engine's create → start of k | $(stat 3) | |"
echo
echo "Whole applies (s):$total"
