#!/usr/bin/env bash
# Checks (or with --write, updates) the option table in README.md between
# the options:begin/end markers against `phxd options-markdown`.
# usage: tests/readme_options.sh PHXD_BIN README.md [--write]
set -euo pipefail
bin=$1 readme=$2
want=$("$bin" options-markdown)
current=$(awk '/<!-- options:end -->/{p=0} p{print} /<!-- options:begin -->/{p=1}' "$readme")
if [ "${3:-}" = "--write" ]; then
  tmp=$(mktemp)
  awk -v table="$want" '
    /<!-- options:begin -->/ {print; print table; skip=1; next}
    /<!-- options:end -->/ {skip=0}
    !skip {print}' "$readme" >"$tmp"
  mv "$tmp" "$readme"
  exit 0
fi
if [ "$want" != "$current" ]; then
  echo "README.md's option table is out of date; run: tests/readme_options.sh $bin $readme --write" >&2
  diff <(echo "$want") <(echo "$current") >&2 || true
  exit 1
fi
echo "README option table matches phxd options-markdown"
