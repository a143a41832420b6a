// SPDX-License-Identifier: GPL-2.0
/*
 * Secret memory as KVM guest memory, from raw KVM ioctls. The first cases
 * reproduce the host oops that kernel/patches/0003 closes: a kvmclock MSR
 * pointing into a secret memslot made KVM write the page through the
 * direct map. The others pin what KVM does with secret memory that is
 * uncached, too small, unmapped, closed or passed from another process.
 * Needs root (/dev/kvm) and a kernel with KVM; prints TAP.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "harness.h"

#define STATS "/sys/kernel/debug/secretmemfd/stats"
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

/* Guest RAM: page 0 holds the code, page 1 the kvmclock, page 2 data. */
#define RAM_PAGES 4
#define CLOCK_GPA 0x1000
#define MARKER_GPA 0x2000
#define MARKER 0x42

struct vm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
};

/* Real mode at 0: mov byte [MARKER_GPA], MARKER; hlt. */
static const unsigned char code_marker_hlt[] = {
	0xc6, 0x06, MARKER_GPA & 0xff, MARKER_GPA >> 8, MARKER, 0xf4,
};

/* Real mode at 0: mov byte [0x3000], MARKER; hlt (the fourth page). */
static const unsigned char code_touch_last_page[] = {
	0xc6, 0x06, 0x00, 0x30, MARKER, 0xf4,
};

/* A VM with one vCPU in real mode at 0 and @ram as its only memslot. */
static void vm_create(struct vm *v, void *ram, size_t len)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = len,
		.userspace_addr = (unsigned long)ram,
	};
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0, .rflags = 2 };
	int size;

	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	CHECK(v->kvm >= 0);
	CHECK(ioctl(v->kvm, KVM_GET_API_VERSION, 0) == KVM_API_VERSION);
	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	CHECK(v->vm >= 0);
	CHECK(ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &region) == 0);
	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	CHECK(v->vcpu >= 0);
	size = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	CHECK(size > 0);
	v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	CHECK(v->run != MAP_FAILED);
	CHECK(ioctl(v->vcpu, KVM_GET_SREGS, &sregs) == 0);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = 0;
	sregs.ds.selector = 0;
	CHECK(ioctl(v->vcpu, KVM_SET_SREGS, &sregs) == 0);
	CHECK(ioctl(v->vcpu, KVM_SET_REGS, &regs) == 0);
}

static void vm_destroy(struct vm *v)
{
	close(v->vcpu);
	close(v->vm);
	close(v->kvm);
}

/* KVM_SET_MSRS of one MSR: the number of MSRs KVM took (0 or 1). */
static int set_msr(struct vm *v, unsigned int index, unsigned long long data)
{
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry entry;
	} msrs = { .head.nmsrs = 1, .entry = { .index = index, .data = data } };

	return ioctl(v->vcpu, KVM_SET_MSRS, &msrs);
}

static unsigned long long get_msr(struct vm *v, unsigned int index)
{
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry entry;
	} msrs = { .head.nmsrs = 1, .entry = { .index = index } };

	CHECK(ioctl(v->vcpu, KVM_GET_MSRS, &msrs) == 1);
	return msrs.entry.data;
}

/* Runs the vCPU once; returns 0 and the exit reason, or -1 with errno. */
static int vm_run(struct vm *v)
{
	return ioctl(v->vcpu, KVM_RUN, 0);
}

static void vm_run_to_hlt(struct vm *v)
{
	CHECK(vm_run(v) == 0);
	if (v->run->exit_reason != KVM_EXIT_HLT)
		fprintf(stderr, "  exit reason %u\n", v->run->exit_reason);
	CHECK(v->run->exit_reason == KVM_EXIT_HLT);
}

static char *memfd_ram(int *fdp)
{
	int fd = memfd_create("kvm-test-ram", MFD_CLOEXEC);
	char *p;

	CHECK(fd >= 0 && ftruncate(fd, RAM_PAGES * ps) == 0);
	p = mmap(NULL, RAM_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	*fdp = fd;
	return p;
}

static long stat_value(const char *key)
{
	long value = key_value(STATS, key);

	CHECK(value >= 0);
	return value;
}

/* kvmclock's version word: odd while KVM writes, non-zero once it has. */
static unsigned int clock_version(const char *clock)
{
	return *(volatile const unsigned int *)clock;
}

static void test_kvm_available(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	CHECK(kvm >= 0);
	CHECK(ioctl(kvm, KVM_GET_API_VERSION, 0) == KVM_API_VERSION);
	CHECK(ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) > 0);
	close(kvm);
}

