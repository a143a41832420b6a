# SPDX-License-Identifier: GPL-2.0
# Entry points. Kbuild (not this file) describes the module to the kernel build.
#
#   make          build secretmemfd.ko against the cached guest kernel (or KDIR=...;
#                 KERNEL=release for the variant without debug options)
#   make demo     boot the guest, load the module, run the demo
#   make check    build everything and run every test in the guest, on our patched kernel
#                 and on one with none of our patches (with the module DKMS builds from
#                 the secretmemfd-dkms package)
#   make bench    benchmark secret memory in the guest (release kernel unless KERNEL=debug)
#   make deb      out/deb/secretmemfd-dkms_VERSION_all.deb (DKMS source package)
#   make check-dkms  install that package in a guest on the unpatched kernel (slow)
#   make clippy / fmt / fmt-check

SHELL := /bin/bash
export PATH := /usr/lib/llvm-19/bin:$(HOME)/.cargo/bin:$(PATH)
# The guest kernel: debug (KASAN, lockdep, kmemleak; the default), release
# (the default of `make bench`, which should not measure the debug options) or
# unpatched (the default of `make check-dkms`: a kernel nobody patched).
ifeq ($(origin KERNEL),undefined)
KERNEL := $(if $(filter bench,$(MAKECMDGOALS)),release,debug)
check-dkms: export SECRETMEM_KERNEL := unpatched
endif
export SECRETMEM_KERNEL := $(KERNEL)
KDIR_CMD = $(if $(KDIR),echo $(KDIR),scripts/kernel-build.sh)
# rustfmt follows the crate root to every module.
RUST_SRC = secretmem.rs

.PHONY: all module module-unpatched setup kernel clippy fmt fmt-check userspace demo check check-dkms bench deb clean

all: module

setup:
	@scripts/setup-tools.sh

kernel: setup
	@$(KDIR_CMD) >/dev/null

module: setup
	@kdir=$$($(KDIR_CMD)) && $(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=1 modules

# The module for the kernel with none of our patches (scripts/kernel-build.sh
# unpatched), built from a copy of the sources in build/unpatched: a source
# directory builds for one kernel at a time. rsync keeps the copies' times, so
# an unchanged module is not rebuilt.
MODULE_SRC = Kbuild $(wildcard *.rs) secretmem_shim.c secretmem_shim.h include
module-unpatched: setup
	@kdir=$$(scripts/kernel-build.sh unpatched) && mkdir -p build/unpatched && \
		rsync -a $(MODULE_SRC) build/unpatched/ && \
		$(MAKE) -C "$$kdir" M=$(CURDIR)/build/unpatched LLVM=1 modules

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

check: module module-unpatched userspace
	@scripts/check.sh

bench: module
	@scripts/bench-setup.sh
	@scripts/bench.sh

deb:
	@scripts/deb-build.sh

# The whole install in a guest: dpkg -i, DKMS's build under TCG, modprobe, the
# C suite, purge, and the refusals through dpkg. Most of an hour; make check
# runs the package's checks and its DKMS build on the host instead.
check-dkms: setup
	@scripts/dkms-test.sh

clean:
	@rm -rf build .tmp_versions *.o *.ko *.mod *.mod.c *.cmd .*.cmd modules.order Module.symvers \
		*.rmeta .*.d rust-project.json
	@$(MAKE) -s -C tests/userspace clean
	@$(MAKE) -s -C benchmarks clean
