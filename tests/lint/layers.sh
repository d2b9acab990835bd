#!/usr/bin/env bash
# The include matrix of src/: every #include "X.h" of a file in src/LAYER/
# must name a header of LAYER itself or of a layer below it. The order is
# the one in docs/architecture.md (lowest first); phxd/ (the daemon) and
# bench/ (phxd-bench) sit on top and may include any layer. include/phx.h,
# the public header, is open to all. Prints every violation; exits 1 on any.
#   tests/lint/layers.sh [SRC_DIR]
set -euo pipefail
src=${1:-$(dirname "$0")/../../src}
order=(util codec auth io http pubsub phoenix transport ops server phxd bench)
declare -A rank
for i in "${!order[@]}"; do rank[${order[$i]}]=$i; done
# Which layer owns each header name (names are unique across src/).
declare -A owner
for dir in "$src"/*/; do
  layer=$(basename "$dir")
  [ -n "${rank[$layer]:-}" ] || { echo "src/$layer/ is not a known layer" >&2; exit 1; }
  while IFS= read -r h; do
    name=$(basename "$h")
    if [ -n "${owner[$name]:-}" ] && [ "${owner[$name]}" != "$layer" ]; then
      echo "header name $name is in both src/${owner[$name]}/ and src/$layer/" >&2
      exit 1
    fi
    owner[$name]=$layer
  done < <(find "$dir" -name '*.h')
done
bad=0
checked=0
while IFS= read -r f; do
  rel=${f#"$src"/}
  layer=${rel%%/*}
  while IFS= read -r name; do
    checked=$((checked + 1))
    target=${owner[$name]:-}
    [ -n "$target" ] || continue # a public or generated header
    if [ "${rank[$target]}" -gt "${rank[$layer]}" ]; then
      echo "src/$rel ($layer) includes $name of the higher layer $target"
      bad=$((bad + 1))
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | xargs -r -n1 basename)
done < <(find "$src" -name '*.c' -o -name '*.h' | sort)
if [ "$bad" -gt 0 ]; then
  echo "$bad include(s) of a higher layer" >&2
  exit 1
fi
echo "layers: $checked includes checked, none of a higher layer"
