#!/usr/bin/env bash
# The backend-callback figures of BENCHMARKS.md ("Backend callbacks"): phxd
# pinned to CPU 0 with --backend-url pointing at phxd-bench's built-in
# backend (--backend-listen, its own thread), phxd-bench (client sockets and
# backend) pinned to CPU 1; a fresh phxd per run. One JSON object per run in
# $OUT (default bench-backend/), then a summary with the targets of issue
# 10. Builds nothing; not part of the test suite: figures are measured,
# never asserted.
#   tests/bench-backend.sh [build-dir]
#
# Runs (each $DURATION s, $SOCKETS sockets on one room channel each):
#   max       events=backend, as fast as possible: every socket keeps
#             $INFLIGHT pushes in flight (rate 0)
#   rate      events=backend, $RATE pushes/s in total (open loop)
#   base      events=reply (phxd answers itself, no backend), $RATE pushes/s:
#             the baseline the "added over phxd answering itself" figures
#             subtract
#   base-max  events=reply as fast as possible (phxd's ceiling without a
#             backend, for scale)
# "added" is computed two ways (docs in BENCHMARKS.md):
#   per reply   the push's round trip minus the backend's own time for that
#               call (read of its first byte to its answer handed to the
#               kernel, carried back in the reply as "backend_ns"); phxd-bench
#               reports its p50/p90/p99/max as backend_added_*_ms
#   vs baseline that distribution's percentile minus the same percentile of
#               the round trip of run base (same rate, no backend): what the
#               backend hop adds to a push phxd would otherwise answer itself
# ROUNDS=N repeats the runs N times in turn (files NAME.ROUND.json), since
# on a shared machine one round can be contended: the summary prints every
# round with the CPU the host spent beyond phxd and the bench
# (host_other_cpu_s).
# Environment: OUT, RUNS (default "max rate base base-max"), ROUNDS (1),
# PORT (4781), BACKEND_PORT (4782), SOCKETS (100), INFLIGHT (16),
# RATE (5000), DURATION (10), DELAY_US (0: the backend's answer delay).
set -uo pipefail
build=${1:-build}
out=${OUT:-bench-backend}
runs=" ${RUNS:-max rate base base-max} "
rounds=${ROUNDS:-1}
port=${PORT:-4781}
be_port=${BACKEND_PORT:-4782}
sockets=${SOCKETS:-100}
inflight=${INFLIGHT:-16}
rate=${RATE:-5000}
duration=${DURATION:-10}
delay_us=${DELAY_US:-0}
secret=$(printf 'bench-secret-key-base-%042d' 0)

[ -x "$build/phxd" ] && [ -x "$build/phxd-bench" ] || { echo "bench-backend: build $build first" >&2; exit 2; }
is_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port" "$be_port"; do
  if is_open "$p"; then
    echo "bench-backend: port $p is in use (set PORT, BACKEND_PORT)" >&2
    exit 2
  fi
done
mkdir -p "$out"

phxd_pid=
stop_phxd() {
  [ -n "$phxd_pid" ] || return 0
  kill -TERM "$phxd_pid" 2>/dev/null
  wait "$phxd_pid" 2>/dev/null
  phxd_pid=
}
trap stop_phxd EXIT
trap 'exit 130' INT TERM

start_phxd() { # rule [phxd args...]
  local rule=$1
  shift
  taskset -c 0 "$build/phxd" --host 127.0.0.1 --port "$port" --secret-key-base "$secret" \
    --log-level warn --channel "$rule" "$@" >/dev/null 2>>"$out/phxd.log" &
  phxd_pid=$!
  for _ in $(seq 100); do
    is_open "$port" && return 0
    sleep 0.05
  done
  echo "bench-backend: phxd did not start (see $out/phxd.log)" >&2
  return 1
}

# bench NAME bench-args...: phxd-bench on CPU 1 against the running phxd.
bench() {
  local name=$1
  shift
  echo "== $name: phxd-bench --scenario backend $*" >&2
  taskset -c 1 "$build/phxd-bench" --url "ws://127.0.0.1:$port/socket" --secret-key-base "$secret" \
    --server-pid "$phxd_pid" --quiet --scenario backend --sockets "$sockets" \
    --inflight "$inflight" --duration "$duration" "$@" >"$out/$name.json" 2>"$out/$name.txt"
  echo "   exit $?" >>"$out/$name.txt"
  grep -E '^  (callbacks|backend|added|server per|server cpu|bench cpu|host|errors)' "$out/$name.txt" >&2
}

