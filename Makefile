# SPDX-License-Identifier: GPL-2.0
# Entry points. Kbuild (not this file) describes the module to the kernel build.
#
#   make          build secretmemfd.ko against the cached guest kernel (or KDIR=...;
#                 KERNEL=release for the variant without debug options)
#   make demo     boot the guest, load the module, run the demo
#   make check    build everything and run every test in the guest
#   make bench    benchmark secret memory in the guest (release kernel unless KERNEL=debug)
#   make deb      out/deb/secretmemfd-dkms_VERSION_all.deb (DKMS source package)
#   make clippy / fmt / fmt-check

SHELL := /bin/bash
export PATH := /usr/lib/llvm-19/bin:$(HOME)/.cargo/bin:$(PATH)
# The guest kernel: debug (KASAN, lockdep, kmemleak; the default) or release
# (the default of `make bench`, which should not measure the debug options).
ifeq ($(origin KERNEL),undefined)
KERNEL := $(if $(filter bench,$(MAKECMDGOALS)),release,debug)
endif
export SECRETMEM_KERNEL := $(KERNEL)
KDIR_CMD = $(if $(KDIR),echo $(KDIR),scripts/kernel-build.sh)
# rustfmt follows the crate root to every module.
RUST_SRC = secretmem.rs

.PHONY: all module setup kernel clippy fmt fmt-check userspace demo check bench deb clean

all: module

setup:
	@scripts/setup-tools.sh

kernel: setup
	@$(KDIR_CMD) >/dev/null

module: setup
	@kdir=$$($(KDIR_CMD)) && $(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=1 modules

clippy: setup
	@kdir=$$($(KDIR_CMD)) && $(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=1 CLIPPY=1 modules

fmt: setup
	@kdir=$$($(KDIR_CMD)) && rustfmt --edition 2021 --config-path "$$kdir/.rustfmt.toml" $(RUST_SRC)

fmt-check: setup
	@kdir=$$($(KDIR_CMD)) && rustfmt --check --edition 2021 --config-path "$$kdir/.rustfmt.toml" $(RUST_SRC)

userspace:
	@scripts/userspace-build.sh

demo: module userspace
	@scripts/vm-run.sh tests/guest/demo.sh

check: module userspace
	@scripts/check.sh

bench: module
	@scripts/bench-setup.sh
	@scripts/bench.sh

deb:
	@scripts/deb-build.sh

clean:
	@rm -rf .tmp_versions *.o *.ko *.mod *.mod.c *.cmd .*.cmd modules.order Module.symvers \
		*.rmeta .*.d rust-project.json
	@$(MAKE) -s -C tests/userspace clean
	@$(MAKE) -s -C benchmarks clean
