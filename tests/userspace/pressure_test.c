// SPDX-License-Identifier: GPL-2.0
/*
 * Secret memory under memory pressure. The test swaps onto a loop device
 * over a file in /tmp and runs a victim process in a memory cgroup (v2)
 * with a small memory.max:
 *
 * - pageout_reaches_swap_not_secret: the victim writes a marker only into
 *   secret memory and another only into ordinary memory, asks MADV_PAGEOUT
 *   for both and pushes its cgroup over the limit with filler. The ordinary
 *   marker must show up in the swap file (so pageout and swap worked) and
 *   the secret one never; both read back intact afterwards.
 * - cgroup_limit_stops_secret_faults: the victim faults in secret memory
 *   far past memory.max. Secret pages cannot be reclaimed, so the victim
 *   must be stopped: SIGBUS, or killed by the cgroup's OOM killer. Its
 *   memory is then freed: the module's counters read zero.
 *
 * The markers are built byte by byte where they live, from random numbers,
 * so no other copy of either string exists in the victim; the test process
 * keeps its copies for the scan in locked memory, which is never swapped.
 * Root only. Prints TAP.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>

#include "harness.h"

#define STATS "/sys/kernel/debug/secretmemfd/stats"
#define SWAP_FILE "/tmp/secretmem-swap.img"
#define SWAP_BYTES (32L << 20)
#define CGROUP "/sys/fs/cgroup"
#define TEST_CGROUP CGROUP "/secretmem-pressure"
#define MEMORY_MAX (8L << 20)
#define MARKER_PAGES 16
#define FILLER_BYTES (16L << 20)
#define SECRET_PREFIX "SECRET-MARKER-"
#define CONTROL_PREFIX "CONTROL-MARKER-"
/* Prefix plus 16 hex digits plus a NUL. */
#define MARKER_LEN 40

static char loop_path[32];
static int loop_fd = -1, backing_fd = -1;

/* Writes @prefix and the 16 hex digits of @value into @dst, one byte at a time. */
static void put_marker(volatile char *dst, const char *prefix, uint64_t value)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(prefix), i;

	for (i = 0; i < n; i++)
		dst[i] = prefix[i];
	for (int shift = 60; shift >= 0; shift -= 4)
		dst[i++] = hex[(value >> shift) & 0xf];
	dst[i] = '\0';
}

/* Whether @src holds the marker of @prefix and @value. */
static bool has_marker(const volatile char *src, const char *prefix, uint64_t value)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(prefix), i;

	for (i = 0; i < n; i++)
		if (src[i] != prefix[i])
			return false;
	for (int shift = 60; shift >= 0; shift -= 4)
		if (src[i++] != hex[(value >> shift) & 0xf])
			return false;
	return true;
}

/* A version-1 swap header ("SWAPSPACE2"), as mkswap writes it. */
static void write_swap_header(int fd)
{
	char *page = calloc(1, ps);
	uint32_t info[3] = { 1, SWAP_BYTES / ps - 1, 0 };	/* version, last page, bad pages */

	CHECK(page);
	memcpy(page + 1024, info, sizeof(info));
	memcpy(page + ps - 10, "SWAPSPACE2", 10);
	CHECK(pwrite(fd, page, ps, 0) == ps);
	free(page);
}

/* Swap on a loop device over a file in /tmp, and a memory cgroup. */
static void setup(void)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC), n;

	CHECK(ctl >= 0);
	backing_fd = open(SWAP_FILE, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(backing_fd >= 0 && ftruncate(backing_fd, SWAP_BYTES) == 0);
	write_swap_header(backing_fd);
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	CHECK(n >= 0);
	close(ctl);
	snprintf(loop_path, sizeof(loop_path), "/dev/loop%d", n);
	loop_fd = open(loop_path, O_RDWR | O_CLOEXEC);
	CHECK(loop_fd >= 0);
	CHECK(ioctl(loop_fd, LOOP_SET_FD, backing_fd) == 0);
	CHECK(swapon(loop_path, 0) == 0);

	if (access(CGROUP "/cgroup.controllers", F_OK))
		CHECK(mount("none", CGROUP, "cgroup2", 0, NULL) == 0);
	write_file(CGROUP "/cgroup.subtree_control", "+memory");
	rmdir(TEST_CGROUP);
	CHECK(mkdir(TEST_CGROUP, 0755) == 0);
	{
		char max[32];

		snprintf(max, sizeof(max), "%ld", MEMORY_MAX);
		write_file(TEST_CGROUP "/memory.max", max);
	}
	/* The OOM killer's task list is noise here. */
	write_file("/proc/sys/vm/oom_dump_tasks", "0");
}