/* The control: in ordinary memory, KVM takes the MSR and writes the clock. */
static void test_memfd_kvmclock_written(void)
{
	struct vm v;
	int fd;
	char *ram = memfd_ram(&fd);

	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	vm_create(&v, ram, RAM_PAGES * ps);
	CHECK(set_msr(&v, MSR_KVM_SYSTEM_TIME_NEW, CLOCK_GPA | 1) == 1);
	vm_run_to_hlt(&v);
	CHECK(ram[MARKER_GPA] == MARKER);
	CHECK(clock_version(ram + CLOCK_GPA) != 0);
	vm_destroy(&v);
}

/*
 * The oops reproduction: kvmclock into a secret memslot, then KVM_RUN.
 * KVM refuses the MSR (it cannot map the page), leaves kvmclock off, and
 * the guest runs on secret memory.
 */
static void test_secret_kvmclock_refused(void)
{
	long areas = stat_value("areas");
	struct vm v;
	int fd;
	char *ram = secret_map(&fd, 0, RAM_PAGES);

	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	vm_create(&v, ram, RAM_PAGES * ps);
	/* The page is made first, as a guest would have touched it. */
	ram[CLOCK_GPA] = 0;
	CHECK(set_msr(&v, MSR_KVM_SYSTEM_TIME_NEW, CLOCK_GPA | 1) == 0);
	CHECK(get_msr(&v, MSR_KVM_SYSTEM_TIME_NEW) == 0);
	vm_run_to_hlt(&v);
	CHECK(ram[MARKER_GPA] == MARKER);
	CHECK(clock_version(ram + CLOCK_GPA) == 0);
	vm_destroy(&v);
	CHECK(munmap(ram, RAM_PAGES * ps) == 0 && close(fd) == 0);
	CHECK(stat_value("areas") == areas);
}

/* The same with the clock page never touched: KVM faults it in itself. */
static void test_secret_kvmclock_untouched_page(void)
{
	struct vm v;
	int fd;
	char *ram = secret_map(&fd, 0, RAM_PAGES);

	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	vm_create(&v, ram, RAM_PAGES * ps);
	CHECK(set_msr(&v, MSR_KVM_SYSTEM_TIME_NEW, CLOCK_GPA | 1) == 0);
	vm_run_to_hlt(&v);
	CHECK(ram[MARKER_GPA] == MARKER);
	vm_destroy(&v);
}

/* The kvmclock in ordinary memory, the rest of the guest in secret memory. */
static void test_kvmclock_moved_into_secret_slot(void)
{
	struct kvm_userspace_memory_region clock = {
		.slot = 1,
		.guest_phys_addr = 0x100000,
		.memory_size = ps,
	};
	struct vm v;
	int fd, mfd;
	char *ram = secret_map(&fd, 0, RAM_PAGES), *plain = memfd_ram(&mfd);

	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	vm_create(&v, ram, RAM_PAGES * ps);
	clock.userspace_addr = (unsigned long)plain;
	CHECK(ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &clock) == 0);
	CHECK(set_msr(&v, MSR_KVM_SYSTEM_TIME_NEW, 0x100000 | 1) == 1);
	vm_run_to_hlt(&v);
	CHECK(clock_version(plain) != 0);
	/* Moving it into secret memory is refused and leaves the old clock on. */
	CHECK(set_msr(&v, MSR_KVM_SYSTEM_TIME_NEW, CLOCK_GPA | 1) == 0);
	CHECK(get_msr(&v, MSR_KVM_SYSTEM_TIME_NEW) == (0x100000 | 1));
	CHECK(ioctl(v.vcpu, KVM_SET_REGS, &(struct kvm_regs){ .rip = 0, .rflags = 2 }) == 0);
	vm_run_to_hlt(&v);
	CHECK(clock_version(plain) != 0 && clock_version(plain) % 2 == 0);
	vm_destroy(&v);
}

/* An uncached area would be mapped write-back by the guest: refused. */
static void test_uncached_guest_memory_refused(void)
{
	struct vm v;
	int fd;
	char *ram = secret_map(&fd, SECRETMEM_UNCACHED, RAM_PAGES);

	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	vm_create(&v, ram, RAM_PAGES * ps);
	CHECK_ERR(vm_run(&v), EFAULT);
	vm_destroy(&v);
}

