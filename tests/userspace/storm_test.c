// SPDX-License-Identifier: GPL-2.0
/*
 * A bounded storm on secretmemfd: several processes, each with several
 * threads, create secret memory files (through the ioctl and the system
 * call, cached and uncached), size them, map and fault them, fork children
 * that read and write them, pass the descriptors round a ring of processes
 * over SCM_RIGHTS, unmap (in parts) and close, for a fixed time. Meanwhile
 * another process keeps trying to unload the module; every few seconds the
 * workers let go of everything for a moment so that the unload can succeed;
 * they go on without the module for a moment, and it is loaded again from
 * $SECRETMEM_KO under them.
 *
 * Fails on any errno outside the expected set (the module being briefly
 * unloaded gives ENOSYS, ENOENT, ENODEV or ENXIO; uncached memory may need a
 * privilege, EPERM), any signal, any data mismatch, an unload that never
 * succeeds, a reload that fails, or counters that are not back to zero at
 * the end. Root only. usage: storm_test [SECONDS] (default 20). Prints TAP.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "harness.h"

#define STATS "/sys/kernel/debug/secretmemfd/stats"
#define WORKERS 3
#define THREADS 2
#define MAX_PAGES 8
#define MAGIC 0x5ec7e75ec7e75ec7ULL

/* Counters and flags shared by every process of the storm. */
struct shared {
	atomic_int stop;
	atomic_int lull;
	atomic_long creates, unloaded, refused_uncached, touches, forks, sent,
		send_full, received, partial_unmaps, closes;
	atomic_long rmmod_tries, rmmod_busy, unloads, reloads;
	atomic_int failed;
	char failure[256];
};

static struct shared *S;
static long syscall_nr;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Records the first failure and stops the storm. */
static void fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange(&S->failed, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(S->failure, sizeof(S->failure), fmt, ap);
		va_end(ap);
	}
	atomic_store(&S->stop, 1);
}

static bool module_absent(int err)
{
	return err == ENOSYS || err == ENOENT || err == ENODEV || err == ENXIO;
}

struct worker {
	int rx, tx;		/* this process's end of the ring, and the next one's */
	unsigned int seed;
};

static unsigned int rnd(struct worker *w, unsigned int n)
{
	return rand_r(&w->seed) % n;
}

static int create(struct worker *w, unsigned int flags)
{
	if (rnd(w, 2) && syscall_nr >= 0)
		return syscall(syscall_nr, flags);
	return secretmemfd_ioctl(flags);
}

/* Each page starts with MAGIC and its index: what a sharer must see. */
static void fill(char *p, long pages)
{
	for (long i = 0; i < pages; i++) {
		uint64_t *w = (uint64_t *)(p + i * ps);

		w[0] = MAGIC;
		w[1] = i;
	}
}

static bool filled(const char *p, long pages)
{
	for (long i = 0; i < pages; i++) {
		const uint64_t *w = (const uint64_t *)(p + i * ps);

		if (w[0] != MAGIC || w[1] != (uint64_t)i)
			return false;
	}
	return true;
}

static void send_fd(struct worker *w, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, byte = 'f';
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(w->tx, &msg, MSG_DONTWAIT) == 1)
		atomic_fetch_add(&S->sent, 1);
	else if (errno == EAGAIN || errno == ETOOMANYREFS)
		atomic_fetch_add(&S->send_full, 1);
	else
		fail("sendmsg(SCM_RIGHTS): %s", strerror(errno));
}

/* Maps and checks one descriptor from the ring, then lets it go. */
static void use_received(int fd)
{
	struct stat st;
	char *p;

	if (fstat(fd, &st) || st.st_size <= 0 || st.st_size % ps) {
		fail("fstat of a received descriptor: size %lld (%s)", (long long)st.st_size,
		     strerror(errno));
		close(fd);
		return;
	}
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fail("mmap of a received descriptor: %s", strerror(errno));
	} else {
		if (!filled(p, st.st_size / ps))
			fail("a received secret memory file lost its contents");
		munmap(p, st.st_size);
	}
	close(fd);
	atomic_fetch_add(&S->received, 1);
}

