# Shared settings for the scripts in this folder; sourced, never run.
# shellcheck shell=bash

SECRETMEM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECRETMEM_CACHE=${SECRETMEM_CACHE:-/var/cache/secretmem}
LLVM_BIN=/usr/lib/llvm-19/bin
export PATH="$LLVM_BIN:$HOME/.cargo/bin:$PATH"
# Where pip puts vng, whether or not the caller's PATH has it.
for dir in "$HOME/.pyenv/shims" "$HOME/.local/bin"; do
	[ -d "$dir" ] && PATH="$PATH:$dir"
done

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# The kernel tree the module builds against: $KDIR if the user gave one,
# else the cached build that scripts/kernel-build.sh prints.
kernel_dir() {
	if [ -n "${KDIR:-}" ]; then
		echo "$KDIR"
	else
		"$SECRETMEM_TOP/scripts/kernel-build.sh"
	fi
}
