#!/usr/bin/env bash
# Tests the DKMS package in a guest: builds the .deb and the C suite, boots the
# unpatched kernel (SECRETMEM_KERNEL, else unpatched) with no module loaded and
# /usr, /etc and /var as overlays that vanish with the guest, and runs
# tests/guest/dkms.sh there (install, DKMS build, modprobe, suites, purge, and
# the check's refusals). Prints the TAP summary; exits non-zero on a failure.
# Results go to $SECRETMEM_OUT (./out-dkms: vm-run.sh clears its folder), the
# package to $SECRETMEM_DEB_OUT (./build/deb).
set -euo pipefail
. "$(dirname "$0")/common.sh"

export SECRETMEM_KERNEL=${SECRETMEM_KERNEL:-unpatched}
export SECRETMEM_OUT=${SECRETMEM_OUT:-$SECRETMEM_TOP/out-dkms}
tree=$(kernel_dir)
command -v dkms >/dev/null || die "dkms is not installed: run scripts/setup-tools.sh"
# Not in out/: make check and make demo clear it, and the guest reads the
# package for most of an hour.
deb=$(SECRETMEM_DEB_OUT=${SECRETMEM_DEB_OUT:-$SECRETMEM_TOP/build/deb} "$SECRETMEM_TOP/scripts/deb-build.sh")
make -s -C "$SECRETMEM_TOP/tests/userspace" secretmem_test || die "building tests/userspace/secretmem_test failed"

# dpkg and DKMS write under /usr (src, lib/modules, share/doc), /etc and /var
# (lib/dpkg, lib/dkms, log): the guest sees the host's root read-only, and the
# overlays keep their writes in the guest (vng run as root adds the same ones
# itself). vng also hides /var/cache under a tmpfs: the kernel tree, which
# DKMS builds against, comes back as a read-only mount.
export SECRETMEM_MODULE=none
# Under TCG each dpkg -i takes minutes and DKMS compiles the module in the guest.
export SECRETMEM_VM_TIMEOUT=${SECRETMEM_VM_TIMEOUT:-3600}
export SECRETMEM_VNG_ARGS="--overlay-rwdir=/usr --overlay-rwdir=/etc --overlay-rwdir=/var --rodir=$tree"
rc=0
"$SECRETMEM_TOP/scripts/vm-run.sh" "$SECRETMEM_TOP/tests/guest/dkms.sh" "$deb" "$tree" || rc=1

tap=$SECRETMEM_OUT/dkms.tap
[ -f "$tap" ] || die "no $tap: the guest did not run the test"
grep -E '^(not ok|# )' "$tap" || true
for suite in dkms userspace-root userspace-user; do
	f=$SECRETMEM_OUT/$suite.tap
	echo "$suite: $(grep -c '^ok ' "$f" 2>/dev/null) passed, $(grep -c '^not ok ' "$f" 2>/dev/null) failed$(grep -q '^1\.\.[0-9]' "$f" 2>/dev/null || echo ', no plan')"
done
exit $rc
