#!/usr/bin/env bash
# Installs the host tools the kernel build, the module build and the guest
# runner need. Idempotent: does nothing when everything is present.
set -euo pipefail
. "$(dirname "$0")/common.sh"

# dkms: make check builds the module with DKMS from the secretmemfd-dkms
# package (tests/host/dkms-package.sh), and tests/guest/dkms.sh installs the
# package in a guest whose root is this machine's.
debs=(clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev
	libssl-dev cpio kmod dwarves make rsync xz-utils qemu-system-x86 file
	gcc libc6-dev python3-pip util-linux strace dkms)
BACKPORTS=/etc/apt/sources.list.d/secretmem-trixie-backports.sources

need_update=0
# The kernel source comes from trixie-backports only; everything else stays
# on the machine's own suites (backports are never picked unless asked for).
if [ ! -f "$BACKPORTS" ]; then
	uris=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null) ||
		true
	[ -n "$uris" ] || die "no URIs: line in /etc/apt/sources.list.d/debian.sources to derive trixie-backports from"
	cat >"$BACKPORTS" <<EOT
Types: deb
URIs: $uris
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
	need_update=1
fi

missing=()
for p in "${debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ]; then
	apt-get update -qq || die "apt-get update failed"
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	extra=()
	# A machine that carries a newer qemu-utils than Debian 12's breaks
	# Debian 12's qemu-system-x86: take the matching qemu-utils with it.
	if printf '%s\n' "${missing[@]}" | grep -qx qemu-system-x86 &&
		dpkg-query -W -f='${Status}' qemu-utils 2>/dev/null | grep -q "ok installed"; then
		extra=(--allow-downgrades "qemu-utils/$(. /etc/os-release && echo "$VERSION_CODENAME")")
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${extra[@]}" "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi

command -v rustup >/dev/null || die "rustup not found (the machine's Rust toolchain is needed)"
rustup component list --installed 2>/dev/null | grep -q '^rust-src' ||
	rustup component add rust-src || die "rustup component add rust-src failed"
rustup component list --installed 2>/dev/null | grep -q '^clippy' ||
	rustup component add clippy || die "rustup component add clippy failed"

bindgen_ok() {
	local v
	v=$(bindgen --version 2>/dev/null | awk '{ print $2 }') || return 1
	[ -n "$v" ] && [ "$(printf '%s\n0.71.1\n' "$v" | sort -V | head -n 1)" = 0.71.1 ]
}
bindgen_ok || cargo install --locked bindgen-cli || die "cargo install bindgen-cli failed"
bindgen_ok || die "bindgen >= 0.71.1 is still missing after cargo install"

if ! command -v vng >/dev/null; then
	python3 -m pip install -q virtme-ng || die "pip install virtme-ng failed"
	command -v pyenv >/dev/null && pyenv rehash
	hash -r
fi
command -v vng >/dev/null || die "vng not on PATH after pip install virtme-ng"
command -v "$LLVM_BIN/clang" >/dev/null || die "$LLVM_BIN/clang missing after install"
exit 0
