//! The raw calls, each returning the kernel's answer as it is, and touches that survive a fault.
//!
//! A touch is one load or store instruction in a small assembly routine. The SIGBUS and SIGSEGV
//! handler recognises that instruction's address, notes the signal and where it hit, and resumes
//! after it; a fault anywhere else is a crash: the handler puts the default action back and the
//! fault kills the process, which the supervisor reports with the seed.

use std::ffi::CStr;
use std::io;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

#[cfg(not(target_arch = "x86_64"))]
compile_error!("secretmem-fuzz touches memory with x86_64 instructions; the module is x86_64 only");

/// The errno of the last failed call.
pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `Ok(value)` for a non-negative result, `Err(errno)` for -1.
fn answer(ret: i64) -> Result<i64, i32> {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory arguments.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// `RLIMIT_MEMLOCK` in pages, as the module reads it: `u64::MAX` when unlimited.
pub fn memlock_limit_pages() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return u64::MAX;
    }
    limit.rlim_cur / page_size() as u64
}

/// `SECRETMEM_CREATE`: `_IO(0xB9, 0x01)`.
const SECRETMEM_CREATE: libc::c_ulong = 0xB901;

/// `ioctl(/dev/secretmem, SECRETMEM_CREATE, flags)`.
pub fn create_ioctl(flags: u32) -> Result<i64, i32> {
    let device: &CStr = c"/dev/secretmem";
    // SAFETY: `device` is a valid C string.
    let dev = unsafe { libc::open(device.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if dev < 0 {
        return Err(errno());
    }
    // SAFETY: SECRETMEM_CREATE takes its flags by value.
    let ret =
        answer(unsafe { libc::ioctl(dev, SECRETMEM_CREATE, libc::c_ulong::from(flags)) }.into());
    // SAFETY: `dev` is ours and not used again.
    unsafe { libc::close(dev) };
    ret
}

/// `secretmemfd(flags)`, system call `nr`.
pub fn create_syscall(nr: i64, flags: u32) -> Result<i64, i32> {
    // SAFETY: The module's system call takes one integer and returns a descriptor or -1.
    answer(unsafe { libc::syscall(nr, flags) })
}

/// The system call number the module serves, if any.
pub fn syscall_nr() -> Option<i64> {
    std::fs::read_to_string("/sys/module/secretmemfd/parameters/syscall_nr")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&nr: &i64| nr >= 0)
}

pub fn ftruncate(fd: i32, len: i64) -> Result<i64, i32> {
    // SAFETY: No memory arguments.
    answer(unsafe { libc::ftruncate(fd, len) }.into())
}

/// `mmap(NULL, len, prot, flags, fd, offset)`; returns the address.
pub fn mmap(len: usize, prot: i32, flags: i32, fd: i32, offset: i64) -> Result<usize, i32> {
    // SAFETY: A mapping at an address of the kernel's choosing (no MAP_FIXED) overlaps nothing.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p as usize)
    }
}

/// An inaccessible anonymous reservation of `len` bytes, as a target for `mremap`.
pub fn reserve(len: usize) -> Result<usize, i32> {
    mmap(
        len,
        libc::PROT_NONE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
        0,
    )
}

/// # Safety
///
/// `[addr, addr + len)` must hold only mappings that nothing in this program uses any more.
pub unsafe fn munmap(addr: usize, len: usize) -> Result<i64, i32> {
    // SAFETY: The caller gives up the range.
    answer(unsafe { libc::munmap(addr as *mut libc::c_void, len) }.into())
}

/// # Safety
///
/// `[addr, addr + len)` must hold only mappings that this program touches through [`touch`].
pub unsafe fn mprotect(addr: usize, len: usize, prot: i32) -> Result<i64, i32> {
    // SAFETY: Only `touch` accesses the range, and it survives a protection fault.
    answer(unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) }.into())
}

