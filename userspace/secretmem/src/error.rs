//! Errors that say what went wrong and what to do about it.

use std::fmt;
use std::io;

/// Why secret memory could not be had.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `/dev/secretmem` does not exist: the module is not loaded.
    ModuleNotLoaded,
    /// Neither the module nor `memfd_secret(2)` is available on this kernel.
    Unsupported,
    /// A size of zero bytes, or one too large to map.
    InvalidSize(usize),
    /// The area needs more locked memory than `RLIMIT_MEMLOCK` allows.
    ///
    /// Touching its pages would raise `SIGBUS`, so it is refused up front.
    MemlockLimit {
        /// Bytes of locked memory the area needs (whole pages).
        needed: u64,
        /// The soft `RLIMIT_MEMLOCK` in bytes.
        limit: u64,
    },
    /// A system call failed.
    Os {
        /// What was being done.
        what: &'static str,
        /// The error the kernel returned.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn os(what: &'static str) -> Self {
        Error::Os {
            what,
            source: io::Error::last_os_error(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ModuleNotLoaded => write!(
                f,
                "/dev/secretmem not found: load the secretmemfd module (insmod secretmemfd.ko)"
            ),
            Error::Unsupported => write!(
                f,
                "no secret memory on this kernel: load the secretmemfd module, or boot a kernel \
                 with memfd_secret(2) (CONFIG_SECRETMEM=y, secretmem.enable=1)"
            ),
            Error::InvalidSize(len) => write!(
                f,
                "invalid secret memory size {len}: must be 1 byte to 2^63 - 1 bytes in whole pages"
            ),
            Error::MemlockLimit { needed, limit } => write!(
                f,
                "secret memory needs {needed} bytes of locked memory but RLIMIT_MEMLOCK is {limit}: \
                 raise it (ulimit -l, or memlock in /etc/security/limits.conf); CAP_IPC_LOCK does not \
                 lift it"
            ),
            Error::Os { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
