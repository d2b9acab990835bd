#!/usr/bin/env bash
# The cluster figures of BENCHMARKS.md ("The cluster over Redis"): one
# redis-server and two phxd nodes (A and B, --redis, --node-name) on
# loopback, phxd-bench spreading its sockets over them with --url repeated
# and publishing on A with --publish-url. One JSON object per run in $OUT
# (default bench-cluster/): phxd-bench's own, plus a "cluster" member with
# the CPU seconds of A, B and Redis over the run, Redis's PUBLISH count and
# the nodes' Redis counters. Not part of the test suite: figures are
# measured, never asserted.
#   tests/bench-cluster.sh [build-dir]
#
# Runs (each group against fresh processes):
#   a  single node, no Redis: fanout to 19,000 subscribers at 5/s (the
#      fanout row of BENCHMARKS.md) and to 100 subscribers at 20/s
#   b  19,000 subscribers split 9,500/9,500 over A and B, published on A
#   c  the hop: 100 subscribers at 20/s on A only, on B only, and 50/50,
#      always published on A (B only: every delivery crossed Redis)
#   d  publishes through one Redis: 1 subscriber on B, the publisher on A,
#      open loop at $PUBLISH_RATES broadcasts/s; each broadcast that
#      arrives is one PUBLISH on A that Redis delivered to B
# b, c and d run under two placements on this 2-CPU machine:
#   shared  A, B and Redis on CPU 0, phxd-bench on CPU 1: the servers get
#           the one core the single node had, the bench keeps its own
#   spread  A on CPU 0, B on CPU 1, Redis and phxd-bench unpinned: the
#           nodes work in parallel but the bench and Redis compete with
#           both
# Environment: OUT, RUNS (default "a b c d"), PLACEMENTS (default "shared spread"), PUBLISH_RATES
# (default "10000 20000 40000 80000"), REDIS_PORT (4790), PORT_A (4791),
# PORT_B (4792), PORT_SINGLE (4793), SUBSCRIBERS (19000), DURATION (20).
set -uo pipefail
build=${1:-build}
out=${OUT:-bench-cluster}
groups=" ${RUNS:-a b c d} "
placements=${PLACEMENTS:-shared spread}
rates=${PUBLISH_RATES:-10000 20000 40000 80000}
redis_port=${REDIS_PORT:-4790}
port_a=${PORT_A:-4791}
port_b=${PORT_B:-4792}
port_single=${PORT_SINGLE:-4793}
subs=${SUBSCRIBERS:-19000}
duration=${DURATION:-20}
secret=$(printf 'bench-secret-key-base-%042d' 0)
ips=127.0.0.2-127.0.0.9
hz=$(getconf CLK_TCK)

command -v redis-server >/dev/null || { echo "bench-cluster: redis-server is not installed" >&2; exit 2; }
[ -x "$build/phxd" ] && [ -x "$build/phxd-bench" ] || { echo "bench-cluster: build $build first" >&2; exit 2; }
is_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$redis_port" "$port_a" "$port_b" "$port_single"; do
  if is_open "$p"; then
    echo "bench-cluster: port $p is in use (set REDIS_PORT, PORT_A, PORT_B, PORT_SINGLE)" >&2
    exit 2
  fi