/* Reports a failed clean-up step; returns 0 for "not clean". */
static int cleanup_failed(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	return 0;
}

static int teardown(void)
{
	int ok = 1;

	if (rmdir(TEST_CGROUP))
		ok = cleanup_failed("rmdir " TEST_CGROUP);
	if (swapoff(loop_path))
		ok = cleanup_failed("swapoff");
	if (ioctl(loop_fd, LOOP_CLR_FD))
		ok = cleanup_failed("LOOP_CLR_FD");
	close(loop_fd);
	close(backing_fd);
	unlink(SWAP_FILE);
	write_file("/proc/sys/vm/oom_dump_tasks", "1");
	return ok;
}

static void join_test_cgroup(void)
{
	char pid[16];

	snprintf(pid, sizeof(pid), "%d", getpid());
	write_file(TEST_CGROUP "/cgroup.procs", pid);
}

/* Counts the pages of the swap file holding @marker (NUL-terminated). */
static long swap_pages_with(const char *marker)
{
	size_t len = strlen(marker), chunk = 1 << 20;
	char *buf = malloc(chunk + len);
	long found = 0;
	off_t off = 0;
	ssize_t n;

	CHECK(buf);
	/* Overlap chunks by the marker's length, so none is cut in two. */
	while ((n = pread(backing_fd, buf, chunk + len, off)) > 0) {
		for (char *p = buf; (p = memmem(p, n - (p - buf), marker, len)); p += len)
			found++;
		if ((size_t)n <= chunk)
			break;
		off += chunk;
	}
	CHECK(n >= 0);
	free(buf);
	return found;
}

struct markers {
	uint64_t secret, control;
};

/*
 * The victim: a marker in every page of a secret area and of an ordinary
 * one, MADV_PAGEOUT on both, filler past the cgroup limit, then waits on
 * @cmd; when told, checks both markers and exits 0 if they are intact.
 */
