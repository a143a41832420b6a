#!/usr/bin/env bash
# Builds out/deb/secretmemfd-dkms_VERSION_all.deb with dpkg-deb, offline: the
# module's source and DKMS recipe under /usr/src, the build check (also
# inlined into preinst), the boot-time load and the toolchain setting. The
# version comes from the file VERSION; the module itself is built by DKMS on
# the machine that installs the package.
set -euo pipefail
. "$(dirname "$0")/common.sh"

top=$SECRETMEM_TOP
pkg=$top/packaging
version=$(cat "$top/VERSION")
[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "VERSION holds '$version', not a Debian version"
out=$(realpath -m "${SECRETMEM_DEB_OUT:-$top/out/deb}")
deb=$out/secretmemfd-dkms_${version}_all.deb

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
src=$root/usr/src/secretmemfd-$version
umask 022
mkdir -p "$src" "$root/DEBIAN" "$root/etc/default" "$root/etc/modules-load.d" \
	"$root/usr/share/doc/secretmemfd-dkms"

# What Kbuild compiles: the crate root names every other .rs file, and the
# shim includes the UAPI header. Named one by one: the tree may also hold
# Kbuild's generated files (secretmemfd.mod.c).
install -m 0644 "$top/Kbuild" "$top"/*.rs "$top/secretmem_shim.c" "$top/secretmem_shim.h" "$src/"
install -m 0644 -D "$top/include/uapi/linux/secretmemfd.h" "$src/include/uapi/linux/secretmemfd.h"
install -m 0755 "$pkg/dkms/secretmemfd-check" "$src/"
sed "s/@VERSION@/$version/" "$pkg/dkms/dkms.conf" >"$src/dkms.conf"
install -m 0644 "$pkg/deb/secretmemfd-dkms.default" "$root/etc/default/secretmemfd-dkms"
install -m 0644 "$pkg/deb/modules-load.conf" "$root/etc/modules-load.d/secretmemfd.conf"
install -m 0644 "$pkg/deb/copyright" "$root/usr/share/doc/secretmemfd-dkms/copyright"

install -m 0644 "$pkg/deb/conffiles" "$root/DEBIAN/"
for script in postinst prerm; do
	sed "s/@VERSION@/$version/" "$pkg/deb/$script" >"$root/DEBIAN/$script"
done
# preinst runs before anything is unpacked: it carries the check inline.
sed -e "/^@SECRETMEM_CHECK@\$/r $pkg/dkms/secretmemfd-check" -e '/^@SECRETMEM_CHECK@$/d' \
	"$pkg/deb/preinst.in" >"$root/DEBIAN/preinst"
chmod 0755 "$root/DEBIAN/preinst" "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" "$pkg/deb/control" >"$root/DEBIAN/control"

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null || die "dpkg-deb failed"
echo "$deb"
