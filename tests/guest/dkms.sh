#!/usr/bin/env bash
# Runs inside the guest (scripts/dkms-test.sh boots it with no module loaded
# and /usr, /etc and /var as throw-away overlays): installs secretmemfd-dkms,
# lets DKMS build the module against KDIR, loads it with modprobe, runs the C
# suite as root and as uid 65534, removes and purges the package and checks
# that nothing is left. Before that, each refusal of the build check (another
# rustc, no CONFIG_RUST, no Rust artifacts, no backend, not x86_64) must stop
# dpkg -i with its one line and leave nothing installed. TAP goes to
# $SECRETMEM_GUEST_OUT/dkms.tap, each step's output to dkms-*.txt beside it.
# usage: dkms.sh DEB KDIR
set -u
deb=$1 kdir=$2
out=$SECRETMEM_GUEST_OUT
bin=$(cd "$(dirname "$0")/../userspace" && pwd)
# shellcheck source=tests/lib/fake-kernel-tree.sh
. "$(dirname "$0")/../lib/fake-kernel-tree.sh"
kver=$(uname -r)
version=$(dpkg-deb -f "$deb" Version)
name=secretmemfd
n=0
failed=0
exec 3>"$out/dkms.tap"

ok() {
	n=$((n + 1))
	echo "ok $n - $*" >&3
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $*" >&3
}
# check DESCRIPTION COMMAND...: one TAP line for the command's status.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# What "nothing installed" means: dpkg knows no installed or half-installed
# package, DKMS holds no tree, and no source, module or config file is left.
leftovers() {
	local status
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' secretmemfd-dkms 2>/dev/null)
	case $status in
	"" | ?n*) ;;
	*) echo "dpkg status '$status'" ;;
	esac
	ls -d /usr/src/$name-* /var/lib/dkms/$name /etc/modules-load.d/$name.conf \
		/etc/default/secretmemfd-dkms /lib/modules/*/updates/dkms/$name.ko* 2>/dev/null
	[ -z "$(dkms status -m $name 2>/dev/null)" ] || dkms status -m $name
}
nothing_left() {
	local left
	left=$(leftovers)
	[ -z "$left" ] || echo "# left behind: $(echo "$left" | tr '\n' ' ')" >&3
	[ -z "$left" ]
}

# dpkg -i must fail with exactly one line from the check, saying WANT.
refused() {
	local case=$1 want=$2 log=$out/dkms-refuse-$1.txt lines
	shift 2
	if env "$@" dpkg -i "$deb" >"$log" 2>&1; then
		not_ok "$case: dpkg -i succeeded"
		dpkg --purge secretmemfd-dkms >/dev/null 2>&1
		return
	fi
	lines=$(grep -c '^secretmemfd: ' "$log")
	if [ "$lines" = 1 ] && grep -q "^secretmemfd: .*$want" "$log"; then
		ok "$case: refused with: $(grep '^secretmemfd: ' "$log")"
	else
		not_ok "$case: expected one line saying '$want', got $lines (see $(basename "$log"))"
	fi
	check "$case: nothing installed" nothing_left
}

# A copy of what the check reads from KDIR, for a tree with one piece broken
# by the caller (tests/lib/fake-kernel-tree.sh).
fake_tree() {
	fake_kernel_tree "$kdir" "/tmp/fake-$1"
}

# DKMS finds the tree where a headers package puts the link, and installs
# beside it. vng links /lib/modules/KVER to the tree's read-only .virtme_mods
# (absent unless vng installed the tree's modules there): a writable copy of
# it, without its build link, replaces the link.
mods=/lib/modules/$kver
if [ -L "$mods" ]; then
	vng_mods=$(readlink -f "$mods")
	rm -f "$mods"
	mkdir -p "$mods"
	for f in "$vng_mods"/*; do
		[ ! -e "$f" ] || [ "$(basename "$f")" = build ] || cp -RL "$f" "$mods/"
	done
fi
mkdir -p "$mods"
ln -sfn "$kdir" "/lib/modules/$kver/build"
build=/lib/modules/$kver/build
check "nothing installed before the test" nothing_left

# Refusals: preinst runs the check before dpkg unpacks anything.
mkdir -p /tmp/fake-rustc
printf '#!/bin/sh\necho "rustc 1.80.0 (051478957 2024-07-21)"\n' >/tmp/fake-rustc/rustc
chmod +x /tmp/fake-rustc/rustc
refused other-rustc "rustc differs from the kernel's" \
	SECRETMEM_TOOLCHAIN_PATH=/tmp/fake-rustc:/usr/lib/llvm-19/bin
tree=$(fake_tree norust)
sed -i 's/^CONFIG_RUST=y$/# CONFIG_RUST is not set/' "$tree/.config"
ln -sfn "$tree" "$build"
refused no-config-rust "built without CONFIG_RUST=y"
tree=$(fake_tree noartifacts)
rm -rf "$tree/rust"
ln -sfn "$tree" "$build"
refused no-rust-artifacts "lacks its Rust build artifacts (rust/libcore.rmeta missing)"
ln -sfn "$kdir" "$build"
# Each dpkg -i takes minutes here (dpkg reads its database over 9p under
# TCG): the other refusals run the package's preinst by itself.
preinst=$(mktemp -d)
dpkg-deb -e "$deb" "$preinst"
tree=$(fake_tree nobackend)
sed -i -e '/\tset_mce_nospec\t/d' -e '/\tset_direct_map_valid_noflush\t/d' "$tree/Module.symvers"
refused_preinst() {
	local case=$1 want=$2 log=$out/dkms-refuse-$1.txt
	ln -sfn "$3" "$build"
	if "$preinst/preinst" install >"$log" 2>&1; then
		not_ok "$case: preinst passed"
	elif [ "$(grep -c '^secretmemfd: ' "$log")" = 1 ] && grep -q "^secretmemfd: .*$want" "$log"; then
		ok "$case: preinst refused with: $(cat "$log")"
	else
		not_ok "$case: expected one line saying '$want' (see $(basename "$log"))"
	fi
	ln -sfn "$kdir" "$build"
}
refused_preinst no-backend "exports neither set_direct_map_valid_noflush" "$tree"
tree=$(fake_tree notx86)
sed -i 's/^CONFIG_X86_64=y$/# CONFIG_X86_64 is not set/' "$tree/.config"
refused_preinst not-x86_64 "is not x86_64" "$tree"

# The install: DKMS builds the module in the guest (slow under TCG).
start=$SECONDS
if dpkg -i "$deb" >"$out/dkms-install.txt" 2>&1; then
	ok "dpkg -i: DKMS built and installed $name $version in $((SECONDS - start)) s"
else
	not_ok "dpkg -i failed after $((SECONDS - start)) s (see dkms-install.txt)"
	tail -n 20 "$out/dkms-install.txt" | sed 's/^/# /' >&3
fi
echo "dkms-build $((SECONDS - start))" >"$out/dkms-durations.txt"
check "dpkg: secretmemfd-dkms installed" \
	test "$(dpkg-query -W -f='${db:Status-Abbrev}' secretmemfd-dkms 2>/dev/null)" = "ii "
check "dkms status: installed for $kver" \
	sh -c "dkms status -m $name -v $version -k $kver | grep -q ': installed'"
check "module file under /lib/modules/$kver/updates/dkms" \
	sh -c "ls /lib/modules/$kver/updates/dkms/$name.ko* >/dev/null 2>&1"
check "modules-load.d loads $name at boot" grep -qx $name /etc/modules-load.d/$name.conf

if modprobe $name >"$out/dkms-modprobe.txt" 2>&1; then
	ok "modprobe $name"
else
	not_ok "modprobe $name: $(cat "$out/dkms-modprobe.txt")"
fi
# init.sh loaded nothing: the KUnit results are this module's.
cp /sys/kernel/debug/kunit/$name/results "$out/kunit.ktap" 2>/dev/null
check "KUnit results of the DKMS build saved" test -s "$out/kunit.ktap"
case $kver in
*-unpatched) backend=mce-helpers ;;
*) backend=patched ;;
esac
got=$(modinfo -F backend $name 2>/dev/null)
check "modinfo backend: $got (want $backend)" test "$got" = "$backend"
mode=$(stat -c %a /dev/secretmem 2>/dev/null)
check "/dev/secretmem mode $mode, made by the module (want 666)" test "$mode" = 666
# Its tests expect no system call on the unpatched kernel, as tests/guest/check.sh says.
case $kver in
*-unpatched) export SECRETMEM_UNPATCHED=1 ;;
esac
if "$bin/secretmem_test" >"$out/userspace-root.tap" 2>&1; then
	ok "secretmem_test as root (userspace-root.tap)"
else
	not_ok "secretmem_test as root (userspace-root.tap)"
fi
if setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$bin/secretmem_test" >"$out/userspace-user.tap" 2>&1; then
	ok "secretmem_test as uid 65534 (userspace-user.tap)"
else
	not_ok "secretmem_test as uid 65534 (userspace-user.tap)"
fi
check "rmmod $name" rmmod $name

# A later kernel's autoinstall meets the same check in DKMS's MAKE.
tree=$(fake_tree autoinstall)
sed -i 's/^CONFIG_RUST=y$/# CONFIG_RUST is not set/' "$tree/.config"
log=$out/dkms-refuse-autoinstall.txt
if dkms install -m $name -v "$version" -k 7.3.4-norust --kernelsourcedir="$tree" >"$log" 2>&1; then
	not_ok "dkms install for a kernel without CONFIG_RUST succeeded"
elif grep -q '^secretmemfd: .*built without CONFIG_RUST=y' "$log"; then
	ok "dkms install for another kernel refused with: $(grep -m1 '^secretmemfd: ' "$log")"
else
	not_ok "dkms install for a kernel without CONFIG_RUST: no line from the check (see $(basename "$log"))"
fi
# DKMS still lists the source as added, and keeps make.log in its build
# directory until dkms remove; nothing may name that kernel.
check "nothing built or installed for that kernel" \
	sh -c "! dkms status -m $name -k 7.3.4-norust | grep -q 7.3.4-norust &&
		[ ! -e /var/lib/dkms/$name/$version/7.3.4-norust ] && [ ! -e /lib/modules/7.3.4-norust ]"

check "dpkg --purge secretmemfd-dkms" sh -c "dpkg --purge secretmemfd-dkms >'$out/dkms-purge.txt' 2>&1"
check "nothing left after the purge" nothing_left

echo "1..$n" >&3
[ $failed = 0 ]
