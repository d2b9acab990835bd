#!/usr/bin/env bash
# The install test: installs the build (DESTDIR staging into a temporary
# folder: the build directory is neither reconfigured nor rebuilt), checks
# what landed (headers, libphx.a and libphx.so with its soname and exports,
# phx.pc, phxd, phxd-bench), then builds examples/embed/embed.c outside the
# tree twice through pkg-config (against libphx.so, and with --static
# against libphx.a), runs each: the library's version must be the header's,
# a client must join a channel and get its echo, and SIGINT must stop it
# with exit 0. Then the daemon as installed: no path of the source or build
# tree in the program (its debug info aside), phxd(1) under mandir listing
# the options, and the installed phxd run from the staged prefix: it serves
# the phoenix.min.js installed under datadir (200, or 404 when the build had
# none), answers `phxd publish` and `phxd token`, and drains on SIGTERM
# with exit 0. Removes the temporary folder whatever happens.
#   install_test.sh BUILD_DIR SOURCE_DIR VERSION SOVERSION PYTHON
# Environment: CC (default cc) and PHX_EXTRA_CFLAGS (the build's sanitizer
# flags, which a program linking an instrumented libphx needs as well).
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
version=$3
soversion=$4
python=$5
read -r -a cc <<<"${CC:-cc}"
read -r -a extra <<<"${PHX_EXTRA_CFLAGS:-}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/phx-install-test.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "install test: $*" >&2
  exit 1
}

# ---- install into $tmp/dest ----
dest=$tmp/dest
if ! DESTDIR=$dest meson install -C "$build" --no-rebuild >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log" >&2
  fail "meson install failed"
