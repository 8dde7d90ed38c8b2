#!/usr/bin/env bash
# End-to-end benchmark: muster against docker compose and against the
# engine's own limit (bench/engine_limit.rs), on the local Docker engine.
# Builds muster in release, installs docker-compose if missing, imports the
# busybox image, then for each N runs REPS rounds; inside a round every
# measurement runs once per tool, one tool after the other, in an order
# that rotates from round to round. Prints medians and ratios as markdown.
#
#   bench/run.sh                      # N = 10 30 100, 3 rounds
#   NS="10 30" REPS=5 bench/run.sh
#   NS=30 PARALLEL=16 TOOLS="muster limit" bench/run.sh   # one point of the --parallel sweep
#
# Every project is named mb-<pid>-…; all of them are removed at the end,
# also on Ctrl-C or failure. Raw samples: $BENCH_OUT/samples.tsv.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
NS="${NS:-10 30 100}"
REPS="${REPS:-3}"
PARALLEL="${PARALLEL:-8}"
read -r -a tools <<<"${TOOLS:-muster compose limit}"
IMAGE="muster-example/busybox:1"
run_id="mb-$$"
out="${BENCH_OUT:-${TMPDIR:-/tmp}/muster-bench}"
mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/$run_id.XXXXXX")"
samples="$out/samples.tsv"
: >"$samples"

log() { printf '%s\n' "$*" >&2; }

cleanup() {
  local ids nets net
  # An engine in dockerd's deadlock (moby#46661; compose's recreate of 100
  # once put it there) never answers the removals: say so, do not hang.
  if ! timeout 30 docker network ls -q >/dev/null 2>&1; then
    log "the engine does not list its networks within 30s (dockerd's deadlock?): restart dockerd, then remove the containers and networks named $run_id-*"
    rm -rf "$work"
    return
  fi
  ids="$(docker ps -aq --filter "name=^/$run_id-" 2>/dev/null || true)"
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086 # one id per word
    timeout 300 docker rm -f $ids >/dev/null 2>&1 || true
  fi
  # A stale endpoint (see measure) may clear after a while: retry for 10s.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    nets="$(docker network ls -q --filter "name=$run_id-" 2>/dev/null || true)"
    [ -z "$nets" ] && break
    for net in $nets; do docker network rm "$net" >/dev/null 2>&1 || true; done
    sleep 1
  done
  nets="$(docker network ls --format '{{.Name}}' --filter "name=$run_id-" 2>/dev/null || true)"
  [ -n "$nets" ] && log "could not remove (stale endpoints; a dockerd restart frees them): $nets"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'log "interrupted; cleaning up"; exit 130' INT TERM

# --- what the benchmark needs ----------------------------------------------
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "$@" >&2
}

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  command -v docker-compose >/dev/null || apt_install docker-compose
  compose=(docker-compose)
fi
compose_version="$("${compose[@]}" version --short 2>/dev/null || "${compose[@]}" version | head -1)"

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  busybox=""
  for candidate in /bin/busybox /usr/bin/busybox; do
    [ -x "$candidate" ] && busybox="$candidate" && break
  done
  if [ -z "$busybox" ]; then
    apt_install busybox-static
    busybox=/bin/busybox
  fi
  mkdir -p "$work/image/bin"
  cp "$busybox" "$work/image/bin/busybox"
  for applet in sh sleep env cat echo hostname mkdir grep sort httpd wget nc true; do
    ln -s busybox "$work/image/bin/$applet"
  done
  tar -C "$work/image" -cf - bin | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$IMAGE" >/dev/null
  log "imported $IMAGE"
fi

log "building muster and bench/engine_limit.rs (release)"
cargo build --release --locked --quiet --bin muster --example engine_limit
target="${CARGO_TARGET_DIR:-$root/target}"
# MUSTER=path/to/muster measures another build (e.g. an older commit's).
muster="${MUSTER:-$target/release/muster}"
limit="$target/release/examples/engine_limit"

# --- the three tools, each on its own project ----------------------------------
# The same service everywhere: N × busybox `sleep 3600`, init, 1s grace.
source "$root/bench/service.sh"
muster_file() { service_muster "$work/m$1/services.toml" "$run_id-m$1" "$2" "$3" "$PARALLEL"; } # N COUNT GEN
compose_file() { service_compose "$work/c$1/docker-compose.yml" "$2"; } # N GEN
m() { MUSTER_PARALLEL="$PARALLEL" "$muster" --color never -f "$work/m$n/services.toml" "$@"; }
c() { "${compose[@]}" --ansi never -p "$run_id-c$n" -f "$work/c$n/docker-compose.yml" "$@" 2>&1; }
l() { "$limit" "$@"; }

# measure METRIC TOOL CMD…: runs CMD, appends "METRIC TOOL N SECONDS".
measure() {
  local metric="$1" tool="$2"
  shift 2
  local start="$EPOCHREALTIME" end status=0
  "$@" >"$work/last.log" 2>&1 || status=$?
  end="$EPOCHREALTIME"
  # Docker 20.10 under load at times keeps a stale endpoint of a removed
  # container, and then no one can remove the network: the containers
  # are gone, the sample counts, the network is reported at the end.
  # compose and the limit fail on it; muster's `down` warns in the
  # engine's words and succeeds.
  if grep -q "has active endpoints" "$work/last.log"; then
    log "warning: $metric $tool N=$n: the engine kept a stale endpoint; network left behind"
    echo "$metric $tool N=$n" >>"$work/stale"
  elif [ "$status" -ne 0 ]; then
    log "failed: $metric $tool N=$n: $*"
    tail -20 "$work/last.log" >&2
    exit 1
  fi
  printf '%s\t%s\t%s\t%s\n' "$metric" "$tool" "$n" \
    "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')" >>"$samples"
}

