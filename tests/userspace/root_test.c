// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of secretmemfd that need root inside the guest: the debugfs stats,
 * module pinning, core dumps and hibernation. Prints TAP.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/loop.h>
#include <linux/suspend_ioctls.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "harness.h"

#define STATS "/sys/kernel/debug/secretmemfd/stats"

/* Reads counter @key from the module's debugfs stats. */
static long stat_value(const char *key)
{
	long value = key_value(STATS, key);

	CHECK(value >= 0);
	return value;
}

#define POOL_BATCH "/sys/module/secretmemfd/parameters/pool_batch"
#define CGROUP "/sys/fs/cgroup"
#define TEST_CGROUP CGROUP "/secretmem-test"

/*
 * Turns the page pool off and gives its pages back, for counts of one
 * direct-map removal and one flush per single page. The mce-helpers backend
 * has no pool.
 */
static void pool_off(void)
{
	if (expect_patched())
		write_file(POOL_BATCH, "0");
	CHECK(stat_value("pool_pages") == 0);
}

/* Restores the pool's default batch. */
static void pool_default(void)
{
	if (expect_patched())
		write_file(POOL_BATCH, "32");
}

static void test_stats_follow_pages(void)
{
	long areas, pages, removals, restores, flushes, faults;
	int fd;
	char *p;

	/* First: giving the pool's pages back counts as restores. */
	pool_off();
	areas = stat_value("areas");
	pages = stat_value("pages");
	removals = stat_value("direct_map_removals");
	restores = stat_value("direct_map_restores");
	flushes = stat_value("tlb_flushes");
	faults = stat_value("faults");
	p = secret_map(&fd, 0, 2);
	p[0] = p[ps] = 1;
	CHECK(stat_value("areas") == areas + 1);
	CHECK(stat_value("pages") == pages + 2);
	CHECK(stat_value("bytes") == (pages + 2) * ps);
	CHECK(stat_value("direct_map_removals") == removals + 2);
	CHECK(stat_value("tlb_flushes") == flushes + 2);
	CHECK(stat_value("faults") >= faults + 2);
	CHECK(munmap(p, 2 * ps) == 0 && close(fd) == 0);
	CHECK(stat_value("areas") == areas);
	CHECK(stat_value("pages") == pages);
	CHECK(stat_value("direct_map_restores") == restores + 2);
	pool_default();
}

/* Pages that one touch took out of the direct map: its batch. */
static long batch_of_touch(char *p)
{
	long removals = stat_value("direct_map_removals"), got;

	CHECK(p[0] == 0 && p[ps - 1] == 0);
	got = stat_value("direct_map_removals") - removals;
	/*
	 * Up to 32: the pages past the one the touch needs get no direct
	 * reclaim, so a batch may be short when free memory is.
	 */
	CHECK(got >= 1 && got <= 32);
	return got;
}

/* A child in a memory cgroup of its own touches one secret page. */
static void pool_child(void *arg)
{
	long flushes = stat_value("tlb_flushes"), pool = stat_value("pool_pages"), got;
	char pid[16];
	int fd;
	char *p;

	(void)arg;
	snprintf(pid, sizeof(pid), "%d", getpid());
	write_file(TEST_CGROUP "/cgroup.procs", pid);
	p = secret_map(&fd, 0, 1);
	got = batch_of_touch(p);
	/* Not from the other cgroup's batch: a batch of its own. */
	CHECK(stat_value("tlb_flushes") == flushes + 1);
	CHECK(stat_value("pool_pages") == pool + got - 1);
}

/*
 * Single pages leave the direct map a batch at a time with one flush, and
 * each fault takes one: fresh and zeroed, charged to the memory cgroup that
 * the batch is for. A released page never goes back to the pool. The
 * shrinker (drop_caches), pool_batch=0 and hibernation give the pool back.
 */
