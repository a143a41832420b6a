#!/usr/bin/env bash
# Runs inside the guest: loads the module, runs the given script, then leaves
# its output, the kernel log, the KUnit results and the exit status in OUT
# for the host.
# usage: init.sh OUT KO SCRIPT [ARGS...]
# KO none: no module is loaded here; the script loads one (tests/guest/dkms.sh)
# and copies its KUnit results to OUT/kunit.ktap while it is loaded.
set -u
out=$1 ko=$2
shift 2
export SECRETMEM_GUEST_OUT=$out SECRETMEM_KO=$ko

finish() {
	dmesg >"$out/dmesg.txt" 2>&1
	echo "$1" >"$out/status"
	sync
}

mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
# The patched guest kernel has KVM built in: secret memory as guest RAM is
# tested. The unpatched one has it as a module, loaded by kvm_guard_test.
case $(uname -r) in
*-unpatched) unpatched=1 ;;
*) unpatched=0 ;;
esac
if [ $unpatched = 0 ] && [ ! -c /dev/kvm ]; then
	echo "no /dev/kvm in the guest: KVM (kvm_amd, nested under TCG) did not come up" >"$out/reason"
	finish 1
	exit 1
fi
if [ "$ko" != none ]; then
	if ! insmod "$ko" >"$out/insmod.txt" 2>&1; then
		echo "insmod $ko failed: $(cat "$out/insmod.txt")" >"$out/reason"
		finish 1
		exit 1
	fi
	cp /sys/kernel/debug/kunit/secretmemfd/results "$out/kunit.ktap" 2>/dev/null ||
		echo "no KUnit results for suite secretmemfd" >"$out/reason"
fi

"$@" >"$out/output.txt" 2>&1
rc=$?
if [ "$ko" = none ] && [ ! -s "$out/kunit.ktap" ]; then
	echo "no KUnit results for suite secretmemfd (the script saved none)" >>"$out/reason"
fi
finish $rc