/// # Safety
///
/// As for [`mprotect`]; a `new_addr` given with `MREMAP_FIXED` must be a reservation of ours.
pub unsafe fn mremap(
    addr: usize,
    old_len: usize,
    new_len: usize,
    flags: i32,
    new_addr: usize,
) -> Result<usize, i32> {
    // SAFETY: The caller owns both ranges; the tester tracks where the pages end up.
    let p = unsafe {
        libc::mremap(
            addr as *mut libc::c_void,
            old_len,
            new_len,
            flags,
            new_addr as *mut libc::c_void,
        )
    };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p as usize)
    }
}

/// # Safety
///
/// As for [`mprotect`].
pub unsafe fn madvise(addr: usize, len: usize, advice: i32) -> Result<i64, i32> {
    // SAFETY: Only `touch` accesses the range; advice on it changes no memory of ours.
    answer(unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) }.into())
}

pub fn close(fd: i32) -> Result<i64, i32> {
    // SAFETY: The tester owns `fd` and forgets it after this.
    answer(unsafe { libc::close(fd) }.into())
}

/// One of read, write, pread, pwrite of one byte on `fd`, chosen by `which` (0 to 3).
pub fn io(fd: i32, which: u32) -> Result<i64, i32> {
    let mut byte = 0u8;
    let buf = (&raw mut byte).cast::<libc::c_void>();
    // SAFETY: `buf` is one valid byte for every call.
    let ret = unsafe {
        match which {
            0 => libc::read(fd, buf, 1),
            1 => libc::write(fd, buf, 1),
            2 => libc::pread(fd, buf, 1, 0),
            _ => libc::pwrite(fd, buf, 1, 0),
        }
    };
    answer(ret as i64)
}

/// The size `fstat` reports.
pub fn fstat_size(fd: i32) -> Result<i64, i32> {
    // SAFETY: An all-zero `stat` is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid `stat` to fill.
    answer(unsafe { libc::fstat(fd, &mut st) }.into())?;
    Ok(st.st_size)
}

/// The value of `key` in `/proc/self/fdinfo/FD`.
pub fn fdinfo(fd: i32, key: &str) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// A counter of `/sys/kernel/debug/secretmemfd/stats`, if readable.
pub fn stat(key: &str) -> Option<i64> {
    let text = std::fs::read_to_string("/sys/kernel/debug/secretmemfd/stats").ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

pub fn fork() -> Result<i32, i32> {
    // SAFETY: The tester is single-threaded; the child only touches memory and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(errno())
    } else {
        Ok(pid)
    }
}

/// Waits for `pid`; returns its raw wait status.
pub fn wait(pid: i32) -> Result<i32, i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid int to fill.
    let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
    if ret != pid {
        return Err(errno());
    }
    Ok(status)
}

/// Ends a forked child at once, running nothing of the parent's.
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

std::arch::global_asm!(
    ".pushsection .text.secretmem_fuzz_touch, \"ax\", @progbits",
    ".globl secretmem_fuzz_read",
    ".globl secretmem_fuzz_read_insn",
    ".globl secretmem_fuzz_read_done",
    ".globl secretmem_fuzz_write",
    ".globl secretmem_fuzz_write_insn",
    ".globl secretmem_fuzz_write_done",
    // u32 secretmem_fuzz_read(const u8 *addr, u8 *out): 0, or the signal the load raised.
    "secretmem_fuzz_read:",
    "    xor eax, eax",
    "    xor ecx, ecx",
    "secretmem_fuzz_read_insn:",
    "    mov cl, byte ptr [rdi]",
    "secretmem_fuzz_read_done:",
    "    mov byte ptr [rsi], cl",
    "    ret",
    // u32 secretmem_fuzz_write(u8 *addr, u8 value): 0, or the signal the store raised.
    "secretmem_fuzz_write:",
    "    xor eax, eax",
    "secretmem_fuzz_write_insn:",
    "    mov byte ptr [rdi], sil",
    "secretmem_fuzz_write_done:",
    "    ret",
    ".popsection",
);

extern "C" {
    fn secretmem_fuzz_read(addr: *const u8, out: *mut u8) -> u32;
    fn secretmem_fuzz_write(addr: *mut u8, value: u8) -> u32;
    static secretmem_fuzz_read_insn: u8;
    static secretmem_fuzz_read_done: u8;
    static secretmem_fuzz_write_insn: u8;
    static secretmem_fuzz_write_done: u8;
}

