// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection with the kernel's generic injectors, failslab and
 * fail_page_alloc, aimed at this task only. For each operation on secret
 * memory (create through the ioctl and the system call, ftruncate, mmap, the
 * first-touch fault, munmap and close with the release they trigger), the
 * test fails the operation's 1st allocation, then its 2nd, and so on until
 * the operation makes no more: every allocation it makes fails once. Each
 * failure must end in a documented result: ENOMEM from the call, SIGBUS or
 * a retried (or OOM-killed) fault, or a success when the kernel had a
 * fallback. After every trial the module's counters are back where they
 * started; at the end they read zero, the direct map has every page back
 * and the locked-memory charge is refunded. Root only. Prints TAP, with the
 * failure points each operation reached as "#" lines.
 *
 * Aiming: both injectors are set to probability 100, task-filter on,
 * ignore-gfp-wait off, and this task gets make-it-fail. With interval N an
 * injector fails every Nth allocation that passes its filters, and its call
 * counter only moves while `times` is not zero. So the test first lets one
 * throw-away allocation fail (the counter is then a multiple of N and
 * `times` drops to 0), then sets `times` to 1 right before the operation,
 * whose Nth allocation fails. Writing and reading `times` through descriptors
 * opened beforehand allocates nothing.
 *
 * One failure point needs two failures in a row: the XArray's first try at a
 * node is GFP_NOWAIT under its lock, and only when the GFP_KERNEL retry fails
 * too does the store fail. For it, failslab's cache-filter narrows failslab
 * to the radix_tree_node cache and `times` K fails the fault's first K node
 * allocations.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "harness.h"

#define DEBUGFS "/sys/kernel/debug"
#define STATS DEBUGFS "/secretmemfd/stats"
/* An operation that makes more allocations than this is only tried this far. */
#define MAX_NTH 160

enum { SLAB, PAGE_ALLOC, NR_INJECTORS };
static const char *const injector_name[] = { "failslab", "fail_page_alloc" };
/* Descriptors of each injector's `times`, opened before anything is armed. */
static int times_fd[NR_INJECTORS] = { -1, -1 };
/* What arm() writes to `times`: how many allocations in a row fail. */
static int arm_times = 1;
/* failslab narrowed to the XArray's node cache, with bursts instead of aim. */
static bool xarray_nodes_only;
#define XARRAY_NODE_FAILSLAB "/sys/kernel/slab/radix_tree_node/failslab"
/* Burst lengths tried with the XArray's nodes: two store failures in a row. */
#define MAX_XARRAY_BURST 4

static void injector_set(int inj, const char *attr, const char *value)
{
	char path[128];

	snprintf(path, sizeof(path), DEBUGFS "/%s/%s", injector_name[inj], attr);
	write_file(path, value);
}

static int times_open(int inj)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), DEBUGFS "/%s/times", injector_name[inj]);
	fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

/* Sets `times` through the descriptor kept open: no allocation. */
static void set_times(int inj, int times)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%d", times);

	CHECK(write(times_fd[inj], buf, n) == n);
}

/* Reads a number from a debugfs attribute opened and never read before. */
static long read_fresh(int fd)
{
	char buf[32];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	CHECK(n > 0);
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* One armed window: `times` is arm_times from arm() to disarm(). */
struct armed {
	int inj;
	int reader;
};

/* Opens the window; an injector below zero (a warm-up run) arms nothing. */
static void arm(struct armed *a, int inj)
{
	a->inj = inj;
	if (inj < 0)
		return;
	a->reader = times_open(inj);
	set_times(inj, arm_times);
}

/* Ends the window; returns whether the injector failed all the allocations it was armed for. */
static bool disarm(struct armed *a)
{
	bool fired;

	if (a->inj < 0)
		return false;
	fired = read_fresh(a->reader) == 0;
	set_times(a->inj, 0);
	close(a->reader);
	return fired;
}

/* One allocation that may fail harmlessly, for each injector. */
static void throwaway(int inj)
{
	static const char page[4096];
	int fd, pfd[2];

	if (inj == SLAB) {
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		return;
	}
	/* A new pipe has no cached page: the write allocates one. */
	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK))
		return;
	if (write(pfd[1], page, sizeof(page)) < 0 && errno != ENOMEM)
		CHECK(!"pipe write failed other than ENOMEM");
	close(pfd[0]);
	close(pfd[1]);
}

