#!/usr/bin/env bash
# Tests the secretmemfd-dkms package on the host, in TAP, for make check:
# its contents, the build check's refusals (one line each, exit 1), and a
# DKMS build against the kernel tree KDIR in a DKMS tree of its own (nothing
# under /var/lib/dkms or /lib/modules), which must also refuse a kernel
# without Rust. The module DKMS built is copied to OUT for the guest suites.
# The whole install (dpkg -i, DKMS in the guest, modprobe, purge) is
# scripts/dkms-test.sh: it takes most of an hour under TCG.
# usage: dkms-package.sh KDIR OUT
set -u
kdir=$1 out=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/lib/fake-kernel-tree.sh"
n=0
failed=0

ok() {
	n=$((n + 1))
	echo "ok $n - $*"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $*"
}
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

work=$(mktemp -d) || {
	echo "not ok 1 - mktemp -d failed"
	echo "1..1"
	exit 1
}
trap 'rm -rf "$work"' EXIT
# The toolchain make check uses, whatever /etc/default/secretmemfd-dkms says.
export SECRETMEM_TOOLCHAIN_PATH=/usr/lib/llvm-19/bin:$HOME/.cargo/bin
mkdir -p "$out"
rm -f "$out/secretmemfd.ko"

if deb=$(SECRETMEM_DEB_OUT=$work/deb "$top/scripts/deb-build.sh" 2>"$work/deb.txt"); then
	ok "make deb: $(basename "$deb")"
else
	not_ok "make deb failed: $(cat "$work/deb.txt")"
	echo "1..$n"
	exit 1
fi
version=$(cat "$top/VERSION")
root=$work/root
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$work/control"
src=$root/usr/src/secretmemfd-$version

# The package's source is exactly what Kbuild compiles, from git's list: the
# crate root names each .rs file, so one missing would stop every DKMS build,
# and a build product must not ride along.
want=$( (
	cd "$top" && git ls-files Kbuild secretmem_shim.c secretmem_shim.h '*.rs' \
		include/uapi/linux/secretmemfd.h | grep -v '/.*\.rs$'
	echo dkms.conf
	echo secretmemfd-check
) | sort)
have=$(cd "$src" && find . -type f | sed 's|^\./||' | sort)
check "the package holds the module's sources and DKMS recipe, nothing else" test "$want" = "$have"
[ "$want" = "$have" ] || diff <(echo "$want") <(echo "$have") | sed 's/^/# /'
check "dkms.conf names version $version" grep -qx "PACKAGE_VERSION=$version" "$src/dkms.conf"
check "the package depends on dkms" sh -c "dpkg-deb -f '$deb' Depends | grep -qw dkms"
check "modules-load.d loads secretmemfd at boot" \
	grep -qx secretmemfd "$root/etc/modules-load.d/secretmemfd.conf"
# preinst refuses before dpkg unpacks anything: it carries the check itself.
# shellcheck disable=SC2016 # the check's own text, $kdir included
check "preinst carries the build check" \
	grep -qF 'refuse "the kernel at $kdir is built without CONFIG_RUST=y' "$work/control/preinst"

# A copy of what the check reads from KDIR, for a tree with one piece broken
# by the caller (tests/lib/fake-kernel-tree.sh).
fake_tree() {
	fake_kernel_tree "$kdir" "$work/fake-$1"
}

# The check must refuse with exactly one line saying WANT and exit 1.
refused() {
	local case=$1 tree=$2 want=$3 log=$work/refuse-$1.txt lines
	shift 3
	if env "$@" "$src/secretmemfd-check" "$tree" >"$log" 2>&1; then
		not_ok "$case: the check passed"
		return
	fi
	lines=$(grep -c '^secretmemfd: ' "$log")
	if [ "$lines" = 1 ] && [ "$(wc -l <"$log")" = 1 ] && grep -q "^secretmemfd: .*$want" "$log"; then
		ok "$case: refused with: $(cat "$log")"
	else
		not_ok "$case: expected one line saying '$want', got: $(head -c 300 "$log")"
	fi
}

