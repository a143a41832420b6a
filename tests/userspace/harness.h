/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small test harness for the secretmemfd userspace tests: assertions that
 * exit the test's child with a message, helpers to map secret memory and to
 * run code in a child, and a runner that prints TAP.
 */
#ifndef SECRETMEM_HARNESS_H
#define SECRETMEM_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <secretmemfd.h>

#define SECRET "correct horse battery staple"
#define CONTROL "ordinary memory, readable by all"

static long ps;

#define CHECK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "  %s:%d: %s failed (errno %d: %s)\n", \
				__func__, __LINE__, #cond, errno,	\
				strerror(errno));			\
			exit(1);					\
		}							\
	} while (0)

/* Expects a call to fail with exactly this errno. */
#define CHECK_ERR(call, err)						\
	do {								\
		errno = 0;						\
		long __r = (long)(call);				\
		if (__r != -1 || errno != (err)) {			\
			fprintf(stderr, "  %s:%d: %s returned %ld errno %d (%s), want -1 errno %d (%s)\n", \
				__func__, __LINE__, #call, __r, errno,	\
				strerror(errno), err, strerror(err));	\
			exit(1);					\
		}							\
	} while (0)

/* A secret fd of @pages pages, mapped shared read/write. */
static inline char *secret_map(int *fdp, unsigned int flags, long pages)
{
	int fd = secretmemfd(flags);
	char *p;

	CHECK(fd >= 0);
	CHECK(ftruncate(fd, pages * ps) == 0);
	p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	*fdp = fd;
	return p;
}

/*
 * Whether the kernel under test carries our patches (kernel/patches): it does
 * unless the guest says it is the unpatched one (SECRETMEM_UNPATCHED=1). Tests
 * check what the kernel should offer, not what the module reports: there,
 * no system call, the mce-helpers backend and no blocks by default.
 */
static inline bool expect_patched(void)
{
	const char *v = getenv("SECRETMEM_UNPATCHED");

	return !v || strcmp(v, "1");
}

/* Whether the kernel serves the secretmemfd() system call (patch 0002). */
static inline bool expect_syscall(void)
{
	return expect_patched();
}

/* The expected system call number: 473, or -1 on a kernel without the stub. */
static inline long expected_syscall_nr(void)
{
	return expect_syscall() ? 473 : -1;
}

/*
 * Creation through the system call entry, or through the ioctl on a kernel
 * without it: what a test checks through this holds for both entries.
 */
static inline int entry_syscall(unsigned int flags)
{
	if (!expect_syscall())
		return secretmemfd_ioctl(flags);
	return syscall(secretmemfd_syscall_nr(), flags);
}

static inline void touch(void *addr)
{
	*(volatile char *)addr = 1;
}

/* Reads the number after "@key@sep" in the lines of @path, or -1 if none. */
static inline long key_value_sep(const char *path, const char *key, char sep)
{
	char line[256];
	size_t n = strlen(key);
	long value = -1;
	FILE *f = fopen(path, "re");

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == sep)
			value = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return value;
}

/* Reads the number after "@key:" in the lines of @path, or -1 if none. */
static inline long key_value(const char *path, const char *key)
{
	return key_value_sep(path, key, ':');
}

/* Writes @text to @path, or exits the test saying what failed. */
static inline void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		fprintf(stderr, "  cannot write '%s' to %s: %s\n", text, path, strerror(errno));
		exit(1);
	}
	close(fd);
}

/* Runs @fn(@arg) in a child and returns its wait status. */
static inline int child_wait(void (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (!pid) {
		fn(arg);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	return status;
}

/* Runs @fn(@arg) in a child and returns the signal that ended it, or 0. */
static inline int child_signal(void (*fn)(void *), void *arg)
{
	int status = child_wait(fn, arg);

	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* Runs @fn(@arg) in a child that must exit; returns its exit status. */
static inline int child_exit(void (*fn)(void *), void *arg)
{
	int status = child_wait(fn, arg);

	CHECK(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Whether the last "@key: " line of @path goes on with @prefix. */
static inline bool key_line_starts(const char *path, const char *key, const char *prefix)
{
	size_t n = strlen(key);
	char line[256];
	bool found = false;
	FILE *f = fopen(path, "re");

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && !strncmp(line + n, ": ", 2))
			found = !strncmp(line + n + 2, prefix, strlen(prefix));
	fclose(f);
	return found;
}

/* Reads the number at the start of @path. */
static inline long read_long(const char *path)
{
	long value = -1;
	FILE *f = fopen(path, "re");

	CHECK(f);
	CHECK(fscanf(f, "%ld", &value) == 1);
	fclose(f);
	return value;
}

struct test {
	const char *name;
	void (*fn)(void);
};

/* Whether @name is among the names given on the command line (or none was). */
static inline bool selected(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

/*
 * Runs each test (those named in argv, or all) in its own child and prints
 * TAP; returns the exit status. An unknown name is a failure.
 */
static inline int run_tests(const struct test *tests, size_t n, int argc, char **argv)
{
	size_t planned = 0, i, k = 0;
	int failed = 0, status;

	ps = sysconf(_SC_PAGESIZE);
	for (i = 0; i < n; i++)
		planned += selected(tests[i].name, argc, argv);
	if (argc > 1 && planned != (size_t)argc - 1) {
		fprintf(stderr, "unknown test name among the arguments\n");
		return 2;
	}
	printf("TAP version 13\n1..%zu\n", planned);
	for (i = 0; i < n; i++) {
		pid_t pid;

		if (!selected(tests[i].name, argc, argv))
			continue;
		k++;
		fflush(stdout);
		pid = fork();
		if (pid < 0)
			return 2;
		if (!pid) {
			tests[i].fn();
			_exit(0);
		}
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("ok %zu %s\n", k, tests[i].name);
		} else {
			printf("not ok %zu %s (%s %d)\n", k, tests[i].name,
			       WIFSIGNALED(status) ? "signal" : "exit",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			failed++;
		}
	}
	fflush(stdout);
	return failed ? 1 : 0;
}

#endif /* SECRETMEM_HARNESS_H */
