//! Secret memory for Rust programs: bytes that ptrace peeks, `/proc/PID/mem`, other processes'
//! reads, core dumps, swap, hibernation and even the kernel's own direct map cannot reach. A
//! process that may ptrace the owner can still take the descriptor with `pidfd_getfd()`: see the
//! module's `Documentation/threat-model.rst`.
//!
//! The memory comes from the `secretmemfd` kernel module (`/dev/secretmem` or its
//! `secretmemfd()` system call), or, on kernels without the module, from mainline
//! `memfd_secret(2)`. It never silently falls back to ordinary memory: that happens only when
//! asked for by name with [`Options::allow_ordinary_memory`].
//!
//! ```no_run
//! use secretmem::SecretMem;
//!
//! let mut key = SecretMem::new(32)?;
//! key.copy_from_slice(&[0x42; 32]);     // the first touch takes the page out of the direct map
//! assert_eq!(key[0], 0x42);
//! println!("{key:?}");                  // prints the size and the backend, never the bytes
//! # Ok::<(), secretmem::Error>(())
//! ```
//!
//! Dropping a [`SecretMem`] zeroes it, unmaps it and closes its descriptor; the kernel then
//! puts the pages back into the direct map, zeroed, and frees them.

#![deny(missing_docs)]

mod error;
mod secret_box;
mod sys;

pub use error::{Error, Result};
pub use secret_box::{SecretBox, Zeroable};

use std::ffi::CStr;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

/// How secret pages are mapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Out of the direct map, cached (the default).
    #[default]
    Exclusive,
    /// Out of the direct map and mapped uncached: slower, but keeps the bytes out of CPU caches.
    /// Only the module offers it, to callers with `CAP_SYS_RAWIO` or in the group its
    /// `uncached_gid` parameter names (otherwise `EPERM`).
    Uncached,
}

impl Mode {
    fn flags(self) -> u32 {
        match self {
            Mode::Exclusive => 0,
            Mode::Uncached => 1,
        }
    }
}

/// Where the memory of a [`SecretMem`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The `secretmemfd` module, through its system call.
    ModuleSyscall,
    /// The `secretmemfd` module, through `/dev/secretmem`.
    ModuleDevice,
    /// Mainline `memfd_secret(2)`.
    MemfdSecret,
    /// Ordinary anonymous memory: no protection at all. Only with
    /// [`Options::allow_ordinary_memory`].
    OrdinaryMemory,
}

impl Backend {
    /// Whether this backend keeps the memory out of the direct map.
    pub fn is_secret(self) -> bool {
        self != Backend::OrdinaryMemory
    }
}

/// Creates a secret memory file descriptor, as the 2020 `secretmemfd(flags)` design.
///
/// Uses the module's system call when `/sys/module/secretmemfd/parameters/syscall_nr` names
/// one, `/dev/secretmem` otherwise. The descriptor is close-on-exec. Size it once with
/// `ftruncate` and map it `MAP_SHARED`; [`SecretMem`] does all of that.
pub fn secretmemfd(mode: Mode) -> Result<OwnedFd> {
    secretmemfd_from(mode, sys::DEVICE).map(|(fd, _)| fd)
}

/// The module's device node.
pub const DEVICE_PATH: &str = "/dev/secretmem";

/// The `secretmemfd()` system call number the loaded module serves, if it serves one.
pub fn served_syscall() -> Option<i64> {
    sys::syscall_nr()
}

/// Creates a mainline `memfd_secret(2)` descriptor (close-on-exec), the fallback when the
/// module is not loaded. Fails with [`Error::Unsupported`] where the kernel lacks it.
pub fn memfd_secret() -> Result<OwnedFd> {
    sys::memfd_secret(libc::O_CLOEXEC as u32)
}

fn secretmemfd_from(mode: Mode, device: &CStr) -> Result<(OwnedFd, Backend)> {
    let flags = mode.flags() | libc::O_CLOEXEC as u32;
    match sys::syscall_nr() {
        Some(nr) if device == sys::DEVICE => {
            sys::secretmemfd_syscall(nr, flags).map(|fd| (fd, Backend::ModuleSyscall))
        }
        _ => sys::secretmemfd_ioctl(device, flags).map(|fd| (fd, Backend::ModuleDevice)),
    }
}

/// How [`SecretMem::with_options`] gets its memory.
#[derive(Clone, Debug)]
pub struct Options {
    mode: Mode,
    memfd_secret_fallback: bool,
    ordinary_memory: bool,
    device: &'static CStr,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Exclusive,
            memfd_secret_fallback: true,
            ordinary_memory: false,
            device: sys::DEVICE,
        }
    }
}

impl Options {
    /// The defaults: exclusive mode, the module, else `memfd_secret(2)`, else an error.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses the mode. [`Mode::Uncached`] needs the module and a privilege (see [`Mode`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Whether to use `memfd_secret(2)` when the module is not loaded (default: yes).
    pub fn memfd_secret_fallback(mut self, allow: bool) -> Self {
        self.memfd_secret_fallback = allow;
        self
    }

