#!/usr/bin/env bash
# The daemon with many containers: `muster watch` on N containers (300 by
# default); ROUNDS times, KILL containers die at once outside muster
# (`docker rm -f`, then `docker kill`), and the engine's events tell how
# long the daemon took to bring each back: from its death (destroy, or die)
# to the create (rm -f) or start (kill) muster asked for, and to the
# replacement's start, with the engine's own time beside it: create→start
# for rm -f; for kill, a start of KILL killed containers at once through
# the API, once the daemon is stopped.
# Also: `muster plan` wall time with N containers, and the daemon's VmRSS.
# Prints markdown. No other test or helper should run meanwhile.
#
#   bench/daemon.sh                   # N = 300, KILL = 10, ROUNDS = 3
#   N=100 KILL=10 ROUNDS=5 bench/daemon.sh
#
# The project is named mb-d-<pid> and removed at the end, also on Ctrl-C.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
N="${N:-300}"
KILL="${KILL:-10}"
ROUNDS="${ROUNDS:-3}"
project="mb-d-$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/$project.XXXXXX")"
file="$work/services.toml"
out="$work/watch.out"
daemon=""

before_cleanup() {
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
  fi
}

printf '%s\n' "project = \"$project\"" "[services.svc]" "image = \"$IMAGE\"" "count = $N" \
  'command = ["sleep", "3600"]' "init = true" 'stop_grace_period = "1s"' >"$file"

running() { docker ps -q --filter "label=io.muster.project=$project" --filter status=running | wc -l; }
wait_running() {
  local deadline=$((SECONDS + 300))
  until [ "$(running)" -ge "$N" ]; do
    if [ $SECONDS -ge $deadline ]; then
      log "only $(running) of $N running after 300 s; the daemon said:"
      tail -20 "$out" >&2
      exit 1
    fi
    sleep 0.2
  done
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
"$muster" --color never -f "$file" watch >"$out" 2>&1 &
daemon=$!
wait_running
sleep 3
rss_up="$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status")"
plan_start="$EPOCHREALTIME"
"$muster" --color never -f "$file" plan >/dev/null
plan_s="$(awk -v a="$plan_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')"

: >"$work/heal"
for how in rm kill; do
  for ((r = 1; r <= ROUNDS; r++)); do
    since="$(date +%s.%N)"
    victims="$(docker ps --format '{{.Names}}' --filter "label=io.muster.project=$project" | shuf -n "$KILL")"
    if [ "$how" = rm ]; then
      # shellcheck disable=SC2086 # one name per word
      docker rm -f $victims >/dev/null
    else
      # shellcheck disable=SC2086
      docker kill $victims >/dev/null
    fi
    wait_running
    sleep 1
    until_="$(date +%s.%N)"
    docker events --since "$since" --until "$until_" --filter "label=io.muster.project=$project" \
      --filter type=container --format '{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}' >"$work/events"
    # Per victim: its death (destroy for rm, die for kill), then muster's
    # create (rm) or start (kill), then the start.
    for v in $victims; do
      awk -v v="$v" -v how="$how" '
        $3 != v { next }
        how == "rm" && $2 == "destroy" && !death { death = $1 }
        how == "kill" && $2 == "die" && !death { death = $1 }
        death && how == "rm" && $2 == "create" && !asked { asked = $1 }
        death && $2 == "start" && $1 > death && !started { started = $1; if (how == "kill") asked = $1 }
        END {
          if (!death || !started) { print "missing", v; exit }
          printf "%s %.0f %.0f %.0f\n", how, (asked - death) / 1e6, (started - death) / 1e6, (started - asked) / 1e6
        }' "$work/events" >>"$work/heal"
    done
  done
done
rss_end="$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status")"

# The engine's own start of a killed container, for the kill row: with the
# daemon gone, ROUNDS times KILL containers are killed, then started all at
# once straight through the API (curl on the engine's socket, no CLI), each
# call timed from its request to its answer.
kill -TERM "$daemon"
wait "$daemon" 2>/dev/null || true
daemon=""
socket="${DOCKER_HOST:-unix:///var/run/docker.sock}"
socket="${socket#unix://}"
exited() { docker ps -q --filter "label=io.muster.project=$project" --filter status=exited | wc -l; }
if [ -S "$socket" ]; then
  for ((r = 1; r <= ROUNDS; r++)); do
    victims="$(docker ps --format '{{.Names}}' --filter "label=io.muster.project=$project" | shuf -n "$KILL")"
    # shellcheck disable=SC2086 # one name per word
    docker kill $victims >/dev/null
    until [ "$(exited)" -ge "$KILL" ]; do sleep 0.1; done
    for v in $victims; do
      (
        t0="$EPOCHREALTIME"
        curl -fsS --unix-socket "$socket" -X POST "http://localhost/containers/$v/start" >/dev/null
        awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "engine %.0f\n", (b - a) * 1000 }'
      ) >>"$work/heal" &
    done
    wait
  done
  # As after the heals: every container running for a second before the
  # final `down`.
  wait_running
  sleep 1
  started="$(grep -c '^engine ' "$work/heal" || true)"
  [ "$started" -eq $((ROUNDS * KILL)) ] ||
    log "only $started of $((ROUNDS * KILL)) starts through the API answered; the engine's column counts those"
else
  log "the engine is not on a unix socket ($socket): the engine's start of a killed container is not measured"
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
if grep -q missing "$work/heal"; then
  log "some victims were not seen dying and starting again:"
  grep missing "$work/heal" >&2
fi

stat() { # HOW COLUMN: "median / worst"
  local values
  values="$(awk -v h="$1" -v c="$2" '$1 == h { print $c }' "$work/heal" | sort -g)"
  printf '%s / %s' "$(median <<<"$values")" "$(tail -n 1 <<<"$values")"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

echo
echo "Machine: $(nproc) cores; Docker engine $(docker version --format '{{.Server.Version}}');" \
  "muster $built; N = $N, $KILL at a time, $ROUNDS rounds each;" \
  "load average $load_before before, $load_after after."
echo
echo "| $KILL of $N die at once | death → muster acts (ms), median / worst | death → running again (ms) | the engine's own (ms) |"
echo "| --- | ---: | ---: | ---: |"
echo "| \`docker rm -f\` (death = destroy; muster creates) | $(stat rm 2) | $(stat rm 3) | $(stat rm 4) |"
echo "| \`docker kill\` (death = die; muster starts) | $(stat kill 2) | $(stat kill 3) | $(stat engine 2) (start alone, $KILL at once) |"
echo
echo "| figure | value |"
echo "| --- | ---: |"
echo "| \`muster plan\` with $N containers, wall | ${plan_s} s |"
echo "| daemon VmRSS with $N containers, after the first apply | $(mib "$rss_up") |"
echo "| daemon VmRSS after $((2 * ROUNDS)) heals | $(mib "$rss_end") |"