fi
# prefix, libdir, includedir, bindir, datadir, mandir as configured (each may be absolute)
read -r prefix libdir includedir bindir datadir mandir < <(meson introspect --buildoptions "$build" |
  "$python" -c '
import json, os, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
p = o["prefix"]
print(p, *(os.path.join(p, o[k]) for k in ("libdir", "includedir", "bindir", "datadir",
                                           "mandir")))')
for f in "$includedir/phx/phx.h" "$includedir/phx/phx_version.h" "$libdir/libphx.a" \
         "$libdir/libphx.so" "$libdir/libphx.so.$soversion" "$libdir/libphx.so.$version" \
         "$libdir/pkgconfig/phx.pc" "$bindir/phxd" "$bindir/phxd-bench" \
         "$mandir/man1/phxd.1"; do
  [ -e "$dest$f" ] || fail "not installed: $f"
done
lib=$dest$libdir
grep -q "^#define PHX_VERSION_STRING \"$version\"$" "$dest$includedir/phx/phx_version.h" ||
  fail "phx_version.h does not say $version"

# ---- the libraries ----
soname=$(readelf -d "$lib/libphx.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libphx.so.$soversion" ] || fail "soname is '$soname', not libphx.so.$soversion"
# libphx.so exports the phx_* API and nothing else (llhttp stays inside)
# (tools' output goes to files first: grep -q closing a pipe early would
# fail the pipeline under pipefail)
nm -D --defined-only "$lib/libphx.so" >"$tmp/exports"
others=$(awk '$3 !~ /^phx_/ {print $3}' "$tmp/exports")
[ -z "$others" ] || fail "libphx.so exports more than phx_*: $(echo $others)"
for sym in phx_version phx_version_num phx_set_allocator phx_set_log phx_set_log_level \
           phx_server_new phx_server_channel; do
  grep -q " T $sym\$" "$tmp/exports" || fail "libphx.so lacks $sym"
done
# the daemon's code (src/phxd/) is not part of the library; llhttp is
ar t "$lib/libphx.a" >"$tmp/members"
nm "$lib/libphx.a" >"$tmp/archive-symbols" 2>/dev/null
if grep -q '^src_phxd_' "$tmp/members"; then fail "libphx.a holds src/phxd/ objects"; fi
if grep -q ' T phxd_' "$tmp/archive-symbols"; then fail "libphx.a holds phxd_ functions"; fi
grep -q ' T llhttp_init$' "$tmp/archive-symbols" || fail "libphx.a lacks llhttp"

# ---- pkg-config: phx.pc as installed, its prefix moved under $dest ----
mkdir "$tmp/pc"
sed "s|^prefix=.*|prefix=$dest$prefix|" "$lib/pkgconfig/phx.pc" >"$tmp/pc/phx.pc"
export PKG_CONFIG_PATH=$tmp/pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
[ "$(pkg-config --modversion phx)" = "$version" ] || fail "pkg-config --modversion phx"
grep -q '^Libs.private:.*-lwslay' "$tmp/pc/phx.pc" || fail "phx.pc lacks -lwslay"
read -r -a cflags <<<"$(pkg-config --cflags phx)"
read -r -a libs <<<"$(pkg-config --libs phx)"
read -r -a static_libs <<<"$(pkg-config --static --libs phx)"
# --static: the archive, not the shared library next to it
for i in "${!static_libs[@]}"; do
  [ "${static_libs[$i]}" = -lphx ] && static_libs[$i]=-l:libphx.a
done

# ---- build the example outside the tree ----
mkdir "$tmp/app"
cp "$src/examples/embed/embed.c" "$tmp/app/"
cd "$tmp/app"
"${cc[@]}" "${extra[@]}" -o embed-shared embed.c "${cflags[@]}" "${libs[@]}" ||
  fail "cannot build embed.c against libphx.so"
"${cc[@]}" "${extra[@]}" -o embed-static embed.c "${cflags[@]}" "${static_libs[@]}" ||
  fail "cannot build embed.c against libphx.a"
readelf -d embed-shared >needed-shared
readelf -d embed-static >needed-static
grep -q "NEEDED.*\[libphx.so.$soversion\]" needed-shared ||
  fail "embed-shared does not load libphx.so.$soversion"
if grep -q 'NEEDED.*libphx' needed-static; then fail "embed-static loads libphx.so"; fi

# run NAME: starts ./NAME, checks its version line and port, the echo, SIGINT.
run() {
  local name=$1 line port
  LD_LIBRARY_PATH=$lib ./"$name" >"$name.out" 2>"$name.err" &
  pid=$!
  for _ in $(seq 100); do
    grep -q '^port ' "$name.out" && break
    kill -0 "$pid" 2>/dev/null || { cat "$name.err" >&2; fail "$name exited early"; }
    sleep 0.1
  done
  line=$(head -1 "$name.out")
  [ "$line" = "libphx $version (header $version)" ] || fail "$name says '$line'"
  port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$name.out")
  [ -n "$port" ] && [ "$port" -gt 0 ] || fail "$name printed no port"
  "$python" "$src/tests/install/echo_client.py" "$port" || fail "$name: the echo failed"
  kill -INT "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=
  [ "$rc" -eq 0 ] || { cat "$name.err" >&2; fail "$name exited $rc after SIGINT"; }
  echo "$name: libphx $version, port $port, echo ok, stopped on SIGINT"
}
run embed-shared
run embed-static

# ---- the daemon as installed ----
phxd=$dest$bindir/phxd
# No path of the source or build tree in what the program holds; its debug
# sections (DW_AT_comp_dir, as in any -g build) are left out, and so are the
# relative source locations a sanitizer build records (../src/x.c, or
# ../../work/src/x.c from a build directory outside the tree): no file is
# read from those.
objcopy --strip-debug "$phxd" "$tmp/phxd-nodebug"
strings -a "$tmp/phxd-nodebug" >"$tmp/phxd-strings"
"$python" - "$tmp/phxd-strings" "$src" "$build" <<'PY' || fail "the installed phxd holds a path of the tree"
import sys
lines = open(sys.argv[1], errors="replace").read().split("\n")
for d in sys.argv[2:]:
    for line in lines:
        i = line.find(d)
        while i >= 0:
            if i == 0 or line[i - 1] != ".":  # not the tail of a ../../x relative path
                sys.exit(f"{d} in: {line}")
            i = line.find(d, i + 1)
PY
grep -qF "$datadir/phxd/phoenix.min.js" "$tmp/phxd-strings" ||
  fail "the installed phxd does not name $datadir/phxd/phoenix.min.js"
echo "phxd: no path of $src or $build in the program"
# phxd(1): generated from the option table
man=$dest$mandir/man1/phxd.1
grep -q '^\.TH PHXD 1 ' "$man" || fail "phxd.1 has no .TH PHXD 1 line"
for opt in 'secret\-key\-base' 'port' 'phoenix\-js' 'drain\-timeout\-ms' 'api\-key'; do
  grep -qF "\\fB\\-\\-$opt\\fR" "$man" || fail "phxd.1 does not document --${opt//\\/}"
done
for word in SECRET_KEY_BASE PHXD_PORT SIGTERM SIGHUP 'EXIT STATUS' "$datadir/phxd/phoenix.min.js"; do
  grep -qF -- "${word//-/\\-}" "$man" || fail "phxd.1 does not mention $word"
done
echo "phxd.1: installed, documents the options"
# phoenix.min.js: installed when the build had it (build/phoenix.min.js)
js=$dest$datadir/phxd/phoenix.min.js
if [ -f "$build/phoenix.min.js" ]; then
  cmp -s "$build/phoenix.min.js" "$js" || fail "not installed: $datadir/phxd/phoenix.min.js"
  want_js=200
else
  [ ! -e "$js" ] || fail "$datadir/phxd/phoenix.min.js installed without phoenix.js in the build"
  want_js=404
fi
# the installed phxd, run from the staged prefix
"$phxd" --version >"$tmp/version" || fail "phxd --version failed"
[ "$(cat "$tmp/version")" = "phxd $version" ] || fail "phxd --version says '$(cat "$tmp/version")'"
secret=$(printf 'install-test-secret-%.0s' 1 2 3 4)
demo_page=()
if "$phxd" --help | grep -q -- '--demo-page'; then demo_page=(--demo-page true); fi
cd "$tmp"
SECRET_KEY_BASE=$secret PHXD_API_KEY=install-test-key \
  "$phxd" --host 127.0.0.1 --port 0 "${demo_page[@]}" --drain-interval-ms 0 \
  >phxd.out 2>phxd.err &
pid=$!
for _ in $(seq 100); do
  grep -q '^phxd .* listening on ' phxd.out && break
  kill -0 "$pid" 2>/dev/null || { cat phxd.err >&2; fail "the installed phxd exited early"; }
  sleep 0.1
done
port=$(sed -n 's|^phxd .* listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' phxd.out)
[ -n "$port" ] || { cat phxd.out phxd.err >&2; fail "the installed phxd printed no port"; }
"$python" - "$port" "$want_js" "$js" <<'PY' || fail "GET /phoenix.js from the installed phxd"
import sys, urllib.request, urllib.error
port, want, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    r = urllib.request.urlopen(f"http://127.0.0.1:{port}/phoenix.js", timeout=10)
    status, ctype, body = r.status, r.headers.get("content-type"), r.read()
except urllib.error.HTTPError as e:
    status, ctype, body = e.code, None, b""
if status != want:
    sys.exit(f"/phoenix.js: {status}, expected {want}")
if want == 200:
    assert ctype == "text/javascript; charset=utf-8", ctype
    assert body == open(path, "rb").read(), "not the installed phoenix.min.js"
PY
if [ "$want_js" = 200 ]; then
  # (found relative to the executable: .../bin/../share/phxd/phoenix.min.js)
  read_js=$(sed -n 's/.* event=demo_phoenix_js path="\([^"]*\)".*/\1/p' phxd.err)
  [ -n "$read_js" ] && [ "$(realpath "$read_js")" = "$(realpath "$js")" ] ||
    { cat phxd.err >&2; fail "the installed phxd did not read $js"; }
fi
PHXD_API_KEY=install-test-key "$phxd" publish --url "http://127.0.0.1:$port" room:lobby \
  new_msg '{"body": "hello"}' >publish.out || fail "phxd publish failed"
grep -q '"recipients":0' publish.out || fail "phxd publish printed $(cat publish.out)"
token=$("$phxd" token sign --secret-key-base "$secret" 42) || fail "phxd token sign failed"
[ "$("$phxd" token verify --secret-key-base "$secret" "$token")" = 42 ] ||
  fail "phxd token verify"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || { cat phxd.err >&2; fail "the installed phxd exited $rc after SIGTERM"; }
echo "phxd: installed binary served /phoenix.js ($want_js), publish, token, drained on SIGTERM"
echo "install test: ok"
