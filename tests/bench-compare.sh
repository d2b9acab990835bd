#!/usr/bin/env bash
# Compares two builds of phxd on this machine, interleaved so that both see
# the same noise: hold (19,000 joined sockets), fanout (19,000 subscribers at
# 5 broadcasts/s) and closed-loop echo (1,000 sockets), each against a fresh
# phxd on CPU 0 with phxd-bench on CPU 1, ROUNDS times (default 2). Prints
# the figures BENCHMARKS.md compares; the JSON of every run is in $OUT
# (default bench-compare/). Measured, never asserted.
#   tests/bench-compare.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR
# e.g. git worktree add /tmp/before REV && (cd /tmp/before && meson setup build &&
#      ninja -C build phxd phxd-bench); tests/bench-compare.sh /tmp/before/build build
set -u
before=${1:?before build dir}
after=${2:?after build dir}
out=${OUT:-bench-compare}
rounds=${ROUNDS:-2}
mkdir -p "$out"
secret=$(printf 'bench-secret-key-base-%042d' 0)
ips=127.0.0.2-127.0.0.9
run() { # round tag build name port bench-args...
  local round=$1 tag=$2 b=$3 name=$4 port=$5
  shift 5
  local f="$out/$round-$tag-$name"
  taskset -c 0 "$b/phxd" --port "$port" --secret-key-base "$secret" --log-level warn \
    >/dev/null 2>"$f.log" &
  local pid=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  taskset -c 1 "$b/phxd-bench" --url "ws://127.0.0.1:$port/socket" --secret-key-base "$secret" \
    --server-pid "$pid" --quiet "$@" >"$f.json" 2>"$f.txt" || true
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  printf '%s %-6s %-6s ' "$round" "$tag" "$name"
  grep -hE 'rss per socket|to the last subscriber|round trips' "$f.txt" | tr -s ' ' | tr '\n' ' '
  echo
}
for round in $(seq "$rounds"); do
  for tag in before after; do
    b=$before
    [ "$tag" = after ] && b=$after
    run "$round" "$tag" "$b" hold 4711 --scenario hold --sockets 19000 --source-ips "$ips" \
      --duration 10
    run "$round" "$tag" "$b" fanout 4712 --scenario fanout --sockets 19000 --source-ips "$ips" \
      --rate 5 --duration 20
    run "$round" "$tag" "$b" echo 4713 --scenario echo --sockets 1000 --duration 10
  done
done
