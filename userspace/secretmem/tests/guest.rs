//! Tests that need the secretmemfd module: `make check` runs them inside the guest with
//! `--ignored`; on a machine without the module they are listed as ignored, never passed.

use secretmem::{Backend, Error, Mode, Options, SecretBox, SecretMem};

/// The module's entry the kernel under test should give: the system call, or the device on a
/// kernel without our patches (the guest sets `SECRETMEM_UNPATCHED=1` there).
fn module_backend() -> Backend {
    match std::env::var("SECRETMEM_UNPATCHED").as_deref() {
        Ok("1") => Backend::ModuleDevice,
        _ => Backend::ModuleSyscall,
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory arguments.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

#[test]
#[ignore = "needs the secretmemfd module: make check runs it in the guest"]
fn module_memory_reads_back_through_the_module() {
    let mut mem = SecretMem::new(3 * page_size() + 5).unwrap();
    assert_eq!(mem.backend(), module_backend());
    assert!(mem.iter().all(|&b| b == 0));
    for (i, b) in mem.iter_mut().enumerate() {
        *b = i as u8;
    }
    assert!(mem.iter().enumerate().all(|(i, &b)| b == i as u8));
}

#[test]
#[ignore = "needs the secretmemfd module: make check runs it in the guest"]
fn uncached_mode_comes_from_the_module() {
    let options = Options::new().mode(Mode::Uncached);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Uncached memory needs CAP_SYS_RAWIO (or the module's uncached_gid group).
        let err = SecretMem::with_options(page_size(), &options).unwrap_err();
        assert!(
            matches!(&err, Error::Os { source, .. } if source.raw_os_error() == Some(libc::EPERM)),
            "{err}"
        );
        return;
    }
    let mut mem = SecretMem::with_options(page_size(), &options).unwrap();
    assert_eq!(mem.backend(), module_backend());
    mem[0] = 7;
    assert_eq!(mem[0], 7);
}

#[test]
#[ignore = "needs the secretmemfd module: make check runs it in the guest"]
fn falls_back_to_memfd_secret_without_the_module() {
    let options = Options::new().device(c"/nonexistent/secretmem");
    let mut mem = SecretMem::with_options(100, &options).unwrap();
    assert_eq!(mem.backend(), Backend::MemfdSecret);
    mem[99] = 1;
    assert_eq!(mem[99], 1);
}

#[test]
#[ignore = "needs the secretmemfd module: make check runs it in the guest"]
fn other_processes_cannot_read_it() {
    let mut mem = SecretMem::new(64).unwrap();
    mem.copy_from_slice(&[0x5A; 64]);
    let plain = [0x5Au8; 64];
    let read = |addr: *const u8| {
        let mut buf = [0u8; 64];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: 64,
        };
        let remote = libc::iovec {
            iov_base: addr.cast_mut().cast(),
            iov_len: 64,
        };
        // SAFETY: Both iovecs describe 64 valid bytes; the call only copies between them.
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        (n, std::io::Error::last_os_error().raw_os_error())
    };
    assert_eq!(read(plain.as_ptr()).0, 64);
    assert_eq!(read(mem.as_ptr()), (-1, Some(libc::EFAULT)));
}

#[test]
#[ignore = "needs the secretmemfd module: make check runs it in the guest"]
fn memlock_limit_is_refused_before_any_sigbus() {
    // In a child: the limit is process-wide.
    // SAFETY: The child only calls async-signal-safe-enough code and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let lim = libc::rlimit {
            rlim_cur: 2 * page_size() as u64,
            rlim_max: 2 * page_size() as u64,
        };
        // The limit applies to root too: CAP_IPC_LOCK does not lift it.
        // SAFETY: A plain system call on our own process.
        let ok = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) == 0 };
        let refused = matches!(
            SecretMem::new(3 * page_size()),
            Err(Error::MemlockLimit { .. })
        );
        let allowed = SecretMem::new(2 * page_size()).is_ok();
        // SAFETY: Ends the child without running the parent's test harness.
        unsafe { libc::_exit(if ok && refused && allowed { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
}

#[test]
#[ignore = "needs the secretmemfd module: make check runs it in the guest"]
fn secret_box_lives_in_module_memory() {
    let mut seed = SecretBox::<[u64; 8]>::new().unwrap();
    assert_eq!(seed.backend(), module_backend());
    assert_eq!(*seed, [0; 8]);
    seed[7] = u64::MAX;
    assert_eq!(seed[7], u64::MAX);
}
