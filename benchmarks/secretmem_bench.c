// SPDX-License-Identifier: GPL-2.0
/*
 * secretmem_bench: what secret memory costs against ordinary memory.
 *
 * For one target (secretmemfd, secretmemfd-uncached, memfd_secret, memfd or
 * anon) it measures, at each size:
 *   - first touch: mmap, then one byte written per 4 KiB page; MiB/s of the
 *     writing loop alone, best of REPS runs;
 *   - teardown: munmap + close of the touched mapping, ms, best of REPS;
 *   - direct_map_level2_splits and direct_map_level3_splits (/proc/vmstat)
 *     added over all REPS runs of that size, and the module's tlb_flushes
 *     (debugfs) added per run;
 * and the latency of one 4 KiB secret: create + size + mmap + touch +
 * munmap + close, ITERS times after 100 unmeasured ones, p50 and p99, and
 * the p50 of each of those six steps. secretmemfd targets run it for each
 * way of creating, taking turns: the system call (when the module serves
 * one), the ioctl as <secretmemfd.h> makes it (open the device, ioctl, close
 * it) and the ioctl on a device descriptor opened once.
 *
 * Sizes run from the smallest up and the latency first, so what one phase
 * splits in the direct map stays split for the next: run each target in a
 * freshly booted guest (benchmarks/bench.sh does) so that every target starts
 * from the same direct map.
 *
 * Runs as root: it raises RLIMIT_MEMLOCK to infinity, since secret memory is
 * charged to the faulting task's limit whatever its capabilities.
 *
 * Output: one JSON object per line on stdout, read by benchmarks/report.py,
 * which documents the fields; progress goes to stderr.
 *
 * usage: secretmem_bench [-r REPS] [-n ITERS] [-s SIZE[,SIZE...]] [-m MAX] TARGET
 *   SIZE and MAX take a K, M or G suffix; sizes above MAX are reported as
 *   skipped (for targets too slow under emulation to run at every size).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <secretmemfd.h>

#ifndef __NR_memfd_secret
#define __NR_memfd_secret 447
#endif

#define PAGE 4096UL
#define MIB (1024.0 * 1024.0)
#define STATS_PATH "/sys/kernel/debug/secretmemfd/stats"
#define WARMUP 100
/* Room left beside a mapping so that the guest does not reclaim or OOM. */
#define HEADROOM (128UL << 20)

enum kind { SECRETMEMFD, SECRETMEMFD_UNCACHED, MEMFD_SECRET, MEMFD, ANON };

/* The target's name in the output: its own, or -l LABEL's. */
static const char *label;

static const char *const target_names[] = {
	[SECRETMEMFD] = "secretmemfd",
	[SECRETMEMFD_UNCACHED] = "secretmemfd-uncached",
	[MEMFD_SECRET] = "memfd_secret",
	[MEMFD] = "memfd",
	[ANON] = "anon",
};

static enum kind target;
/* The secretmemfd() system call number, looked up once; -1 means the ioctl. */
static long secretmemfd_nr = -1;
/* A descriptor of the device that create() uses for the ioctl, or -1. */
static int secretmem_dev = -1;

/* The steps of the latency phase, each timed on its own. */
enum step { CREATE, SIZE, MAP, TOUCH, UNMAP, CLOSE, NSTEPS };

static const char *const step_names[NSTEPS] = {
	[CREATE] = "create", [SIZE] = "ftruncate", [MAP] = "mmap",
	[TOUCH] = "touch",   [UNMAP] = "munmap",   [CLOSE] = "close",
};

