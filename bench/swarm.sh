#!/usr/bin/env bash
# Swarm benchmark: muster's swarm backend against `docker stack deploy` of
# the equivalent compose file followed by polling until converged, on the
# local engine (a swarm manager: `docker swarm init` first). For each N,
# REPS rounds, the two tools alternating first; each round measures, to
# converged: deploy N replicas, scale to 2N, a config change (env), remove.
# Prints medians and ratios (muster / stack) as markdown.
#
#   bench/swarm.sh                  # N = 10 30, 3 rounds
#   NS="10" REPS=1 bench/swarm.sh
set -euo pipefail
export LC_ALL=C
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
NS="${NS:-10 30}"
REPS="${REPS:-3}"
IMAGE="muster-example/busybox:1"
run="ms-$$"
work="$(mktemp -d)"
muster="$root/target/release/muster"
trap 'docker stack rm "$run-stack" >/dev/null 2>&1 || true; (cd "$work/m" 2>/dev/null && "$muster" down >/dev/null 2>&1) || true; rm -rf "$work"' EXIT

[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = "true" ] || {
  echo "the engine is not a swarm manager: docker swarm init --advertise-addr 127.0.0.1" >&2
  exit 1
}
examples/image.sh >/dev/null
cargo build --release --quiet
mkdir -p "$work/m" "$work/s"

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# Converged: N tasks running of the current spec, no update in flight.
converged() { # service replicas
  local want="$2" spec running state
  state="$(docker service inspect "$1" --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' 2>/dev/null || echo missing)"
  case "$state" in updating|rollback_started) return 1 ;; esac
  running="$(docker service ps "$1" --filter desired-state=running --format '{{.CurrentState}}' 2>/dev/null | grep -c '^Running' || true)"
  spec="$(docker ps -q --filter "label=com.docker.swarm.service.name=$1" | wc -l)"
  [ "$running" -eq "$want" ] && [ "$spec" -eq "$want" ]
}
gone() { ! docker ps -aq --filter "label=com.docker.swarm.service.name=$1" | grep -q .; }

muster_file() { # replicas env
  cat >"$work/m/services.toml" <<TOML
project = "$run"
backend = "swarm"
[swarm]
endpoint_mode = "dnsrr"
[services.web]
image = "$IMAGE"
count = $1
command = ["sleep", "3600"]
env = { V = "$2" }
init = true
restart = "always"
stop_grace_period = "1s"
[services.web.update]
parallelism = 8
TOML
}
stack_file() { # replicas env
  cat >"$work/s/compose.yml" <<YML
version: "3.8"
services:
  web:
    image: $IMAGE
    command: ["sleep", "3600"]
    environment: { V: "$2" }
    init: true
    stop_grace_period: 1s
    deploy:
      replicas: $1
      endpoint_mode: dnsrr
      update_config: { parallelism: 8 }
YML
}

m() { (cd "$work/m" && "$muster" "$@" >/dev/null); }
s_deploy() { docker stack deploy -c "$work/s/compose.yml" "$run-stack" >/dev/null 2>&1; }
s_wait() { until converged "$run-stack_web" "$1"; do sleep 0.1; done; }

declare -A sum
results=()
for n in $NS; do
  for r in $(seq 1 "$REPS"); do
    for tool in $( [ $((r % 2)) -eq 1 ] && echo "muster stack" || echo "stack muster"); do
      for phase in deploy scale update remove; do
        case "$tool/$phase" in
          muster/deploy) muster_file "$n" a; t=$(now); m apply ;;
          muster/scale) muster_file $((2 * n)) a; t=$(now); m apply ;;
          muster/update) muster_file $((2 * n)) b; t=$(now); m apply ;;
          muster/remove) t=$(now); m down; until gone "${run}_web"; do sleep 0.1; done ;;
          stack/deploy) stack_file "$n" a; t=$(now); s_deploy; s_wait "$n" ;;
          stack/scale) stack_file $((2 * n)) a; t=$(now); s_deploy; s_wait $((2 * n)) ;;
          stack/update) stack_file $((2 * n)) b; t=$(now); s_deploy; sleep 0.5; s_wait $((2 * n)) ;;
          stack/remove) t=$(now); docker stack rm "$run-stack" >/dev/null; until gone "$run-stack_web"; do sleep 0.1; done ;;
        esac
        d=$(since "$t")
        results+=("$n $phase $tool $d")
        echo "N=$n round $r $tool $phase ${d}s" >&2
      done
      # Let the network go before the next tool deploys.
      sleep 2
    done
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "| N | phase | muster (s) | stack deploy + poll (s) | ratio |"
echo "| --- | --- | --- | --- | --- |"
for n in $NS; do
  for phase in deploy scale update remove; do
    mu=$(printf '%s\n' "${results[@]}" | awk -v n="$n" -v p="$phase" '$1==n && $2==p && $3=="muster" {print $4}' | median)
    st=$(printf '%s\n' "${results[@]}" | awk -v n="$n" -v p="$phase" '$1==n && $2==p && $3=="stack" {print $4}' | median)
    printf '| %s | %s | %.2f | %.2f | %.2f× |\n' "$n" "$phase" "$mu" "$st" "$(echo "$mu / $st" | bc -l)"
  done
done