static void test_pool_serves_single_pages(void)
{
	enum { BATCH = 32 };
	long flushes, removals, restores, pages, got, waiting;
	int fds[BATCH], fd;
	char *p[BATCH], *q;

	if (!expect_patched()) {
		CHECK_ERR(access(POOL_BATCH, F_OK), ENOENT);
		q = secret_map(&fd, 0, 1);
		touch(q);
		CHECK(stat_value("pool_pages") == 0);
		CHECK(munmap(q, ps) == 0 && close(fd) == 0);
		return;
	}
	pool_off();
	pool_default();
	flushes = stat_value("tlb_flushes");
	removals = stat_value("direct_map_removals");
	restores = stat_value("direct_map_restores");
	pages = stat_value("pages");
	p[0] = secret_map(&fds[0], 0, 1);
	got = batch_of_touch(p[0]);
	for (int i = 0; i < got; i++) {
		if (i) {
			p[i] = secret_map(&fds[i], 0, 1);
			/* Reading faults the page in: zeroed. */
			CHECK(p[i][0] == 0 && p[i][ps - 1] == 0);
		}
		memset(p[i], 0x5a, ps);
		CHECK(stat_value("tlb_flushes") == flushes + 1);
		CHECK(stat_value("direct_map_removals") == removals + got);
		CHECK(stat_value("pool_pages") == got - 1 - i);
		CHECK(stat_value("pages") == pages + i + 1);
	}
	/* The batch is used up: the next page starts another. */
	q = secret_map(&fd, 0, 1);
	batch_of_touch(q);
	CHECK(stat_value("tlb_flushes") == flushes + 2);
	/* Released pages go back to the direct map, zeroed, not to the pool. */
	waiting = stat_value("pool_pages");
	for (int i = 0; i < got; i++)
		CHECK(munmap(p[i], ps) == 0 && close(fds[i]) == 0);
	CHECK(stat_value("direct_map_restores") == restores + got);
	CHECK(stat_value("pool_pages") == waiting);
	/* A new file's page comes from the batch, fresh: zeroed, no flush. */
	flushes = stat_value("tlb_flushes");
	p[0] = secret_map(&fds[0], 0, 1);
	CHECK(p[0][0] == 0 && p[0][ps - 1] == 0);
	if (waiting)
		CHECK(stat_value("pool_pages") == waiting - 1 &&
		      stat_value("tlb_flushes") == flushes);

	/* Another memory cgroup gets a batch of its own. */
	if (access(CGROUP "/cgroup.controllers", F_OK))
		CHECK(mount("none", CGROUP, "cgroup2", 0, NULL) == 0);
	write_file(CGROUP "/cgroup.subtree_control", "+memory");
	rmdir(TEST_CGROUP);
	CHECK(mkdir(TEST_CGROUP, 0755) == 0);
	CHECK(child_exit(pool_child, NULL) == 0);
	CHECK(rmdir(TEST_CGROUP) == 0);

	/*
	 * Memory pressure's shrinker takes the waiting pages back. Some wait:
	 * two batches were taken (this cgroup's second and the child's), and a
	 * pool that never keeps a page fails here.
	 */
	CHECK(stat_value("pool_pages") > 0);
	write_file("/proc/sys/vm/drop_caches", "2");
	CHECK(stat_value("pool_pages") == 0);
	CHECK(stat_value("direct_map_removals") - removals -
		      (stat_value("direct_map_restores") - restores) ==
	      stat_value("pages") - pages);

	/* So does pool_batch=0, which also stops the pool. */
	CHECK(munmap(p[0], ps) == 0 && close(fds[0]) == 0);
	p[0] = secret_map(&fds[0], 0, 1);
	got = batch_of_touch(p[0]);
	CHECK(stat_value("pool_pages") == got - 1);
	flushes = stat_value("tlb_flushes");
	write_file(POOL_BATCH, "0");
	CHECK(stat_value("pool_pages") == 0);
	CHECK(munmap(p[0], ps) == 0 && close(fds[0]) == 0);
	p[0] = secret_map(&fds[0], 0, 1);
	touch(p[0]);
	CHECK(stat_value("tlb_flushes") == flushes + 1);
	CHECK(stat_value("pool_pages") == 0);
	CHECK(munmap(p[0], ps) == 0 && close(fds[0]) == 0);
	CHECK(munmap(q, ps) == 0 && close(fd) == 0);

	/* The batch is 0 to 32 pages. */
	fd = open(POOL_BATCH, O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_ERR(write(fd, "33", 2), EINVAL);
	CHECK(close(fd) == 0);
	pool_default();
}

static void test_module_pinned_while_in_use(void)
{
	int fd;
	char *p = secret_map(&fd, 0, 1);

	CHECK_ERR(syscall(__NR_delete_module, "secretmemfd", O_NONBLOCK), EWOULDBLOCK);
	/* A mapping alone keeps the file, and so the module. */
	CHECK(close(fd) == 0);
	CHECK_ERR(syscall(__NR_delete_module, "secretmemfd", O_NONBLOCK), EWOULDBLOCK);
	CHECK(munmap(p, ps) == 0);
}

static void dump_core(void *arg)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	char *control = mmap(NULL, ps, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd;
	char *p = secret_map(&fd, 0, 1);

	(void)arg;
	CHECK(control != MAP_FAILED);
	CHECK(setrlimit(RLIMIT_CORE, &unlimited) == 0);
	/* Built at run time, so only the two pages ever hold these strings. */
	snprintf(p, ps, "secret-%d-%d", getpid(), 0x5ec);
	snprintf(control, ps, "control-%d-%d", getpid(), 0xc0);
	abort();
}

static void test_core_dump_excludes_secret(void)
{
	char path[64], want[64], *core;
	int status, fd;
	struct stat st;
	pid_t pid;

	write_file("/proc/sys/kernel/core_pattern", "/tmp/secretmem-core.%p");
	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		dump_core(NULL);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WCOREDUMP(status));
	snprintf(path, sizeof(path), "/tmp/secretmem-core.%d", pid);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0);
	core = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(core != MAP_FAILED);
	snprintf(want, sizeof(want), "control-%d-%d", pid, 0xc0);
	CHECK(memmem(core, st.st_size, want, strlen(want)));
	snprintf(want, sizeof(want), "secret-%d-%d", pid, 0x5ec);
	CHECK(!memmem(core, st.st_size, want, strlen(want)));
	unlink(path);
}

