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
n=0
failed=0
echo "1..$((${#splats[@]} + ${#harmless[@]}))"
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
exit $failed
