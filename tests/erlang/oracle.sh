#!/bin/sh
# Runs the Erlang oracle (oracle.escript) against phx_tokentool.
# usage: oracle.sh ESCRIPT TOOL   (ESCRIPT empty when meson found no erl)
# Exit 77 (skipped) when Erlang or its crypto application is missing.
escript=$1
tool=$2
if [ -z "$escript" ] || ! command -v "$escript" >/dev/null 2>&1; then
    echo "escript not found: skipping the Erlang oracle"
    exit 77
fi
erl_dir=$(dirname "$escript")
if ! "$erl_dir/erl" -noshell -eval 'case application:ensure_all_started(crypto) of {ok, _} -> halt(0); _ -> halt(1) end.' >/dev/null 2>&1; then
    echo "Erlang crypto application unavailable: skipping the Erlang oracle"
    exit 77
fi
exec "$escript" "$(dirname "$0")/oracle.escript" "$tool"
