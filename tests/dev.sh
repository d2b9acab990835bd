#!/usr/bin/env bash
# phxd's set-up, build, run and test entry point (README's two commands).
#   tests/dev.sh run [phxd options]   install what is missing, build, run phxd
#   tests/dev.sh test                 install what is missing, build, run every suite
#   tests/dev.sh build                install what is missing and build only
# Safe to repeat: packages are installed only when missing, npm ci only when
# the lockfile changed, meson reconfigures an existing build directory.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${PHXD_BUILD_DIR:-build}

# Debian 12 packages the build and the tests need.
packages=(
  build-essential pkg-config meson ninja-build cmake openssl
  libuv1-dev libwslay-dev libssl-dev libcjson-dev node-llhttp
  erlang-base erlang-crypto
  chromium  # the demo page's browser test (js-client-fixtures/browser.test.mjs)
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

do_build() {
  install_packages
  install_npm
  if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" ${PHXD_MESON_ARGS:-} >/dev/null
  else
    meson setup "$build" ${PHXD_MESON_ARGS:-} >/dev/null
  fi
  ninja -C "$build"
}

summary() {
  # One line from meson's machine-readable log: "N passed, N failed".
  local json="$1/meson-logs/testlog.json"
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
    let pass = 0, fail = 0;
    for (const l of lines) {
      const r = JSON.parse(l).result;
      if (r === "OK" || r === "EXPECTEDFAIL") pass++; else if (r !== "SKIP") fail++;
    }
    console.log(`${pass} passed, ${fail} failed`);
  ' "$json"
}

cmd=${1:-test}
shift || true
case "$cmd" in
  build)
    do_build ;;
  run)
    do_build
    exec "$build/phxd" "$@" ;;
  test)
    do_build
    rc=0
    meson test -C "$build" --print-errorlogs ${PHXD_TEST_ARGS:-} || rc=$?
    summary "$build"
    exit $rc ;;
  *)
    echo "usage: tests/dev.sh run|test|build" >&2
    exit 2 ;;
esac