static void die(const char *what)
{
	fprintf(stderr, "secretmem_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The value after "@key" and a separator in the lines of @path, or 0. */
static unsigned long long counter(const char *path, const char *key)
{
	char line[256];
	size_t n = strlen(key);
	unsigned long long value = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && (line[n] == ' ' || line[n] == ':')) {
			value = strtoull(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return value;
}

struct counters {
	unsigned long long l2, l3, tlb;
};

static struct counters read_counters(void)
{
	return (struct counters){
		.l2 = counter("/proc/vmstat", "direct_map_level2_splits"),
		.l3 = counter("/proc/vmstat", "direct_map_level3_splits"),
		/* Not loaded, or not the module's target: nothing flushed. */
		.tlb = counter(STATS_PATH, "tlb_flushes"),
	};
}

static struct counters counters_since(struct counters before)
{
	struct counters now = read_counters();

	return (struct counters){
		.l2 = now.l2 - before.l2,
		.l3 = now.l3 - before.l3,
		.tlb = now.tlb - before.tlb,
	};
}

/* A descriptor of the target's kind, not yet sized; -1 for anon. */
static int create(void)
{
	int fd;

	switch (target) {
	case SECRETMEMFD:
	case SECRETMEMFD_UNCACHED: {
		unsigned int flags = O_CLOEXEC |
			(target == SECRETMEMFD ? SECRETMEM_EXCLUSIVE : SECRETMEM_UNCACHED);

		if (secretmem_dev >= 0)
			fd = ioctl(secretmem_dev, SECRETMEM_CREATE, flags);
		else if (secretmemfd_nr >= 0)
			fd = syscall(secretmemfd_nr, flags);
		else
			fd = secretmemfd_ioctl(flags);
		if (fd < 0)
			die("secretmemfd");
		return fd;
	}
	case MEMFD_SECRET:
		fd = syscall(__NR_memfd_secret, O_CLOEXEC);
		if (fd < 0)
			die(errno == ENOSYS ? "memfd_secret (disabled? boot with secretmem.enable=1)" :
					      "memfd_secret");
		return fd;
	case MEMFD:
		fd = memfd_create("secretmem-bench", MFD_CLOEXEC);
		if (fd < 0)
			die("memfd_create");
		return fd;
	case ANON:
		break;
	}
	return -1;
}

/* Creates, sizes and maps @size bytes of the target; returns the mapping. */
static char *map_target(size_t size, int *fdp)
{
	int fd = create();
	char *p;

	if (fd < 0) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	} else {
		if (ftruncate(fd, size))
			die("ftruncate");
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	}
	if (p == MAP_FAILED)
		die("mmap");
	*fdp = fd;
	return p;
}

static void touch_pages(char *p, size_t size)
{
	for (size_t off = 0; off < size; off += PAGE)
		((volatile char *)p)[off] = 1;
}

static void unmap_target(char *p, size_t size, int fd)
{
	if (munmap(p, size))
		die("munmap");
	if (fd >= 0 && close(fd))
		die("close");
}

static const char *size_name(size_t size, char *buf, size_t len)
{
	if (size >= (1UL << 30) && !(size % (1UL << 30)))
		snprintf(buf, len, "%zu GiB", size >> 30);
	else if (size >= (1UL << 20) && !(size % (1UL << 20)))
		snprintf(buf, len, "%zu MiB", size >> 20);
	else
		snprintf(buf, len, "%zu KiB", size >> 10);
	return buf;
}

static void bench_size(size_t size, int reps)
{
	double touch_ms[reps], teardown_ms[reps];
	struct counters run[reps], all = { 0 };
	double best_touch = 0, best_teardown = 0;
	char name[32];

	size_name(size, name, sizeof(name));
	for (int i = 0; i < reps; i++) {
		struct counters before = read_counters();
		double t0, t1, t2;
		char *p;
		int fd;

		p = map_target(size, &fd);
		t0 = now_ms();
		touch_pages(p, size);
		t1 = now_ms();
		unmap_target(p, size, fd);
		t2 = now_ms();
		run[i] = counters_since(before);
		touch_ms[i] = t1 - t0;
		teardown_ms[i] = t2 - t1;
		all.l2 += run[i].l2;
		all.l3 += run[i].l3;
		all.tlb += run[i].tlb;
		if (!i || touch_ms[i] < best_touch)
			best_touch = touch_ms[i];
		if (!i || teardown_ms[i] < best_teardown)
			best_teardown = teardown_ms[i];
		fprintf(stderr, "  %s %s run %d: touch %.3f ms, teardown %.3f ms, splits %llu/%llu, tlb flushes %llu\n",
			label, name, i + 1, touch_ms[i], teardown_ms[i],
			run[i].l2, run[i].l3, run[i].tlb);
	}

	printf("{\"kind\": \"size\", \"target\": \"%s\", \"size_bytes\": %zu, "
	       "\"first_touch_mib_s\": %.3f, \"teardown_ms\": %.4f, "
	       "\"l2_splits\": %llu, \"l3_splits\": %llu, \"tlb_flushes\": %llu, \"runs\": [",
	       label, size, best_touch > 0 ? size / MIB / (best_touch / 1e3) : 0,
	       best_teardown, all.l2, all.l3, all.tlb / reps);
	for (int i = 0; i < reps; i++)
		printf("%s{\"first_touch_ms\": %.4f, \"teardown_ms\": %.4f, \"l2_splits\": %llu, "
		       "\"l3_splits\": %llu, \"tlb_flushes\": %llu}",
		       i ? ", " : "", touch_ms[i], teardown_ms[i], run[i].l2, run[i].l3, run[i].tlb);
	printf("]}\n");
	fflush(stdout);
}

static void skip_size(size_t size, const char *reason)
{
	char name[32];

	fprintf(stderr, "  %s %s skipped: %s\n", label,
		size_name(size, name, sizeof(name)), reason);
	printf("{\"kind\": \"skipped\", \"target\": \"%s\", \"size_bytes\": %zu, \"reason\": \"%s\"}\n",
	       label, size, reason);
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The value below which @q of the sorted @v lie (nearest rank). */
static double percentile(const double *v, int n, double q)
{
	int rank = (int)(q * n + 0.999999);

	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* A way of creating the target's descriptors, for the latency phase. */
struct way {
	const char *via;	/* "" for targets with one way only */
	long nr;		/* secretmemfd_nr while it runs */
	int dev;		/* secretmem_dev while it runs */
	double *total, *step[NSTEPS];
};

/* One 4 KiB secret, from creation to close, as @w says; times go to slot @i. */
static void one_secret(struct way *w, int i)
{
	double t[NSTEPS + 1];
	int fd;
	char *p;

	secretmemfd_nr = w->nr;
	secretmem_dev = w->dev;
	t[0] = now_us();
	fd = create();
	t[1] = now_us();
	if (fd >= 0 && ftruncate(fd, PAGE))
		die("ftruncate");
	t[2] = now_us();
	p = fd < 0 ? mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) :
		     mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	t[3] = now_us();
	touch_pages(p, PAGE);
	t[4] = now_us();
	if (munmap(p, PAGE))
		die("munmap");
	t[5] = now_us();
	if (fd >= 0 && close(fd))
		die("close");
	t[6] = now_us();
	if (i < 0)
		return;
	w->total[i] = t[NSTEPS] - t[0];
	for (int s = 0; s < NSTEPS; s++)
		w->step[s][i] = t[s + 1] - t[s];
}

/* Prints the "latency" line of the first way, "latency_via" lines of the others. */
static void report_latency(struct way *w, int iters, bool first, struct counters added)
{
	double sum = 0;

	for (int i = 0; i < iters; i++)
		sum += w->total[i];
	qsort(w->total, iters, sizeof(*w->total), cmp_double);
	for (int s = 0; s < NSTEPS; s++)
		qsort(w->step[s], iters, sizeof(*w->step[s]), cmp_double);
	fprintf(stderr, "  %s%s%s 4 KiB secret x %d: p50 %.1f us, p99 %.1f us; step p50s:",
		label, *w->via ? " via " : "", w->via, iters,
		percentile(w->total, iters, 0.50), percentile(w->total, iters, 0.99));
	for (int s = 0; s < NSTEPS; s++)
		fprintf(stderr, " %s %.1f", step_names[s], percentile(w->step[s], iters, 0.50));
	fprintf(stderr, "\n");
	printf("{\"kind\": \"%s\", \"target\": \"%s\", \"via\": \"%s\", \"size_bytes\": %lu, "
	       "\"iterations\": %d, \"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, "
	       "\"max_us\": %.2f, \"l2_splits\": %llu, \"l3_splits\": %llu, \"tlb_flushes\": %llu, "
	       "\"steps_p50_us\": {",
	       first ? "latency" : "latency_via", label, w->via, PAGE, iters,
	       percentile(w->total, iters, 0.50), percentile(w->total, iters, 0.99), sum / iters,
	       w->total[iters - 1], added.l2, added.l3, added.tlb);
	for (int s = 0; s < NSTEPS; s++)
		printf("%s\"%s\": %.2f", s ? ", " : "", step_names[s],
		       percentile(w->step[s], iters, 0.50));
	printf("}}\n");
	fflush(stdout);
}

/*
 * The latency of one 4 KiB secret, for each way of creating the target:
 * secretmemfd's system call (if served, it is the "latency" line, as the
 * library takes it first), its ioctl as <secretmemfd.h> makes it, and the
 * ioctl on a device descriptor opened once. The ways take turns, one secret
 * each, so that a slow spell of the shared host hits them all alike. Each
 * way reports the splits and TLB flushes of all ways divided by their
 * number: they all do the same work to the direct map.
 */
static void bench_latency(int iters)
{
	struct way ways[3] = { { .via = "", .nr = -1, .dev = -1 } };
	int nways = 1, dev = -1;
	struct counters before, added;

	if (target == SECRETMEMFD || target == SECRETMEMFD_UNCACHED) {
		dev = open(SECRETMEM_DEVICE, O_RDWR | O_CLOEXEC);
		if (dev < 0)
			die("open " SECRETMEM_DEVICE);
		nways = 0;
		if (secretmemfd_nr >= 0)
			ways[nways++] = (struct way){ .via = "syscall", .nr = secretmemfd_nr, .dev = -1 };
		ways[nways++] = (struct way){ .via = "ioctl", .nr = -1, .dev = -1 };
		ways[nways++] = (struct way){ .via = "ioctl-held", .nr = -1, .dev = dev };
	}
	for (int k = 0; k < nways; k++) {
		ways[k].total = malloc(iters * sizeof(double));
		for (int s = 0; s < NSTEPS; s++)
			ways[k].step[s] = malloc(iters * sizeof(double));
		for (int s = 0; s < NSTEPS; s++)
			if (!ways[k].total || !ways[k].step[s])
				die("malloc");
	}
	before = read_counters();
	for (int i = -WARMUP; i < iters; i++)
		for (int k = 0; k < nways; k++)
			one_secret(&ways[k], i);
	added = counters_since(before);
	added.l2 /= nways;
	added.l3 /= nways;
	added.tlb /= nways;
	for (int k = 0; k < nways; k++) {
		report_latency(&ways[k], iters, !k, added);
		for (int s = 0; s < NSTEPS; s++)
			free(ways[k].step[s]);
		free(ways[k].total);
	}
	if (dev >= 0)
		close(dev);
	secretmemfd_nr = ways[0].nr;
	secretmem_dev = -1;
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	/* Each suffix shifts by its own 10 bits and those of the ones below. */
	switch (*end) {
	case 'G':
		v <<= 10;
		/* fall through */
	case 'M':
		v <<= 10;
		/* fall through */
	case 'K':
		v <<= 10;
		end++;
		break;
	}
	if (end == s || (*end && *end != ',') || !v || v % PAGE) {
		fprintf(stderr, "secretmem_bench: bad size '%s' (a multiple of 4K)\n", s);
		exit(2);
	}
	return v;
}

static void usage(void)
{
	fprintf(stderr, "usage: secretmem_bench [-r REPS] [-n ITERS] [-s SIZE[,SIZE...]] [-m MAX] [-l LABEL] TARGET\n"
			"targets: secretmemfd secretmemfd-uncached memfd_secret memfd anon\n"
			"-l names the target in the output (e.g. secretmemfd-helpers for another module build)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *sizes = "16K,1M,64M,256M,1G";
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	size_t max = SIZE_MAX, size[16];
	int reps = 3, iters = 10000, nsizes = 0, opt;
	struct utsname uts;
	bool found = false;

	while ((opt = getopt(argc, argv, "r:n:s:m:l:")) != -1) {
		switch (opt) {
		case 'l':
			label = optarg;
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'n':
			iters = atoi(optarg);
			break;
		case 's':
			sizes = optarg;
			break;
		case 'm':
			max = parse_size(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || reps < 1 || iters < 0)
		usage();
	for (size_t k = 0; k < sizeof(target_names) / sizeof(target_names[0]); k++)
		if (!strcmp(argv[optind], target_names[k])) {
			target = k;
			found = true;
		}
	if (!found)
		usage();
	if (!label)
		label = target_names[target];

	/* Bad sizes stop the program before it measures anything. */
	for (const char *s = sizes; *s;) {
		if (nsizes == (int)(sizeof(size) / sizeof(size[0])))
			usage();
		size[nsizes++] = parse_size(s);
		s = strchrnul(s, ',');
		if (*s)
			s++;
	}
	/* Secret memory is charged to RLIMIT_MEMLOCK, CAP_IPC_LOCK or not. */
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited)) {
		if (target != MEMFD && target != ANON)
			die("setrlimit(RLIMIT_MEMLOCK, unlimited) (run as root)");
		fprintf(stderr, "secretmem_bench: RLIMIT_MEMLOCK stays as it is: %s\n",
			strerror(errno));
	}
	if (target == SECRETMEMFD || target == SECRETMEMFD_UNCACHED)
		secretmemfd_nr = secretmemfd_syscall_nr();

	uname(&uts);
	printf("{\"kind\": \"system\", \"target\": \"%s\", \"kernel\": \"%s\", \"cpus\": %ld, "
	       "\"mem_total_kib\": %llu, \"reps\": %d, \"secretmemfd_via\": \"%s\"}\n",
	       label, uts.release, sysconf(_SC_NPROCESSORS_ONLN),
	       counter("/proc/meminfo", "MemTotal"), reps,
	       target > SECRETMEMFD_UNCACHED ? "" : secretmemfd_nr >= 0 ? "syscall" : "ioctl");
	fflush(stdout);

	if (iters)
		bench_latency(iters);
	for (int i = 0; i < nsizes; i++) {
		size_t avail = counter("/proc/meminfo", "MemAvailable") << 10;

		if (size[i] > max)
			skip_size(size[i], "above this target's size cap (-m)");
		else if (size[i] + HEADROOM > avail)
			skip_size(size[i], "more than the guest's available memory less 128 MiB");
		else
			bench_size(size[i], reps);
	}
	return 0;
}