/// Where the last recovered fault hit, for the caller to check.
static FAULT_ADDR: AtomicUsize = AtomicUsize::new(0);
static FAULT_CODE: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: The kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler; only this
    // thread uses them while it runs.
    unsafe {
        let uc = &mut *ctx.cast::<libc::ucontext_t>();
        let rip = &mut uc.uc_mcontext.gregs[libc::REG_RIP as usize];
        let resume = if *rip as usize == &raw const secretmem_fuzz_read_insn as usize {
            &raw const secretmem_fuzz_read_done as usize
        } else if *rip as usize == &raw const secretmem_fuzz_write_insn as usize {
            &raw const secretmem_fuzz_write_done as usize
        } else {
            // Not a touch: a crash. The default action kills us when the fault repeats.
            libc::signal(sig, libc::SIG_DFL);
            return;
        };
        FAULT_ADDR.store((*info).si_addr() as usize, Ordering::Relaxed);
        FAULT_CODE.store((*info).si_code, Ordering::Relaxed);
        *rip = resume as i64;
        uc.uc_mcontext.gregs[libc::REG_RAX as usize] = i64::from(sig);
    }
}

/// Installs the fault handler for SIGBUS and SIGSEGV.
pub fn install_fault_handler() {
    for sig in [libc::SIGBUS, libc::SIGSEGV] {
        // SAFETY: An all-zero sigaction is valid; the fields that matter are set below.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_fault
            as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
            as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        // SAFETY: `sa` is a valid sigaction; `on_fault` only touches the context it is given and
        // two atomics.
        let ret = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        assert_eq!(ret, 0, "sigaction");
    }
}

/// What one touch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touched {
    /// A load that read this byte.
    Read(u8),
    /// A store that went through.
    Written,
    /// A signal, its code and the address it reported.
    Signal(i32, i32, usize),
}

/// Reads (`write` is `None`) or writes one byte at `addr`, surviving SIGBUS and SIGSEGV.
///
/// # Safety
///
/// `addr` must be an address this program does not use as ordinary memory: a mapping the tester
/// tracks, or no mapping at all.
pub unsafe fn touch(addr: usize, write: Option<u8>) -> Touched {
    let mut out = 0u8;
    // SAFETY: The routines access one byte at `addr`, which the caller allows; a fault there is
    // recovered by `on_fault`.
    let sig = unsafe {
        match write {
            None => secretmem_fuzz_read(addr as *const u8, &mut out),
            Some(value) => secretmem_fuzz_write(addr as *mut u8, value),
        }
    };
    match (sig, write) {
        (0, None) => Touched::Read(out),
        (0, Some(_)) => Touched::Written,
        (sig, _) => Touched::Signal(
            sig as i32,
            FAULT_CODE.load(Ordering::Relaxed),
            FAULT_ADDR.load(Ordering::Relaxed),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{install_fault_handler, mmap, munmap, page_size, touch, Touched};

    #[test]
    fn a_touch_survives_sigsegv_and_sigbus() {
        install_fault_handler();
        let ps = page_size();
        let anon = mmap(
            ps,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
        // SAFETY: `anon` is a fresh mapping used only through `touch`.
        unsafe {
            assert_eq!(touch(anon, Some(7)), Touched::Written);
            assert_eq!(touch(anon, None), Touched::Read(7));
            libc::mprotect(anon as *mut libc::c_void, ps, libc::PROT_READ);
            assert!(
                matches!(touch(anon, Some(1)), Touched::Signal(libc::SIGSEGV, _, a) if a == anon)
            );
            assert_eq!(touch(anon, None), Touched::Read(7));
            munmap(anon, ps).unwrap();
        }
        // A shared file mapping past the end of its file raises SIGBUS.
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("secretmem-fuzz-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let p = mmap(ps, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0).unwrap();
        // SAFETY: `p` is a fresh mapping used only through `touch`.
        unsafe {
            assert!(matches!(touch(p, None), Touched::Signal(libc::SIGBUS, _, a) if a == p));
            munmap(p, ps).unwrap();
        }
        drop(file);
        std::fs::remove_file(path).unwrap();
    }
}