/* With pm_test=freezer, hibernation stops after freezing tasks. */
static int try_hibernate(void)
{
	int fd = open("/sys/power/state", O_WRONLY), err = 0;

	CHECK(fd >= 0);
	if (write(fd, "disk", 4) != 4)
		err = errno;
	close(fd);
	return err;
}

static void test_hibernation_refused_while_open(void)
{
	long got = 0;
	int fd;
	char *p;

	/* A fresh batch: its other pages wait in the pool once one is touched. */
	pool_off();
	pool_default();
	fd = secretmemfd(0);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, ps) == 0);
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	if (expect_patched())
		got = batch_of_touch(p);
	touch(p);
	write_file("/sys/power/pm_test", "freezer");
	CHECK(try_hibernate() == EBUSY);
	CHECK(munmap(p, ps) == 0 && close(fd) == 0);
	/* The page pool's pages, out of the direct map, go back before an image. */
	CHECK(stat_value("pool_pages") == (got ? got - 1 : 0));
	CHECK(try_hibernate() == 0);
	CHECK(stat_value("pool_pages") == 0);
	write_file("/sys/power/pm_test", "none");
}

/*
 * Opening /dev/snapshot for reading starts a hibernation
 * (PM_HIBERNATION_PREPARE), for writing a restore (PM_RESTORE_PREPARE);
 * closing it ends either. Neither may start while secret memory exists, and
 * no secret memory may be created while either is in progress, through
 * either entry, nor once tasks are frozen.
 */
