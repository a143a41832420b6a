#!/usr/bin/env bash
# Builds a guest kernel (Debian's linux-source-7.3 + kernel/patches +
# kernel/secretmem.config, LLVM=1) into a cache outside the repo and prints
# the tree's path. An entry whose key matches is reused without rebuilding;
# one without its completion stamp is removed and built again.
#
# usage: kernel-build.sh [--key] [VARIANT]   (default: $SECRETMEM_KERNEL, else debug)
#   --key    print the cache entry's path and whether it is complete; build nothing
#   debug    the fragment as it is: KASAN, lockdep, kmemleak; what make check boots
#   release  the same without the debug options (kernel/release.config): benchmarks
#   unpatched  debug, with none of kernel/patches and KVM as a module
#            (kernel/unpatched.config): the kernel nobody patched
set -euo pipefail
. "$(dirname "$0")/common.sh"

PKG=linux-source-7.3
# Bump when the build steps below change what they produce (not for cache
# housekeeping): it is part of the cache key.
RECIPE=2
key_only=0
if [ "${1:-}" = --key ]; then
	key_only=1
	shift
fi
VARIANT=${1:-${SECRETMEM_KERNEL:-debug}}
FRAGMENTS=("$SECRETMEM_TOP/kernel/secretmem.config")
PATCHES=("$SECRETMEM_TOP"/kernel/patches/*.patch)
case "$VARIANT" in
debug) ;;
release) FRAGMENTS+=("$SECRETMEM_TOP/kernel/release.config") ;;
unpatched)
	FRAGMENTS+=("$SECRETMEM_TOP/kernel/unpatched.config")
	PATCHES=()
	;;
*) die "unknown kernel variant '$VARIANT' (debug, release or unpatched)" ;;
esac

version=$(apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
	apt-get update -qq || die "apt-get update failed"
	version=$(apt-cache policy "$PKG" 2>/dev/null | awk '/Candidate:/ { print $2 }')
fi
[ -n "$version" ] && [ "$version" != "(none)" ] ||
	die "$PKG not found: run scripts/setup-tools.sh (it adds trixie-backports)"

key=$( {
	echo "$PKG $version recipe $RECIPE variant $VARIANT"
	cat "${FRAGMENTS[@]}" ${PATCHES[@]+"${PATCHES[@]}"}
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

if [ $key_only = 1 ]; then
	if complete; then echo "$entry complete"; else echo "$entry missing"; fi
	exit 0
fi

# A complete entry is only ever read, and its stamp is written last: no lock
# is needed to use it, and a build of another variant does not hold it up.
if complete; then
	echo "kernel: $PKG $version ($VARIANT), cached build $entry" >&2
	echo "$tree"
	exit 0
fi

mkdir -p "$SECRETMEM_CACHE"
exec 9>"$SECRETMEM_CACHE/.lock"
flock 9
if complete; then
	echo "kernel: $PKG $version ($VARIANT), cached build $entry" >&2
	echo "$tree"
	exit 0
fi

echo "kernel: building $PKG $version ($VARIANT) into $entry (key $key)" >&2
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
for p in ${PATCHES[@]+"${PATCHES[@]}"}; do
	patch -p1 -s --forward <"$p" >"$entry/patch.log" 2>&1 ||
		die "patch $(basename "$p") does not apply to $PKG $version: $(tail -n 3 "$entry/patch.log")"
done

log=$entry/build.log
kmake() {
	make LLVM=1 -j"$(($(nproc) + 1))" "$@" >>"$log" 2>&1
}
kmake rustavailable || die "Rust is not available to the kernel build: $(tail -n 5 "$log")"
kmake tinyconfig || die "make tinyconfig failed"
scripts/kconfig/merge_config.sh -m .config "${FRAGMENTS[@]}" >>"$log" 2>&1 || die "merging ${FRAGMENTS[*]} failed"
kmake olddefconfig || die "make olddefconfig failed"
# Kconfig drops what it cannot satisfy without a word: refuse that. A later
# fragment overrides an earlier one, so each symbol is checked for its last
# line only.
declare -A want=()
for fragment in "${FRAGMENTS[@]}"; do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) want[${line%%=*}]=$line ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; want[${sym%% *}]=$line ;;
		esac
	done <"$fragment"
done
for sym in "${!want[@]}"; do
	line=${want[$sym]}
	case "$line" in
	CONFIG_*=*) grep -qxF "$line" .config || die "config: $line did not survive olddefconfig (got: $(grep "^$sym=" .config || echo unset))" ;;
	*) ! grep -q "^$sym=" .config || die "config: $sym should be unset, got $(grep "^$sym=" .config)" ;;
	esac
done

start=$(date +%s)
kmake || die "kernel build failed, see $log: $(grep -m 3 -E 'error|Error' "$log" || tail -n 5 "$log")"
echo "kernel: built in $(($(date +%s) - start)) s" >&2
echo "$VARIANT" >"$entry/variant"
echo "$key" >"$entry/complete"

# Under the lock nothing else builds: an entry without its stamp is a dead
# half-written one. Keep the two newest complete entries of each variant
# (switching back and forth between two configs stays cheap) and drop the
# rest.
for old in "$SECRETMEM_CACHE"/kernel-*; do
	[ "$old" = "$entry" ] || [ -f "$old/complete" ] || rm -rf "$old"
done
ls -dt "$SECRETMEM_CACHE"/kernel-*/complete 2>/dev/null |
	while read -r stamp; do
		dir=$(dirname "$stamp")
		echo "$(cat "$dir/variant" 2>/dev/null || echo debug) $dir"
	done | awk 'seen[$1]++ >= 2 { print $2 }' |
	while read -r dir; do rm -rf "$dir"; done
echo "$tree"
