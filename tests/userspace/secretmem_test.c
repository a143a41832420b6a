// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace tests of secretmemfd, run inside the guest as root and as an
 * unprivileged user. Each test runs in its own child and asserts an exact
 * result; attacks on secret memory are paired with the same attack on
 * ordinary memory, which must succeed, so a refusal for another reason
 * cannot pass. Prints TAP; exits non-zero if any test failed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <linux/magic.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "harness.h"

static void drop_privileges(void)
{
	if (geteuid() == 0) {
		CHECK(setgroups(0, NULL) == 0);
		CHECK(setresgid(65534, 65534, 65534) == 0);
		CHECK(setresuid(65534, 65534, 65534) == 0);
	}
}

/* Reads counter @key from this process's fdinfo of @fd. */
static long fdinfo_value(int fd, const char *key)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	return key_value(path, key);
}

static void test_create_flags(void)
{
	int fd = secretmemfd_ioctl(SECRETMEM_EXCLUSIVE);

	CHECK(fd >= 0);
	CHECK(!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
	close(fd);
	fd = secretmemfd_ioctl(SECRETMEM_EXCLUSIVE | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	CHECK_ERR(secretmemfd_ioctl(0x2), EINVAL);
	CHECK_ERR(secretmemfd_ioctl(0x80000000U), EINVAL);
	CHECK_ERR(secretmemfd_ioctl(O_NONBLOCK), EINVAL);
}

static void test_syscall_entry(void)
{
	long nr = secretmemfd_syscall_nr();
	int fd;

	if (!expect_syscall()) {
		/* No stub in the kernel: the number is nobody's, the module serves none. */
		CHECK(nr == -1);
		CHECK_ERR(syscall(473, 0), ENOSYS);
		return;
	}
	CHECK(nr == 473);
	fd = syscall(nr, SECRETMEM_EXCLUSIVE | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	CHECK_ERR(syscall(nr, 0x4), EINVAL);
}

/*
 * Uncached memory needs CAP_SYS_RAWIO (root here) or the uncached_gid group,
 * through either entry; without them EPERM.
 */
static void test_uncached_needs_privilege(void)
{
	int fd;

	if (geteuid() == 0) {
		fd = secretmemfd_ioctl(SECRETMEM_UNCACHED);
		CHECK(fd >= 0);
		close(fd);
		fd = entry_syscall(SECRETMEM_UNCACHED);
		CHECK(fd >= 0);
		close(fd);
		drop_privileges();
	}
	CHECK_ERR(secretmemfd_ioctl(SECRETMEM_UNCACHED), EPERM);
	CHECK_ERR(secretmemfd_ioctl(SECRETMEM_UNCACHED | O_CLOEXEC), EPERM);
	CHECK_ERR(entry_syscall(SECRETMEM_UNCACHED), EPERM);
	fd = entry_syscall(SECRETMEM_EXCLUSIVE);
	CHECK(fd >= 0);
	close(fd);
}

/* Creating through the device needs it open for writing, as the system call does. */
static void test_device_opened_read_only_refused(void)
{
	int dev = open(SECRETMEM_DEVICE, O_RDONLY | O_CLOEXEC), fd;

	CHECK(dev >= 0);
	CHECK_ERR(ioctl(dev, SECRETMEM_CREATE, 0), EBADF);
	close(dev);
	dev = open(SECRETMEM_DEVICE, O_WRONLY | O_CLOEXEC);
	CHECK(dev >= 0);
	fd = ioctl(dev, SECRETMEM_CREATE, 0);
	CHECK(fd >= 0);
	close(fd);
	close(dev);
}

static void test_size_once_and_fstat(void)
{
	struct stat st;
	int fd = secretmemfd(0);

	CHECK(fd >= 0);
	CHECK(fstat(fd, &st) == 0 && st.st_size == 0);
	CHECK(ftruncate(fd, 3 * ps) == 0);
	CHECK(fstat(fd, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK(st.st_size == 3 * ps);
	CHECK_ERR(ftruncate(fd, ps), EINVAL);
	CHECK_ERR(ftruncate(fd, 3 * ps), EINVAL);
	CHECK(fstat(fd, &st) == 0 && st.st_size == 3 * ps);
}

/*
 * Sizes follow memfd_secret(2): anything up to MAX_LFS_FILESIZE (LLONG_MAX),
 * RLIMIT_FSIZE applies (EFBIG), negative sizes are EINVAL.
 */
static void test_size_limits(void)
{
	const off_t sizes[] = { 4LL << 30, LLONG_MAX };
	struct rlimit fsize = { 1 << 20, 1 << 20 }, memlock;
	struct stat st;
	long block;
	int fd;
	char *p;

	/*
	 * The last page lies in a whole 2 MiB: a block, if the limit has room
	 * for one and blocks are on (by default only with our patches).
	 */
	CHECK(getrlimit(RLIMIT_MEMLOCK, &memlock) == 0);
	block = memlock.rlim_cur >= 2 << 20 && expect_patched() ? (2 << 20) / ps : 1;
	for (int i = 0; i < 2; i++) {
		/* The mm maps no page whose end would pass MAX_LFS_FILESIZE. */
		off_t last = (sizes[i] - ps) & ~(off_t)(ps - 1);

		fd = secretmemfd(0);
		CHECK(fd >= 0);
		CHECK(ftruncate(fd, sizes[i]) == 0);
		CHECK(fstat(fd, &st) == 0 && st.st_size == sizes[i]);
		p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, last);
		CHECK(p != MAP_FAILED);
		CHECK(child_signal(touch, p) == 0);
		CHECK(fdinfo_value(fd, "secretmem-pages") == block);
		CHECK(munmap(p, ps) == 0 && close(fd) == 0);
	}
	/* Past 4 GiB: the page after the last one faults. */
	fd = secretmemfd(0);
	CHECK(fd >= 0 && ftruncate(fd, 4LL << 30) == 0);
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4LL << 30);
	CHECK(p != MAP_FAILED);
	CHECK(child_signal(touch, p) == SIGBUS);
	close(fd);

	fd = secretmemfd(0);
	CHECK(fd >= 0);
	CHECK_ERR(ftruncate(fd, -1), EINVAL);
	CHECK(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	CHECK(setrlimit(RLIMIT_FSIZE, &fsize) == 0);
	CHECK_ERR(ftruncate(fd, 2 << 20), EFBIG);
	CHECK(ftruncate(fd, 1 << 20) == 0);
}

static void test_read_write_splice_refused(void)
{
	char buf[16] = "x";
	int fd = secretmemfd(0), pfd[2];

	CHECK(fd >= 0 && ftruncate(fd, ps) == 0);
	CHECK_ERR(read(fd, buf, sizeof(buf)), EINVAL);
	CHECK_ERR(write(fd, buf, sizeof(buf)), EINVAL);
	/* No llseek: positional I/O is refused before it reaches read. */
	CHECK_ERR(pread(fd, buf, sizeof(buf), 0), ESPIPE);
	CHECK_ERR(pwrite(fd, buf, sizeof(buf), 0), ESPIPE);
	CHECK(pipe(pfd) == 0);
	CHECK_ERR(splice(fd, NULL, pfd[1], NULL, sizeof(buf), 0), EINVAL);
	CHECK(write(pfd[1], buf, 1) == 1);
	CHECK_ERR(splice(pfd[0], NULL, fd, NULL, 1, 0), EINVAL);
}

static void test_mmap_rules(void)
{
	int fd = secretmemfd(0);
	void *p;

	CHECK(fd >= 0 && ftruncate(fd, ps) == 0);
	CHECK_ERR(mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), EINVAL);
	CHECK_ERR(mmap(NULL, ps, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0), EPERM);
	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	CHECK_ERR(mprotect(p, ps, PROT_READ | PROT_EXEC), EACCES);
}

static void test_fresh_zero_and_read_back(void)
{
	int fd;
	char *p = secret_map(&fd, 0, 4), *q;

	for (long i = 0; i < 4 * ps; i++)
		CHECK(p[i] == 0);
	for (long i = 0; i < 4 * ps; i++)
		p[i] = (char)(i * 7 + 3);
	CHECK(munmap(p, 4 * ps) == 0);
	q = mmap(NULL, 4 * ps, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(q != MAP_FAILED);
	for (long i = 0; i < 4 * ps; i++)
		CHECK(q[i] == (char)(i * 7 + 3));
}

static void test_sigbus_past_size(void)
{
	int fd = secretmemfd(0);
	char *p;

	CHECK(fd >= 0);
	p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	/* Mapped before it was sized: every page is past the size. */
	CHECK(child_signal(touch, p) == SIGBUS);
	CHECK(ftruncate(fd, ps + 1) == 0);
	CHECK(child_signal(touch, p) == 0);
	CHECK(child_signal(touch, p + ps) == 0);
	CHECK(ftruncate(fd, 0) == -1);
	p = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	CHECK(child_signal(touch, p + 2 * ps) == SIGBUS);
}

static void test_shared_between_mappings_and_fork(void)
{
	int fd, status;
	char *p = secret_map(&fd, 0, 1), *q;
	pid_t pid;

	q = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(q != MAP_FAILED && q != p);
	strcpy(p, SECRET);
	CHECK(strcmp(q, SECRET) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		if (strcmp(p, SECRET))
			_exit(2);
		strcpy(q, "written by the child");
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(strcmp(p, "written by the child") == 0);
}

/* The attacks: each must fail on the secret and work on the control page. */
static char *control_page(void)
{
	char *c = mmap(NULL, ps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(c != MAP_FAILED);
	strcpy(c, CONTROL);
	return c;
}

static ssize_t vm_readv(pid_t pid, void *addr, char *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { addr, len };

	return process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

static void test_process_vm_readv_refused(void)
{
	int fd;
	char *p = secret_map(&fd, 0, 1), *c = control_page(), buf[64];

	strcpy(p, SECRET);
	CHECK(vm_readv(getpid(), c, buf, sizeof(buf)) == sizeof(buf));
	CHECK(strcmp(buf, CONTROL) == 0);
	CHECK_ERR(vm_readv(getpid(), p, buf, sizeof(buf)), EFAULT);
}

static void test_proc_mem_refused(void)
{
	int fd, mem = open("/proc/self/mem", O_RDWR);
	char *p = secret_map(&fd, 0, 1), *c = control_page(), buf[64];

	CHECK(mem >= 0);
	strcpy(p, SECRET);
	CHECK(pread(mem, buf, sizeof(buf), (off_t)(uintptr_t)c) == sizeof(buf));
	CHECK(strcmp(buf, CONTROL) == 0);
	CHECK_ERR(pread(mem, buf, sizeof(buf), (off_t)(uintptr_t)p), EIO);
	CHECK_ERR(pwrite(mem, "x", 1, (off_t)(uintptr_t)p), EIO);
	CHECK(strcmp(p, SECRET) == 0);
}

static void test_ptrace_peek_refused(void)
{
	int fd, status;
	char *p = secret_map(&fd, 0, 1), *c = control_page();
	pid_t pid;
	long word;

	strcpy(p, SECRET);
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFSTOPPED(status));
	errno = 0;
	word = ptrace(PTRACE_PEEKDATA, pid, c, NULL);
	CHECK(errno == 0 && memcmp(&word, CONTROL, sizeof(word)) == 0);
	CHECK_ERR(ptrace(PTRACE_PEEKDATA, pid, p, NULL), EIO);
	CHECK_ERR(ptrace(PTRACE_POKEDATA, pid, p, 0L), EIO);
	CHECK(ptrace(PTRACE_CONT, pid, NULL, NULL) == 0);
	CHECK(waitpid(pid, &status, 0) == pid);
}

static void test_vmsplice_refused(void)
{
	int fd, pfd[2];
	char *p = secret_map(&fd, 0, 1), *c = control_page();
	struct iovec iov = { c, 64 };

	strcpy(p, SECRET);
	CHECK(pipe(pfd) == 0);
	CHECK(vmsplice(pfd[1], &iov, 1, 0) == 64);
	iov.iov_base = p;
	CHECK_ERR(vmsplice(pfd[1], &iov, 1, 0), EFAULT);
}

static void test_io_uring_register_refused(void)
{
	struct io_uring_params params = { 0 };
	int fd, ring;
	char *p = secret_map(&fd, 0, 1), *c = control_page();
	struct iovec iov = { c, ps };

	ring = syscall(__NR_io_uring_setup, 1, &params);
	CHECK(ring >= 0);
	CHECK(syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1) == 0);
	CHECK(syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0) == 0);
	iov.iov_base = p;
	CHECK_ERR(syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1), EFAULT);
}

/* In a child: takes descriptor @arg of the parent with pidfd_getfd() and reads it. */
static void take_and_read(void *arg)
{
	int pidfd = syscall(SYS_pidfd_open, getppid(), 0), fd;
	char *p;

	CHECK(pidfd >= 0);
	fd = syscall(SYS_pidfd_getfd, pidfd, *(int *)arg, 0);
	if (fd < 0)
		_exit(errno);
	p = mmap(NULL, ps, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	_exit(strcmp(p, SECRET) ? 255 : 0);
}

/* Runs @fn(@arg) in a child and returns its exit status. */
/*
 * What the threat model says: a process that may ptrace the owner takes the
 * descriptor and reads the secret; PR_SET_DUMPABLE 0 leaves that to
 * CAP_SYS_PTRACE (root here).
 */
static void test_pidfd_getfd_takes_the_descriptor(void)
{
	int fd;
	char *p = secret_map(&fd, 0, 1);

	strcpy(p, SECRET);
	CHECK(child_exit(take_and_read, &fd) == 0);
	CHECK(prctl(PR_SET_DUMPABLE, 0) == 0);
	CHECK(child_exit(take_and_read, &fd) == (geteuid() == 0 ? 0 : EPERM));
}

static void test_proc_fd_reopen_refused(void)
{
	int fd = secretmemfd(0);
	char path[64];

	CHECK(fd >= 0 && ftruncate(fd, ps) == 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	CHECK_ERR(open(path, O_RDWR), ENXIO);
	CHECK_ERR(open(path, O_RDONLY), ENXIO);
}

static void test_fdinfo(void)
{
	/* Uncached needs CAP_SYS_RAWIO, which root has here. */
	bool root = geteuid() == 0, found = false;
	int fd;
	char *p = secret_map(&fd, root ? SECRETMEM_UNCACHED : 0, 2), path[64], line[256];
	const char *want = root ? "secretmem-mode:\tuncached\n" : "secretmem-mode:\texclusive\n";
	FILE *f;

	CHECK(fdinfo_value(fd, "secretmem-size") == 2 * ps);
	CHECK(fdinfo_value(fd, "secretmem-pages") == 0);
	p[ps] = 1;
	CHECK(fdinfo_value(fd, "secretmem-pages") == 1);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	CHECK(f);
	while (fgets(line, sizeof(line), f))
		found |= !strcmp(line, want);
	CHECK(found);
}

static void test_memlock_limit_and_refund(void)
{
	struct rlimit lim = { 2 * ps, 2 * ps };
	int fd;
	char *p;

	drop_privileges();
	CHECK(setrlimit(RLIMIT_MEMLOCK, &lim) == 0);
	p = secret_map(&fd, 0, 4);
	CHECK(child_signal(touch, p) == 0);
	CHECK(child_signal(touch, p + ps) == 0);
	CHECK(child_signal(touch, p + 2 * ps) == SIGBUS);
	CHECK(fdinfo_value(fd, "secretmem-pages") == 2);
	CHECK(munmap(p, 4 * ps) == 0);
	CHECK(close(fd) == 0);
	/* Closing the last reference refunds both pages. */
	p = secret_map(&fd, 0, 2);
	CHECK(child_signal(touch, p) == 0);
	CHECK(child_signal(touch, p + ps) == 0);
}

/* Lowers this process's locked-memory limit to one page, then touches @addr. */
static void touch_with_one_page_limit(void *addr)
{
	struct rlimit lim = { ps, ps };

	CHECK(setrlimit(RLIMIT_MEMLOCK, &lim) == 0);
	touch(addr);
}

/*
 * Pages are charged to the creator's user against the limit of the task that
 * touches them, as it is at that time; CAP_IPC_LOCK (root) does not lift it.
 */
static void test_memlock_limit_at_fault_time(void)
{
	struct rlimit lim = { 4 * ps, 4 * ps };
	int fd;
	char *p;

	CHECK(setrlimit(RLIMIT_MEMLOCK, &lim) == 0);
	p = secret_map(&fd, 0, 4);
	CHECK(child_signal(touch, p) == 0);
	/* A toucher with a lower limit than the creator's: its own limit counts. */
	CHECK(child_signal(touch_with_one_page_limit, p + ps) == SIGBUS);
	CHECK(child_signal(touch, p + ps) == 0);
	/* Lowering the limit after creation stops new pages, even for root. */
	lim.rlim_cur = lim.rlim_max = 2 * ps;
	CHECK(setrlimit(RLIMIT_MEMLOCK, &lim) == 0);
	CHECK(child_signal(touch, p + 2 * ps) == SIGBUS);
	CHECK(fdinfo_value(fd, "secretmem-pages") == 2);
	/* Pages that exist stay usable. */
	CHECK(child_signal(touch_with_one_page_limit, p) == 0);
	CHECK(munmap(p, 4 * ps) == 0 && close(fd) == 0);
	/* Both pages were refunded to the creator's user. */
	p = secret_map(&fd, 0, 2);
	CHECK(child_signal(touch, p) == 0);
	CHECK(child_signal(touch, p + ps) == 0);
}

/*
 * Differences from memfd_secret(2), as in the table of secretmem-abi.rst.
 * Each pins our behaviour and, where the kernel has memfd_secret(2), its
 * behaviour, so the table stays true.
 */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* @pages pages of memfd_secret(2), mapped shared, or NULL without it. */
static char *memfd_secret_map(int *fdp, long pages)
{
	int fd = syscall(SYS_memfd_secret, O_CLOEXEC);
	char *p;

	if (fd < 0 && errno == ENOSYS)
		return NULL;
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, pages * ps) == 0);
	p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	*fdp = fd;
	return p;
}

/* madvise: 0 or errno for each advice on @p. */
static void check_madvise(char *p, int want)
{
	const int advice[] = { MADV_DONTNEED, MADV_DODUMP, MADV_DOFORK };

	for (int i = 0; i < 3; i++) {
		errno = 0;
		CHECK((madvise(p, ps, advice[i]) ? errno : 0) == want);
	}
}

static void test_differs_madvise(void)
{
	int fd, mfd;
	char *p = secret_map(&fd, 0, 1), *m = memfd_secret_map(&mfd, 1);

	/* VM_PFNMAP refuses zapping, VM_IO refuses dumping and copying. */
	check_madvise(p, EINVAL);
	CHECK(madvise(p, ps, MADV_DONTFORK) == 0);
	if (m)
		check_madvise(m, 0);
}

static void test_differs_mremap(void)
{
	int fd, mfd;
	char *p = secret_map(&fd, 0, 1), *m = memfd_secret_map(&mfd, 1);

	/* VM_DONTEXPAND | VM_PFNMAP: no growth, no duplication. */
	CHECK(mremap(p, ps, 2 * ps, MREMAP_MAYMOVE) == MAP_FAILED && errno == EFAULT);
	CHECK(mremap(p, 0, ps, MREMAP_MAYMOVE) == MAP_FAILED && errno == EFAULT);
	if (m) {
		CHECK(mremap(m, 0, ps, MREMAP_MAYMOVE) != MAP_FAILED);
		CHECK(mremap(m, ps, 2 * ps, MREMAP_MAYMOVE) != MAP_FAILED);
	}
}

static void test_differs_mlock(void)
{
	int fd, mfd;
	char *p = secret_map(&fd, 0, 1), *m = memfd_secret_map(&mfd, 1);

	/* The core skips VM_PFNMAP; memfd_secret's populate fails in GUP. */
	CHECK(mlock(p, ps) == 0);
	CHECK(munlock(p, ps) == 0);
	if (m)
		CHECK_ERR(mlock(m, ps), ENOMEM);
}

/* VmRSS, RssFile and VmLck of this process, in kB. */
static void rss(long *vmrss, long *rssfile, long *vmlck)
{
	*vmrss = key_value("/proc/self/status", "VmRSS");
	*rssfile = key_value("/proc/self/status", "RssFile");
	*vmlck = key_value("/proc/self/status", "VmLck");
}

static void test_differs_rss(void)
{
	const long pages = 256, kb = pages * ps / 1024;
	long rss0, file0, lck0, rss1, file1, lck1;
	int fd, mfd;
	char *p = secret_map(&fd, 0, pages), *m = memfd_secret_map(&mfd, pages);

	/*
	 * Special PFN entries count nowhere: the OOM killer does not see them.
	 * The counters are compared with a margin of a quarter of the pages:
	 * this process's own file pages (libc's, faulted around) may come in
	 * between the two readings.
	 */
	rss(&rss0, &file0, &lck0);
	for (long i = 0; i < pages; i++)
		p[i * ps] = 1;
	CHECK(mlock(p, pages * ps) == 0);
	rss(&rss1, &file1, &lck1);
	fprintf(stderr, "  VmRSS %ld -> %ld kB, RssFile %ld -> %ld kB, VmLck %ld -> %ld kB\n",
		rss0, rss1, file0, file1, lck0, lck1);
	CHECK(rss1 - rss0 < kb / 4 && file1 - file0 < kb / 4 && lck1 == lck0);
	if (m) {
		for (long i = 0; i < pages; i++)
			m[i * ps] = 1;
		rss(&rss0, &file0, &lck0);
		CHECK(rss0 - rss1 >= kb && file0 - file1 >= kb && lck0 == lck1);
	}
}

/* The /proc/self/maps line of the mapping at @p. */
static void maps_line(void *p, char *line, size_t len)
{
	char start[32];
	FILE *f = fopen("/proc/self/maps", "re");

	CHECK(f);
	snprintf(start, sizeof(start), "%lx-", (unsigned long)p);
	while (fgets(line, len, f))
		if (!strncmp(line, start, strlen(start))) {
			fclose(f);
			return;
		}
	CHECK(!"mapping not in /proc/self/maps");
}

static void test_differs_maps_name(void)
{
	int fd, mfd;
	char *p = secret_map(&fd, 0, 1), *m = memfd_secret_map(&mfd, 1), line[512];

	maps_line(p, line, sizeof(line));
	CHECK(strstr(line, " anon_inode:[secretmem]\n"));
	if (m) {
		maps_line(m, line, sizeof(line));
		CHECK(strstr(line, " /secretmem (deleted)\n"));
	}
}

static void test_differs_statfs(void)
{
	struct statfs st;
	int fd = secretmemfd(0), mfd = syscall(SYS_memfd_secret, O_CLOEXEC);

	CHECK(fd >= 0 && fstatfs(fd, &st) == 0 && st.f_type == ANON_INODE_FS_MAGIC);
	if (mfd >= 0)
		CHECK(fstatfs(mfd, &st) == 0 && st.f_type == SECRETMEM_MAGIC);
}

/* UFFDIO_REGISTER of @p in @mode on a WP_ASYNC userfaultfd: 0 or errno. */
static int uffd_register(void *p, __u64 mode)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	struct uffdio_register reg = {
		.range = { .start = (unsigned long)p, .len = ps },
		.mode = mode,
	};
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY), ret;

	CHECK(uffd >= 0);
	CHECK(ioctl(uffd, UFFDIO_API, &api) == 0);
	ret = ioctl(uffd, UFFDIO_REGISTER, &reg) ? errno : 0;
	close(uffd);
	return ret;
}

static void test_differs_userfaultfd_wp_async(void)
{
	int fd, mfd;
	char *p = secret_map(&fd, 0, 1), *m = memfd_secret_map(&mfd, 1);

	/* userfaultfd refuses VM_SPECIAL mappings in every mode. */
	CHECK(uffd_register(p, UFFDIO_REGISTER_MODE_WP) == EINVAL);
	CHECK(uffd_register(p, UFFDIO_REGISTER_MODE_MISSING) == EINVAL);
	if (m) {
		CHECK(uffd_register(m, UFFDIO_REGISTER_MODE_WP) == 0);
		CHECK(uffd_register(m, UFFDIO_REGISTER_MODE_MISSING) == EINVAL);
	}
}

static const struct test tests[] = {
	{ "create_flags", test_create_flags },
	{ "syscall_entry", test_syscall_entry },
	{ "uncached_needs_privilege", test_uncached_needs_privilege },
	{ "device_opened_read_only_refused", test_device_opened_read_only_refused },
	{ "size_once_and_fstat", test_size_once_and_fstat },
	{ "size_limits", test_size_limits },
	{ "read_write_splice_refused", test_read_write_splice_refused },
	{ "mmap_rules", test_mmap_rules },
	{ "fresh_zero_and_read_back", test_fresh_zero_and_read_back },
	{ "sigbus_past_size", test_sigbus_past_size },
	{ "shared_between_mappings_and_fork", test_shared_between_mappings_and_fork },
	{ "process_vm_readv_refused", test_process_vm_readv_refused },
	{ "proc_mem_refused", test_proc_mem_refused },
	{ "ptrace_peek_refused", test_ptrace_peek_refused },
	{ "vmsplice_refused", test_vmsplice_refused },
	{ "io_uring_register_refused", test_io_uring_register_refused },
	{ "proc_fd_reopen_refused", test_proc_fd_reopen_refused },
	{ "pidfd_getfd_takes_the_descriptor", test_pidfd_getfd_takes_the_descriptor },
	{ "fdinfo", test_fdinfo },
	{ "memlock_limit_and_refund", test_memlock_limit_and_refund },
	{ "memlock_limit_at_fault_time", test_memlock_limit_at_fault_time },
	{ "differs_madvise", test_differs_madvise },
	{ "differs_mremap", test_differs_mremap },
	{ "differs_mlock", test_differs_mlock },
	{ "differs_rss", test_differs_rss },
	{ "differs_maps_name", test_differs_maps_name },
	{ "differs_statfs", test_differs_statfs },
	{ "differs_userfaultfd_wp_async", test_differs_userfaultfd_wp_async },
};

int main(int argc, char **argv)
{
	return run_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
