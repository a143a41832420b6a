// SPDX-License-Identifier: GPL-2.0
/*
 * A C example of secretmemfd: a process keeps a key in secret memory and a
 * copy in ordinary memory, then its parent tries to read both with
 * process_vm_readv, /proc/PID/mem and ptrace. The ordinary copy leaks; the
 * secret one does not.
 *
 * Build: cc -Iinclude -Iinclude/uapi -o secretmem_example examples/secretmem_example.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <secretmemfd.h>

#define KEY "-----BEGIN DEMO KEY----- 5ecret"

static const char *show(int ok, const char *buf)
{
	static char line[80];

	if (ok)
		snprintf(line, sizeof(line), "READ \"%.20s...\"", buf);
	else
		snprintf(line, sizeof(line), "refused (%s)", strerror(errno));
	return line;
}

static void attack(pid_t pid, const char *what, void *addr)
{
	char buf[64] = "", path[64];
	struct iovec local = { buf, sizeof(buf) }, remote = { addr, sizeof(buf) };
	long word;
	int fd, ok;

	ok = process_vm_readv(pid, &local, 1, &remote, 1, 0) == sizeof(buf);
	printf("  %-16s process_vm_readv   %s\n", what, show(ok, buf));
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	ok = fd >= 0 && pread(fd, buf, sizeof(buf), (off_t)(unsigned long)addr) == sizeof(buf);
	printf("  %-16s /proc/PID/mem      %s\n", what, show(ok, buf));
	if (fd >= 0)
		close(fd);
	errno = 0;
	word = ptrace(PTRACE_PEEKDATA, pid, addr, NULL);
	ok = errno == 0;
	memcpy(buf, &word, sizeof(word));
	buf[sizeof(word)] = 0;
	printf("  %-16s ptrace PEEKDATA    %s\n", what, show(ok, buf));
}

int main(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	int fd = secretmemfd(SECRETMEM_EXCLUSIVE | O_CLOEXEC), status;
	char *secret, *plain;
	pid_t victim;

	if (fd < 0 || ftruncate(fd, ps)) {
		perror("secretmemfd");
		return 1;
	}
	secret = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	plain = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (secret == MAP_FAILED || plain == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	strcpy(secret, KEY);
	strcpy(plain, KEY);

	victim = fork();
	if (!victim) {
		/* The key holder: waits, stopped, for the attacker. */
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		printf("key holder: my key still reads \"%.20s...\"\n", secret);
		fflush(stdout);
		_exit(strcmp(secret, KEY) != 0);
	}
	waitpid(victim, &status, WUNTRACED);
	printf("key holder pid %d keeps a key in secret memory and a copy in ordinary memory\n",
	       victim);
	printf("attacker (uid %d) tries to read both:\n", getuid());
	attack(victim, "ordinary memory", plain);
	attack(victim, "secret memory", secret);
	ptrace(PTRACE_CONT, victim, NULL, NULL);
	waitpid(victim, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
