#!/usr/bin/env bash
# phxd's set-up, build, run and test entry point (README's two commands).
#   tests/dev.sh run [phxd options]   install what is missing, build, run phxd
#   tests/dev.sh test                 install what is missing, build, run every suite:
#                                     the normal tree, then an ASan/UBSan tree (every suite,
#                                     JS included, against the sanitized binary), valgrind
#                                     on the C suites, and a short libFuzzer run per target
#   tests/dev.sh quick                the normal tree's suites only
#   tests/dev.sh build                install what is missing and build only
# PHXD_FUZZ_SECONDS (default 25) sets the fuzzing time per target; 0 skips it.
# Safe to repeat: packages are installed only when missing, npm ci only when
# the lockfile changed, meson reconfigures an existing build directory.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${PHXD_BUILD_DIR:-build}

# Debian 12 packages the build needs (run and test)...
packages=(
  build-essential pkg-config meson ninja-build cmake openssl
  libuv1-dev libwslay-dev libssl-dev node-llhttp
  zlib1g-dev  # compressed Erlang terms (src/pubsub/phoenix_pubsub.c)
  libhiredis-dev  # the cluster backend over Redis (src/pubsub/redis.c)
)
# ...and those only the tests need.
test_packages=(
  erlang-base erlang-crypto  # the Erlang oracle (tests/erlang/)
  chromium  # the demo page's browser test (js-client-fixtures/browser.test.mjs)
  clang libclang-rt-14-dev valgrind  # sanitizer tree, libFuzzer, valgrind runs
  redis-server  # the cluster tests (js-client-fixtures/cluster.test.mjs)
)

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

install_npm() {
  local dir=js-client-fixtures stamp=js-client-fixtures/node_modules/.phxd-lock
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
  fi
}

# setup_tree DIR [meson options...]: configure (or reconfigure) and build.
setup_tree() {
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir"
}

do_build() {
  install_packages
  install_npm
  setup_tree "$build" ${PHXD_MESON_ARGS:-}
}

# Counts of every stage, added up for the last line.
passed=0
failed=0

# count JSON: adds the results of one meson testlog.
count() {
  local res
  res=$(node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
    let pass = 0, fail = 0;
    for (const l of lines) {
      let r;
      try { r = JSON.parse(l).result; } catch { r = "UNREADABLE"; }
      if (r === "OK" || r === "EXPECTEDFAIL") pass++; else if (r !== "SKIP") fail++;
    }
    console.log(pass, fail);
  ' "$1")
  passed=$((passed + ${res% *}))
  failed=$((failed + ${res#* }))
}

stage_normal() {
  log "suites of the normal tree ($build)"
  meson test -C "$build" --print-errorlogs ${PHXD_TEST_ARGS:-} || true
  count "$build/meson-logs/testlog.json"
}

stage_sanitizers() {
  local dir=build-asan reports
  reports="$root/$dir/sanitizer-reports"
  log "ASan/UBSan tree ($dir): every suite against the sanitized binary"
  CC=clang setup_tree "$dir" -Db_sanitize=address,undefined -Db_lundef=false
  rm -rf "$reports"
  mkdir -p "$reports"
  # Reports go to files: one file is one failure, whichever process wrote it.
  PHXD_SANITIZED=1 \
  ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan:abort_on_error=0" \
  UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan" \
    meson test -C "$dir" --print-errorlogs --timeout-multiplier 3 || true
  count "$dir/meson-logs/testlog.json"
  local n
  n=$(find "$reports" -type f | wc -l)
  if [ "$n" -gt 0 ]; then
    log "$n sanitizer report(s):"
    find "$reports" -type f -exec sh -c 'echo "--- $1"; head -40 "$1"' _ {} \; >&2
    failed=$((failed + n))
  else
    log "no sanitizer reports"
    passed=$((passed + 1))
  fi
}

stage_valgrind() {
  log "valgrind (memcheck, leak check) on the C suites of $build"
  meson test -C "$build" --setup=valgrind --print-errorlogs || true
  count "$build/meson-logs/testlog-valgrind.json"
}

stage_fuzz() {
  local seconds=${PHXD_FUZZ_SECONDS:-25} dir=build-fuzz work
  [ "$seconds" -gt 0 ] || return 0
  log "libFuzzer: ${seconds}s per target ($dir)"
  CC=clang setup_tree "$dir" -Dfuzzing=libfuzzer -Db_sanitize=address,undefined -Db_lundef=false
  work=$(mktemp -d)
  while read -r t; do
    case "$t" in ''|'#'*) continue ;; esac
    mkdir -p "$work/$t" "$work/$t-artifacts"
    cp -r tests/fuzz/corpus/"$t"/. "$work/$t"/ 2>/dev/null || true
    if "$dir/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
        -artifact_prefix="$work/$t-artifacts/" -print_final_stats=1 "$work/$t" \
        >"$work/$t.log" 2>&1; then
      passed=$((passed + 1))
      printf '    fuzz %-14s ok   %s\n' "$t" "$(grep -E '^stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}') execs, $(grep -oE 'cov: [0-9]+' "$work/$t.log" | tail -1)" >&2
    else
      failed=$((failed + 1))
      log "fuzz $t FAILED: crash inputs in $work/$t-artifacts (add them to tests/fuzz/corpus/$t)"
      tail -40 "$work/$t.log" >&2
    fi
  done < tests/fuzz/targets.txt
}

cmd=${1:-test}
shift || true
case "$cmd" in
  test|quick) packages+=("${test_packages[@]}") ;;
esac
case "$cmd" in
  build)
    do_build ;;
  run)
    do_build
    exec "$build/phxd" "$@" ;;
  quick)
    do_build
    stage_normal
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] ;;
  test)
    do_build
    stage_normal
    stage_sanitizers
    stage_valgrind
    stage_fuzz
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] ;;
  *)
    echo "usage: tests/dev.sh run|test|quick|build" >&2
    exit 2 ;;
esac
