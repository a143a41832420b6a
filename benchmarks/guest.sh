#!/usr/bin/env bash
# Runs inside the guest once scripts/vm-run.sh has loaded the module: the
# benchmark of one target (a fresh guest per target, so each starts from the
# same direct map). Its JSON lines go to $SECRETMEM_GUEST_OUT/bench.jsonl,
# its progress to the guest's output.
# usage: guest.sh [--param NAME=VALUE]... [secretmem_bench OPTIONS] TARGET
# (each --param is written to the module's parameter NAME first)
set -u
out=$SECRETMEM_GUEST_OUT
stats=/sys/kernel/debug/secretmemfd/stats

while [ "${1:-}" = --param ]; do
	echo "${2#*=}" >"/sys/module/secretmemfd/parameters/${2%%=*}" || exit 1
	shift 2
done

"$(dirname "$0")/secretmem_bench" "$@" >"$out/bench.jsonl" || exit 1
# Every secret page must be gone once the benchmark has closed its files.
pages=$(awk '$1 == "pages:" { print $2 }' "$stats")
if [ "$pages" != 0 ]; then
	echo "secretmemfd still holds $pages pages after the benchmark" >>"$out/reason"
	exit 1
fi