/* A memslot larger than the area: the part past the size faults cleanly. */
static void test_memslot_larger_than_area(void)
{
	int fd = secretmemfd(0);
	struct vm v;
	char *ram;

	CHECK(fd >= 0 && ftruncate(fd, 2 * ps) == 0);
	ram = mmap(NULL, RAM_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(ram != MAP_FAILED);
	memcpy(ram, code_touch_last_page, sizeof(code_touch_last_page));
	vm_create(&v, ram, RAM_PAGES * ps);
	CHECK_ERR(vm_run(&v), EFAULT);
	vm_destroy(&v);
}

/* Unmapping the area under a running VM: the next KVM_RUN faults. */
static void test_area_unmapped_under_vm(void)
{
	long areas = stat_value("areas"), pages = stat_value("pages");
	struct vm v;
	int fd;
	char *ram = secret_map(&fd, 0, RAM_PAGES);

	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	vm_create(&v, ram, RAM_PAGES * ps);
	vm_run_to_hlt(&v);
	CHECK(munmap(ram, RAM_PAGES * ps) == 0 && close(fd) == 0);
	/* The file is gone, its pages back in the direct map, the VM alive. */
	CHECK(stat_value("areas") == areas);
	CHECK(stat_value("pages") == pages);
	CHECK(ioctl(v.vcpu, KVM_SET_REGS, &(struct kvm_regs){ .rip = 0, .rflags = 2 }) == 0);
	CHECK_ERR(vm_run(&v), EFAULT);
	vm_destroy(&v);
}

/* Closing the descriptor while mapped: the mapping keeps the area alive. */
static void test_area_closed_while_mapped(void)
{
	long areas = stat_value("areas");
	struct vm v;
	int fd;
	char *ram = secret_map(&fd, 0, RAM_PAGES);

	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	CHECK(close(fd) == 0);
	vm_create(&v, ram, RAM_PAGES * ps);
	vm_run_to_hlt(&v);
	CHECK(ram[MARKER_GPA] == MARKER);
	CHECK(stat_value("areas") == areas + 1);
	vm_destroy(&v);
	CHECK(munmap(ram, RAM_PAGES * ps) == 0);
	CHECK(stat_value("areas") == areas);
}

/* The size is set once: a VM's memory cannot be truncated under it. */
static void test_area_truncate_refused(void)
{
	struct vm v;
	int fd;
	char *ram = secret_map(&fd, 0, RAM_PAGES);

	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	vm_create(&v, ram, RAM_PAGES * ps);
	CHECK_ERR(ftruncate(fd, ps), EINVAL);
	CHECK_ERR(ftruncate(fd, 0), EINVAL);
	vm_run_to_hlt(&v);
	CHECK(ram[MARKER_GPA] == MARKER);
	vm_destroy(&v);
}

/* An area created by another process and passed with SCM_RIGHTS. */
static void test_area_from_another_process(void)
{
	char cbuf[CMSG_SPACE(sizeof(int))], byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cmsg;
	int sv[2], fd, status;
	struct vm v;
	pid_t pid;
	char *ram;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		fd = secretmemfd(0);
		CHECK(fd >= 0 && ftruncate(fd, RAM_PAGES * ps) == 0);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
		CHECK(sendmsg(sv[1], &msg, 0) == 1);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status));
	CHECK(recvmsg(sv[0], &msg, 0) == 1);
	cmsg = CMSG_FIRSTHDR(&msg);
	CHECK(cmsg && cmsg->cmsg_type == SCM_RIGHTS);
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	ram = mmap(NULL, RAM_PAGES * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(ram != MAP_FAILED);
	memcpy(ram, code_marker_hlt, sizeof(code_marker_hlt));
	vm_create(&v, ram, RAM_PAGES * ps);
	CHECK(set_msr(&v, MSR_KVM_SYSTEM_TIME_NEW, CLOCK_GPA | 1) == 0);
	vm_run_to_hlt(&v);
	CHECK(ram[MARKER_GPA] == MARKER);
	vm_destroy(&v);
}

static const struct test tests[] = {
	{ "kvm_available", test_kvm_available },
	{ "memfd_kvmclock_written", test_memfd_kvmclock_written },
	{ "secret_kvmclock_refused", test_secret_kvmclock_refused },
	{ "secret_kvmclock_untouched_page", test_secret_kvmclock_untouched_page },
	{ "kvmclock_moved_into_secret_slot", test_kvmclock_moved_into_secret_slot },
	{ "uncached_guest_memory_refused", test_uncached_guest_memory_refused },
	{ "memslot_larger_than_area", test_memslot_larger_than_area },
	{ "area_unmapped_under_vm", test_area_unmapped_under_vm },
	{ "area_closed_while_mapped", test_area_closed_while_mapped },
	{ "area_truncate_refused", test_area_truncate_refused },
	{ "area_from_another_process", test_area_from_another_process },
};

int main(int argc, char **argv)
{
	return run_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
