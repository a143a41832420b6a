// SPDX-License-Identifier: GPL-2.0
/*
 * Secret memory next to KVM on a kernel with none of our patches: without
 * kernel/patches/0003, KVM writes a secret page through the direct map and
 * oopses the host (kvm_test.c's reproduction). The module's backend for such
 * kernels keeps the two apart: no secret memory while KVM is present, no
 * kvm module load while secret memory exists, unless allow_unpatched_kvm=1.
 * KVM is a module there: this test loads and unloads kvm.ko and kvm-amd.ko
 * (after irqbypass.ko, which kvm.ko needs), given as arguments, and leaves
 * KVM unloaded. Refusals are EBUSY, a fault SIGBUS. Root only; prints TAP.
 * usage: kvm_guard_test IRQBYPASS_KO KVM_KO KVM_AMD_KO
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "harness.h"

#define STATS "/sys/kernel/debug/secretmemfd/stats"
#define ALLOW "/sys/module/secretmemfd/parameters/allow_unpatched_kvm"

static const char *irqbypass_ko, *kvm_ko, *kvm_amd_ko;

/* finit_module(@path): 0 or the errno. */
static int load(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	CHECK(fd >= 0);
	if (syscall(__NR_finit_module, fd, "", 0))
		err = errno;
	close(fd);
	return err;
}

static void unload_kvm(void)
{
	CHECK(syscall(__NR_delete_module, "kvm_amd", O_NONBLOCK) == 0);
	CHECK(syscall(__NR_delete_module, "kvm", O_NONBLOCK) == 0);
	CHECK(access("/sys/module/kvm", F_OK) == -1);
}

/* Whether the stats' "kvm:" line starts with @state. */
static bool kvm_state(const char *state)
{
	return key_line_starts(STATS, "kvm", state);
}

/* The backend is the unpatched kernels' one; KVM is not loaded. */
static void test_backend_and_kvm_absent(void)
{
	char backend[32] = "";
	FILE *f = fopen("/sys/module/secretmemfd/parameters/backend", "re");

	CHECK(f && fgets(backend, sizeof(backend), f));
	fclose(f);
	CHECK(!strcmp(backend, "mce-helpers\n"));
	CHECK(access("/sys/module/kvm", F_OK) == -1 && access("/dev/kvm", F_OK) == -1);
	CHECK(kvm_state("absent"));
}

/* While a secret memory file exists, the kvm module does not load. */
static void test_kvm_load_refused_while_secret_memory_exists(void)
{
	int fd;
	char *p = secret_map(&fd, 0, 4);

	strcpy(p, SECRET);
	/* kvm.ko's dependency: without it the load fails before the check. */
	if (access("/sys/module/irqbypass", F_OK))
		CHECK(load(irqbypass_ko) == 0);
	CHECK(load(kvm_ko) == EBUSY);
	CHECK(access("/sys/module/kvm", F_OK) == -1);
	CHECK(kvm_state("absent"));
	CHECK(!strcmp(p, SECRET));
	CHECK(munmap(p, 4 * ps) == 0);
	CHECK(close(fd) == 0);
	/* Once the last file is gone (restored and zeroed), KVM loads. */
	CHECK(key_value(STATS, "areas") == 0);
	CHECK(load(kvm_ko) == 0);
	CHECK(load(kvm_amd_ko) == 0);
	CHECK(access("/dev/kvm", F_OK) == 0);
	CHECK(kvm_state("present, secret memory refused"));
}

static void create_refused(void *arg)
{
	(void)arg;
	if (geteuid() == 0) {
		CHECK(setresgid(65534, 65534, 65534) == 0);
		CHECK(setresuid(65534, 65534, 65534) == 0);
	}
	CHECK_ERR(secretmemfd_ioctl(0), EBUSY);
	CHECK_ERR(secretmemfd_ioctl(SECRETMEM_EXCLUSIVE | O_CLOEXEC), EBUSY);
	_exit(0);
}