/* Points injector @inj at the @nth allocation made after the next arm(). */
static void aim(int inj, unsigned long nth)
{
	char value[32];
	struct armed a;

	if (xarray_nodes_only) {
		/* Interval 1: the first @nth node allocations fail. */
		arm_times = nth;
		return;
	}
	arm_times = 1;
	snprintf(value, sizeof(value), "%lu", nth);
	injector_set(inj, "interval", value);
	if (nth == 1)
		return;
	for (unsigned long i = 0; i < 64 * nth + 64; i++) {
		arm(&a, inj);
		throwaway(inj);
		if (disarm(&a))
			return;
	}
	CHECK(!"the injector never fired: is fault injection configured?");
}

static void injectors_setup(void)
{
	for (int inj = 0; inj < NR_INJECTORS; inj++) {
		injector_set(inj, "times", "0");
		injector_set(inj, "probability", "100");
		injector_set(inj, "interval", "1");
		injector_set(inj, "space", "0");
		/* Level 2 dumps a stack, which the splat matcher would take for a splat. */
		injector_set(inj, "verbose", "0");
		injector_set(inj, "task-filter", "Y");
		injector_set(inj, "ignore-gfp-wait", "N");
		times_fd[inj] = times_open(inj);
	}
	injector_set(PAGE_ALLOC, "ignore-gfp-highmem", "N");
	injector_set(PAGE_ALLOC, "min-order", "0");
	if (xarray_nodes_only) {
		/* radix_tree_node has a constructor, so it is never merged with another cache. */
		write_file(XARRAY_NODE_FAILSLAB, "1");
		injector_set(SLAB, "cache-filter", "Y");
	}
	write_file("/proc/self/make-it-fail", "1");
}

/* Puts back the boot-time settings of both injectors. */
static void injectors_reset(void)
{
	write_file("/proc/self/make-it-fail", "0");
	for (int inj = 0; inj < NR_INJECTORS; inj++) {
		injector_set(inj, "probability", "0");
		injector_set(inj, "interval", "1");
		injector_set(inj, "times", "1");
		injector_set(inj, "verbose", "2");
		injector_set(inj, "task-filter", "N");
		injector_set(inj, "ignore-gfp-wait", "Y");
	}
	injector_set(PAGE_ALLOC, "ignore-gfp-highmem", "Y");
	injector_set(PAGE_ALLOC, "min-order", "1");
	injector_set(SLAB, "cache-filter", "N");
	write_file(XARRAY_NODE_FAILSLAB, "0");
}

static long stat_value(const char *key)
{
	long value = key_value(STATS, key);

	CHECK(value >= 0);
	return value;
}

struct counters {
	long areas, pages, faults, removals, restores;
};

static struct counters counters_now(void)
{
	return (struct counters){
		.areas = stat_value("areas"),
		.pages = stat_value("pages"),
		.faults = stat_value("faults"),
		.removals = stat_value("direct_map_removals"),
		.restores = stat_value("direct_map_restores"),
	};
}

/* What one trial did: the operation's result once its nth allocation failed. */
struct trial {
	int inj;
	unsigned long nth;
	bool fired;
	const char *outcome;
};

static int create(bool syscall_entry, unsigned int flags)
{
	int dev, fd, err;

	if (syscall_entry)
		return entry_syscall(flags);
	dev = open(SECRETMEM_DEVICE, O_RDWR | O_CLOEXEC);
	CHECK(dev >= 0);
	fd = ioctl(dev, SECRETMEM_CREATE, flags);
	err = errno;
	close(dev);
	errno = err;
	return fd;
}

/* The one errno an allocation failure may give. */
static const char *errno_outcome(int err)
{
	if (err != ENOMEM) {
		fprintf(stderr, "  undocumented errno %d (%s) after a failed allocation\n",
			err, strerror(err));
		exit(1);
	}
	return "ENOMEM";
}

/*
 * Creation through @syscall_entry or the ioctl, with @flags; the ioctl on a
 * kernel without the system call.
 */
