/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * secretmemfd: memory that the kernel's direct map does not cover.
 *
 * Documentation/secretmem-abi.rst describes this interface.
 */
#ifndef _UAPI_LINUX_SECRETMEMFD_H
#define _UAPI_LINUX_SECRETMEMFD_H

#include <linux/ioctl.h>

/* The device that hands out secret memory file descriptors. */
#define SECRETMEM_DEVICE	"/dev/secretmem"

/* Where the module names the system call number it serves, if any. */
#define SECRETMEM_SYSCALL_NR_PATH "/sys/module/secretmemfd/parameters/syscall_nr"

/* Modes: exclusive (the default) is removed from the direct map, cached. */
#define SECRETMEM_EXCLUSIVE	0x0U
/* Uncached is removed from the direct map and mapped uncached as well. */
#define SECRETMEM_UNCACHED	0x1U
#define SECRETMEM_MODE_MASK	0x1U

/*
 * fd = ioctl(devfd, SECRETMEM_CREATE, flags): flags are one mode, optionally
 * with O_CLOEXEC. Any other bit fails with EINVAL.
 */
#define SECRETMEM_IOCTL_MAGIC	0xB9
#define SECRETMEM_CREATE	_IO(SECRETMEM_IOCTL_MAGIC, 0x01)

#endif /* _UAPI_LINUX_SECRETMEMFD_H */