static void test_no_secret_memory_during_hibernation(void)
{
	const int modes[] = { O_RDONLY, O_WRONLY };
	int fd = secretmemfd(0), snap;

	CHECK(fd >= 0);
	for (int i = 0; i < 2; i++)
		CHECK_ERR(open("/dev/snapshot", modes[i] | O_CLOEXEC), EBUSY);
	CHECK(close(fd) == 0);

	for (int i = 0; i < 2; i++) {
		snap = open("/dev/snapshot", modes[i] | O_CLOEXEC);
		CHECK(snap >= 0);
		CHECK_ERR(secretmemfd_ioctl(0), EBUSY);
		CHECK_ERR(entry_syscall(0), EBUSY);
		if (modes[i] == O_RDONLY) {
			/* Freezes every other task; this one goes on. */
			CHECK(ioctl(snap, SNAPSHOT_FREEZE) == 0);
			CHECK_ERR(secretmemfd_ioctl(0), EBUSY);
			CHECK(ioctl(snap, SNAPSHOT_UNFREEZE) == 0);
		}
		CHECK(close(snap) == 0);
		fd = secretmemfd(0);
		CHECK(fd >= 0);
		CHECK(close(fd) == 0);
	}
}

#define UNCACHED_GID "/sys/module/secretmemfd/parameters/uncached_gid"
#define GROUP 4242

/* Becomes uid and gid 65534, with @group as the only supplementary group if >= 0. */
static void become_nobody(int group)
{
	gid_t g = group;

	CHECK(setgroups(group >= 0, &g) == 0);
	CHECK(setresgid(65534, 65534, 65534) == 0);
	CHECK(setresuid(65534, 65534, 65534) == 0);
}

/* Creates uncached memory through either entry as a user in @group: 0 or errno. */
static void create_uncached(void *arg)
{
	int group = *(int *)arg, fd, err;

	become_nobody(group);
	fd = secretmemfd_ioctl(SECRETMEM_UNCACHED);
	err = fd < 0 ? errno : 0;
	close(fd);
	fd = entry_syscall(SECRETMEM_UNCACHED);
	CHECK((fd < 0 ? errno : 0) == err);
	close(fd);
	_exit(err);
}

/* Runs @fn(@arg) in a child and returns its exit status. */
static void test_uncached_group_parameter(void)
{
	int in_group = GROUP, other = GROUP + 1;

	write_file(UNCACHED_GID, "4242");
	CHECK(child_exit(create_uncached, &in_group) == 0);
	CHECK(child_exit(create_uncached, &other) == EPERM);
	write_file(UNCACHED_GID, "-1");
	CHECK(child_exit(create_uncached, &in_group) == EPERM);
}

/* Root without CAP_SYS_RAWIO, CAP_IPC_LOCK kept: no uncached memory. */
static void test_uncached_needs_cap_sys_rawio(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	int fd;

	CHECK(syscall(SYS_capget, &hdr, data) == 0);
	CHECK(data[0].effective & (1U << CAP_IPC_LOCK));
	data[0].effective &= ~(1U << CAP_SYS_RAWIO);
	CHECK(syscall(SYS_capset, &hdr, data) == 0);
	CHECK_ERR(secretmemfd_ioctl(SECRETMEM_UNCACHED), EPERM);
	CHECK_ERR(entry_syscall(SECRETMEM_UNCACHED), EPERM);
	fd = secretmemfd(SECRETMEM_EXCLUSIVE);
	CHECK(fd >= 0);
	close(fd);
}

/* Creates exclusive memory through either entry as a user in @group: 0 or errno. */
static void create_exclusive(void *arg)
{
	int group = *(int *)arg, fd, err;

	become_nobody(group);
	fd = entry_syscall(SECRETMEM_EXCLUSIVE);
	err = fd < 0 ? errno : 0;
	close(fd);
	fd = secretmemfd_ioctl(SECRETMEM_EXCLUSIVE);
	CHECK((fd < 0 ? errno : 0) == err);
	close(fd);
	_exit(err);
}