static void create_trial(struct trial *t, bool syscall_entry, unsigned int flags)
{
	long nr = secretmemfd_syscall_nr();
	int dev = -1, fd, err;
	struct armed a;

	syscall_entry = syscall_entry && expect_syscall();
	if (!syscall_entry) {
		dev = open(SECRETMEM_DEVICE, O_RDWR | O_CLOEXEC);
		CHECK(dev >= 0);
	} else {
		CHECK(nr >= 0);
	}
	arm(&a, t->inj);
	fd = syscall_entry ? syscall(nr, flags) : ioctl(dev, SECRETMEM_CREATE, flags);
	err = errno;
	t->fired = disarm(&a);
	if (dev >= 0)
		close(dev);
	if (fd >= 0) {
		t->outcome = "created anyway";
		CHECK(ftruncate(fd, ps) == 0);
		close(fd);
	} else if (err == EPERM && (flags & SECRETMEM_UNCACHED)) {
		/* Documented: uncached memory may need a privilege. */
		t->outcome = "EPERM (uncached needs a privilege)";
	} else {
		t->outcome = errno_outcome(err);
	}
}

static void op_create_ioctl(struct trial *t)
{
	create_trial(t, false, SECRETMEM_EXCLUSIVE);
}

static void op_create_syscall(struct trial *t)
{
	create_trial(t, true, SECRETMEM_EXCLUSIVE | O_CLOEXEC);
}

static void op_create_uncached(struct trial *t)
{
	create_trial(t, false, SECRETMEM_UNCACHED);
}

static void op_ftruncate(struct trial *t)
{
	int fd = create(false, 0), ret, err;
	struct armed a;
	struct stat st;

	CHECK(fd >= 0);
	arm(&a, t->inj);
	ret = ftruncate(fd, 2 * ps);
	err = errno;
	t->fired = disarm(&a);
	CHECK(fstat(fd, &st) == 0);
	if (ret == 0) {
		t->outcome = "sized anyway";
		CHECK(st.st_size == 2 * ps);
	} else {
		/* A failed sizing must not use up the one sizing. */
		t->outcome = errno_outcome(err);
		CHECK(st.st_size == 0);
		CHECK(ftruncate(fd, 2 * ps) == 0);
	}
	close(fd);
}

static void op_mmap(struct trial *t)
{
	int fd = create(false, 0), err;
	struct armed a;
	char *p;

	CHECK(fd >= 0 && ftruncate(fd, 2 * ps) == 0);
	arm(&a, t->inj);
	p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = errno;
	t->fired = disarm(&a);
	if (p != MAP_FAILED) {
		t->outcome = "mapped anyway";
		p[ps] = 1;
		CHECK(munmap(p, 2 * ps) == 0);
	} else {
		t->outcome = errno_outcome(err);
	}
	close(fd);
}

/*
 * The first touch of page 1 (a page the XArray needs a node for) in a child,
 * which arms the injector itself. The module's counters tell where the
 * failure was: a second call of the fault handler means the handler gave up
 * with VM_FAULT_OOM and the fault was retried; a second removal from the
 * direct map means it gave up after the page had left the direct map.
 */