/* Takes whatever the previous process in the ring sent; returns how many. */
static int receive(struct worker *w, int max)
{
	int n;

	for (n = 0; n < max; n++) {
		char cbuf[CMSG_SPACE(sizeof(int))], byte;
		struct iovec iov = { &byte, 1 };
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		struct cmsghdr *c;
		int fd;

		if (recvmsg(w->rx, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1) {
			if (errno != EAGAIN)
				fail("recvmsg: %s", strerror(errno));
			break;
		}
		c = CMSG_FIRSTHDR(&msg);
		if (!c || c->cmsg_type != SCM_RIGHTS) {
			fail("a ring message without a descriptor");
			break;
		}
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
		use_received(fd);
	}
	return n;
}

/* A child reads what the parent wrote and writes beside it. */
static void fork_reader(char *p, long pages)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		return;
	}
	if (!pid) {
		if (!filled(p, pages))
			_exit(3);
		for (long i = 0; i < pages; i++)
			p[i * ps + 64] = 'c';
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		fail("waitpid: %s", strerror(errno));
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("a forked reader ended with %s %d", WIFSIGNALED(status) ? "signal" : "exit",
		     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	else if (p[64] != 'c')
		fail("a forked reader's write did not reach the parent");
	atomic_fetch_add(&S->forks, 1);
}

/* One life of one secret memory file, start to end. */
static void round_once(struct worker *w)
{
	unsigned int flags = (rnd(w, 4) ? SECRETMEM_EXCLUSIVE : SECRETMEM_UNCACHED) |
			     (rnd(w, 2) ? O_CLOEXEC : 0);
	long pages = 1 + rnd(w, MAX_PAGES);
	int fd = create(w, flags);
	char *p;

	if (fd < 0) {
		if (module_absent(errno)) {
			atomic_fetch_add(&S->unloaded, 1);
			usleep(1000);
		} else if (errno == EPERM && (flags & SECRETMEM_UNCACHED)) {
			atomic_fetch_add(&S->refused_uncached, 1);
		} else {
			fail("create(0x%x): %s", flags, strerror(errno));
		}
		return;
	}
	atomic_fetch_add(&S->creates, 1);
	if (ftruncate(fd, pages * ps)) {
		fail("ftruncate(%ld pages): %s", pages, strerror(errno));
		close(fd);
		return;
	}
	p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fail("mmap(%ld pages): %s", pages, strerror(errno));
		close(fd);
		return;
	}
	fill(p, pages);
	if (!filled(p, pages))
		fail("secret memory did not read back");
	atomic_fetch_add(&S->touches, pages);
	if (!rnd(w, 6))
		fork_reader(p, pages);
	if (!rnd(w, 3))
		send_fd(w, fd);
	receive(w, 2);
	if (pages > 1 && !rnd(w, 3)) {
		if (munmap(p + ps, (pages - 1) * ps))
			fail("partial munmap: %s", strerror(errno));
		atomic_fetch_add(&S->partial_unmaps, 1);
		pages = 1;
	}
	if (munmap(p, pages * ps))
		fail("munmap: %s", strerror(errno));
	if (close(fd))
		fail("close: %s", strerror(errno));
	atomic_fetch_add(&S->closes, 1);
}

static void *worker_thread(void *arg)
{
	struct worker w = *(struct worker *)arg;

	w.seed ^= (unsigned int)(uintptr_t)pthread_self();
	while (!atomic_load(&S->stop)) {
		if (atomic_load(&S->lull)) {
			/* Hold nothing, so that the module can go. */
			receive(&w, 64);
			usleep(2000);
			continue;
		}
		round_once(&w);
	}
	return NULL;
}

static void worker_process(int rx, int tx, unsigned int seed)
{
	pthread_t threads[THREADS];
	struct worker w = { .rx = rx, .tx = tx, .seed = seed };

	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&threads[i], NULL, worker_thread, &w))
			fail("pthread_create");
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	while (receive(&w, 64))
		;
	_exit(0);
}

static bool module_loaded(void)
{
	return access("/sys/module/secretmemfd", F_OK) == 0;
}

