//! The three ways another process tries to read a key: `process_vm_readv`, `/proc/PID/mem` and
//! ptrace `PEEKDATA`. Each reads a buffer's worth; `secretmem vm` reads whole guest RAM with them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The key length: an Ed25519 seed.
pub(crate) const KEY_LEN: usize = 32;

/// What an attack got: the key bytes, or the error that refused it.
pub(crate) type Outcome = Result<[u8; KEY_LEN], io::Error>;

/// An attack on memory at an address in another process.
pub(crate) struct Attack {
    pub(crate) name: &'static str,
    /// Fills the buffer from process `pid` at the address, or fails as the kernel refused.
    pub(crate) read: fn(libc::pid_t, usize, &mut [u8]) -> io::Result<()>,
}

impl Attack {
    /// Reads the key at `addr` in process `pid`.
    pub(crate) fn run(&self, pid: libc::pid_t, addr: usize) -> Outcome {
        let mut key = [0u8; KEY_LEN];
        (self.read)(pid, addr, &mut key)?;
        Ok(key)
    }
}

pub(crate) const ATTACKS: [Attack; 3] = [
    Attack {
        name: "process_vm_readv",
        read: vm_readv,
    },
    Attack {
        name: "/proc/PID/mem",
        read: proc_mem,
    },
    Attack {
        name: "ptrace PEEKDATA",
        read: peekdata,
    },
];

fn vm_readv(pid: libc::pid_t, addr: usize, buf: &mut [u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes our own buffer; the remote side is checked by the kernel.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read {n} of {} bytes", buf.len()),
        ));
    }
    Ok(())
}

fn proc_mem(pid: libc::pid_t, addr: usize, buf: &mut [u8]) -> io::Result<()> {
    File::open(format!("/proc/{pid}/mem"))?.read_exact_at(buf, addr as u64)
}

fn peekdata(pid: libc::pid_t, addr: usize, buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: Attaching to another process has no memory arguments.
    if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: `pid` is now our tracee.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    let mut result = Ok(());
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        // SAFETY: PEEKDATA reads a word of the tracee; errno tells a failure from data.
        let word = unsafe {
            *libc::__errno_location() = 0;
            libc::ptrace(libc::PTRACE_PEEKDATA, pid, addr + i * 8, 0)
        };
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(0) {
            result = Err(err);
            break;
        }
        chunk.copy_from_slice(&word.to_ne_bytes()[..chunk.len()]);
    }
    // SAFETY: Detaching our tracee lets it run on.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    result
}
