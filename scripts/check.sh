#!/usr/bin/env bash
# Runs every test in the guest (KUnit at module load, the userspace suites as
# root and unprivileged, the root-only suite) and prints one closing line
# "N passed, N failed". Exits non-zero on any failure.
set -euo pipefail
. "$(dirname "$0")/common.sh"

out=$(realpath -m "${SECRETMEM_OUT:-$SECRETMEM_TOP/out}")
export SECRETMEM_OUT=$out
vm_ok=1
"$SECRETMEM_TOP/scripts/vm-run.sh" "$SECRETMEM_TOP/tests/guest/check.sh" || vm_ok=0

passed=0
failed=0
if [ -f "$out/kunit.counts" ]; then
	read -r kp kf <"$out/kunit.counts"
	echo "kunit: $kp passed, $kf failed"
	passed=$((passed + kp))
	failed=$((failed + kf))
else
	echo "kunit: no results"
	failed=$((failed + 1))
fi
for suite in userspace-root userspace-user root; do
	tap=$out/$suite.tap
	if [ ! -f "$tap" ]; then
		echo "$suite: no results"
		failed=$((failed + 1))
		continue
	fi
	planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$tap")
	p=$(grep -c '^ok ' "$tap" || true)
	f=$(grep -c '^not ok ' "$tap" || true)
	grep -B3 '^not ok ' "$tap" | sed 's/^/  /' || true
	# A suite that stopped early counts its missing tests as failures.
	[ -n "$planned" ] && [ $((p + f)) -lt "$planned" ] && f=$((planned - p))
	echo "$suite: $p passed, $f failed"
	passed=$((passed + p))
	failed=$((failed + f))
done
# Splats, a failed unload or a guest that did not finish fail the run too.
if [ $vm_ok = 0 ]; then
	echo "guest checks: failed (see above and $out/console.log)"
	failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