/* While KVM is present, no secret memory is created, for root or anyone. */
static void test_secret_memory_refused_while_kvm_present(void)
{
	CHECK(access("/dev/kvm", F_OK) == 0);
	CHECK_ERR(secretmemfd_ioctl(0), EBUSY);
	CHECK(child_exit(create_refused, NULL) == 0);
	CHECK(key_value(STATS, "areas") == 0);
}

/* A module loaded after KVM sees it (the symbol lookup at init). */
static void test_module_loaded_after_kvm(void)
{
	const char *ko = getenv("SECRETMEM_KO");

	CHECK(ko);
	CHECK(syscall(__NR_delete_module, "secretmemfd", O_NONBLOCK) == 0);
	CHECK(load(ko) == 0);
	CHECK(kvm_state("present, secret memory refused"));
	CHECK_ERR(secretmemfd_ioctl(0), EBUSY);
}

/*
 * kvm_test.c's reproduction: a VM whose memslot is secret memory and whose
 * kvmclock lies in it. Here the secret memory is refused before a VM can use
 * it, and ordinary memory still works as guest RAM.
 */
static void test_oops_reproduction_refused(void)
{
	struct kvm_userspace_memory_region region = { .slot = 0, .memory_size = 4 * ps };
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm;
	char *ram;

	CHECK(kvm >= 0);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	CHECK(vm >= 0);
	CHECK_ERR(secretmemfd_ioctl(0), EBUSY);
	ram = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(ram != MAP_FAILED);
	region.userspace_addr = (unsigned long)ram;
	CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) == 0);
	close(vm);
	close(kvm);
	CHECK(key_value(STATS, "areas") == 0 && key_value(STATS, "pages") == 0);
}

/* allow_unpatched_kvm=1 lifts both refusals; setting it back refuses again. */
static void test_administrator_opt_in(void)
{
	char *p;
	int fd;

	write_file(ALLOW, "1");
	CHECK(kvm_state("present, allowed"));
	p = secret_map(&fd, 0, 2);
	strcpy(p, SECRET);
	CHECK(!strcmp(p, SECRET));
	/* KVM may also load next to secret memory now. */
	unload_kvm();
	CHECK(load(kvm_ko) == 0);
	CHECK(load(kvm_amd_ko) == 0);
	write_file(ALLOW, "0");
	CHECK_ERR(secretmemfd_ioctl(0), EBUSY);
	/* What exists stays usable; no new page comes in while KVM is there. */
	CHECK(!strcmp(p, SECRET));
	CHECK(child_signal(touch, p + ps) == SIGBUS);
	CHECK(key_value(STATS, "pages") == 1);
	CHECK(munmap(p, 2 * ps) == 0);
	CHECK(close(fd) == 0);
}

/* With KVM unloaded, secret memory is there again. */
static void test_kvm_unload_lifts_refusal(void)
{
	char *p;
	int fd;

	unload_kvm();
	CHECK(kvm_state("absent"));
	p = secret_map(&fd, 0, 1);
	strcpy(p, SECRET);
	CHECK(munmap(p, ps) == 0);
	CHECK(close(fd) == 0);
	CHECK(key_value(STATS, "areas") == 0 && key_value(STATS, "pages") == 0);
}

static const struct test tests[] = {
	{ "backend_and_kvm_absent", test_backend_and_kvm_absent },
	{ "kvm_load_refused_while_secret_memory_exists",
	  test_kvm_load_refused_while_secret_memory_exists },
	{ "secret_memory_refused_while_kvm_present", test_secret_memory_refused_while_kvm_present },
	{ "module_loaded_after_kvm", test_module_loaded_after_kvm },
	{ "oops_reproduction_refused", test_oops_reproduction_refused },
	{ "administrator_opt_in", test_administrator_opt_in },
	{ "kvm_unload_lifts_refusal", test_kvm_unload_lifts_refusal },
};

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s IRQBYPASS_KO KVM_KO KVM_AMD_KO\n", argv[0]);
		return 2;
	}
	irqbypass_ko = argv[1];
	kvm_ko = argv[2];
	kvm_amd_ko = argv[3];
	return run_tests(tests, sizeof(tests) / sizeof(tests[0]), 1, argv);
}
