/* SPDX-License-Identifier: GPL-2.0 */
/*
 * secretmemfd(flags): one call for a secret memory file descriptor, header
 * only. Uses the secretmemfd() system call when the module serves one, the
 * device ioctl otherwise. Returns the descriptor, or -1 with errno set.
 * The ABI itself is <linux/secretmemfd.h> (include/uapi).
 */
#ifndef SECRETMEMFD_USER_H
#define SECRETMEMFD_USER_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/secretmemfd.h>

/* The system call number the loaded module serves, or -1. */
static inline long secretmemfd_syscall_nr(void)
{
	long nr = -1;
	FILE *f = fopen(SECRETMEM_SYSCALL_NR_PATH, "re");

	if (f) {
		if (fscanf(f, "%ld", &nr) != 1)
			nr = -1;
		fclose(f);
	}
	return nr;
}

static inline int secretmemfd_ioctl(unsigned int flags)
{
	int dev = open(SECRETMEM_DEVICE, O_RDWR | O_CLOEXEC);
	int fd, err;

	if (dev < 0)
		return -1;
	fd = ioctl(dev, SECRETMEM_CREATE, flags);
	err = errno;
	close(dev);
	errno = err;
	return fd;
}

static inline int secretmemfd(unsigned int flags)
{
	long nr = secretmemfd_syscall_nr();

	if (nr >= 0)
		return syscall(nr, flags);
	return secretmemfd_ioctl(flags);
}

#endif /* SECRETMEMFD_USER_H */