static bool load_module(void)
{
	const char *ko = getenv("SECRETMEM_KO");
	int fd, ret;

	if (!ko)
		return false;
	fd = open(ko, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ret = syscall(__NR_finit_module, fd, "", 0);
	close(fd);
	return ret == 0;
}

/* Tries to unload the module; returns whether it went. */
static bool try_unload(void)
{
	atomic_fetch_add(&S->rmmod_tries, 1);
	if (syscall(__NR_delete_module, "secretmemfd", O_NONBLOCK) == 0) {
		atomic_fetch_add(&S->unloads, 1);
		return true;
	}
	if (errno == EWOULDBLOCK || errno == EBUSY)
		atomic_fetch_add(&S->rmmod_busy, 1);
	else
		fail("delete_module: %s", strerror(errno));
	return false;
}

static void reload(void)
{
	if (!load_module())
		fail("loading the module again from $SECRETMEM_KO failed: %s", strerror(errno));
	else
		atomic_fetch_add(&S->reloads, 1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Every 20 ms an unload attempt, which the workers' files must refuse. Every
 * 4 s a lull of up to 3 s in which the workers hold nothing, so that the
 * unload succeeds; then the workers go on for 200 ms without the module, and
 * it is loaded again under them.
 */
static void unloader_process(void)
{
	double next_lull = now() + 2;

	/*
	 * The first attempt waits for the first file: made earlier, it would
	 * unload the module before anything holds it, and a reload under load
	 * (KUnit runs at load) can take most of the run.
	 */
	while (!atomic_load(&S->creates) && !atomic_load(&S->stop))
		usleep(1000);
	while (!atomic_load(&S->stop)) {
		bool unloaded = false;

		if (now() >= next_lull) {
			double end = now() + 3;

			atomic_store(&S->lull, 1);
			while (now() < end && !atomic_load(&S->stop) && !(unloaded = try_unload()))
				usleep(10000);
			atomic_store(&S->lull, 0);
			if (unloaded)
				usleep(200000);
			next_lull = now() + 4;
		} else {
			unloaded = try_unload();
		}
		if (unloaded)
			reload();
		usleep(20000);
	}
	_exit(0);
}

static long stat_value(const char *key)
{
	return key_value(STATS, key);
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 20, ring[WORKERS][2], status, n = 0, failed = 0;
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	pid_t pids[WORKERS + 1];
	bool clean = true;
	double start;

	ps = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(S != MAP_FAILED);
	syscall_nr = secretmemfd_syscall_nr();
	CHECK(syscall_nr == expected_syscall_nr());
	/* The locked-memory limit is not what this test is about. */
	CHECK(setrlimit(RLIMIT_MEMLOCK, &unlimited) == 0);
	printf("TAP version 13\n1..3\n");
	for (int i = 0; i < WORKERS; i++)
		CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, ring[i]) == 0);

	start = now();
	fflush(NULL);
	for (int i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		CHECK(pids[i] >= 0);
		if (!pids[i])
			/* Worker i reads ring[i][0] and sends to the next worker's ring[i+1][1]. */
			worker_process(ring[i][0], ring[(i + 1) % WORKERS][1], 0x5eed + i);
	}
	pids[WORKERS] = fork();
	CHECK(pids[WORKERS] >= 0);
	if (!pids[WORKERS])
		unloader_process();
	for (int i = 0; i < WORKERS; i++) {
		close(ring[i][0]);
		close(ring[i][1]);
	}

	while (now() - start < seconds && !atomic_load(&S->stop))
		usleep(100000);
	atomic_store(&S->stop, 1);
	for (int i = 0; i <= WORKERS; i++) {
		CHECK(waitpid(pids[i], &status, 0) == pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			printf("# %s process ended with %s %d\n", i < WORKERS ? "a worker" : "the unloader",
			       WIFSIGNALED(status) ? "signal" : "exit",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			clean = false;
		}
	}
	printf("# %.1f s, %d processes x %d threads: %ld files created, %ld closed, %ld pages touched, %ld forks, %ld descriptors passed (%ld sends on a full ring), %ld received, %ld partial unmaps; %ld creations while unloaded, %ld uncached refused\n",
	       now() - start, WORKERS, THREADS, atomic_load(&S->creates), atomic_load(&S->closes),
	       atomic_load(&S->touches), atomic_load(&S->forks), atomic_load(&S->sent),
	       atomic_load(&S->send_full), atomic_load(&S->received),
	       atomic_load(&S->partial_unmaps), atomic_load(&S->unloaded),
	       atomic_load(&S->refused_uncached));
	if (atomic_load(&S->failed))
		printf("# failure: %s\n", S->failure);
	clean = clean && !atomic_load(&S->failed) && atomic_load(&S->creates) > 0;
	failed += !clean;
	printf("%s %d storm_without_unexpected_result\n", clean ? "ok" : "not ok", ++n);

	printf("# unload tried %ld times: refused busy %ld, unloaded %ld, loaded again %ld\n",
	       atomic_load(&S->rmmod_tries), atomic_load(&S->rmmod_busy),
	       atomic_load(&S->unloads), atomic_load(&S->reloads));
	if (!module_loaded() && !load_module())
		printf("# the module is not loaded and cannot be loaded again\n");
	clean = atomic_load(&S->rmmod_busy) > 0 && atomic_load(&S->unloads) > 0 &&
		atomic_load(&S->reloads) == atomic_load(&S->unloads) && module_loaded();
	failed += !clean;
	printf("%s %d unload_refused_in_use_and_reload\n", clean ? "ok" : "not ok", ++n);

	{
		long areas, pages, removals, restores, pool;

		/* Descriptors still in flight when the ring closed may be put a moment later. */
		for (int i = 0; i < 50 && stat_value("areas") != 0; i++)
			usleep(100000);
		areas = stat_value("areas");
		pages = stat_value("pages");
		removals = stat_value("direct_map_removals");
		restores = stat_value("direct_map_restores");
		pool = stat_value("pool_pages");
		printf("# counters at the end: areas %ld, pages %ld, removals %ld, restores %ld, pool_pages %ld\n",
		       areas, pages, removals, restores, pool);
		/* Out of the direct map: only the page pool's fresh pages. */
		clean = areas == 0 && pages == 0 && removals == restores + pool;
		failed += !clean;
		printf("%s %d counters_back_to_zero\n", clean ? "ok" : "not ok", ++n);
	}
	return failed ? 1 : 0;
}
