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
 *
 * The failures that no allocation causes (a direct-map change, a memory-type
 * change, the locked-memory charge, the file's creation, the system call's
 * access check) and the block allocation, which the generic injectors cannot
 * tell from the page allocations around it, go through the module's own
 * injectable wrappers (secretmem_shim.c). The "fail_function/" tests fail
 * those with fail_function, aimed at this task the same way, and check the
 * documented result, the counters, and that the kernel log says "leaking"
 * exactly when the module gives pages up. Those that do give pages up, on
 * purpose, run only as "fault_inject_test --leaks": a page whose restore
 * failed stays out of the direct map for the rest of the boot and is counted
 * as a removal never restored, so make check runs them after every suite
 * that expects removals and restores to balance.
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

/* The generic injectors come first: the loops over NR_INJECTORS set only those. */
enum { SLAB, PAGE_ALLOC, NR_INJECTORS, FUNC = NR_INJECTORS };
static const char *const injector_name[] = { "failslab", "fail_page_alloc", "fail_function" };
/* Descriptors of each injector's `times`, opened before anything is armed. */
static int times_fd[NR_INJECTORS + 1] = { -1, -1, -1 };
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
	long areas, pages, faults, removals, restores, fallbacks, leaked;
};

static struct counters counters_now(void)
{
	return (struct counters){
		.areas = stat_value("areas"),
		.pages = stat_value("pages"),
		.faults = stat_value("faults"),
		.removals = stat_value("direct_map_removals"),
		.restores = stat_value("direct_map_restores"),
		.fallbacks = stat_value("block_fallbacks"),
		.leaked = stat_value("leaked_pages"),
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

	printf("# after the trials: areas %ld, pages %ld, faults %ld, removals %ld, restores %ld, leaked %ld, VmLck %ld kB\n",
	       c.areas, c.pages, c.faults, c.removals, c.restores, c.leaked,
	       key_value("/proc/self/status", "VmLck"));
	fflush(stdout);
	CHECK(c.areas == 0 && c.pages == 0);
	CHECK(c.removals == c.restores);
	/* Nothing here gives pages up: the --leaks tests do, last. */
	CHECK(c.leaked == 0);
	CHECK(key_value("/proc/self/status", "VmLck") == 0);
	CHECK(child_signal(memlock_probe, NULL) == 0);
	c = counters_now();
	CHECK(c.areas == 0 && c.pages == 0 && c.removals == c.restores);
}

/*
 * fail_function on the module's injectable points. Its one fault_attr serves
 * every function written to `inject`: `times` failures in a row, after
 * `space` lets calls through, counted over all of them. Its task-filter
 * cannot aim: the kprobe handler that asks runs in the int3 handler, in NMI
 * context, where in_task() is false, so with the filter on nothing ever
 * fails. The window from setting `times` to reading it back aims instead:
 * nothing else in the guest uses secret memory while this suite runs, and
 * a stray failure would show in the counters each trial checks.
 */
#define FAIL_FUNCTION DEBUGFS "/fail_function"

static void ff_setup(void)
{
	/* A trial that stopped early may have left points behind. */
	write_file(FAIL_FUNCTION "/inject", " ");
	injector_set(FUNC, "times", "0");
	injector_set(FUNC, "probability", "100");
	injector_set(FUNC, "interval", "1");
	injector_set(FUNC, "space", "0");
	/* Level 2 dumps a stack, which the splat matcher would take for a splat. */
	injector_set(FUNC, "verbose", "0");
	injector_set(FUNC, "task-filter", "N");
	times_fd[FUNC] = times_open(FUNC);
}

/* Removes every point and puts back fail_function's boot-time settings. */
static void ff_reset(void)
{
	write_file(FAIL_FUNCTION "/inject", " ");
	injector_set(FUNC, "probability", "0");
	injector_set(FUNC, "space", "0");
	injector_set(FUNC, "times", "1");
	injector_set(FUNC, "verbose", "2");
}

/* Makes @fn return -@err when it fails, or NULL for @err 0. */
static void ff_add(const char *fn, int err)
{
	char path[160], value[32];

	write_file(FAIL_FUNCTION "/inject", fn);
	snprintf(path, sizeof(path), FAIL_FUNCTION "/%s/retval", fn);
	snprintf(value, sizeof(value), "%#lx", (unsigned long)-(long)err);
	write_file(path, value);
}

/* Ends an armed window; returns whether every failure it was armed for happened. */
static bool ff_disarm(void)
{
	int fd = times_open(FUNC);
	bool fired = read_fresh(fd) == 0;

	close(fd);
	set_times(FUNC, 0);
	return fired;
}

/* The kernel log from now on: a /dev/kmsg reader at its end. */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	CHECK(fd >= 0);
	CHECK(lseek(fd, 0, SEEK_END) >= 0);
	return fd;
}