# One measurement for each tool in TOOLS (the round's order).
step() { # METRIC
  local metric="$1" tool
  for tool in "${order[@]}"; do
    case "$metric:$tool" in
      up:muster) muster_file "$n" "$n" "$gen"; measure up muster m apply ;;
      up:compose) measure up compose c up -d --scale "svc=$n" ;;
      up:limit) measure up limit l up "$run_id-l$n" "$n" "$IMAGE" "$PARALLEL" ;;
      noop:muster) measure noop muster m plan ;;
      noop:compose) measure noop compose c up -d --scale "svc=$n" ;;
      noop_apply:muster) measure noop_apply muster m apply ;;
      recreate:muster) muster_file "$n" "$n" "$gen"; measure recreate muster m apply ;;
      recreate:compose) compose_file "$n" "$gen"; measure recreate compose c up -d --scale "svc=$n" ;;
      recreate:limit) measure recreate limit l recreate "$run_id-l$n" "$n" "$IMAGE" "$PARALLEL" ;;
      zero:muster) muster_file "$n" 0 "$gen"; measure zero muster m apply ;;
      zero:compose) measure zero compose c up -d --scale svc=0 ;;
      down:muster) measure down muster m down ;;
      down:compose) measure down compose c down ;;
      down:limit) measure down limit l down "$run_id-l$n" "$PARALLEL" ;;
      *) ;;
    esac
  done
}

log "muster $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'), ${compose[*]} $compose_version, N = $NS, $REPS rounds"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$EPOCHREALTIME"
for n in $NS; do
  mkdir -p "$work/m$n" "$work/c$n"
  for ((r = 0; r < REPS; r++)); do
    k=$((r % ${#tools[@]}))
    order=("${tools[@]:k}" "${tools[@]:0:k}")
    gen=1
    muster_file "$n" "$n" "$gen"
    compose_file "$n" "$gen"
    log "N=$n round $((r + 1))/$REPS (${order[*]})"
    step up
    step noop
    step noop_apply
    gen=2
    step recreate
    step zero
    # Back to N (not measured), to measure down from N.
    muster_file "$n" "$n" "$gen"
    m apply >/dev/null
    if [[ " ${tools[*]} " == *" compose "* ]]; then c up -d --scale "svc=$n" >/dev/null; fi
    step down
  done
done
elapsed="$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- the table ----------------------------------------------------------------
median() { # METRIC TOOL N
  awk -F'\t' -v m="$1" -v t="$2" -v n="$3" '$1 == m && $2 == t && $3 == n { print $4 }' "$samples" |
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
cell() { [ -n "$1" ] && printf '%.3f' "$1" || printf '–'; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }' || printf '–'; }
row() { # LABEL METRIC N COMPOSE_METRIC TARGET
  local mu co li
  mu="$(median "$2" muster "$3")"
  co="$(median "$4" compose "$3")"
  li="$(median "$2" limit "$3")"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$3" "$(cell "$mu")" "$(cell "$co")" \
    "$(cell "$li")" "$(ratio "$mu" "$co")" "$(ratio "$mu" "$li")" "$5"
}

echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo);" \
  "Docker engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})');" \
  "${compose[*]} $compose_version; muster ${MUSTER:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')}."
echo "Run: N = $NS, $REPS rounds, tools alternating (${tools[*]}), --parallel $PARALLEL; ${elapsed}s; load average $load_before before, $load_after after."
echo "Medians in seconds, wall clock of the whole command (process start to exit)."
echo
echo "| measurement | N | muster | compose | engine limit | muster ÷ compose | muster ÷ limit | target |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for n in $NS; do
  row "apply 0→N (compose: \`up -d --scale svc=N\`)" up "$n" up "≤ 0.9× compose, ≤ 1.05× limit"
done
for n in $NS; do
  row "no-op \`plan\` vs compose no-op \`up -d\`" noop "$n" noop "≤ 0.05× compose"
done
for n in $NS; do
  row "no-op \`apply\` vs compose no-op \`up -d\`" noop_apply "$n" noop ""
done
for n in $NS; do
  row "recreate after an env change, parallelism $PARALLEL (\`apply\`; \`up -d\`)" recreate "$n" recreate "≤ 0.8× compose"
done
for n in $NS; do
  row "N→0: \`down\` (compose \`down\`)" down "$n" down "≤ 0.8× compose"
done
for n in $NS; do
  row "N→0: \`apply\` count 0 (compose \`up -d --scale svc=0\`)" zero "$n" zero ""
done
echo
echo "Apply 0→N per container (ms): the cost of one container as N grows."
echo
echo "| N | muster | compose | engine limit |"
echo "| ---: | ---: | ---: | ---: |"
per() { [ -n "$1" ] && awk -v a="$1" -v n="$2" 'BEGIN { printf "%.0f", a * 1000 / n }' || printf '–'; }
for n in $NS; do
  printf '| %s | %s | %s | %s |\n' "$n" "$(per "$(median up muster "$n")" "$n")" \
    "$(per "$(median up compose "$n")" "$n")" "$(per "$(median up limit "$n")" "$n")"
done
echo
if [ -s "$work/stale" ]; then
  echo "The engine kept a stale endpoint (networks not removable until dockerd restarts) in: $(paste -sd, "$work/stale")."
fi
echo "Raw samples: $samples"
