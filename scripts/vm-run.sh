#!/usr/bin/env bash
# Boots the guest kernel under virtme-ng (2 vCPUs), loads secretmemfd.ko (or
# $SECRETMEM_MODULE, built for that kernel), runs
# GUEST_SCRIPT [ARGS...] inside it and decides on the host: the run fails on a
# boot failure or time-out, a non-zero exit, a failed or missing KUnit case,
# or any kernel splat in the log. Artifacts stay in $SECRETMEM_OUT (./out).
# SECRETMEM_MODULE=none loads no module (the script loads one itself and saves
# its KUnit results), SECRETMEM_VNG_ARGS adds vng arguments (split on spaces):
# both for tests/guest/dkms.sh, see scripts/dkms-test.sh.
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ $# -ge 1 ] || die "usage: vm-run.sh GUEST_SCRIPT [ARGS...]"
script=$(realpath "$1")
shift
tree=$(kernel_dir)
image=$tree/arch/x86/boot/bzImage
# The module built for this kernel: the repo's, or $SECRETMEM_MODULE ("none":
# the script loads one itself).
ko=${SECRETMEM_MODULE:-$SECRETMEM_TOP/secretmemfd.ko}
[ "$ko" = none ] || ko=$(realpath -m "$ko")
read -ra vng_extra <<<"${SECRETMEM_VNG_ARGS:-}"
out=$(realpath -m "${SECRETMEM_OUT:-$SECRETMEM_TOP/out}")
[ -f "$image" ] || die "no kernel image at $image"
[ "$ko" = none ] || [ -f "$ko" ] || die "no module at $ko: run make first"
command -v vng >/dev/null || die "vng not found: run scripts/setup-tools.sh"

rm -rf "$out"
mkdir -p "$out"
# The kernel's own modules where KVM is one, for kvm_guard_test: the guest
# does not see the cache the tree is in.
mkdir -p "$out/kmod"
for mod in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko; do
	[ ! -f "$tree/$mod" ] || cp "$tree/$mod" "$out/kmod/"
done

# KVM is tried once per machine: here qemu aborts on MSR 0x10a, so fall back to TCG.
accel=()
probe=$SECRETMEM_CACHE/kvm-probe
if [ ! -f "$probe" ]; then
	mkdir -p "$SECRETMEM_CACHE"
	# 124: qemu was still running when the probe ended it, so KVM works. The
	# braces keep bash's report of qemu's abort on this machine quiet.
	rc=none
	[ -w /dev/kvm ] && rc=$( {
		timeout 3 qemu-system-x86_64 -accel kvm -cpu host -display none \
			-nodefaults -no-reboot -m 64 -S >/dev/null 2>&1
		echo $?
	} 2>/dev/null)
	if [ "$rc" = 124 ]; then echo kvm >"$probe"; else echo tcg >"$probe"; fi
fi
[ "$(cat "$probe")" = kvm ] || accel=(--disable-kvm)

timeout_s=${SECRETMEM_VM_TIMEOUT:-900}
start=$(date +%s)
# vng's exit status is 255 whatever the guest does, and vng needs a stdin:
# the guest reports through files in $out. no5lvl: under TCG vng gives qemu
# "-cpu max", which offers LA57, and one 5-level boot in about sixteen hit a
# KASAN wild-memory-access in handle_edge_irq during identify_cpu, long
# before the module; 4-level paging is what the module meets in the field.
timeout "$timeout_s" vng -r "$image" "${accel[@]}" --disable-microvm --force-9p \
	--cpus 2 --memory 2G --rwdir="$out" --verbose "${vng_extra[@]}" \
	--append "panic=-1 oops=panic no5lvl" \
	-e "$SECRETMEM_TOP/tests/guest/init.sh $out $ko $script $*" \
	</dev/null >"$out/console.log" 2>&1 || true
echo "vm: guest ran $(($(date +%s) - start)) s (${accel[*]:-kvm}); log in $out/console.log" >&2

[ ! -f "$out/output.txt" ] || cat "$out/output.txt"
fail=0
if [ ! -f "$out/status" ]; then
	echo "vm: FAIL: the guest did not finish (boot failure, panic or time-out after ${timeout_s} s)" >&2
	tail -n 30 "$out/console.log" >&2
	exit 1
fi
if ! "$SECRETMEM_TOP/scripts/splat-check.sh" "$out/console.log" "$out/dmesg.txt" >"$out/splats.txt"; then
	echo "vm: FAIL: kernel splat in the guest log:" >&2
	cat "$out/splats.txt" >&2
	fail=1
fi
if [ -s "$out/reason" ]; then
	echo "vm: FAIL: $(cat "$out/reason")" >&2
	fail=1
fi
if [ -f "$out/kunit.ktap" ]; then
	kpass=$(grep -E '^[[:space:]]+ok [0-9]+ ' "$out/kunit.ktap" | grep -vc '# SKIP' || true)
	kfail=$(grep -cE '^[[:space:]]+not ok [0-9]+ |^[[:space:]]+ok [0-9]+ .*# SKIP' "$out/kunit.ktap" || true)
	echo "$kpass $kfail" >"$out/kunit.counts"
	if [ $((kpass + kfail)) = 0 ]; then
		echo "vm: FAIL: KUnit suite secretmemfd ran no case" >&2
		fail=1
	elif [ "$kfail" != 0 ]; then
		echo "vm: FAIL: $kfail KUnit case(s) failed or skipped:" >&2
		grep -E '^[[:space:]]+not ok|# SKIP' "$out/kunit.ktap" >&2
		fail=1
	fi
fi
status=$(cat "$out/status")
if [ "$status" != 0 ]; then
	echo "vm: FAIL: guest command exited $status" >&2
	fail=1
fi
exit $fail
