#!/usr/bin/env bash
# Runs every test in the guest (KUnit at module load, the userspace suites as
# root and unprivileged, the root-only suite, the demos' verdicts), on our
# patched kernel and on one with none of our patches, and prints one closing
# line "N passed, N failed". Exits non-zero on any failure.
set -euo pipefail
. "$(dirname "$0")/common.sh"

out=$(realpath -m "${SECRETMEM_OUT:-$SECRETMEM_TOP/out}")
export SECRETMEM_OUT=$out
passed=0
failed=0

# Adds the counts of libtest's "test result:" lines in file $2 under name $1.
count_libtest() {
	local p f
	p=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$2" | paste -sd+ | bc)
	f=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$2" | paste -sd+ | bc)
	if [ -z "$p" ]; then
		echo "$1: no results"
		grep -E '^error|panicked' "$2" | head -n 5 | sed 's/^/  /'
		failed=$((failed + 1))
		return
	fi
	grep -E '^---- |panicked at' "$2" | sed 's/^/  /' || true
	echo "$1: $p passed, $f failed"
	passed=$((passed + p))
	failed=$((failed + f))
}

# Adds the counts of the TAP file $2 under name $1; missing tests fail.
count_tap() {
	local planned p f
	if [ ! -f "$2" ]; then
		echo "$1: no results"
		failed=$((failed + 1))
		return
	fi
	planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$2")
	p=$(grep -c '^ok ' "$2" || true)
	f=$(grep -c '^not ok ' "$2" || true)
	grep -B3 '^not ok ' "$2" | sed 's/^/  /' || true
	if [ -z "$planned" ]; then
		# It stopped before its plan: nothing it printed can be trusted.
		echo "$1: no TAP plan"
		sed 's/^/  /' "$2" | tail -n 5
		failed=$((failed + 1))
		return
	fi
	# A suite that stopped early counts its missing tests as failures.
	[ $((p + f)) -lt "$planned" ] && f=$((planned - p))
	echo "$1: $p passed, $f failed"
	passed=$((passed + p))
	failed=$((failed + f))
}

# The runner's own splat matcher, the crate's unit and doc tests and its docs run on the host.
# vm-run.sh owns $out and clears it: host results go beside it.
host=$out-host
rm -rf "$host"
mkdir -p "$host"
"$SECRETMEM_TOP/tests/host/splat-check.sh" >"$host/splat-check.tap" 2>&1 || true
count_tap "splat matcher (host)" "$host/splat-check.tap"
(cd "$SECRETMEM_TOP/userspace" && cargo test --workspace --lib --bins && cargo test --doc -p secretmem) \
	>"$host/cargo-test.txt" 2>&1 || true
count_libtest "crate (host)" "$host/cargo-test.txt"
if (cd "$SECRETMEM_TOP/userspace" && RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps -p secretmem) \
	>"$host/cargo-doc.txt" 2>&1; then
	echo "crate docs: built without warnings"
	passed=$((passed + 1))
else
	echo "crate docs: warnings or errors (see $host/cargo-doc.txt)"
	failed=$((failed + 1))
fi

# Counts a demo under name $1: passed if file $2 has the line $4, which $3 says in words.
verdict() {
	if grep -qxF "$4" "$2" 2>/dev/null; then
		echo "$1: $3"
		passed=$((passed + 1))
	else
		echo "$1: failed (see $2)"
		failed=$((failed + 1))
	fi
}

# The guest suites on one kernel: $1 names it in the lines printed ("" for the
# patched debug kernel, "unpatched: " for the other), $2 is where its results
# go; the environment (KDIR, SECRETMEM_MODULE) picks the kernel and module.
guest_suites() {
	local label=$1 dir=$2 vm_ok=1 kp kf suites suite
	SECRETMEM_OUT=$dir "$SECRETMEM_TOP/scripts/vm-run.sh" "$SECRETMEM_TOP/tests/guest/check.sh" || vm_ok=0
	if [ -f "$dir/kunit.counts" ]; then
		read -r kp kf <"$dir/kunit.counts"
		echo "${label}kunit: $kp passed, $kf failed"
		passed=$((passed + kp))
		failed=$((failed + kf))
	else
		echo "${label}kunit: no results"
		failed=$((failed + 1))
	fi
	suites=(userspace-root userspace-user root kvm fault-inject storm fuzz-root fuzz-user pressure
		fault-leak)
	[ -z "$label" ] || suites[3]=kvm-guard
	for suite in "${suites[@]}"; do
		count_tap "$label$suite" "$dir/$suite.tap"
	done
	# What the robustness tests reached: failure points, operation counts, seeds.
	for suite in fault-inject storm fuzz-root fuzz-user pressure fault-leak; do
		grep -E '^# ' "$dir/$suite.tap" 2>/dev/null | sed "s/^# /  $label$suite: /" || true
	done
	[ ! -f "$dir/durations.txt" ] ||
		echo "  ${label}robustness tests (s, in the guest): $(tr '\n' ' ' <"$dir/durations.txt")"
	count_libtest "${label}crate (guest, root)" "$dir/crate-root.txt"
	count_libtest "${label}crate (guest, uid 65534)" "$dir/crate-user.txt"
	verdict "${label}demo" "$dir/demo.txt" "every attack on the secret refused" \
		'result: the ordinary copy leaked to every attack; the secret one to none'
	# The VM demo needs KVM, which the unpatched kernel keeps away from secret memory.
	[ -n "$label" ] || verdict "vm demo" "$dir/vm.txt" \
		"every attack on the secret VM refused, every challenge answered" \
		'result: the ordinary VM leaked its key to every attack; the secret VM to none and answered every challenge'
	# Splats, a failed unload or a guest that did not finish fail the run too.
	if [ $vm_ok = 0 ]; then
		echo "${label}guest checks: failed (see above and $dir/console.log)"
		failed=$((failed + 1))
	fi
}

# Our patched debug kernel, then the same suites on the kernel nobody patched,
# with the module that the secretmemfd-dkms package's DKMS build made for it
# (tests/host/dkms-package.sh, on the host; make module-unpatched's if that
# build failed, which already fails the run).
guest_suites "" "$out"
unpatched_tree=$("$SECRETMEM_TOP/scripts/kernel-build.sh" unpatched)
"$SECRETMEM_TOP/tests/host/dkms-package.sh" "$unpatched_tree" "$SECRETMEM_TOP/build/dkms" \
	>"$host/dkms-package.tap" 2>&1 || true
count_tap "dkms package (host)" "$host/dkms-package.tap"
unpatched_ko=$SECRETMEM_TOP/build/dkms/secretmemfd.ko
[ -f "$unpatched_ko" ] || unpatched_ko=$SECRETMEM_TOP/build/unpatched/secretmemfd.ko
echo "unpatched: the guest loads $unpatched_ko"
KDIR=$unpatched_tree SECRETMEM_MODULE=$unpatched_ko guest_suites "unpatched: " "$out-unpatched"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
