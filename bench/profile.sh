#!/usr/bin/env bash
# Where the machine's CPU goes during a rolling replacement of N
# containers (an env change, `parallelism = 8`), or with WHAT=apply
# during an apply of N from nothing (compose's `up -d --scale`, the
# limit's `up`, 8 at once), for muster, compose and
# the engine's limit (bench/engine_limit.rs) in turn: `perf record` of
# every process on the machine (the software clock, so it works without
# hardware counters) for the length of each command, then the CPU time
# of each group of processes. The dockerd children that re-execute dockerd
# for a container's network (netns-create, set-ipv6, setup-resolver) run
# as "exe"; they are counted apart from dockerd itself.
#
#   N=30 ROUNDS=2 bench/profile.sh
#
# BINS=1 also prints, for each profiled command, how busy the cores were in each
# quarter second.
# Needs perf (Debian's linux-perf) and docker-compose; run it on a quiet
# machine with the engine out of any swarm.
source "$(dirname "$0")/lib.sh"

N="${N:-30}"
ROUNDS="${ROUNDS:-2}"
WHAT="${WHAT:-recreate}"
case "$WHAT" in # the limit's command for it
  recreate) limit_command=recreate ;;
  apply) limit_command=up ;;
  *) log "WHAT is recreate or apply, not $WHAT"; exit 1 ;;
esac
HZ=999
command -v perf >/dev/null || { log "needs perf: apt-get install linux-perf"; exit 1; }
command -v docker-compose >/dev/null || { log "needs docker-compose"; exit 1; }
cargo build --release --locked --quiet --example engine_limit
limit="${CARGO_TARGET_DIR:-$root/target}/release/examples/engine_limit"

work="$(mktemp -d)"
id="mp$$"
file="$work/m/services.toml"
mkdir -p "$work/m" "$work/c"
source "$root/bench/service.sh"
muster_file() { service_muster "$file" "$id-m" "$N" "$1" 8; } # GEN
compose_file() { service_compose "$work/c/docker-compose.yml" "$1"; } # GEN
c() { docker-compose --ansi never -p "$id-c" -f "$work/c/docker-compose.yml" "$@" >/dev/null 2>&1; }
before_cleanup() {
  c down || true
  "$limit" down "$id-l$r" >/dev/null 2>&1 || true
}

# The CPU seconds of each group in perf.data, and the wall time: from the
# first sample to the last, the command's life without perf's own start
# and finish.
groups() { # TOOL
  perf script -i "$work/perf.data" -F comm,pid,time 2>/dev/null | awk -v hz="$HZ" -v tool="$1" '
    { comm = $1; for (i = 2; i < NF - 1; i++) comm = comm " " $i; pid = $(NF - 1)
      t = $NF; sub(":", "", t); if (first == "") first = t; last = t
      if (comm == "swapper") next
      if (comm == "exe") { g = "dockerd re-executed"; reexec[pid] = 1 }
      else if (comm == "dockerd") g = "dockerd"
      else if (comm ~ /^runc/) g = "runc"
      else if (comm ~ /^containerd/) g = "containerd"
      else if (comm == "iptables") g = "iptables"
      else if (comm ~ /^fuse/) g = "fuse-overlayfs"
      else if (comm ~ /^(muster|docker-compose|python|engine_limit)/ || comm ~ /tokio/) g = "the client"
      else g = "other"
      n[g]++; all++ }
    END {
      for (p in reexec) k++
      printf "%s\twall\t%.2f\n", tool, last - first
      printf "%s\tbusy\t%.2f\n", tool, all / hz
      for (g in n) printf "%s\t%s\t%.2f\n", tool, g, n[g] / hz
      printf "%s\tre-executions\t%d\n", tool, k
    }'
}

# One command of TOOL under perf.
profile() { # TOOL CMD…
  local tool="$1"
  shift
  perf record -q -e cpu-clock -F "$HZ" -a -o "$work/perf.data" -- "$@" >/dev/null 2>&1
  groups "$tool" >>"$work/samples"
  if [ -n "${BINS:-}" ]; then busy_over_time "$tool"; fi
}

# BINS=1: how busy the cores were in each quarter second of the command.
busy_over_time() { # TOOL
  log "$1, round $r: busy share of the 2 cores per 0.25 s from the command's start"
  perf script -i "$work/perf.data" -F comm,time 2>/dev/null | awk '
    { t = $NF; sub(":", "", t); if (s == "") s = t; b = int((t - s) / 0.25)
      all[b]++; if ($1 != "swapper") busy[b]++; if (b > m) m = b }
    END { for (i = 0; i <= m; i++) printf "%5.2f s %3.0f%%\n", i * 0.25, 100 * busy[i] / all[i] }' |
    paste - - - - - - >&2
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
  log "round $r/$ROUNDS: a profiled $WHAT, for each tool"
  if [ "$WHAT" = recreate ]; then muster_file "$r-a" && "$muster" --color never -f "$file" apply >/dev/null; fi
  muster_file "$r-b" && profile muster "$muster" --color never -f "$file" apply
  "$muster" --color never -f "$file" down >/dev/null
  if [ "$WHAT" = recreate ]; then compose_file "$r-a" && c up -d --scale "svc=$N"; fi
  compose_file "$r-b" && profile compose docker-compose --ansi never -p "$id-c" \
    -f "$work/c/docker-compose.yml" up -d --scale "svc=$N"
  c down || log "the engine kept the network of $id-c"
  if [ "$WHAT" = recreate ]; then "$limit" up "$id-l$r" "$N" "$IMAGE" 8 >/dev/null; fi
  profile limit "$limit" "$limit_command" "$id-l$r" "$N" "$IMAGE" 8
  # Docker 20.10 now and then keeps the network (a stale endpoint): the
  # containers are gone, the next round uses another network.
  "$limit" down "$id-l$r" >/dev/null || log "the engine kept the network $id-l${r}_default"
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

echo "$WHAT of N = $N (8 at once), CPU seconds by group, median of $ROUNDS rounds;"
echo "muster $built, load average $load_before before, $load_after after."
echo
echo "| group | muster | compose | limit |"
echo "| --- | ---: | ---: | ---: |"
for g in wall busy "dockerd re-executed" dockerd runc containerd iptables fuse-overlayfs "the client" other re-executions; do
  printf '| %s |' "$g"
  for tool in muster compose limit; do
    printf ' %s |' "$(awk -F'\t' -v t="$tool" -v g="$g" '$1 == t && $2 == g { print $3 }' "$work/samples" | median)"
  done
  echo
done
