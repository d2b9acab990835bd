#!/usr/bin/env bash
# The install test: installs the build (DESTDIR staging into a temporary
# folder: the build directory is neither reconfigured nor rebuilt), checks
# what landed (headers, libphx.a and libphx.so with its soname and exports,
# phx.pc, phxd, phxd-bench), then builds examples/embed/embed.c outside the
# tree twice through pkg-config (against libphx.so, and with --static
# against libphx.a), runs each: the library's version must be the header's,
# a client must join a channel and get its echo, and SIGINT must stop it
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
# prefix, libdir, includedir, bindir as configured (libdir may be absolute)
read -r prefix libdir includedir bindir < <(meson introspect --buildoptions "$build" |
  "$python" -c '
import json, os, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
p = o["prefix"]
print(p, *(os.path.join(p, o[k]) for k in ("libdir", "includedir", "bindir")))')
for f in "$includedir/phx/phx.h" "$includedir/phx/phx_version.h" "$libdir/libphx.a" \
         "$libdir/libphx.so" "$libdir/libphx.so.$soversion" "$libdir/libphx.so.$version" \
         "$libdir/pkgconfig/phx.pc" "$bindir/phxd" "$bindir/phxd-bench"; do
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
echo "install test: ok"