static void fault_trial(struct trial *t, unsigned int flags)
{
	int fd = create(false, flags), status;
	struct counters before, after;
	struct armed a;
	char *p;
	pid_t pid;

	if (fd < 0 && errno == EPERM && (flags & SECRETMEM_UNCACHED)) {
		t->outcome = "EPERM (uncached needs a privilege)";
		t->fired = false;
		return;
	}
	CHECK(fd >= 0 && ftruncate(fd, 2 * ps) == 0);
	p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	before = counters_now();
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		bool same, fired;

		arm(&a, t->inj);
		((volatile char *)p)[ps] = 0x5a;
		same = ((volatile char *)p)[ps] == 0x5a;
		fired = disarm(&a);
		_exit(!same ? 1 : fired ? 10 : 11);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	/* A child killed in the window was killed by an injection, which disarmed. */
	if (t->inj >= 0)
		set_times(t->inj, 0);
	after = counters_now();
	if (WIFEXITED(status) && (WEXITSTATUS(status) == 10 || WEXITSTATUS(status) == 11)) {
		t->fired = WEXITSTATUS(status) == 10;
		CHECK(p[ps] == 0x5a);
		CHECK(after.pages == before.pages + 1);
		if (after.faults - before.faults < 2)
			t->outcome = "served (failure absorbed, or retried before the handler)";
		else if (after.removals - before.removals >= 2)
			t->outcome = "handler: VM_FAULT_OOM after the page left the direct map, retried";
		else
			t->outcome = "handler: VM_FAULT_OOM, retried";
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) {
		t->fired = true;
		t->outcome = "SIGBUS";
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
		t->fired = true;
		t->outcome = "OOM-killed";
	} else {
		fprintf(stderr, "  fault child: %s %d\n",
			WIFSIGNALED(status) ? "signal" : "exit",
			WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		CHECK(!"the faulting child ended in an undocumented way");
	}
	CHECK(after.removals - after.restores == after.pages);
	CHECK(munmap(p, 2 * ps) == 0);
	close(fd);
}

static void op_fault(struct trial *t)
{
	fault_trial(t, SECRETMEM_EXCLUSIVE);
}

static void op_fault_uncached(struct trial *t)
{
	fault_trial(t, SECRETMEM_UNCACHED);
}

/* A mapped area of two touched pages. */
static char *touched_area(int *fdp)
{
	int fd = create(false, 0);
	char *p;

	CHECK(fd >= 0 && ftruncate(fd, 2 * ps) == 0);
	p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	p[0] = p[ps] = 1;
	*fdp = fd;
	return p;
}

/* munmap then close: the close drops the last reference and releases. */
static void op_release(struct trial *t)
{
	int fd, ret, err;
	char *p = touched_area(&fd);
	struct armed a;

	arm(&a, t->inj);
	ret = munmap(p, 2 * ps);
	err = errno;
	CHECK(close(fd) == 0);
	t->fired = disarm(&a);
	if (ret == 0) {
		t->outcome = "released anyway";
	} else {
		/* The mapping is still whole: unmapping again releases. */
		t->outcome = errno_outcome(err);
		CHECK(p[ps] == 1);
		CHECK(munmap(p, 2 * ps) == 0);
	}
}

/* close then munmap: the munmap drops the last reference and releases. */
static void op_release_by_munmap(struct trial *t)
{
	int fd, ret, err;
	char *p = touched_area(&fd);
	struct armed a;

	CHECK(close(fd) == 0);
	arm(&a, t->inj);
	ret = munmap(p, 2 * ps);
	err = errno;
	t->fired = disarm(&a);
	if (ret == 0) {
		t->outcome = "released anyway";
	} else {
		t->outcome = errno_outcome(err);
		CHECK(p[ps] == 1);
		CHECK(munmap(p, 2 * ps) == 0);
	}
}

#define MAX_OUTCOMES 8

/* Fails each allocation of @op in turn with injector @inj and tallies the outcomes. */
static void run_op(const char *name, void (*op)(struct trial *), int inj)
{
	const char *outcome[MAX_OUTCOMES];
	unsigned long count[MAX_OUTCOMES] = { 0 }, nth, max_nth;
	struct counters base;
	int kinds = 0;

	max_nth = xarray_nodes_only ? MAX_XARRAY_BURST : MAX_NTH;
	injectors_setup();
	/* One run with nothing armed: lazy set-up in libc and the kernel happens now. */
	{
		struct trial warm = { .inj = -1, .nth = 0 };

		op(&warm);
	}
	base = counters_now();
	for (nth = 1; nth <= max_nth; nth++) {
		struct trial t = { .inj = inj, .nth = nth };
		struct counters now;
		int k;

		aim(inj, nth);
		op(&t);
		now = counters_now();
		if (now.areas != base.areas || now.pages != base.pages ||
		    now.removals - now.restores != base.removals - base.restores) {
			fprintf(stderr, "  %s/%s: allocation %lu (%s) left areas %ld->%ld, pages %ld->%ld, removals-restores %ld->%ld\n",
				name, injector_name[inj], nth, t.outcome, base.areas, now.areas,
				base.pages, now.pages, base.removals - base.restores,
				now.removals - now.restores);
			exit(1);
		}
		if (!t.fired)
			break;
		for (k = 0; k < kinds && strcmp(outcome[k], t.outcome); k++)
			;
		if (k == kinds) {
			CHECK(kinds < MAX_OUTCOMES);
			outcome[kinds++] = t.outcome;
		}
		count[k]++;
	}
	injectors_reset();
	if (xarray_nodes_only)
		printf("# %s/radix_tree_node: the first 1 to %lu node allocations failed", name,
		       nth - 1);
	else
		printf("# %s/%s: %lu allocation%s failed in turn%s", name, injector_name[inj],
		       nth - 1, nth == 2 ? "" : "s", nth > max_nth ? " (stopped at the cap)" : "");
	for (int k = 0; k < kinds; k++)
		printf("%s %lu %s", k ? "," : ":", count[k], outcome[k]);
	printf("\n");
	fflush(stdout);
}

#define OP_TESTS(op)								\
	static void test_##op##_failslab(void) { run_op(#op, op_##op, SLAB); }	\
	static void test_##op##_fail_page_alloc(void)				\
	{									\
		run_op(#op, op_##op, PAGE_ALLOC);				\
	}

OP_TESTS(create_ioctl)
OP_TESTS(create_syscall)
OP_TESTS(create_uncached)
OP_TESTS(ftruncate)
OP_TESTS(mmap)
OP_TESTS(fault)
OP_TESTS(fault_uncached)
OP_TESTS(release)
OP_TESTS(release_by_munmap)

/* The fault with failslab on the XArray's nodes only: the store itself fails. */
static void test_fault_xarray_node(void)
{
	xarray_nodes_only = true;
	run_op("fault", op_fault, SLAB);
}

static sigjmp_buf sigbus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(sigbus_jmp, sig);
}

/* Whether touching @addr raises SIGBUS, in this process. */
static bool touch_sigbus(char *addr)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	volatile bool sigbus = false;

	CHECK(sigaction(SIGBUS, &sa, &old) == 0);
	if (sigsetjmp(sigbus_jmp, 1))
		sigbus = true;
	else
		*(volatile char *)addr = 1;
	CHECK(sigaction(SIGBUS, &old, NULL) == 0);
	return sigbus;
}