done
mkdir -p "$out"

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  pids=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
  for _ in $(seq 100); do
    is_open "$1" && return 0
    sleep 0.05
  done
  echo "bench-cluster: nothing listens on $1" >&2
  return 1
}
# cpu_s PID: user + system seconds of a process so far.
cpu_s() {
  local f
  f=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || { echo null; return; }
  set -- $f
  echo "${12} ${13}" | awk -v hz="$hz" '{ printf "%.3f", ($1 + $2) / hz }'
}
# pin CPUS: the taskset prefix of a placement ("" = unpinned).
pin() { [ -n "$1" ] && echo "taskset -c $1"; }
redis_publish_calls() {
  local v
  v=$(redis-cli -h 127.0.0.1 -p "$redis_port" INFO commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_publish:calls=\([0-9]*\),.*/\1/p')
  echo "${v:-0}"
}
metric() { # port name: the first sample of a metric, null when absent
  local v
  v=$(curl -s "http://127.0.0.1:$1/metrics" |
    awk -v n="$2" '!done && ($1 == n || index($1, n "{") == 1) { print $2; done = 1 }')
  echo "${v:-null}"
}

diff_metric() { # port name before: the growth of a counter since `before`
  local v
  v=$(metric "$1" "$2")
  if [ "$v" = null ] || [ "$3" = null ]; then echo null; else awk -v a="$3" -v b="$v" 'BEGIN { print b - a }'; fi
}

redis_pid= a_pid= b_pid= single_pid=
start_cluster() { # cpus_redis cpus_a cpus_b
  $(pin "$1") redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    >"$out/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_port "$redis_port" || return 1
  $(pin "$2") "$build/phxd" --host 127.0.0.1 --port "$port_a" --secret-key-base "$secret" \
    --log-level warn --redis "redis://127.0.0.1:$redis_port" --node-name A >/dev/null 2>>"$out/phxd-A.log" &
  a_pid=$!
  pids+=("$a_pid")
  $(pin "$3") "$build/phxd" --host 127.0.0.1 --port "$port_b" --secret-key-base "$secret" \
    --log-level warn --redis "redis://127.0.0.1:$redis_port" --node-name B >/dev/null 2>>"$out/phxd-B.log" &
  b_pid=$!
  pids+=("$b_pid")
  wait_port "$port_a" && wait_port "$port_b" || return 1
  for _ in $(seq 100); do # both nodes connected to Redis
    [ "$(metric "$port_a" phxd_redis_connected)" = 1 ] && [ "$(metric "$port_b" phxd_redis_connected)" = 1 ] &&
      return 0
    sleep 0.05
  done
  echo "bench-cluster: the nodes did not connect to Redis" >&2
  return 1
}
stop_all() { cleanup; diff_metric() { # port name before: the growth of a counter since `before`
  local v
  v=$(metric "$1" "$2")
  if [ "$v" = null ] || [ "$3" = null ]; then echo null; else awk -v a="$3" -v b="$v" 'BEGIN { print b - a }'; fi
}

redis_pid= a_pid= b_pid= single_pid=; }

# bench NAME CPUS SERVER_PID bench-args...: runs phxd-bench, then adds the
# cluster's figures to its JSON.
bench() {
  local name=$1 cpus=$2 spid=$3
  shift 3
  local f="$out/$name"
  echo "== $name: phxd-bench $*" >&2
  local a0=null b0=null r0=null s0=null calls0=0 pub0=0 drop0=0 recv0=0 t0 t1
  if [ -n "$a_pid" ]; then
    a0=$(cpu_s "$a_pid") b0=$(cpu_s "$b_pid") r0=$(cpu_s "$redis_pid")
    calls0=$(redis_publish_calls)
    pub0=$(metric "$port_a" phxd_redis_published_total)
    drop0=$(metric "$port_a" phxd_redis_publish_dropped_total)
    recv0=$(metric "$port_b" phxd_redis_received_total)
  fi
  [ -n "$single_pid" ] && s0=$(cpu_s "$single_pid")
  t0=$(date +%s.%N)
  $(pin "$cpus") "$build/phxd-bench" --secret-key-base "$secret" --server-pid "$spid" --quiet "$@" \
    >"$f.json" 2>"$f.txt"
  local rc=$?
  t1=$(date +%s.%N)
  local extra
  if [ -n "$a_pid" ]; then
    extra=$(printf '{"placement": "%s", "bench_cpus": "%s", "wall_s": %s, "phxd_a_cpu_s": %s, "phxd_b_cpu_s": %s, "redis_cpu_s": %s, "redis_publish_calls": %s, "a_redis_published": %s, "a_redis_publish_dropped": %s, "b_redis_received": %s, "b_redis_connected": %s, "bench_exit": %s}' \
      "$placement" "${cpus:-any}" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
      "$(awk -v a="$a0" -v b="$(cpu_s "$a_pid")" 'BEGIN { printf "%.3f", b - a }')" \
      "$(awk -v a="$b0" -v b="$(cpu_s "$b_pid")" 'BEGIN { printf "%.3f", b - a }')" \
      "$(awk -v a="$r0" -v b="$(cpu_s "$redis_pid")" 'BEGIN { printf "%.3f", b - a }')" \
      "$(($(redis_publish_calls) - calls0))" \
      "$(diff_metric "$port_a" phxd_redis_published_total "$pub0")" \
      "$(diff_metric "$port_a" phxd_redis_publish_dropped_total "$drop0")" \
      "$(diff_metric "$port_b" phxd_redis_received_total "$recv0")" \
      "$(metric "$port_b" phxd_redis_connected)" "$rc")
  else
    extra=$(printf '{"placement": "single", "bench_cpus": "%s", "wall_s": %s, "phxd_cpu_s": %s, "bench_exit": %s}' \
      "${cpus:-any}" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
      "$(awk -v a="$s0" -v b="$(cpu_s "$single_pid")" 'BEGIN { printf "%.3f", b - a }')" "$rc")
  fi
  node -e '
    const fs = require("fs");
    const [file, extra] = process.argv.slice(1);
    let j;
    try { j = JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) { j = { error: String(e) }; }
    j.cluster = JSON.parse(extra);
    fs.writeFileSync(file, JSON.stringify(j, null, 2) + "\n");
  ' "$f.json" "$extra"
  grep -E 'fanout  |deliveries  |^  on |errors' "$f.txt" >&2
}

url_a="ws://127.0.0.1:$port_a/socket"
url_b="ws://127.0.0.1:$port_b/socket"
half=$((subs / 2))

# ---- a: the single node, as in BENCHMARKS.md (phxd CPU 0, bench CPU 1) ----
placement=single
start_single() {
  taskset -c 0 "$build/phxd" --host 127.0.0.1 --port "$port_single" --secret-key-base "$secret" \
    --log-level warn >/dev/null 2>>"$out/phxd-single.log" &
  single_pid=$!
  pids+=("$single_pid")
  wait_port "$port_single"
}
has() { [[ $groups == *" $1 "* ]]; }
if has a; then
start_single
bench a-single-$subs 1 "$single_pid" --url "ws://127.0.0.1:$port_single/socket" --scenario fanout \
  --sockets "$subs" --source-ips "$ips" --rate 5 --duration "$duration"
stop_all
start_single
bench a-single-100 1 "$single_pid" --url "ws://127.0.0.1:$port_single/socket" --scenario fanout \
  --sockets 100 --rate 20 --duration "$duration"
stop_all
fi

for placement in $placements; do
  case $placement in
  shared) c_redis=0 c_a=0 c_b=0 c_bench=1 ;;
  spread) c_redis='' c_a=0 c_b=1 c_bench='' ;;
  *) echo "bench-cluster: unknown placement $placement (shared, spread)" >&2; exit 2 ;;
  esac
  # ---- b: the 19,000 split over the two nodes, published on A ----
  if has b; then
  start_cluster "$c_redis" "$c_a" "$c_b" || exit 1
  bench "b-$placement-split-$subs" "$c_bench" "$a_pid" --url "$url_a" --url "$url_b" \
    --scenario fanout --sockets "$subs" --source-ips "$ips" --rate 5 --duration "$duration"
  stop_all
  fi
  # ---- c: the hop, 100 subscribers at 20/s ----
  if has c; then
  start_cluster "$c_redis" "$c_a" "$c_b" || exit 1
  bench "c-$placement-on-a-100" "$c_bench" "$a_pid" --url "$url_a" \
    --scenario fanout --sockets 100 --rate 20 --duration "$duration"
  bench "c-$placement-on-b-100" "$c_bench" "$a_pid" --url "$url_b" --publish-url "$url_a" \
    --scenario fanout --sockets 100 --rate 20 --duration "$duration"
  bench "c-$placement-split-100" "$c_bench" "$a_pid" --url "$url_a" --url "$url_b" \
    --scenario fanout --sockets 100 --rate 20 --duration "$duration"
  stop_all
  fi
  # ---- d: publishes per second through Redis ----
  has d || continue
  for rate in $rates; do
    start_cluster "$c_redis" "$c_a" "$c_b" || exit 1
    bench "d-$placement-publish-$rate" "$c_bench" "$a_pid" --url "$url_b" --publish-url "$url_a" \
      --scenario fanout --sockets 1 --rate "$rate" --duration 10 --drain-ms 10000
    stop_all
  done