/* Whether a record logged since kmsg_open() contains @text; closes @fd. */
static bool kmsg_says(int fd, const char *text)
{
	char rec[1024];
	bool found = false;
	ssize_t n;

	while ((n = read(fd, rec, sizeof(rec) - 1)) != 0) {
		if (n < 0 && errno == EPIPE)
			continue;
		if (n < 0)
			break;
		rec[n] = '\0';
		found |= strstr(rec, text) != NULL;
	}
	close(fd);
	return found;
}

static bool backend_mce_helpers(void)
{
	return key_line_starts(STATS, "backend", "mce-helpers\n");
}

/* Creation with fail_function failing @fn with -@err, through the ioctl or the system call. */
static void ff_create(const char *fn, int err, bool syscall_entry)
{
	long nr = secretmemfd_syscall_nr();
	int dev = -1, fd, got, lowest, next;
	struct counters before, after;
	bool fired;

	if (syscall_entry && !expect_syscall()) {
		/* No stub in this kernel, so no such point: the number answers ENOSYS. */
		CHECK(nr == -1);
		CHECK_ERR(syscall(473, SECRETMEM_EXCLUSIVE), ENOSYS);
		printf("# fail_function: %s: no system call on this kernel (ENOSYS)\n", fn);
		return;
	}
	CHECK(!syscall_entry || nr >= 0);
	ff_setup();
	ff_add(fn, err);
	if (!syscall_entry) {
		dev = open(SECRETMEM_DEVICE, O_RDWR | O_CLOEXEC);
		CHECK(dev >= 0);
	}
	/* The descriptor a creation would take. */
	lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(lowest >= 0 && close(lowest) == 0);
	before = counters_now();
	set_times(FUNC, 1);
	fd = syscall_entry ? syscall(nr, SECRETMEM_EXCLUSIVE) :
			     ioctl(dev, SECRETMEM_CREATE, SECRETMEM_EXCLUSIVE);
	got = errno;
	fired = ff_disarm();
	after = counters_now();
	/* No descriptor was installed or kept reserved: the lowest one is still free. */
	next = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ff_reset();
	printf("# fail_function: %s -> -%s: %s gave %s; areas %ld -> %ld, descriptor %d %s\n",
	       fn, strerrorname_np(err), syscall_entry ? "secretmemfd()" : "SECRETMEM_CREATE",
	       fd < 0 ? strerrorname_np(got) : "a descriptor", before.areas, after.areas,
	       lowest, next == lowest ? "still free" : "taken");
	fflush(stdout);
	CHECK(fired);
	CHECK(fd == -1 && got == err);
	CHECK(after.areas == before.areas);
	CHECK(next == lowest);
	close(next);
	if (dev >= 0)
		close(dev);
}

static void test_ff_create_ioctl_file_create(void)
{
	ff_create("secretmem_shim_file_create", ENOMEM, false);
}

static void test_ff_create_syscall_file_create(void)
{
	ff_create("secretmem_shim_file_create", ENOMEM, true);
}

static void test_ff_create_syscall_device_check(void)
{
	ff_create("secretmem_shim_may_open_device", EACCES, true);
}

enum ff_when { FF_FAULT, FF_RELEASE };
enum ff_end { FF_SERVED, FF_SIGBUS, FF_KILLED };
static const char *const ff_end_name[] = { "served", "SIGBUS", "killed" };

/* One fail_function trial on the first touch of an area or on its release, and what it must give. */
struct ff_case {
	const char *fn[3];	/* the functions that fail, NULL-terminated */
	int err;		/* what they return: -err, or NULL for 0 */
	int times;		/* failures in a row */
	int passes_mce;		/* calls let through first, on the mce-helpers backend */
	unsigned int flags;	/* of the area */
	long pages;		/* its size: 512 pages is one whole 2 MiB chunk, a block */
	enum ff_when when;
	/* Expected: */
	enum ff_end end;	/* how the touch ends */
	long faults;		/* handler calls: 2 when VM_FAULT_OOM made the core retry */
	long fallbacks;		/* block_fallbacks added */
	long leaked;		/* leaked_pages added */
	long out;		/* of those, pages left out of the direct map (patched backend) */
	long out_mce;		/* the same on the mce-helpers backend */
	const char *log;	/* what the kernel log says, or NULL: it must not say "leaking" */
};

