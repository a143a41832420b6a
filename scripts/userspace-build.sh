#!/usr/bin/env bash
# Builds what runs in the guest: the C tests and example, the secretmem CLI,
# and the crate's guest-side test binary (copied to a fixed path).
set -euo pipefail
. "$(dirname "$0")/common.sh"

make -s -C "$SECRETMEM_TOP/tests/userspace"
cd "$SECRETMEM_TOP/userspace"
cargo build --release --quiet || die "cargo build of userspace/ failed"
exe=$(cargo test --release --no-run -p secretmem --test guest 2>&1 |
	sed -n 's/.*Executable tests\/guest.rs (\(.*\))/\1/p')
[ -n "$exe" ] && [ -x "$exe" ] || die "cannot find the crate's guest test binary"
cp "$exe" target/release/secretmem-guest-tests
