//! Guest RAM: one shared mapping of a memfd (ordinary memory) or of a secretmemfd (secret
//! memory), the VM's only memslot.

use secretmem::{Backend, Options, SecretMem};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

type BoxError = Box<dyn std::error::Error>;

/// Which memory a VM's RAM is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Memory {
    /// A memfd, as most VMMs back guest RAM.
    Ordinary,
    /// A secretmemfd from the module: out of the kernel's direct map.
    Secret,
}

enum Backing {
    /// A memfd; `GuestRam` owns the mapping, which keeps the file.
    Ordinary,
    /// The secret memory; it owns the mapping and zeroes it on drop.
    Secret(SecretMem),
}

/// Guest RAM, mapped shared at a page-aligned address.
///
/// # Invariants
///
/// `ptr` maps `len` readable and writable bytes for as long as `self` lives.
pub(crate) struct GuestRam {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

fn os_error(what: &str) -> BoxError {
    format!("{what}: {}", io::Error::last_os_error()).into()
}

impl GuestRam {
    /// `len` bytes (a multiple of the page size) of `memory`, zeroed.
    pub(crate) fn new(memory: Memory, len: usize) -> Result<Self, BoxError> {
        match memory {
            Memory::Ordinary => Self::memfd(len),
            Memory::Secret => {
                // The module only: memfd_secret(2) memory cannot back a memslot.
                let options = Options::new().memfd_secret_fallback(false);
                let mut secret = SecretMem::with_options(len, &options)
                    .map_err(|e| format!("secret memory for guest RAM: {e}"))?;
                let ptr = NonNull::new(secret.as_mut_ptr()).ok_or("secret memory at address 0")?;
                // INVARIANT: `SecretMem` maps `len` bytes until it is dropped with `self`.
                Ok(GuestRam {
                    ptr,
                    len,
                    backing: Backing::Secret(secret),
                })
            }
        }
    }

    fn memfd(len: usize) -> Result<Self, BoxError> {
        // SAFETY: The name is a valid C string; memfd_create returns a new descriptor or -1.
        let fd = unsafe { libc::memfd_create(c"secretmem-vm-ram".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(os_error("memfd_create"));
        }
        // SAFETY: The kernel just gave us this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate of our own descriptor has no memory arguments.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(os_error("ftruncate of the memfd"));
        }
        // SAFETY: A new mapping at an address of the kernel's choosing overlaps nothing of ours.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os_error("mmap of the memfd"));
        }
        let ptr = NonNull::new(p.cast()).ok_or("memfd mapped at address 0")?;
        // INVARIANT: The mapping is ours until `drop` unmaps it.
        Ok(GuestRam {
            ptr,
            len,
            backing: Backing::Ordinary,
        })
    }

    /// Copies `bytes` into guest RAM at guest-physical address `gpa` (RAM starts at 0).
    ///
    /// Only before the guest runs: `&mut self` is no guard against a running vCPU.
    pub(crate) fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), BoxError> {
        let start = usize::try_from(gpa)?;
        if start
            .checked_add(bytes.len())
            .is_none_or(|end| end > self.len)
        {
            return Err(
                format!("{} bytes at {gpa:#x} do not fit in guest RAM", bytes.len()).into(),
            );
        }
        // SAFETY: By the type invariant and the check above, `start..start + bytes.len()` lies
        // in our writable mapping, which `bytes` (a Rust reference) cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(start), bytes.len())
        };
        Ok(())
    }

    /// The host virtual address of guest-physical address 0.
    pub(crate) fn host_address(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where the memory comes from: ordinary memory, or a secret memory backend.
    pub(crate) fn backend(&self) -> Backend {
        match &self.backing {
            Backing::Ordinary => Backend::OrdinaryMemory,
            Backing::Secret(secret) => secret.backend(),
        }
    }
}

impl fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestRam")
            .field("len", &self.len)
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        if let Backing::Ordinary = self.backing {
            // SAFETY: The memfd mapping is ours (type invariant) and nothing uses it any more:
            // the VM that used it is dropped before its RAM.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}
