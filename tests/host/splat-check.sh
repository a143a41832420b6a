#!/usr/bin/env bash
# Tests scripts/splat-check.sh on real splat lines and on the harmless
# look-alikes of a debug kernel. Prints TAP.
set -uo pipefail
check=$(cd "$(dirname "$0")/../.." && pwd)/scripts/splat-check.sh
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

splats=(
	"[   12.3] BUG: KASAN: slab-use-after-free in secret_fault+0x12/0x40 [secretmemfd]"
	"[   12.3] WARNING: CPU: 1 PID: 77 at mm/memory.c:2400 insert_pfn+0x1/0x2"
	"[   12.3] WARNING: possible circular locking dependency detected"
	"[   12.3] WARNING: possible recursive locking detected"
	"[   12.3] WARNING: possible irq lock inversion dependency detected"
	"[   12.3] WARNING: inconsistent lock state"
	"[   12.3] BUG: sleeping function called from invalid context at mm/page_alloc.c:4000"
	"[   12.3] Oops: general protection fault, probably for non-canonical address"
	"[   12.3] Call Trace:"
	"unreferenced object 0xffff888 (size 64): kmemleak: 1 new suspected memory leaks"
	"[   12.3] Kernel panic - not syncing: Fatal exception"
	"[   12.3] UBSAN: shift-out-of-bounds in mm/secretmem.c:10:3"
)
harmless=(
	"[    0.000000] rcu: 	RCU lockdep checking is enabled."
	"[    0.000000] ... MAX_LOCKDEP_CHAINS:      65536"
	"[    1.0] ACPI: Warning: Processor Platform Limit event detected"
	"[    0.8] mtrr: your CPUs had inconsistent fixed MTRR settings"
	"[    2.9] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug"
	"[   43.1] secretmemfd: loading out-of-tree module taints kernel."
)
# A memory cgroup's OOM kill, as the guest prints it: a report, not a splat.
oom_report=(
	"[   50.1] pressure_test invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
	"[   50.1] CPU: 1 UID: 0 PID: 310 Comm: pressure_test Tainted: G           O        7.3.4 #1"
	"[   50.1] Call Trace:"
	"[   50.1]  <TASK>"
	"[   50.1]  dump_stack_lvl+0x5d/0x80"
	"[   50.1]  dump_header+0x4a/0x240"
	"[   50.1]  </TASK>"
	"[   50.1] memory: usage 32768kB, limit 32768kB, failcnt 9000"
	"[   50.1] Memory cgroup out of memory: Killed process 310 (pressure_test)"
)
# Multi-line cases: the log, then whether it holds a splat.
multi=(
	"pass: an OOM-killer report"
	"fail: a splat inside an OOM-killer report"
	"fail: a stack trace after an OOM-killer report"
)
n=0
failed=0
echo "1..$((${#splats[@]} + ${#harmless[@]} + ${#multi[@]}))"
for line in "${splats[@]}"; do
	n=$((n + 1))
	printf '%s\n' "[    1.0] boot" "$line" >"$tmp"
	if "$check" "$tmp" >/dev/null; then
		echo "not ok $n missed: $line"
		failed=1
	else
		echo "ok $n found: ${line:0:60}"
	fi
done
for line in "${harmless[@]}"; do
	n=$((n + 1))
	printf '%s\n' "$line" >"$tmp"
	if "$check" "$tmp" >/dev/null; then
		echo "ok $n passed: ${line:0:60}"
	else
		echo "not ok $n flagged: $line"
		failed=1
	fi
done
for case in "${multi[@]}"; do
	n=$((n + 1))
	case $case in
	*"inside"*) printf '%s\n' "${oom_report[@]:0:4}" "[   50.1] BUG: KASAN: use-after-free in dump_header" "${oom_report[@]:4}" ;;
	*"after"*) printf '%s\n' "${oom_report[@]}" "[   60.0] INFO: task kworker/0:1 blocked for more than 120 seconds." "[   60.0] Call Trace:" ;;
	*) printf '%s\n' "${oom_report[@]}" ;;
	esac >"$tmp"
	if "$check" "$tmp" >/dev/null; then found=pass; else found=fail; fi
	if [ "$found" = "${case%%:*}" ]; then
		echo "ok $n ${case#*: }"
	else
		echo "not ok $n ${case#*: }: the matcher said $found"
		failed=1
	fi
done
exit $failed