/* The system call obeys the device node's permissions, as the ioctl does. */
static void test_syscall_obeys_device_access(void)
{
	int none = -1, in_group = GROUP;

	CHECK(child_exit(create_exclusive, &none) == 0);
	CHECK(chmod(SECRETMEM_DEVICE, 0600) == 0);
	CHECK(child_exit(create_exclusive, &none) == EACCES);
	CHECK(chown(SECRETMEM_DEVICE, 0, GROUP) == 0 && chmod(SECRETMEM_DEVICE, 0660) == 0);
	CHECK(child_exit(create_exclusive, &in_group) == 0);
	CHECK(child_exit(create_exclusive, &none) == EACCES);
	CHECK(chown(SECRETMEM_DEVICE, 0, 0) == 0 && chmod(SECRETMEM_DEVICE, 0666) == 0);
	CHECK(child_exit(create_exclusive, &none) == 0);
}

/* A loop device over a file in /tmp: a block device that O_DIRECT pins pages for. */
static int loop_device(char *path, size_t len, int *backing)
{
	int ctl = open("/dev/loop-control", O_RDWR), n, dev;

	CHECK(ctl >= 0);
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	CHECK(n >= 0);
	*backing = open("/tmp/secretmem-loop.img", O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(*backing >= 0 && ftruncate(*backing, 1 << 20) == 0);
	snprintf(path, len, "/dev/loop%d", n);
	dev = open(path, O_RDWR);
	CHECK(dev >= 0);
	CHECK(ioctl(dev, LOOP_SET_FD, *backing) == 0);
	close(ctl);
	return dev;
}

static void test_o_direct_refused(void)
{
	char path[32], *c = mmap(NULL, ps, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd, backing, loop = loop_device(path, sizeof(path), &backing), dio;
	char *p = secret_map(&fd, 0, 1);

	CHECK(c != MAP_FAILED);
	strcpy(p, SECRET);
	strcpy(c, CONTROL);
	dio = open(path, O_RDWR | O_DIRECT);
	CHECK(dio >= 0);
	CHECK(pwrite(dio, c, ps, 0) == ps);
	CHECK(pread(dio, c, ps, 0) == ps && !strcmp(c, CONTROL));
	CHECK_ERR(pwrite(dio, p, ps, 0), EFAULT);
	CHECK_ERR(pread(dio, p, ps, 0), EFAULT);
	CHECK(!strcmp(p, SECRET));
	close(dio);
	CHECK(ioctl(loop, LOOP_CLR_FD) == 0);
	unlink("/tmp/secretmem-loop.img");
}


/*
 * Secret pages are charged to the memory cgroup of the task that touches
 * them. memory.current moves in per-CPU batches of up to 64 pages, so the
 * test moves 512 pages and allows two batches of slack each way.
 */
static void test_memcg_charged(void)
{
	const long pages = 512, slack = 2 * 64;
	char pid[16];
	long before, after;
	int fd;
	char *p;

	if (access(CGROUP "/cgroup.controllers", F_OK))
		CHECK(mount("none", CGROUP, "cgroup2", 0, NULL) == 0);
	write_file(CGROUP "/cgroup.subtree_control", "+memory");
	rmdir(TEST_CGROUP);
	CHECK(mkdir(TEST_CGROUP, 0755) == 0);
	snprintf(pid, sizeof(pid), "%d", getpid());
	write_file(TEST_CGROUP "/cgroup.procs", pid);

	p = secret_map(&fd, 0, pages);
	before = read_long(TEST_CGROUP "/memory.current");
	for (long i = 0; i < pages; i++)
		p[i * ps] = 1;
	after = read_long(TEST_CGROUP "/memory.current");
	CHECK(after - before >= (pages - slack) * ps);
	CHECK(munmap(p, pages * ps) == 0 && close(fd) == 0);
	CHECK(read_long(TEST_CGROUP "/memory.current") <= after - (pages - slack) * ps);
	write_file(CGROUP "/cgroup.procs", pid);
	CHECK(rmdir(TEST_CGROUP) == 0);
}

/*
 * With no secret memory left the module unloads; the system call then
 * answers ENOSYS and the device is gone. Loading it again (from
 * $SECRETMEM_KO, set by the guest init) brings both back.
 */
static void test_unload_unregisters_entry(void)
{
	const char *ko = getenv("SECRETMEM_KO");
	int fd;

	CHECK(ko);
	CHECK(syscall(__NR_delete_module, "secretmemfd", O_NONBLOCK) == 0);
	CHECK_ERR(syscall(473, 0), ENOSYS);
	CHECK_ERR(open(SECRETMEM_DEVICE, O_RDWR), ENOENT);
	CHECK(secretmemfd_syscall_nr() == -1);

	fd = open(ko, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(syscall(__NR_finit_module, fd, "", 0) == 0);
	close(fd);
	CHECK(secretmemfd_syscall_nr() == expected_syscall_nr());
	fd = secretmemfd(0);
	CHECK(fd >= 0);
	close(fd);
}

struct race {
	volatile int stop;
	volatile int opened;	/* descriptors of /dev/secretmem */
	volatile int created;	/* secret memory files, through either entry */
	volatile long tries;
};

/* Tries both entries until told to stop, counting what it got. */
static void race_entries(struct race *r)
{
	while (!r->stop) {
		int fd = syscall(473, 0), dev;

		if (fd >= 0) {
			__atomic_add_fetch(&r->created, 1, __ATOMIC_RELAXED);
			close(fd);
		}
		dev = open(SECRETMEM_DEVICE, O_RDWR | O_CLOEXEC);
		if (dev >= 0) {
			__atomic_add_fetch(&r->opened, 1, __ATOMIC_RELAXED);
			fd = ioctl(dev, SECRETMEM_CREATE, 0);
			if (fd >= 0) {
				__atomic_add_fetch(&r->created, 1, __ATOMIC_RELAXED);
				close(fd);
			}
			close(dev);
		}
		r->tries++;
	}
}

static int load_module(const char *ko, const char *params)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC), ret;

	CHECK(fd >= 0);
	ret = syscall(__NR_finit_module, fd, params, 0);
	close(fd);
	return ret;
}

/*
 * An init that fails after a registration (fault points 1 and 2) must leave
 * no way in: while another process hammers both entries, it never gets a
 * device descriptor or a secret memory file, whose operations would outlive
 * the module text. Afterwards nothing is registered and hibernation (which
 * walks the PM notifier chain) still works.
 */
static void test_failed_init_leaves_nothing(void)
{
	const char *ko = getenv("SECRETMEM_KO");
	struct race *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status, fd;
	pid_t pid;

	CHECK(ko && r != MAP_FAILED);
	CHECK(syscall(__NR_delete_module, "secretmemfd", O_NONBLOCK) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		race_entries(r);
		_exit(0);
	}
	for (int round = 0; round < 3; round++) {
		CHECK_ERR(load_module(ko, "fail_init_at=1"), ENOMEM);
		CHECK_ERR(load_module(ko, "fail_init_at=2"), ENOMEM);
	}
	r->stop = 1;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status));
	fprintf(stderr, "  %ld tries, %d opened, %d created\n", r->tries, r->opened, r->created);
	CHECK(r->tries > 0);
	CHECK(r->opened == 0 && r->created == 0);
	CHECK_ERR(syscall(473, 0), ENOSYS);
	CHECK_ERR(open(SECRETMEM_DEVICE, O_RDWR), ENOENT);
	CHECK(access("/sys/module/secretmemfd", F_OK) == -1);
	write_file("/sys/power/pm_test", "freezer");
	CHECK(try_hibernate() == 0);
	write_file("/sys/power/pm_test", "none");

	CHECK(load_module(ko, "") == 0);
	fd = secretmemfd(0);
	CHECK(fd >= 0);
	close(fd);
}

