#!/usr/bin/env bash
# Checks build/phxd.1 (written by `phxd options-man` at build time) against
# the option table: every flag of `phxd options-markdown` is documented with
# its environment variables, and the page has its sections. When man(1) is
# installed, the page also renders without a groff warning.
# usage: tests/man_page.sh PHXD_BIN PHXD_1
set -euo pipefail
bin=$1 page=$2
fail() {
  echo "man page: $*" >&2
  exit 1
}
[ -s "$page" ] || fail "$page is missing or empty"
diff <("$bin" options-man) "$page" >/dev/null || fail "$page is not what phxd options-man writes"
grep -q '^\.TH PHXD 1 ' "$page" || fail "no .TH PHXD 1 line"
for section in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS 'CONFIGURATION FILE' SIGNALS \
               'EXIT STATUS' ENVIRONMENT FILES; do
  grep -qx "\.SH $section" "$page" || fail "no section $section"
done
for word in 'check\-config' 'publish' 'token sign' 'token verify' 'options\-markdown' \
            SIGTERM SIGINT SIGHUP 1012 1001; do
  grep -qF -- "$word" "$page" || fail "does not mention $word"
done
# every option of the table, its variables and its default
n=0
while IFS='|' read -r _ flag env def _; do
  flag=$(echo "$flag" | tr -d ' `')
  case $flag in --[a-z]*) ;; *) continue ;; esac
  roff_flag=${flag//-/\\-}
  grep -qF "\\fB$roff_flag\\fR \\fIVALUE\\fR" "$page" || fail "$flag is not documented"
  for var in $(echo "$env" | tr -d '`,'); do
    grep -qF "\\fB$var\\fR" "$page" || fail "$flag: $var is not named"
  done
  n=$((n + 1))
done < <("$bin" options-markdown)
[ "$n" -gt 20 ] || fail "only $n options found in phxd options-markdown"
if command -v man >/dev/null; then
  warnings=$(MANWIDTH=100 man --warnings -l "$page" 2>&1 >/dev/null) || fail "man -l failed"
  [ -z "$warnings" ] || fail "groff warnings: $warnings"
  MANWIDTH=100 man -l "$page" 2>/dev/null | grep -q -- '--secret-key-base VALUE' ||
    fail "man -l does not render --secret-key-base"
  echo "man page: $n options; man -l renders it without warnings"
else
  echo "man page: $n options (man is not installed: not rendered)"
fi