    /// Falls back to ordinary, unprotected memory when no secret memory exists.
    ///
    /// Only for programs that would rather run unprotected than not at all; check
    /// [`SecretMem::backend`] to tell.
    pub fn allow_ordinary_memory(mut self, allow: bool) -> Self {
        self.ordinary_memory = allow;
        self
    }

    /// Uses another device node than `/dev/secretmem` (for tests and containers).
    pub fn device(mut self, path: &'static CStr) -> Self {
        self.device = path;
        self
    }
}

/// Bytes in secret memory, owned: created, sized and mapped by [`SecretMem::new`], zeroed,
/// unmapped and closed on drop.
///
/// It dereferences to `[u8]`. Its `Debug` output never shows the contents.
pub struct SecretMem {
    ptr: NonNull<u8>,
    len: usize,
    map_len: usize,
    backend: Backend,
    _fd: Option<OwnedFd>,
}

// SAFETY: `SecretMem` owns its mapping exclusively, like a `Vec<u8>`.
unsafe impl Send for SecretMem {}
// SAFETY: Shared references only read the mapping.
unsafe impl Sync for SecretMem {}

/// The largest file size of both backends: `MAX_LFS_FILESIZE`, `i64::MAX` on 64-bit.
const MAX_SIZE: usize = i64::MAX as usize;

/// Checks that `len` bytes can be locked, so that no page raises `SIGBUS` when touched.
///
/// As in the kernel, for the module and for `memfd_secret(2)` alike, `CAP_IPC_LOCK` does not lift
/// the limit.
fn check_size(len: usize, page: usize, limit: Option<u64>) -> Result<usize> {
    // The file is sized to whole pages, and file sizes stop at i64::MAX (MAX_LFS_FILESIZE) for
    // the module and memfd_secret(2) alike: refuse larger ones here with a clear error.
    let map_len = len
        .div_ceil(page)
        .checked_mul(page)
        .filter(|&map_len| len != 0 && map_len <= MAX_SIZE)
        .ok_or(Error::InvalidSize(len))?;
    if let Some(limit) = limit {
        if map_len as u64 > limit {
            return Err(Error::MemlockLimit {
                needed: map_len as u64,
                limit,
            });
        }
    }
    Ok(map_len)
}

impl SecretMem {
    /// `len` bytes of secret memory, zeroed, with the default [`Options`].
    pub fn new(len: usize) -> Result<Self> {
        Self::with_options(len, &Options::default())
    }

    /// `len` bytes of memory as `options` say, zeroed.
    pub fn with_options(len: usize, options: &Options) -> Result<Self> {
        let map_len = check_size(len, sys::page_size(), sys::memlock_limit())?;
        let (fd, backend) = match secretmemfd_from(options.mode, options.device) {
            Err(Error::ModuleNotLoaded) => Self::fallback(options)?,
            found => found.map(|(fd, backend)| (Some(fd), backend))?,
        };
        if let Some(fd) = &fd {
            sys::ftruncate(fd, map_len)?;
        }
        let ptr = sys::mmap(fd.as_ref(), map_len)?;
        Ok(SecretMem {
            ptr,
            len,
            map_len,
            backend,
            _fd: fd,
        })
    }

    /// Without the module: `memfd_secret(2)` if allowed and there, else ordinary memory if
    /// asked for by name, else the error that says what is missing.
    fn fallback(options: &Options) -> Result<(Option<OwnedFd>, Backend)> {
        if options.memfd_secret_fallback && options.mode == Mode::Exclusive {
            match memfd_secret() {
                Ok(fd) => return Ok((Some(fd), Backend::MemfdSecret)),
                Err(Error::Unsupported) => {}
                Err(e) => return Err(e),
            }
        }
        if options.ordinary_memory {
            return Ok((None, Backend::OrdinaryMemory));
        }
        Err(if options.memfd_secret_fallback {
            Error::Unsupported
        } else {
            Error::ModuleNotLoaded
        })
    }

    /// Where the memory came from.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is zero (never: zero-sized areas are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Deref for SecretMem {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `map_len >= len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for SecretMem {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: As in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for SecretMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMem")
            .field("len", &self.len)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Zeroes `bytes` in a way the compiler cannot remove.
fn zeroize(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, exclusive reference.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

impl Drop for SecretMem {
    fn drop(&mut self) {
        // The kernel zeroes secret pages again when it frees them; this also covers ordinary
        // memory and leaves nothing for the time between munmap and the last close.
        zeroize(self);
        // SAFETY: `ptr` and `map_len` are our mapping, which nothing uses after this.
        unsafe { sys::munmap(self.ptr, self.map_len) };
    }
}

#[cfg(test)]
mod tests;