#define BLOCK (2L << 20)

/* Reads counter @key of /proc/vmstat. */
static long vmstat(const char *key)
{
	long value = key_value_sep("/proc/vmstat", key, ' ');

	CHECK(value >= 0);
	return value;
}

/*
 * Turns the blocks parameter on for the rest of this test (a child): it is
 * off by default on the mce-helpers backend, where a block costs as many
 * direct-map changes and flushes as its pages.
 */
static void blocks_on(void)
{
	write_file("/sys/module/secretmemfd/parameters/blocks", "Y");
}

/* Restores the parameter's default. */
static void blocks_default(void)
{
	write_file("/sys/module/secretmemfd/parameters/blocks", expect_patched() ? "Y" : "N");
}

/*
 * Each whole 2 MiB takes one block on its first touch: 512 pages, one
 * direct-map change and one flush, no direct-map split; the tail past the
 * last whole 2 MiB takes single pages; all of it goes back on close. On the
 * mce-helpers backend a block costs 512 flushes and splits the direct map.
 */
static void test_blocks_back_whole_chunks(void)
{
	const long pages = 2 * BLOCK / ps + 1;
	const long block_flushes = expect_patched() ? 1 : BLOCK / ps;
	long blocks, flushes, restores, npages, splits;
	int fd;
	char *p;

	/* First: giving the pool's pages back counts as restores. */
	pool_off();
	blocks_on();
	blocks = stat_value("blocks");
	flushes = stat_value("tlb_flushes");
	restores = stat_value("direct_map_restores");
	npages = stat_value("pages");
	splits = vmstat("direct_map_level2_splits");
	p = secret_map(&fd, 0, pages);

	touch(p + 5 * ps);
	CHECK(stat_value("blocks") == blocks + 1);
	CHECK(stat_value("pages") == npages + BLOCK / ps);
	CHECK(stat_value("tlb_flushes") == flushes + block_flushes);
	/* Every page of the block is mapped by that one touch, and zeroed. */
	for (long i = 0; i < BLOCK / ps; i++)
		CHECK(p[i * ps] == (i == 5));
	CHECK(stat_value("tlb_flushes") == flushes + block_flushes);
	touch(p + BLOCK + 7);
	CHECK(stat_value("blocks") == blocks + 2);
	/* A block changes its 2 MiB direct-map entry in place. */
	if (expect_patched())
		CHECK(vmstat("direct_map_level2_splits") == splits);
	/* The tail is a single page (which may split the direct map, as mainline's do). */
	touch(p + 2 * BLOCK);
	CHECK(stat_value("blocks") == blocks + 2);
	CHECK(stat_value("pages") == npages + 2 * BLOCK / ps + 1);
	CHECK(stat_value("tlb_flushes") == flushes + 2 * block_flushes + 1);
	CHECK(munmap(p, pages * ps) == 0 && close(fd) == 0);
	CHECK(stat_value("blocks") == blocks);
	CHECK(stat_value("pages") == npages);
	CHECK(stat_value("direct_map_restores") == restores + pages);
	blocks_default();
	pool_default();
}

