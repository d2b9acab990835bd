#!/usr/bin/env bash
# Runs the figures of BENCHMARKS.md in one go on this machine: a fresh phxd
# pinned to CPU 0 for each scenario, phxd-bench pinned to CPU 1, one JSON
# object per scenario in $OUT (default bench-results/). Not part of the test
# suite: figures are measured, never asserted.
#   tests/benchmarks.sh [build-dir]
set -euo pipefail
build=${1:-build}
out=${OUT:-bench-results}
mkdir -p "$out"
secret=$(printf 'bench-secret-key-base-%042d' 0)
ips=127.0.0.2-127.0.0.9

phxd_pid=
start_phxd() {
  local port=$1
  shift
  taskset -c 0 "$build/phxd" --port "$port" --secret-key-base "$secret" --log-level warn "$@" \
    >/dev/null 2>"$out/phxd-$port.log" &
  phxd_pid=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
}
stop_phxd() { kill -TERM "$phxd_pid" 2>/dev/null; wait "$phxd_pid" 2>/dev/null || true; }
bench() {
  local name=$1 port=$2
  shift 2
  echo "== $name: phxd-bench $*" >&2
  taskset -c 1 "$build/phxd-bench" --url "ws://127.0.0.1:$port/socket" --secret-key-base "$secret" \
    --server-pid "$phxd_pid" --quiet "$@" >"$out/$name.json" 2>"$out/$name.txt" || true
  cat "$out/$name.txt" >&2
}

start_phxd 4701
bench hold 4701 --scenario hold --sockets 19000 --source-ips "$ips" --duration 10
stop_phxd

start_phxd 4702
bench fanout 4702 --scenario fanout --sockets 19000 --source-ips "$ips" --rate 5 --duration 20
stop_phxd

start_phxd 4703
bench echo-closed 4703 --scenario echo --sockets 1000 --duration 10
bench echo-100k 4703 --scenario echo --sockets 1000 --rate 100000 --duration 10
bench echo-120k 4703 --scenario echo --sockets 1000 --rate 120000 --duration 10
stop_phxd

start_phxd 4704
# The first, short run warms the server (code pages, lazily built caches);
# the second is the 60 s measurement, starting from where the first ended.
bench churn-warmup 4704 --scenario churn --sockets 100 --duration 5
bench churn 4704 --scenario churn --sockets 100 --duration 60
stop_phxd

# Presence: every socket joins one presence topic as fast as the ramp goes
# (default --presence-diff-ms); a fresh phxd per size.
presence_rule='room:* join=any events=broadcast presence=user'
start_phxd 4705 --channel "$presence_rule"
bench presence-2000 4705 --scenario presence --sockets 2000
stop_phxd
start_phxd 4706 --channel "$presence_rule"
bench presence-5000 4706 --scenario presence --sockets 5000
stop_phxd
echo "results in $out/" >&2