static void pageout_victim(struct markers m, int report, int cmd)
{
	long filler_pages = FILLER_BYTES / ps;
	char *control, *filler, go;
	int fd, pageout_err = 0;
	char *secret;

	join_test_cgroup();
	secret = secret_map(&fd, 0, MARKER_PAGES);
	control = mmap(NULL, MARKER_PAGES * ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(control != MAP_FAILED);
	for (long i = 0; i < MARKER_PAGES; i++) {
		put_marker(secret + i * ps, SECRET_PREFIX, m.secret);
		put_marker(control + i * ps, CONTROL_PREFIX, m.control);
	}
	CHECK(madvise(control, MARKER_PAGES * ps, MADV_PAGEOUT) == 0);
	/* Secret mappings are VM_PFNMAP: the kernel refuses to reclaim them. */
	if (madvise(secret, MARKER_PAGES * ps, MADV_PAGEOUT))
		pageout_err = errno;
	CHECK(pageout_err == 0 || pageout_err == EINVAL);
	filler = mmap(NULL, FILLER_BYTES, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(filler != MAP_FAILED);
	for (long i = 0; i < filler_pages; i++)
		filler[i * ps] = (char)(i | 1);
	CHECK(madvise(filler, FILLER_BYTES, MADV_PAGEOUT) == 0);
	CHECK(write(report, &pageout_err, sizeof(pageout_err)) == sizeof(pageout_err));
	CHECK(read(cmd, &go, 1) == 1);
	for (long i = 0; i < MARKER_PAGES; i++) {
		CHECK(has_marker(secret + i * ps, SECRET_PREFIX, m.secret));
		CHECK(has_marker(control + i * ps, CONTROL_PREFIX, m.control));
	}
	_exit(0);
}

static void test_pageout_reaches_swap_not_secret(void)
{
	struct markers m;
	char *search;
	int report[2], cmd[2], pageout_err, status;
	long control_pages = 0, secret_pages, waited;
	pid_t pid;

	CHECK(getrandom(&m, sizeof(m), 0) == sizeof(m));
	/* Locked: the search strings themselves never reach swap. */
	search = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(search != MAP_FAILED && mlock(search, ps) == 0);
	CHECK(pipe(report) == 0 && pipe(cmd) == 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		close(report[0]);
		close(cmd[1]);
		pageout_victim(m, report[1], cmd[0]);
	}
	close(report[1]);
	close(cmd[0]);
	CHECK(read(report[0], &pageout_err, sizeof(pageout_err)) == sizeof(pageout_err));

	/* Swap-out is asynchronous: wait for the control marker to land. */
	put_marker(search, CONTROL_PREFIX, m.control);
	for (waited = 0; waited < 20; waited++) {
		CHECK(fsync(loop_fd) == 0);
		control_pages = swap_pages_with(search);
		if (control_pages > 0)
			break;
		sleep(1);
	}
	put_marker(search, SECRET_PREFIX, m.secret);
	secret_pages = swap_pages_with(search);
	printf("# MADV_PAGEOUT on secret memory: %s; cgroup swap %ld kB; swap file pages with the control marker %ld of %d, with the secret marker %ld of %d (after %ld s)\n",
	       pageout_err ? strerror(pageout_err) : "0", read_long(TEST_CGROUP "/memory.swap.current") >> 10,
	       control_pages, MARKER_PAGES, secret_pages, MARKER_PAGES, waited);
	fflush(stdout);

	CHECK(write(cmd[1], "g", 1) == 1);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(control_pages > 0);
	CHECK(secret_pages == 0);
	/* Once more, with everything that the victim's exit may have written. */
	CHECK(swap_pages_with(search) == 0);
	CHECK(key_value(STATS, "areas") == 0 && key_value(STATS, "pages") == 0);
}

/* Faults secret pages until something stops it; exits 0 if nothing does. */
static void limit_victim(void)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	long pages = 8 * MEMORY_MAX / ps;
	int fd;
	char *p;

	join_test_cgroup();
	/* Only the cgroup should stop it, not the locked-memory limit. */
	CHECK(setrlimit(RLIMIT_MEMLOCK, &unlimited) == 0);
	fd = secretmemfd(0);
	CHECK(fd >= 0 && ftruncate(fd, pages * ps) == 0);
	p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	for (long i = 0; i < pages; i++)
		p[i * ps] = 1;
	_exit(0);
}

static void test_cgroup_limit_stops_secret_faults(void)
{
	long kills = key_value_sep(TEST_CGROUP "/memory.events", "oom_kill", ' '), areas = -1;
	int status;
	pid_t pid;

	CHECK(kills >= 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid)
		limit_victim();
	CHECK(waitpid(pid, &status, 0) == pid);
	/* The dead victim's pages go when its last reference does. */
	for (int i = 0; i < 50 && (areas = key_value(STATS, "areas")) != 0; i++)
		usleep(100000);
	printf("# victim ended with %s %d; cgroup oom_kill %ld -> %ld, max %ld kB; areas %ld, pages %ld\n",
	       WIFSIGNALED(status) ? "signal" : "exit",
	       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), kills,
	       key_value_sep(TEST_CGROUP "/memory.events", "oom_kill", ' '),
	       read_long(TEST_CGROUP "/memory.peak") >> 10, areas, key_value(STATS, "pages"));
	fflush(stdout);
	CHECK(WIFSIGNALED(status));
	CHECK(WTERMSIG(status) == SIGBUS ||
	      (WTERMSIG(status) == SIGKILL &&
	       key_value_sep(TEST_CGROUP "/memory.events", "oom_kill", ' ') > kills));
	CHECK(areas == 0 && key_value(STATS, "pages") == 0);
	/* Out of the direct map: only the page pool's fresh pages. */
	CHECK(key_value(STATS, "direct_map_removals") ==
	      key_value(STATS, "direct_map_restores") + key_value(STATS, "pool_pages"));
}

static const struct test tests[] = {
	{ "pageout_reaches_swap_not_secret", test_pageout_reaches_swap_not_secret },
	{ "cgroup_limit_stops_secret_faults", test_cgroup_limit_stops_secret_faults },
};

int main(int argc, char **argv)
{
	int ret;

	ps = sysconf(_SC_PAGESIZE);
	setup();
	ret = run_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
	if (!teardown())
		ret = 1;
	return ret;
}