/* The blocks parameter's default: on with our patches, off without. */
static void test_blocks_default(void)
{
	char value[8] = "";
	FILE *f = fopen("/sys/module/secretmemfd/parameters/blocks", "re");

	CHECK(f && fgets(value, sizeof(value), f));
	fclose(f);
	CHECK(!strcmp(value, expect_patched() ? "Y\n" : "N\n"));
}

/* Uncached areas take blocks too. */
static void test_uncached_blocks(void)
{
	long blocks = stat_value("blocks");
	int fd;
	char *p;

	blocks_on();
	p = secret_map(&fd, SECRETMEM_UNCACHED, BLOCK / ps);
	touch(p + BLOCK - 1);
	CHECK(stat_value("blocks") == blocks + 1);
	CHECK(p[0] == 0);
	CHECK(munmap(p, BLOCK) == 0 && close(fd) == 0);
	CHECK(stat_value("blocks") == blocks);
	blocks_default();
}

static void touch_pages(void *arg)
{
	char *p = arg;

	for (long i = 0; i < BLOCK / ps; i++)
		touch(p + i * ps);
}

/*
 * A locked-memory limit with room for fewer than 512 pages: the chunk falls
 * back to single pages, which fill the limit, and the next touch is SIGBUS.
 */
static void test_memlock_between_a_page_and_a_block(void)
{
	struct rlimit limit = { 100 * ps, 100 * ps };
	long fallbacks = stat_value("block_fallbacks"), blocks = stat_value("blocks");
	char path[64];
	long pages;
	int fd;
	char *p;

	blocks_on();
	p = secret_map(&fd, 0, BLOCK / ps);
	blocks_default();
	CHECK(setrlimit(RLIMIT_MEMLOCK, &limit) == 0);
	CHECK(child_signal(touch_pages, p) == SIGBUS);
	CHECK(stat_value("block_fallbacks") == fallbacks + 1);
	CHECK(stat_value("blocks") == blocks);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	pages = key_value(path, "secretmem-pages");
	/* Single pages up to the limit (less what root has locked elsewhere). */
	CHECK(pages >= 1 && pages <= 100);
	CHECK(munmap(p, BLOCK) == 0 && close(fd) == 0);
}