static void drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	CHECK(syscall(SYS_capget, &hdr, data) == 0);
	data[0].effective &= ~(1U << CAP_IPC_LOCK);
	data[0].permitted &= ~(1U << CAP_IPC_LOCK);
	data[0].inheritable &= ~(1U << CAP_IPC_LOCK);
	CHECK(syscall(SYS_capset, &hdr, data) == 0);
}

/*
 * Every charge the trials took (as root) is refunded: with CAP_IPC_LOCK
 * dropped and a limit of 16 pages, 16 pages fit and the 17th raises SIGBUS.
 * A charge left behind would make one of the first 16 fail.
 */
static void memlock_probe(void *arg)
{
	const long limit = 16;
	struct rlimit lim = { limit * ps, limit * ps };
	int fd;
	char *p;

	(void)arg;
	drop_cap_ipc_lock();
	CHECK(setrlimit(RLIMIT_MEMLOCK, &lim) == 0);
	p = secret_map(&fd, 0, limit + 1);
	for (long i = 0; i < limit; i++)
		if (touch_sigbus(p + i * ps)) {
			fprintf(stderr, "  page %ld of %ld raised SIGBUS: a charge was not refunded\n",
				i + 1, limit);
			exit(1);
		}
	CHECK(touch_sigbus(p + limit * ps));
}

static void test_counters_zero_and_memlock_refunded(void)
{
	struct counters c = counters_now();

	printf("# after the trials: areas %ld, pages %ld, faults %ld, removals %ld, restores %ld, VmLck %ld kB\n",
	       c.areas, c.pages, c.faults, c.removals, c.restores,
	       key_value("/proc/self/status", "VmLck"));
	fflush(stdout);
	CHECK(c.areas == 0 && c.pages == 0);
	CHECK(c.removals == c.restores);
	CHECK(key_value("/proc/self/status", "VmLck") == 0);
	CHECK(child_signal(memlock_probe, NULL) == 0);
	c = counters_now();
	CHECK(c.areas == 0 && c.pages == 0 && c.removals == c.restores);
}

#define OP_ENTRIES(op)						\
	{ #op "/failslab", test_##op##_failslab },		\
	{ #op "/fail_page_alloc", test_##op##_fail_page_alloc }

static const struct test tests[] = {
	OP_ENTRIES(create_ioctl),
	OP_ENTRIES(create_syscall),
	OP_ENTRIES(create_uncached),
	OP_ENTRIES(ftruncate),
	OP_ENTRIES(mmap),
	OP_ENTRIES(fault),
	OP_ENTRIES(fault_uncached),
	{ "fault/radix_tree_node", test_fault_xarray_node },
	OP_ENTRIES(release),
	OP_ENTRIES(release_by_munmap),
	{ "counters_zero_and_memlock_refunded", test_counters_zero_and_memlock_refunded },
};

int main(int argc, char **argv)
{
	return run_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
