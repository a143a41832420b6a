//! The raw system calls, each in one small function.

use crate::error::{Error, Result};
use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// `/dev/secretmem`.
pub(crate) const DEVICE: &CStr = c"/dev/secretmem";
/// Where the module names the system call number it serves, or -1.
pub(crate) const SYSCALL_NR_PATH: &str = "/sys/module/secretmemfd/parameters/syscall_nr";
/// `SECRETMEM_CREATE`: `_IO(0xB9, 0x01)`.
pub(crate) const SECRETMEM_CREATE: libc::c_ulong = 0xB901;

/// The `secretmemfd()` system call number the module serves, if it serves one.
pub(crate) fn syscall_nr() -> Option<libc::c_long> {
    let text = fs::read_to_string(SYSCALL_NR_PATH).ok()?;
    text.trim()
        .parse()
        .ok()
        .filter(|&nr: &libc::c_long| nr >= 0)
}

fn owned(fd: libc::c_long, what: &'static str) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(Error::os(what));
    }
    // SAFETY: The kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `secretmemfd(flags)` through the system call.
pub(crate) fn secretmemfd_syscall(nr: libc::c_long, flags: u32) -> Result<OwnedFd> {
    // SAFETY: The module's system call takes one integer and returns a descriptor or -1.
    let fd = unsafe { libc::syscall(nr, flags) };
    owned(fd, "secretmemfd()")
}

/// `secretmemfd(flags)` through `ioctl(/dev/secretmem, SECRETMEM_CREATE, flags)`.
pub(crate) fn secretmemfd_ioctl(device: &CStr, flags: u32) -> Result<OwnedFd> {
    // SAFETY: `device` is a valid C string.
    let dev = unsafe { libc::open(device.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if dev < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENXIO) | Some(libc::ENODEV) => Error::ModuleNotLoaded,
            _ => Error::Os {
                what: "open /dev/secretmem",
                source: err,
            },
        });
    }
    // SAFETY: `dev` is ours.
    let dev = unsafe { OwnedFd::from_raw_fd(dev) };
    // SAFETY: SECRETMEM_CREATE takes its flags by value and returns a descriptor or -1.
    let fd = unsafe { libc::ioctl(dev.as_raw_fd(), SECRETMEM_CREATE, flags as libc::c_ulong) };
    owned(fd.into(), "ioctl(SECRETMEM_CREATE)")
}

/// Mainline `memfd_secret(2)`.
pub(crate) fn memfd_secret(flags: u32) -> Result<OwnedFd> {
    // SAFETY: memfd_secret takes one integer and returns a descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, flags) };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        return Err(Error::Unsupported);
    }
    owned(fd, "memfd_secret()")
}

pub(crate) fn ftruncate(fd: &OwnedFd, len: usize) -> Result<()> {
    // SAFETY: `fd` is open; ftruncate has no memory arguments.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(Error::os("ftruncate"));
    }
    Ok(())
}

/// Maps `len` bytes of `fd` shared and read-write, or anonymous memory if `fd` is `None`.
pub(crate) fn mmap(fd: Option<&OwnedFd>, len: usize) -> Result<NonNull<u8>> {
    let (flags, raw) = match fd {
        Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
        None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
    };
    // SAFETY: A new mapping at an address of the kernel's choosing overlaps nothing of ours.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            raw,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::os("mmap"));
    }
    NonNull::new(p.cast()).ok_or_else(|| Error::os("mmap"))
}

/// # Safety
///
/// `ptr` and `len` must be a whole mapping made by [`mmap`], no longer used.
pub(crate) unsafe fn munmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: The caller gives us a mapping of ours that nothing uses any more.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory arguments.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The soft `RLIMIT_MEMLOCK` in bytes, `None` if unlimited.
pub(crate) fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return None;
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}