/* Touches @p in a child, which arms fail_function for @times failures. */
static enum ff_end ff_touch(char *p, int times)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		set_times(FUNC, times);
		((volatile char *)p)[0] = 0x5a;
		_exit(((volatile char *)p)[0] == 0x5a ? 0 : 1);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return FF_SERVED;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS)
		return FF_SIGBUS;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		return FF_KILLED;
	fprintf(stderr, "  fault child: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	CHECK(!"the faulting child ended in an undocumented way");
	return FF_KILLED;
}

#define BLOCK 512

/* Whether new areas take 2 MiB blocks (the `blocks` module parameter). */
static bool blocks_on(void)
{
	char value = 0;
	FILE *f = fopen("/sys/module/secretmemfd/parameters/blocks", "re");

	CHECK(f);
	CHECK(fread(&value, 1, 1, f) == 1);
	fclose(f);
	return value == 'Y';
}

static void ff_run(const char *name, const struct ff_case *c)
{
	bool mce = backend_mce_helpers(), fired, logged, restore_blocks = false;
	long out = mce ? c->out_mce : c->out, touched = 0, faults = 0;
	struct counters base, now, mid;
	enum ff_end end = FF_SERVED;
	char space[16], fns[160] = "";
	int fd, kmsg;
	char *p;

	/* Off by default on the mce-helpers backend: on for block cases, then back. */
	if (c->pages >= BLOCK && !blocks_on()) {
		write_file("/sys/module/secretmemfd/parameters/blocks", "Y");
		restore_blocks = true;
	}
	ff_setup();
	for (int i = 0; c->fn[i]; i++) {
		ff_add(c->fn[i], c->err);
		snprintf(fns + strlen(fns), sizeof(fns) - strlen(fns), "%s%s", i ? " + " : "",
			 c->fn[i]);
	}
	/* `space` N lets N - 1 calls through (it fails once space is not above the call's 1). */
	snprintf(space, sizeof(space), "%d", mce && c->passes_mce ? c->passes_mce + 1 : 0);
	injector_set(FUNC, "space", space);

	base = counters_now();
	fd = secretmemfd(c->flags);
	CHECK(fd >= 0 && ftruncate(fd, c->pages * ps) == 0);
	p = mmap(NULL, c->pages * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	kmsg = kmsg_open();
	if (c->when == FF_FAULT) {
		end = ff_touch(p, c->times);
		fired = ff_disarm();
		mid = counters_now();
		touched = end == FF_SERVED;
		faults = mid.faults - base.faults;
		if (touched)
			CHECK(p[0] == 0x5a);
		CHECK(munmap(p, c->pages * ps) == 0);
		CHECK(close(fd) == 0);
	} else {
		p[0] = 1;
		set_times(FUNC, c->times);
		CHECK(munmap(p, c->pages * ps) == 0);
		CHECK(close(fd) == 0);
		fired = ff_disarm();
	}
	now = counters_now();
	logged = c->log ? kmsg_says(kmsg, c->log) : kmsg_says(kmsg, "leaking");
	ff_reset();
	printf("# fail_function: %s -> %s%s x%d%s: %s %s; faults +%ld, block_fallbacks +%ld, leaked_pages +%ld, out of the direct map +%ld%s%s%s\n",
	       fns, c->err ? "-" : "NULL", c->err ? strerrorname_np(c->err) : "", c->times,
	       mce && c->passes_mce ? " after a pass" : "", name,
	       c->when == FF_FAULT ? ff_end_name[end] : "released", faults,
	       now.fallbacks - base.fallbacks, now.leaked - base.leaked,
	       (now.removals - now.restores) - (base.removals - base.restores),
	       c->log ? ", log: \"" : "", c->log && logged ? c->log : c->log ? "(missing)" : "",
	       c->log ? "\"" : "");
	fflush(stdout);
	CHECK(fired);
	CHECK(c->log ? logged : !logged);
	if (c->when == FF_FAULT) {
		CHECK(end == c->end);
		CHECK(faults == c->faults);
		/* While mapped: the touched page, if any, and nothing else. */
		CHECK(mid.pages - base.pages == touched);
		CHECK(mid.removals - mid.restores == base.removals - base.restores + touched + out);
	}
	CHECK(now.areas == base.areas && now.pages == base.pages);
	CHECK(now.fallbacks - base.fallbacks == c->fallbacks);
	CHECK(now.leaked - base.leaked == c->leaked);
	CHECK(now.removals - now.restores == base.removals - base.restores + out);
	if (restore_blocks)
		write_file("/sys/module/secretmemfd/parameters/blocks", "N");
}

#define DIRECT_MAP_REMOVE "secretmem_shim_direct_map_remove"
#define DIRECT_MAP_RESTORE "secretmem_shim_direct_map_restore"
#define ALLOC_PAGES "secretmem_shim_alloc_pages"
#define CHARGE_LOCKED "secretmem_shim_charge_locked"
#define SET_PAGES_UC "secretmem_shim_set_pages_uc"
#define SET_PAGES_WB "secretmem_shim_set_pages_wb"

#define FF_TEST(test, ...)							\
	static void test_ff_##test(void)					\
	{									\
		static const struct ff_case c = { __VA_ARGS__ };		\
		ff_run(#test, &c);						\
	}

/* A page's allocation: the fault gives up with VM_FAULT_OOM and is retried. */
FF_TEST(fault_alloc_page, .fn = { ALLOC_PAGES }, .times = 1, .pages = 2,
	.end = FF_SERVED, .faults = 2)
/* A block's allocation: the chunk takes single pages, never an error. */
FF_TEST(fault_alloc_block, .fn = { ALLOC_PAGES }, .times = 1, .pages = BLOCK,
	.end = FF_SERVED, .faults = 1, .fallbacks = 1)
/* A page's memlock charge: SIGBUS, as over RLIMIT_MEMLOCK. */
FF_TEST(fault_charge_page, .fn = { CHARGE_LOCKED }, .err = EAGAIN, .times = 1, .pages = 2,
	.end = FF_SIGBUS, .faults = 1)
/* A block's charge: single pages instead. */
FF_TEST(fault_charge_block, .fn = { CHARGE_LOCKED }, .err = EAGAIN, .times = 1,
	.pages = BLOCK, .end = FF_SERVED, .faults = 1, .fallbacks = 1)
/* A block's charge, then the page's: SIGBUS. */
FF_TEST(fault_charge_block_and_page, .fn = { CHARGE_LOCKED }, .err = EAGAIN, .times = 2,
	.pages = BLOCK, .end = FF_SIGBUS, .faults = 1, .fallbacks = 1)
/* The removal from the direct map, ENOMEM: the page is put back and freed, the fault retried. */
FF_TEST(fault_remove_enomem, .fn = { DIRECT_MAP_REMOVE }, .err = ENOMEM, .times = 1,
	.pages = 2, .end = FF_SERVED, .faults = 2)
/* The removal, any other errno: SIGBUS. */
FF_TEST(fault_remove_einval, .fn = { DIRECT_MAP_REMOVE }, .err = EINVAL, .times = 1,
	.pages = 2, .end = FF_SIGBUS, .faults = 1)
/* A block's removal: the block is put back and freed, single pages instead. */
FF_TEST(fault_remove_block, .fn = { DIRECT_MAP_REMOVE }, .err = ENOMEM, .times = 1,
	.pages = BLOCK, .end = FF_SERVED, .faults = 1, .fallbacks = 1)
/* The switch to UC- of an uncached page: back to write-back and freed, the fault retried. */
FF_TEST(fault_uncached_set_uc, .fn = { SET_PAGES_UC }, .err = ENOMEM, .times = 1,
	.flags = SECRETMEM_UNCACHED, .pages = 2, .end = FF_SERVED, .faults = 2)

#define POOL_BATCH "/sys/module/secretmemfd/parameters/pool_batch"

/*
 * The page pool (patched backend): a fault that finds no page for its cgroup
 * takes a batch of 32 out of the direct map. A failure within the batch
 * shortens it; a batch that gets no page at all falls back to one page of
 * its own, as without the pool. @space lets @space - 1 calls through first.
 * The rest of this suite runs with the pool off (main), so that each single
 * page costs exactly its own calls.
 */
static void ff_pool(const char *name, const char *fn, int err, int space, int times,
		    long faults, long pool)
{
	struct counters base, now;
	enum ff_end end;
	char value[16];
	long waiting;
	bool fired;
	int fd;
	char *p;

	if (backend_mce_helpers()) {
		/* root_test checks that the pool and its parameter do not exist there. */
		printf("# %s: the mce-helpers backend has no page pool\n", name);
		return;
	}
	write_file(POOL_BATCH, "32");
	CHECK(stat_value("pool_pages") == 0);
	ff_setup();
	ff_add(fn, err);
	snprintf(value, sizeof(value), "%d", space);
	injector_set(FUNC, "space", value);
	base = counters_now();
	p = secret_map(&fd, 0, 2);
	end = ff_touch(p, times);
	fired = ff_disarm();
	/* First: a kswapd shrink in between would only lower it. */
	waiting = stat_value("pool_pages");
	now = counters_now();
	ff_reset();
	printf("# fail_function: %s -> %s x%d after %d calls: %s %s; faults +%ld, pool_pages %ld\n",
	       fn, err ? strerrorname_np(err) : "NULL", times, space ? space - 1 : 0, name,
	       ff_end_name[end], now.faults - base.faults, waiting);
	fflush(stdout);
	CHECK(fired);
	CHECK(end == FF_SERVED && p[0] == 0x5a);
	CHECK(now.faults - base.faults == faults);
	/*
	 * At most @pool: a batch's pages past the first get no direct reclaim,
	 * so it may be shorter when free memory is.
	 */
	CHECK(waiting <= pool);
	/* Out of the direct map: the page in use and the pool's, nothing else. */
	CHECK(now.removals - now.restores == base.removals - base.restores + 1 + waiting);
	CHECK(now.leaked == base.leaked);
	CHECK(munmap(p, 2 * ps) == 0 && close(fd) == 0);
	write_file(POOL_BATCH, "0");
	now = counters_now();
	CHECK(stat_value("pool_pages") == 0);
	CHECK(now.removals - now.restores == base.removals - base.restores);
}

/* The second page's allocation: a batch of one, the fault served. */
static void test_ff_pool_alloc_second(void)
{
	ff_pool("pool_alloc_second", ALLOC_PAGES, 0, 2, 1, 1, 0);
}

/* The third page's removal: that page is put back and freed, a batch of two. */
static void test_ff_pool_remove_third(void)
{
	ff_pool("pool_remove_third", DIRECT_MAP_REMOVE, ENOMEM, 3, 1, 1, 1);
}

/* The batch's first allocation: one page of its own instead, no pool. */
static void test_ff_pool_alloc_first(void)
{
	ff_pool("pool_alloc_first", ALLOC_PAGES, 0, 0, 1, 1, 0);
}

/* The batch's and the lone page's: VM_FAULT_OOM, and the retry fills a batch. */
static void test_ff_pool_alloc_first_and_lone(void)
{
	ff_pool("pool_alloc_first_and_lone", ALLOC_PAGES, 0, 0, 2, 2, 31);
}

/*
 * Deliberate leaks (--leaks). A removal that fails and cannot be undone:
 * the 512 pages are given up, the chunk takes single pages. On the
 * mce-helpers backend the removal fails at the block's second page, after the
 * first has really left the direct map; that page stays out.
 */
FF_TEST(leak_remove_undo, .fn = { DIRECT_MAP_REMOVE, DIRECT_MAP_RESTORE }, .err = ENOMEM,
	.times = 2, .passes_mce = 1, .pages = BLOCK, .end = FF_SERVED, .faults = 1,
	.fallbacks = 1, .leaked = BLOCK, .out_mce = 1,
	.log = "cannot undo a failed direct-map removal: leaking 512 pages")
/* The restore at release: the page is given up while out of the direct map. */
FF_TEST(leak_release_restore, .fn = { DIRECT_MAP_RESTORE }, .err = ENOMEM, .times = 1,
	.pages = 2, .when = FF_RELEASE, .leaked = 1, .out = 1, .out_mce = 1,
	.log = "cannot restore the direct map of 1 secret pages (-12): leaking them")
/* UC- fails, then write-back: the page (in the direct map) is given up, the fault retried. */
FF_TEST(leak_uncached_set_uc_and_wb, .fn = { SET_PAGES_UC, SET_PAGES_WB }, .err = ENOMEM,
	.times = 2, .flags = SECRETMEM_UNCACHED, .pages = 2, .end = FF_SERVED, .faults = 2,
	.leaked = 1, .log = "cannot restore write-back on 1 secret pages (-12): leaking them")
/* Write-back at release: the page is back in the direct map and zeroed, but given up. */
FF_TEST(leak_uncached_release_wb, .fn = { SET_PAGES_WB }, .err = ENOMEM, .times = 1,
	.flags = SECRETMEM_UNCACHED, .pages = 2, .when = FF_RELEASE, .leaked = 1,
	.log = "cannot restore write-back on 1 secret pages (-12): leaking them")

/*
 * After the whole --leaks group, on a module that leaked nothing before it
 * (the last test of the other group checks that): exactly the pages the
 * group gave up are leaked, and only those whose restore failed are out of
 * the direct map.
 */
static void test_counters_after_leaks(void)
{
	struct counters c = counters_now();
	long out = backend_mce_helpers() ? 2 : 1;

	printf("# after the deliberate leaks: areas %ld, pages %ld, leaked_pages %ld, removals - restores %ld (pages left out of the direct map)\n",
	       c.areas, c.pages, c.leaked, c.removals - c.restores);
	fflush(stdout);
	CHECK(c.areas == 0 && c.pages == 0);
	CHECK(c.leaked == BLOCK + 3);
	CHECK(c.removals - c.restores == out);
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
	{ "fail_function/create_ioctl/file_create", test_ff_create_ioctl_file_create },
	{ "fail_function/create_syscall/file_create", test_ff_create_syscall_file_create },
	{ "fail_function/create_syscall/device_check", test_ff_create_syscall_device_check },
	{ "fail_function/fault/alloc_page", test_ff_fault_alloc_page },
	{ "fail_function/fault/alloc_block", test_ff_fault_alloc_block },
	{ "fail_function/fault/charge_page", test_ff_fault_charge_page },
	{ "fail_function/fault/charge_block", test_ff_fault_charge_block },
	{ "fail_function/fault/charge_block_and_page", test_ff_fault_charge_block_and_page },
	{ "fail_function/fault/remove_enomem", test_ff_fault_remove_enomem },
	{ "fail_function/fault/remove_einval", test_ff_fault_remove_einval },
	{ "fail_function/fault/remove_block", test_ff_fault_remove_block },
	{ "fail_function/fault_uncached/set_uc", test_ff_fault_uncached_set_uc },
	{ "fail_function/pool/alloc_second", test_ff_pool_alloc_second },
	{ "fail_function/pool/remove_third", test_ff_pool_remove_third },
	{ "fail_function/pool/alloc_first", test_ff_pool_alloc_first },
	{ "fail_function/pool/alloc_first_and_lone", test_ff_pool_alloc_first_and_lone },
	{ "counters_zero_and_memlock_refunded", test_counters_zero_and_memlock_refunded },
};

/* Run by "--leaks" only, and last: they give pages up for the rest of the boot. */
static const struct test leak_tests[] = {
	{ "fail_function/fault/remove_undo", test_ff_leak_remove_undo },
	{ "fail_function/release/restore", test_ff_leak_release_restore },
	{ "fail_function/fault_uncached/set_uc_and_wb", test_ff_leak_uncached_set_uc_and_wb },
	{ "fail_function/release_uncached/wb", test_ff_leak_uncached_release_wb },
	{ "counters_after_leaks", test_counters_after_leaks },
};

int main(int argc, char **argv)
{
	bool pool = !access(POOL_BATCH, F_OK);
	char batch[16] = "";
	int ret;

	/* Each single page on its own calls, as the cases count them; ff_pool turns it on. */
	if (pool) {
		FILE *f = fopen(POOL_BATCH, "re");

		CHECK(f && fgets(batch, sizeof(batch), f));
		fclose(f);
		write_file(POOL_BATCH, "0");
	}
	if (argc > 1 && !strcmp(argv[1], "--leaks"))
		ret = run_tests(leak_tests, sizeof(leak_tests) / sizeof(leak_tests[0]),
				argc - 1, argv + 1);
	else
		ret = run_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
	if (pool)
		write_file(POOL_BATCH, batch);
	return ret;
}