done

# ---- summary ----
node -e '
  const fs = require("fs");
  const dir = process.argv[1];
  const f = (v, d = 2) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".json")).sort()) {
    const j = JSON.parse(fs.readFileSync(`${dir}/${name}`, "utf8"));
    const c = j.cluster || {};
    let line = `${name.replace(/\.json$/, "").padEnd(28)} subs ${j.subscribers} bcasts ${j.broadcasts_complete}/${j.broadcasts}` +
      ` last p50 ${f(j.fanout_p50_ms)} p99 ${f(j.fanout_p99_ms)} ms errors ${j.errors}`;
    for (const u of j.per_url || []) {
      if (u.subscribers) line += ` | ${u.publisher ? "A" : "B"}: p50 ${f(u.fanout_p50_ms)} p99 ${f(u.fanout_p99_ms)}`;
    }
    if (name.startsWith("d-")) {
      line += ` | ${f(j.deliveries_per_s_wall, 0)}/s arrived, PUBLISH ${c.redis_publish_calls}, dropped ${c.a_redis_publish_dropped}`;
    }
    if (c.phxd_a_cpu_s !== undefined) {
      line += ` | cpu s A ${c.phxd_a_cpu_s} B ${c.phxd_b_cpu_s} redis ${c.redis_cpu_s} bench ${f(j.bench_cpu_s)} wall ${c.wall_s}`;
    } else {
      line += ` | cpu s phxd ${c.phxd_cpu_s} bench ${f(j.bench_cpu_s)} wall ${c.wall_s}`;
    }
    console.log(line);
  }
' "$out" | tee "$out/summary.txt"
echo "results in $out/" >&2