has() { [[ $runs == *" $1 "* ]]; }
backend_rule='"room:*" join=any events=backend'
reply_rule='"room:*" join=any events=reply'
backend_args=(--backend-url "http://127.0.0.1:$be_port/phxd")
listen_args=(--backend-listen "127.0.0.1:$be_port" --backend-delay-us "$delay_us")

for round in $(seq "$rounds"); do
  if has max; then
    start_phxd "$backend_rule" "${backend_args[@]}" || exit 1
    bench "max.$round" --rate 0 "${listen_args[@]}"
    stop_phxd
  fi
  if has rate; then
    start_phxd "$backend_rule" "${backend_args[@]}" || exit 1
    bench "rate-$rate.$round" --rate "$rate" "${listen_args[@]}"
    stop_phxd
  fi
  if has base; then
    start_phxd "$reply_rule" || exit 1
    bench "base-$rate.$round" --rate "$rate"
    stop_phxd
  fi
  if has base-max; then
    start_phxd "$reply_rule" || exit 1
    bench "base-max.$round" --rate 0
    stop_phxd
  fi
done

# ---- summary ----
node - "$out" "$rate" "$rounds" <<'EOF' | tee "$out/summary.txt"
const fs = require('fs');
const [dir, rate, rounds] = process.argv.slice(2);
const load = (n) => {
  try { return JSON.parse(fs.readFileSync(`${dir}/${n}.json`, 'utf8')); } catch { return null; }
};
const f = (v, d = 3) => (v === null || v === undefined ? '-' : Number(v).toFixed(d));
const pcts = ['p50', 'p90', 'p99', 'max'];
const row = (name, j) => {
  if (!j) return;
  console.log(`${name.padEnd(10)} ${f(j.backend_callbacks_per_s, 0)} callbacks/s` +
    ` (backend ${f(j.backend_calls_per_s, 0)} calls/s), errors ${j.errors}`);
  console.log(`           round trip ms  ${pcts.map((p) => `${p} ${f(j[`backend_rtt_${p}_ms`])}`).join('  ')}`);
  if (j.backend_own_p50_ms !== null) {
    console.log(`           backend own ms ${pcts.map((p) => `${p} ${f(j[`backend_own_${p}_ms`], 4)}`).join('  ')}`);
    console.log(`           added ms       ${pcts.map((p) => `${p} ${f(j[`backend_added_${p}_ms`])}`).join('  ')}` +
      '  (round trip minus the backend\'s own time, per reply)');
  }
  console.log(`           phxd cpu ${f(j.server_cpu_pct, 0)}% of CPU 0, ${f(j.server_cpu_us_per_callback, 1)} us per callback;` +
    ` bench cpu ${f(j.bench_cpu_pct, 0)}% (backend thread ${f(j.backend_cpu_s, 2)} s);` +
    ` host busy ${JSON.stringify(j.host_cpu_busy_pct_per_cpu)}%, other ${f(j.host_other_cpu_s, 2)} s`);
};
for (let r = 1; r <= Number(rounds); r++) {
  console.log(`---- round ${r}`);
  const max = load(`max.${r}`);
  const rt = load(`rate-${rate}.${r}`);
  const base = load(`base-${rate}.${r}`);
  row('max', max);
  row(`rate-${rate}`, rt);
  row(`base-${rate}`, base);
  row('base-max', load(`base-max.${r}`));
  if (rt && base) {
    console.log(`added over phxd answering itself at ${rate}/s (rate-${rate} added minus base-${rate} round trip), ms: ` +
      pcts.slice(0, 3).map((p) => `${p} ${f(rt[`backend_added_${p}_ms`] - base[`backend_rtt_${p}_ms`])}`).join('  '));
  }
  if (max) {
    const ok = max.backend_callbacks_per_s >= 20000 && max.errors === 0;
    console.log(`target >= 20,000 callbacks/s: ${f(max.backend_callbacks_per_s, 0)}/s, ${ok ? 'met' : 'NOT met'}`);
  }
  if (rt) {
    const ok = rt.backend_added_p99_ms < 2 && rt.errors === 0;
    console.log(`target added p99 < 2 ms at ${rate}/s: ${f(rt.backend_added_p99_ms)} ms, ${ok ? 'met' : 'NOT met'}`);
  }
}
EOF
echo "results in $out/" >&2
