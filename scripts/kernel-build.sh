#!/usr/bin/env bash
# Builds the guest kernel (Debian's linux-source-7.3 + kernel/patches +
# kernel/secretmem.config, LLVM=1) into a cache outside the repo and prints
# the tree's path. An entry whose key matches is reused without rebuilding;
# one without its completion stamp is removed and built again.
set -euo pipefail
. "$(dirname "$0")/common.sh"

PKG=linux-source-7.3
# Bump when the build steps below change what they produce (not for cache
# housekeeping): it is part of the cache key.
RECIPE=1
FRAGMENT=$SECRETMEM_TOP/kernel/secretmem.config
PATCHES=("$SECRETMEM_TOP"/kernel/patches/*.patch)

version=$(apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
	apt-get update -qq || die "apt-get update failed"
	version=$(apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ { print $2 }')
fi
[ -n "$version" ] && [ "$version" != "(none)" ] ||
	die "$PKG not found: run scripts/setup-tools.sh (it adds trixie-backports)"

key=$( {
	echo "$PKG $version recipe $RECIPE"
	cat "$FRAGMENT" "${PATCHES[@]}"
	"$LLVM_BIN/clang" --version | head -n 1
	rustc --version
	bindgen --version
} | sha256sum | cut -c1-16)
entry=$SECRETMEM_CACHE/kernel-$key
tree=$entry/src

complete() {
	[ "$(cat "$entry/complete" 2>/dev/null)" = "$key" ] &&
		[ -f "$tree/arch/x86/boot/bzImage" ] && [ -f "$tree/Module.symvers" ]
}

mkdir -p "$SECRETMEM_CACHE"
exec 9>"$SECRETMEM_CACHE/.lock"
flock 9
if complete; then
	echo "kernel: $PKG $version, cached build $entry" >&2
	echo "$tree"
	exit 0
fi

echo "kernel: building $PKG $version into $entry (key $key)" >&2
rm -rf "$entry"
mkdir -p "$entry" "$SECRETMEM_CACHE/dl"
deb=$SECRETMEM_CACHE/dl/${PKG}_${version//:/%3a}_all.deb
if [ ! -s "$deb" ]; then
	(cd "$SECRETMEM_CACHE/dl" && rm -f ./*.deb && apt-get download -qq -t trixie-backports "$PKG=$version" 2>/dev/null) ||
		die "download of $PKG $version failed"
	[ -s "$deb" ] || die "download of $PKG $version produced no $deb"
fi
dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$PKG.tar.xz" | tar -xJ -C "$entry" ||
	die "unpacking $deb failed"
mv "$entry/$PKG" "$tree" || die "$deb did not hold $PKG/"

cd "$tree"
for p in "${PATCHES[@]}"; do
	patch -p1 -s --forward <"$p" >"$entry/patch.log" 2>&1 ||
		die "patch $(basename "$p") does not apply to $PKG $version: $(tail -n 3 "$entry/patch.log")"
done

log=$entry/build.log
kmake() {
	make LLVM=1 -j"$(($(nproc) + 1))" "$@" >>"$log" 2>&1
}
kmake rustavailable || die "Rust is not available to the kernel build: $(tail -n 5 "$log")"
kmake tinyconfig || die "make tinyconfig failed"
scripts/kconfig/merge_config.sh -m .config "$FRAGMENT" >>"$log" 2>&1 || die "merging $FRAGMENT failed"
kmake olddefconfig || die "make olddefconfig failed"
# Kconfig drops what it cannot satisfy without a word: refuse that.
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) grep -qxF "$line" .config || die "config: $line did not survive olddefconfig (got: $(grep "^${line%%=*}=" .config || echo unset))" ;;
	"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}
		! grep -q "^$sym=" .config || die "config: $sym should be unset, got $(grep "^$sym=" .config)" ;;
	esac
done <"$FRAGMENT"

start=$(date +%s)
kmake || die "kernel build failed, see $log: $(grep -m 3 -E 'error|Error' "$log" || tail -n 5 "$log")"
echo "kernel: built in $(($(date +%s) - start)) s" >&2
echo "$key" >"$entry/complete"

# Under the lock nothing else builds: an entry without its stamp is a dead
# half-written one. Keep the two newest complete entries (switching back and
# forth between two configs stays cheap) and drop the rest.
for old in "$SECRETMEM_CACHE"/kernel-*; do
	[ "$old" = "$entry" ] || [ -f "$old/complete" ] || rm -rf "$old"
done
ls -dt "$SECRETMEM_CACHE"/kernel-*/complete 2>/dev/null | tail -n +3 |
	while read -r stamp; do rm -rf "$(dirname "$stamp")"; done
echo "$tree"
