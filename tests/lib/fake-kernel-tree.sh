# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
# Sourced by tests/host/dkms-package.sh and tests/guest/dkms.sh.
#
# fake_kernel_tree KDIR DIR: makes DIR a copy of what secretmemfd-check reads
# from the kernel tree KDIR (the Rust crates as links), for a test to break
# one piece of, and prints DIR.
fake_kernel_tree() {
	local kdir=$1 dir=$2 f
	rm -rf "$dir"
	mkdir -p "$dir/include/config" "$dir/include/generated" "$dir/scripts" "$dir/rust"
	for f in .config include/config/auto.conf include/config/kernel.release \
		include/generated/rustc_cfg scripts/target.json scripts/Makefile.build Module.symvers; do
		cp "$kdir/$f" "$dir/$f"
	done
	for f in "$kdir"/rust/lib*.rmeta "$kdir"/rust/lib*.so; do
		ln -s "$f" "$dir/rust/"
	done
	echo "$dir"
}
