//! The operations the tester drives, and the one table of what each may answer.

use libc::{EACCES, EAGAIN, EFAULT, EFBIG, EINVAL, EOPNOTSUPP, EPERM, ESPIPE};

/// An operation the tester drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `ioctl(/dev/secretmem, SECRETMEM_CREATE, flags)` or `secretmemfd(flags)`.
    Create,
    /// `ftruncate` of a secret memory file.
    Ftruncate,
    /// `mmap` of a secret memory file.
    Mmap,
    /// A read or write of one byte of a mapping.
    Touch,
    /// `mprotect` of part of a mapping.
    Mprotect,
    /// `mremap` of part of a mapping: shrink, grow, move, duplicate.
    Mremap,
    /// `madvise` of part of a mapping.
    Madvise,
    /// `munmap` of part of a mapping.
    Munmap,
    /// `fork`, and a child that reads what the model says it may.
    Fork,
    /// `close` of a descriptor.
    Close,
    /// `read`, `write`, `pread` or `pwrite` on a descriptor.
    Io,
    /// `fstat` and `/proc/self/fdinfo` of a descriptor, against the model.
    Inspect,
}

impl Op {
    /// Every operation, in the order of [`Op::index`].
    pub const ALL: [Op; 12] = [
        Op::Create,
        Op::Ftruncate,
        Op::Mmap,
        Op::Touch,
        Op::Mprotect,
        Op::Mremap,
        Op::Madvise,
        Op::Munmap,
        Op::Fork,
        Op::Close,
        Op::Io,
        Op::Inspect,
    ];

    /// The operation's position in [`Op::ALL`].
    pub fn index(self) -> usize {
        Op::ALL.iter().position(|&op| op == self).unwrap_or(0)
    }

    /// The operation's name as the report prints it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Ftruncate => "ftruncate",
            Op::Mmap => "mmap",
            Op::Touch => "touch",
            Op::Mprotect => "mprotect",
            Op::Mremap => "mremap",
            Op::Madvise => "madvise",
            Op::Munmap => "munmap",
            Op::Fork => "fork",
            Op::Close => "close",
            Op::Io => "io",
            Op::Inspect => "inspect",
        }
    }
}

/// The errnos each operation may give, besides success, and why.
///
/// This is the whole documented set: `Documentation/secretmem-abi.rst`, plus what the memory
/// manager gives any `VM_PFNMAP | VM_IO | VM_DONTEXPAND` shared file mapping, plus the errnos the
/// module is documented to be moving to (EPERM for uncached memory without a privilege, EFBIG
/// for sizes over the limit). An errno outside its row fails the run. Independently of the table,
/// the tester predicts from its model which of these one particular call must give (an invalid
/// flag must give EINVAL, not success), so a call can also fail by giving a listed errno at the
/// wrong time. Touch faults are signals, not errnos: SIGBUS past the size, SIGSEGV without the
/// protection, anything else fails; a fork child must exit 0.
pub const ALLOWED: &[(Op, &[i32])] = &[
    // EINVAL: a flag other than the mode and O_CLOEXEC. EPERM: uncached without the privilege.
    (Op::Create, &[EINVAL, EPERM]),
    // EINVAL: sized before (the size is set once) or negative. EFBIG: over the size limit.
    (Op::Ftruncate, &[EINVAL, EFBIG]),
    // EINVAL: MAP_PRIVATE. EPERM: PROT_EXEC (the file's mount is noexec). EAGAIN: MAP_LOCKED
    // over RLIMIT_MEMLOCK.
    (Op::Mmap, &[EINVAL, EPERM, EAGAIN]),
    (Op::Touch, &[]),
    // EACCES: PROT_EXEC, which the mapping may never get (VM_MAYEXEC is cleared).
    (Op::Mprotect, &[EACCES]),
    // EFAULT: growth or duplication of a VM_DONTEXPAND | VM_PFNMAP mapping. EINVAL:
    // MREMAP_DONTUNMAP of such a mapping.
    (Op::Mremap, &[EFAULT, EINVAL]),
    // EINVAL: advice that needs anonymous, LRU or non-special memory (DONTNEED, FREE, COLD,
    // PAGEOUT, DOFORK, DODUMP, WIPEONFORK, POPULATE_*, HUGEPAGE, MERGEABLE), or an unknown one.
    // EOPNOTSUPP: MADV_REMOVE (the file has no fallocate).
    (Op::Madvise, &[EINVAL, EOPNOTSUPP]),
    (Op::Munmap, &[]),
    (Op::Fork, &[]),
    (Op::Close, &[]),
    // EINVAL: read, write (the file has neither). ESPIPE: pread, pwrite (no position).
    (Op::Io, &[EINVAL, ESPIPE]),
    (Op::Inspect, &[]),
];

/// The errnos `op` may give.
pub fn allowed(op: Op) -> &'static [i32] {
    ALLOWED
        .iter()
        .find(|(o, _)| *o == op)
        .map_or(&[], |(_, errnos)| errnos)
}

/// What the model says one call must answer.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Success.
    Ok,
    /// One of these errnos.
    Err(&'static [i32]),
    /// Success or one of these errnos: the call is documented to be changing.
    OkOr(&'static [i32]),
}

impl Expect {
    /// Whether `result` (0 or an errno) is what was predicted.
    pub fn admits(self, result: i32) -> bool {
        match self {
            Expect::Ok => result == 0,
            Expect::Err(errnos) => errnos.contains(&result),
            Expect::OkOr(errnos) => result == 0 || errnos.contains(&result),
        }
    }

    /// The errnos the prediction names.
    pub fn errnos(self) -> &'static [i32] {
        match self {
            Expect::Ok => &[],
            Expect::Err(errnos) | Expect::OkOr(errnos) => errnos,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{allowed, Op, ALLOWED};

    #[test]
    fn every_operation_has_one_row() {
        for op in Op::ALL {
            assert_eq!(
                ALLOWED.iter().filter(|(o, _)| *o == op).count(),
                1,
                "{op:?}"
            );
            assert_eq!(Op::ALL[op.index()], op);
        }
        assert!(allowed(Op::Touch).is_empty());
        assert!(allowed(Op::Mmap).contains(&libc::EPERM));
    }
}
