#!/usr/bin/env bash
# Runs inside the guest once init.sh has loaded the module: the C suites as
# root and as an unprivileged user, the root-only suite, the KVM suite, the
# Rust crate's guest tests, the demo and the VM demo, fault injection, the
# storm, the random-operation tester, memory pressure and the deliberate
# leaks of fault injection, then a clean unload and a kmemleak scan. Results
# go to $SECRETMEM_GUEST_OUT.
#
# On the kernel with none of our patches (release "*-unpatched") the same
# suites run, told that there is no system call; KVM is a module there, so
# kvm_guard_test replaces the KVM suite and the VM demo.
set -u
out=$SECRETMEM_GUEST_OUT
bin=$(cd "$(dirname "$0")/../userspace" && pwd)
rc=0
case $(uname -r) in
*-unpatched)
	unpatched=1
	export SECRETMEM_UNPATCHED=1
	;;
*) unpatched=0 ;;
esac

"$bin/secretmem_test" >"$out/userspace-root.tap" 2>&1 || rc=1
setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$bin/secretmem_test" >"$out/userspace-user.tap" 2>&1 || rc=1
"$bin/root_test" >"$out/root.tap" 2>&1 || rc=1
if [ $unpatched = 1 ]; then
	"$bin/kvm_guard_test" "$out/kmod/irqbypass.ko" "$out/kmod/kvm.ko" "$out/kmod/kvm-amd.ko" \
		>"$out/kvm-guard.tap" 2>&1 || rc=1
else
	"$bin/kvm_test" >"$out/kvm.tap" 2>&1 || rc=1
fi
crate=$(cd "$(dirname "$0")/../../userspace/target/release" && pwd)/secretmem-guest-tests
"$crate" --ignored --test-threads=1 >"$out/crate-root.txt" 2>&1 || rc=1
setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$crate" --ignored --test-threads=1 >"$out/crate-user.txt" 2>&1 || rc=1
# The demo is a test too: it fails unless every attack on the secret failed.
"$(dirname "$crate")/secretmem" demo >"$out/demo.txt" 2>&1 || rc=1
# So is the VM demo: guests with their RAM in ordinary and in secret memory.
[ $unpatched = 1 ] || "$(dirname "$crate")/secretmem" vm >"$out/vm.txt" 2>&1 || rc=1

# Robustness: failed allocations, a storm with unloads, random operations,
# memory pressure. The storm may unload and reload the module; it leaves it
# loaded. Each one's TAP goes to NAME.tap and its duration to durations.txt.
timed() {
	local name=$1 start=$SECONDS
	shift
	"$@" >"$out/$name.tap" 2>&1 || rc=1
	echo "$name $((SECONDS - start))" >>"$out/durations.txt"
}
fuzz=$(dirname "$crate")/secretmem-fuzz
timed fault-inject "$bin/fault_inject_test"
timed storm "$bin/storm_test" 20
timed fuzz-root "$fuzz" --seconds 20
timed fuzz-user setpriv --reuid=65534 --regid=65534 --clear-groups "$fuzz" --seconds 10
timed pressure "$bin/pressure_test"
# Last: failures that make the module give pages up on purpose. A page whose
# restore failed stays out of the direct map and counts as a removal never
# restored, which every suite above would rightly take for a bug.
timed fault-leak "$bin/fault_inject_test" --leaks

# After the last user, the module must unload with the direct map restored.
if ! rmmod secretmemfd >"$out/rmmod.txt" 2>&1; then
	echo "rmmod secretmemfd failed after the tests: $(cat "$out/rmmod.txt")" >>"$out/reason"
	rc=1
fi
if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$out/kmemleak.txt"
	if [ -s "$out/kmemleak.txt" ]; then
		echo "kmemleak: suspected memory leaks (see kmemleak.txt)" >>"$out/reason"
		rc=1
	fi
else
	echo "kmemleak is not available in the guest" >>"$out/reason"
	rc=1
fi
exit $rc