/* With the blocks parameter off, a new area takes single pages only. */
static void test_blocks_parameter_off(void)
{
	long blocks = stat_value("blocks"), fallbacks = stat_value("block_fallbacks");
	int fd;
	char *p;

	write_file("/sys/module/secretmemfd/parameters/blocks", "N");
	p = secret_map(&fd, 0, BLOCK / ps);
	blocks_default();
	touch(p);
	touch(p + BLOCK - 1);
	CHECK(stat_value("blocks") == blocks);
	CHECK(stat_value("block_fallbacks") == fallbacks);
	CHECK(stat_value("pages") >= 2);
	CHECK(munmap(p, BLOCK) == 0 && close(fd) == 0);
}

static const struct test tests[] = {
	{ "stats_follow_pages", test_stats_follow_pages },
	{ "pool_serves_single_pages", test_pool_serves_single_pages },
	{ "module_pinned_while_in_use", test_module_pinned_while_in_use },
	{ "core_dump_excludes_secret", test_core_dump_excludes_secret },
	{ "hibernation_refused_while_open", test_hibernation_refused_while_open },
	{ "no_secret_memory_during_hibernation", test_no_secret_memory_during_hibernation },
	{ "uncached_group_parameter", test_uncached_group_parameter },
	{ "uncached_needs_cap_sys_rawio", test_uncached_needs_cap_sys_rawio },
	{ "syscall_obeys_device_access", test_syscall_obeys_device_access },
	{ "blocks_default", test_blocks_default },
	{ "blocks_back_whole_chunks", test_blocks_back_whole_chunks },
	{ "uncached_blocks", test_uncached_blocks },
	{ "memlock_between_a_page_and_a_block", test_memlock_between_a_page_and_a_block },
	{ "blocks_parameter_off", test_blocks_parameter_off },
	{ "o_direct_refused", test_o_direct_refused },
	{ "memcg_charged", test_memcg_charged },
	{ "failed_init_leaves_nothing", test_failed_init_leaves_nothing },
	{ "unload_unregisters_entry", test_unload_unregisters_entry },
};

int main(int argc, char **argv)
{
	return run_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