check "the check passes on $(basename "$(dirname "$kdir")")'s tree" "$src/secretmemfd-check" "$kdir"
mkdir -p "$work/fake-rustc"
printf '#!/bin/sh\necho "rustc 1.80.0 (051478957 2024-07-21)"\n' >"$work/fake-rustc/rustc"
chmod +x "$work/fake-rustc/rustc"
refused other-rustc "$kdir" "rustc differs from the kernel's" \
	SECRETMEM_TOOLCHAIN_PATH="$work/fake-rustc:/usr/lib/llvm-19/bin"
tree=$(fake_tree norust)
sed -i 's/^CONFIG_RUST=y$/# CONFIG_RUST is not set/' "$tree/.config"
refused no-config-rust "$tree" "built without CONFIG_RUST=y"
tree=$(fake_tree noartifacts)
rm -rf "$tree/rust"
refused no-rust-artifacts "$tree" "lacks its Rust build artifacts (rust/libcore.rmeta missing)"
tree=$(fake_tree nobackend)
sed -i -e '/\tset_mce_nospec\t/d' -e '/\tset_direct_map_valid_noflush\t/d' "$tree/Module.symvers"
refused no-backend "$tree" "exports neither set_direct_map_valid_noflush"
tree=$(fake_tree notx86)
sed -i 's/^CONFIG_X86_64=y$/# CONFIG_X86_64 is not set/' "$tree/.config"
refused not-x86_64 "$tree" "is not x86_64"
tree=$(fake_tree gcc)
sed -i 's/^CONFIG_CC_IS_CLANG=y$/# CONFIG_CC_IS_CLANG is not set/' "$tree/.config"
refused gcc-built "$tree" "is built with gcc"
refused no-tree "$work/nowhere" "no kernel build tree at"

# DKMS itself, in a tree of its own: the build that `dkms install` runs.
kver=$(cat "$kdir/include/config/kernel.release")
dkms_args=(-m secretmemfd -v "$version" --dkmstree "$work/dkms" --sourcetree "$root/usr/src")
mkdir -p "$work/dkms"
if dkms build "${dkms_args[@]}" -k "$kver" --kernelsourcedir "$kdir" >"$work/dkms-build.txt" 2>&1; then
	ok "dkms build for $kver"
else
	not_ok "dkms build for $kver failed: $(tail -n 5 "$work/dkms-build.txt" | tr '\n' ' ')"
	tail -n 20 "$work/dkms/secretmemfd/$version/build/make.log" 2>/dev/null | sed 's/^/# /'
fi
ko=$work/dkms/secretmemfd/$version/$kver/x86_64/module/secretmemfd.ko
if [ -f "$ko" ]; then
	cp "$ko" "$out/secretmemfd.ko"
	ok "DKMS built $(basename "$ko") (copied to $out)"
else
	not_ok "DKMS built no module at $ko"
fi
check "its vermagic is $kver" sh -c "modinfo -F vermagic '$ko' 2>/dev/null | grep -q '^$kver '"
want=mce-helpers
grep -qw set_direct_map_valid_noflush "$kdir/Module.symvers" && want=patched
got=$(modinfo -F backend "$ko" 2>/dev/null)
check "its backend: $got (want $want)" test "$got" = "$want"

# A later kernel without Rust: DKMS's build stops at the check, with its line.
tree=$(fake_tree autoinstall)
sed -i 's/^CONFIG_RUST=y$/# CONFIG_RUST is not set/' "$tree/.config"
if dkms build "${dkms_args[@]}" -k 7.3.4-norust --kernelsourcedir "$tree" \
	>"$work/dkms-norust.txt" 2>&1; then
	not_ok "dkms build for a kernel without CONFIG_RUST succeeded"
elif grep -rqs 'secretmemfd: .*built without CONFIG_RUST=y' "$work/dkms-norust.txt" \
	"$work/dkms/secretmemfd/$version/build/make.log"; then
	ok "dkms build for a kernel without CONFIG_RUST refused with the check's line"
else
	not_ok "dkms build for a kernel without CONFIG_RUST: no line from the check"
	tail -n 5 "$work/dkms-norust.txt" | sed 's/^/# /'
fi
check "nothing built for that kernel" \
	test ! -e "$work/dkms/secretmemfd/$version/7.3.4-norust/x86_64/module/secretmemfd.ko"

echo "1..$n"
[ $failed = 0 ]
