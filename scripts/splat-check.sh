#!/usr/bin/env bash
# Prints the kernel splats found in the given logs (at most 5 lines) and exits
# 1 if there are any, 0 if there are none. The markers are the real ones:
# a debug kernel also prints look-alikes such as "RCU lockdep checking is
# enabled", lockdep's table sizes and ACPI's "Warning: ...", which pass.
# An OOM-killer report is not a splat: the stack trace it always carries
# (from "invoked oom-killer:" to the end of that trace) passes, while any
# other marker inside it still counts.
set -uo pipefail
markers='BUG: |WARNING: |Oops: |general protection fault|Call Trace:|possible .*locking|lock inversion|inconsistent lock state|suspected memory leaks|Kernel panic|UBSAN: '
found=$(cat "$@" 2>/dev/null | awk -v markers="$markers" '
	/invoked oom-killer:/ { oom = 1 }
	oom && /Call Trace:/ { next }
	oom && /<\/TASK>/ { oom = 0 }
	$0 ~ markers { print }
' | head -n 5)
[ -z "$found" ] && exit 0
echo "$found"
exit 1
