//! The random operations: each chooses its arguments from the generator, predicts the answer
//! from the model, makes the call, checks the answer and updates the model.

use crate::allowed::{allowed, Expect, Op};
use crate::model::{Model, Outcome, Vma};
use crate::rng::Rng;
use crate::sys::{self, Touched};
use libc::{EACCES, EAGAIN, EFAULT, EFBIG, EINVAL, EOPNOTSUPP, EPERM, ESPIPE};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// `SECRETMEM_UNCACHED`.
const UNCACHED: u32 = 0x1;
/// Descriptors, files and mappings the tester keeps at most.
const MAX_OPEN: usize = 10;
const MAX_AREAS: usize = 16;
const MAX_VMAS: usize = 32;
/// Pages of one mapping at most, and the largest file offset of a mapping, in pages.
const MAX_MAP_PAGES: u64 = 16;
const MAX_MAP_OFFSET: u64 = 4;

/// What the supervisor sees of a running tester, kept in memory shared with it.
#[repr(C)]
pub struct Progress {
    /// Operations started.
    pub ops: AtomicU64,
    /// The index in [`Op::ALL`] of the operation running now.
    pub op: AtomicU64,
}

/// A run of the tester.
pub struct Fuzzer<'a> {
    rng: Rng,
    m: Model,
    nr: Option<i64>,
    progress: &'a Progress,
    trace: bool,
    /// Stats are readable (root): the module's counters are checked against the model.
    pub stats: bool,
    /// Per operation: calls, and answers by errno (0 for success).
    pub results: BTreeMap<(usize, i32), u64>,
}

/// Names an answer: success, an errno, or (negative) a signal.
fn errno_name(e: i32) -> String {
    match e {
        0 => "ok".into(),
        e if e < 0 => signal_name(-e),
        EINVAL => "EINVAL".into(),
        EPERM => "EPERM".into(),
        EACCES => "EACCES".into(),
        EAGAIN => "EAGAIN".into(),
        EFAULT => "EFAULT".into(),
        EFBIG => "EFBIG".into(),
        EOPNOTSUPP => "EOPNOTSUPP".into(),
        ESPIPE => "ESPIPE".into(),
        e => format!("errno {e} ({})", std::io::Error::from_raw_os_error(e)),
    }
}

fn signal_name(s: i32) -> String {
    match s {
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        s => format!("signal {s}"),
    }
}

type Step = Result<(), String>;

impl<'a> Fuzzer<'a> {
    /// A tester driven by `seed`.
    pub fn new(seed: u64, progress: &'a Progress, trace: bool) -> Self {
        let mut m = Model::new(sys::page_size());
        // What the module decides per touch depends on these two: the model needs them.
        m.blocks = std::fs::read_to_string("/sys/module/secretmemfd/parameters/blocks")
            .is_ok_and(|v| v.trim() == "Y");
        m.memlock_pages = sys::memlock_limit_pages();
        Self {
            rng: Rng::new(seed),
            m,
            nr: sys::syscall_nr(),
            progress,
            trace,
            stats: sys::stat("areas").is_some(),
            results: BTreeMap::new(),
        }
    }

    fn ps(&self) -> usize {
        self.m.ps
    }

    /// Checks one call's answer against the table and the prediction, and counts it.
    fn check<T>(
        &mut self,
        op: Op,
        what: &str,
        result: &Result<T, i32>,
        expect: Expect,
    ) -> Result<bool, String> {
        let got = match result {
            Ok(_) => 0,
            Err(e) => *e,
        };
        if self.trace {
            println!("# {what} -> {}", errno_name(got));
        }
        *self.results.entry((op.index(), got)).or_default() += 1;
        if got != 0 && !allowed(op).contains(&got) {
            return Err(format!(
                "{what}: {} is outside the documented set for {} {:?}",
                errno_name(got),
                op.name(),
                allowed(op)
                    .iter()
                    .map(|&e| errno_name(e))
                    .collect::<Vec<_>>()
            ));
        }
        if !expect.admits(got) {
            return Err(format!(
                "{what}: {}, where the model expects {}{:?}",
                errno_name(got),
                if matches!(expect, Expect::Err(_)) {
                    ""
                } else {
                    "success or "
                },
                expect
                    .errnos()
                    .iter()
                    .map(|&e| errno_name(e))
                    .collect::<Vec<_>>()
            ));
        }
        Ok(got == 0)
    }

    /// Runs one random operation.
    pub fn step(&mut self) -> Step {
        // create, ftruncate, mmap, touch, mprotect, mremap, madvise, munmap, fork, close, io, inspect
        const WEIGHTS: [u32; 12] = [8, 8, 12, 30, 6, 6, 8, 6, 2, 5, 3, 4];
        let op = Op::ALL[self.rng.weighted(&WEIGHTS)];
        self.progress.op.store(op.index() as u64, Ordering::Relaxed);
        self.progress.ops.fetch_add(1, Ordering::Relaxed);
        let have_fd = !self.m.open_areas().is_empty();
        let have_vma = !self.m.vmas.is_empty();
        match op {
            Op::Create => self.create(),
            Op::Ftruncate if have_fd => self.ftruncate(),
            Op::Mmap if have_fd => self.mmap(),
            Op::Touch if have_vma => self.touch(),
            Op::Mprotect if have_vma => self.mprotect(),
            Op::Mremap if have_vma => self.mremap(),
            Op::Madvise if have_vma => self.madvise(),
            Op::Munmap if have_vma => self.munmap(),
            Op::Fork if have_vma => self.fork(),
            Op::Close if have_fd => self.close(),
            Op::Io if have_fd => self.io(),
            Op::Inspect if have_fd => self.inspect(),
            // Nothing to work on yet: make something.
            _ if have_fd => self.mmap(),
            _ => self.create(),
        }
    }

    fn pick_open_area(&mut self) -> (usize, i32) {
        let open = self.m.open_areas();
        let id = *self.rng.pick(&open);
        (id, self.m.areas[&id].fd.expect("an open area"))
    }

    /// A VMA and a range of pages inside it: (VMA start, first page, pages).
    fn pick_range(&mut self) -> (usize, usize, usize) {
        let starts = self.m.vmas_by_id();
        let start = *self.rng.pick(&starts);
        let len = self.m.vmas[&start].len;
        if self.rng.chance(1, 2) {
            return (start, 0, len);
        }
        let first = self.rng.below(len as u64) as usize;
        let n = self.rng.range(1, (len - first) as u64) as usize;
        (start, first, n)
    }

    fn create(&mut self) -> Step {
        if self.m.open_areas().len() >= MAX_OPEN || self.m.areas.len() >= MAX_AREAS {
            return if self.m.open_areas().is_empty() {
                self.munmap()
            } else {
                self.close()
            };
        }
        let mut flags = 0;
        if self.rng.chance(1, 4) {
            flags |= UNCACHED;
        }
        if self.rng.chance(1, 2) {
            flags |= libc::O_CLOEXEC as u32;
        }
        let invalid = self.rng.chance(1, 10);
        if invalid {
            flags |= *self.rng.pick(&[
                0x2,
                0x4,
                0x8000_0000,
                libc::O_NONBLOCK as u32,
                libc::O_RDWR as u32,
            ]);
        }
        let via_syscall = self.nr.is_some() && self.rng.chance(1, 2);
        let result = match (via_syscall, self.nr) {
            (true, Some(nr)) => sys::create_syscall(nr, flags),
            _ => sys::create_ioctl(flags),
        };
        let expect = match (invalid, flags & UNCACHED != 0) {
            (true, false) => Expect::Err(&[EINVAL]),
            (true, true) => Expect::Err(&[EINVAL, EPERM]),
            (false, true) => Expect::OkOr(&[EPERM]),
            (false, false) => Expect::Ok,
        };
        let what = format!(
            "{}(0x{flags:x})",
            if via_syscall {
                "secretmemfd"
            } else {
                "SECRETMEM_CREATE"
            }
        );
        if self.check(Op::Create, &what, &result, expect)? {
            let fd = result.expect("checked") as i32;
            // SAFETY: F_GETFD has no memory arguments.
            let cloexec = unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
            if cloexec != (flags & libc::O_CLOEXEC as u32 != 0) {
                return Err(format!("{what}: close-on-exec is {cloexec}"));
            }
            self.m.add_area(fd, flags & UNCACHED != 0);
        }
        Ok(())
    }

    fn ftruncate(&mut self) -> Step {
        let (id, fd) = self.pick_open_area();
        let ps = self.ps() as i64;
        let (len, huge) = match self.rng.below(10) {
            0 => (0, false),
            1 => (
                *self
                    .rng
                    .pick(&[1 << 30, (1 << 31) - 1, 1 << 31, 4 << 30, i64::MAX]),
                true,
            ),
            2 => (*self.rng.pick(&[-1, -ps]), false),
            _ => {
                let pages = self.rng.range(1, MAX_MAP_PAGES) as i64;
                let extra = if self.rng.chance(1, 3) {
                    self.rng.range(1, ps as u64 - 1) as i64
                } else {
                    0
                };
                ((pages - i64::from(extra != 0)) * ps + extra, false)
            }
        };
        let sized = self.m.areas[&id].size != 0;
        let expect = if len < 0 {
            Expect::Err(&[EINVAL])
        } else if sized {
            // Sized before: the one sizing is used up, whatever the new size.
            if huge {
                Expect::Err(&[EINVAL, EFBIG])
            } else {
                Expect::Err(&[EINVAL])
            }
        } else if huge {
            Expect::OkOr(&[EFBIG])
        } else {
            Expect::Ok
        };
        let result = sys::ftruncate(fd, len);
        if self.check(
            Op::Ftruncate,
            &format!("ftruncate(area {id}, {len})"),
            &result,
            expect,
        )? && len > 0
        {
            self.m.areas.get_mut(&id).expect("picked").size = len as u64;
        }
        Ok(())
    }

    fn mmap(&mut self) -> Step {
        if self.m.vmas.len() >= MAX_VMAS {
            return self.munmap();
        }
        let (id, fd) = self.pick_open_area();
        let ps = self.ps();
        let pages = self.rng.range(1, MAX_MAP_PAGES) as usize;
        let offset = self.rng.range(0, MAX_MAP_OFFSET);
        const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
        let prot = [
            RW,
            libc::PROT_READ,
            libc::PROT_WRITE,
            libc::PROT_NONE,
            libc::PROT_READ | libc::PROT_EXEC,
            RW | libc::PROT_EXEC,
        ][self.rng.weighted(&[50, 15, 5, 10, 10, 10])];
        let shared = self.rng.chance(6, 7);
        let mut flags = if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
        if self.rng.chance(1, 8) {
            flags |= libc::MAP_POPULATE;
        }
        if self.rng.chance(1, 8) {
            flags |= libc::MAP_NORESERVE;
        }
        if self.rng.chance(1, 10) {
            flags |= libc::MAP_LOCKED;
        }
        let expect = if prot & libc::PROT_EXEC != 0 {
            Expect::Err(&[EPERM])
        } else if !shared {
            Expect::Err(&[EINVAL])
        } else if flags & libc::MAP_LOCKED != 0 {
            Expect::OkOr(&[EAGAIN])
        } else {
            Expect::Ok
        };
        let result = sys::mmap(pages * ps, prot, flags, fd, (offset as usize * ps) as i64);
        let what = format!(
            "mmap(area {id}, {pages} pages at page {offset}, prot {prot:#x}, flags {flags:#x})"
        );
        if self.check(Op::Mmap, &what, &result, expect)? {
            let addr = result.expect("checked");
            self.m.map(
                addr,
                Vma {
                    id: 0,
                    len: pages,
                    area: id,
                    pgoff: offset,
                    prot,
                    dontfork: false,
                },
            );
        }
        Ok(())
    }

    /// Touches `addr`'s page at its probe offset and checks the result against the model.
    fn touch_page(&mut self, page_addr: usize, write: Option<u8>) -> Step {
        let (area, index) = self.m.page_of(page_addr);
        let addr = page_addr + self.m.probe_offset(index);
        let expect = self.m.expect_touch(addr, write.is_some(), false);
        // SAFETY: `addr` lies in a secret memory mapping that the model tracks and only `touch`
        // accesses.
        let got = unsafe { sys::touch(addr, write) };
        let what = format!(
            "{} of area {area} page {index}",
            if write.is_some() { "write" } else { "read" }
        );
        if self.trace {
            println!("# {what}: {got:?}, model {expect:?}");
        }
        let answer = if let Touched::Signal(sig, _, _) = got {
            -sig
        } else {
            0
        };
        *self.results.entry((Op::Touch.index(), answer)).or_default() += 1;
        let unknown = self.m.areas[&area].unknown;
        match (expect, got) {
            (Outcome::Ok(want), Touched::Read(byte)) => {
                if byte != want && !unknown {
                    return Err(format!(
                        "{what}: read {byte:#x}, the last write was {want:#x}"
                    ));
                }
            }
            (Outcome::Ok(_), Touched::Written) => {
                let a = self.m.areas.get_mut(&area).expect("mapped area");
                a.contents.insert(index, write.expect("a write"));
            }
            (Outcome::Signal(want), Touched::Signal(sig, code, at))
                if want == sig && at == addr =>
            {
                if sig == libc::SIGBUS && code != libc::BUS_ADRERR {
                    return Err(format!("{what}: SIGBUS with code {code}, not BUS_ADRERR"));
                }
                if sig == libc::SIGBUS {
                    // Over the limit, a chunk that wanted a block falls back for good.
                    self.m.note_touch(area, index);
                }
                return Ok(());
            }
            (want, got) => {
                return Err(format!("{what}: {got:?}, where the model expects {want:?}"))
            }
        }
        self.m.note_touch(area, index);
        Ok(())
    }

    fn touch(&mut self) -> Step {
        let (start, first, n) = self.pick_range();
        let page = start + (first + self.rng.below(n as u64) as usize) * self.ps();
        let write = self.rng.chance(1, 2).then(|| self.rng.range(1, 255) as u8);
        self.touch_page(page, write)
    }

    fn mprotect(&mut self) -> Step {
        let (start, first, n) = self.pick_range();
        let ps = self.ps();
        let prot = *self.rng.pick(&[
            libc::PROT_NONE,
            libc::PROT_READ,
            libc::PROT_WRITE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        ]);
        let expect = if prot & libc::PROT_EXEC != 0 {
            Expect::Err(&[EACCES])
        } else {
            Expect::Ok
        };
        let addr = start + first * ps;
        // SAFETY: The range is a tracked secret memory mapping.
        let result = unsafe { sys::mprotect(addr, n * ps, prot) };
        if self.check(
            Op::Mprotect,
            &format!("mprotect({n} pages, {prot:#x})"),
            &result,
            expect,
        )? {
            self.m.update(addr, addr + n * ps, |v| v.prot = prot);
        }
        Ok(())
    }

    fn mremap(&mut self) -> Step {
        let (start, first, n) = self.pick_range();
        let ps = self.ps();
        let vma = self.m.vmas[&start].clone();
        let addr = start + first * ps;
        let pgoff = vma.pgoff + first as u64;
        // Shrink, grow, move, keep the old (MREMAP_DONTUNMAP), duplicate (old size 0).
        let kind = self.rng.below(5);
        let (old_len, new_len, mut flags, target) = match kind {
            0 if n >= 2 => (n, self.rng.range(1, n as u64 - 1) as usize, 0, None),
            1 => (n, n + self.rng.range(1, 4) as usize, 0, None),
            2 | 3 => (n, n, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, Some(n)),
            4 => (0, n, libc::MREMAP_MAYMOVE, None),
            _ => (n, n, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, Some(n)),
        };
        if kind == 1 && self.rng.chance(1, 2) {
            flags |= libc::MREMAP_MAYMOVE;
        }
        if kind == 3 {
            flags |= libc::MREMAP_DONTUNMAP;
        }
        let reservation = match target {
            Some(pages) => Some(
                sys::reserve(pages * ps)
                    .map_err(|e| format!("reserving an mremap target: errno {e}"))?,
            ),
            None => None,
        };
        let expect = if new_len > old_len {
            // Growth and duplication: VM_DONTEXPAND refuses both today.
            Expect::OkOr(&[EFAULT])
        } else if flags & libc::MREMAP_DONTUNMAP != 0 {
            Expect::OkOr(&[EINVAL])
        } else {
            Expect::Ok
        };
        // SAFETY: The old range is a tracked secret memory mapping; the target is our reservation.
        let result = unsafe {
            sys::mremap(
                addr,
                old_len * ps,
                new_len * ps,
                flags,
                reservation.unwrap_or(0),
            )
        };
        let what = format!("mremap({old_len} -> {new_len} pages, flags {flags:#x})");
        if self.check(Op::Mremap, &what, &result, expect)? {
            let to = result.expect("checked");
            if old_len != 0 && flags & libc::MREMAP_DONTUNMAP == 0 {
                self.m.unmap(addr, addr + old_len * ps);
            }
            if reservation.is_some_and(|r| r != to) {
                return Err(format!(
                    "{what}: moved to {to:#x}, not the MREMAP_FIXED target"
                ));
            }
            self.m.map(
                to,
                Vma {
                    id: 0,
                    len: new_len,
                    area: vma.area,
                    pgoff,
                    prot: vma.prot,
                    dontfork: vma.dontfork,
                },
            );
        } else if let Some(r) = reservation {
            // SAFETY: The reservation is ours and unused.
            unsafe { sys::munmap(r, n * ps) }
                .map_err(|e| format!("unmapping a reservation: errno {e}"))?;
        }
        Ok(())
    }

    fn madvise(&mut self) -> Step {
        const EINVAL_ONLY: &[i32] = &[EINVAL];
        // (advice, prediction); the ABI document's divergences from memfd_secret may close, so
        // those answers may become success.
        let table: [(&str, i32, Expect); 20] = [
            ("MADV_NORMAL", libc::MADV_NORMAL, Expect::Ok),
            ("MADV_RANDOM", libc::MADV_RANDOM, Expect::Ok),
            ("MADV_SEQUENTIAL", libc::MADV_SEQUENTIAL, Expect::Ok),
            ("MADV_WILLNEED", libc::MADV_WILLNEED, Expect::Ok),
            ("MADV_DONTDUMP", libc::MADV_DONTDUMP, Expect::Ok),
            ("MADV_KEEPONFORK", libc::MADV_KEEPONFORK, Expect::Ok),
            ("MADV_DONTFORK", libc::MADV_DONTFORK, Expect::Ok),
            ("MADV_DOFORK", libc::MADV_DOFORK, Expect::OkOr(EINVAL_ONLY)),
            ("MADV_DODUMP", libc::MADV_DODUMP, Expect::OkOr(EINVAL_ONLY)),
            (
                "MADV_DONTNEED",
                libc::MADV_DONTNEED,
                Expect::OkOr(EINVAL_ONLY),
            ),
            (
                "MADV_DONTNEED_LOCKED",
                libc::MADV_DONTNEED_LOCKED,
                Expect::OkOr(EINVAL_ONLY),
            ),
            ("MADV_FREE", libc::MADV_FREE, Expect::Err(EINVAL_ONLY)),
            (
                "MADV_REMOVE",
                libc::MADV_REMOVE,
                Expect::OkOr(&[EOPNOTSUPP, EINVAL]),
            ),
            ("MADV_COLD", libc::MADV_COLD, Expect::Err(EINVAL_ONLY)),
            ("MADV_PAGEOUT", libc::MADV_PAGEOUT, Expect::Err(EINVAL_ONLY)),
            (
                "MADV_WIPEONFORK",
                libc::MADV_WIPEONFORK,
                Expect::Err(EINVAL_ONLY),
            ),
            (
                "MADV_HUGEPAGE",
                libc::MADV_HUGEPAGE,
                Expect::OkOr(EINVAL_ONLY),
            ),
            (
                "MADV_POPULATE_READ",
                libc::MADV_POPULATE_READ,
                Expect::OkOr(&[EINVAL, EFAULT]),
            ),
            (
                "MADV_POPULATE_WRITE",
                libc::MADV_POPULATE_WRITE,
                Expect::OkOr(&[EINVAL, EFAULT]),
            ),
            ("advice 999", 999, Expect::Err(EINVAL_ONLY)),
        ];
        let (name, advice, expect) = *self.rng.pick(&table);
        let (start, first, n) = self.pick_range();
        let ps = self.ps();
        let addr = start + first * ps;
        // SAFETY: The range is a tracked secret memory mapping.
        let result = unsafe { sys::madvise(addr, n * ps, advice) };
        if self.check(
            Op::Madvise,
            &format!("madvise({n} pages, {name})"),
            &result,
            expect,
        )? {
            match advice {
                libc::MADV_DONTFORK => self.m.update(addr, addr + n * ps, |v| v.dontfork = true),
                libc::MADV_DOFORK => self.m.update(addr, addr + n * ps, |v| v.dontfork = false),
                libc::MADV_REMOVE | libc::MADV_POPULATE_READ | libc::MADV_POPULATE_WRITE => {
                    let area = self.m.vmas[&start].area;
                    self.m.areas.get_mut(&area).expect("mapped area").unknown = true;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn munmap(&mut self) -> Step {
        if self.m.vmas.is_empty() {
            return Ok(());
        }
        let (start, first, n) = self.pick_range();
        let ps = self.ps();
        let addr = start + first * ps;
        // SAFETY: The range is a tracked secret memory mapping, forgotten below.
        let result = unsafe { sys::munmap(addr, n * ps) };
        if self.check(
            Op::Munmap,
            &format!("munmap({n} pages)"),
            &result,
            Expect::Ok,
        )? {
            self.m.unmap(addr, addr + n * ps);
            self.m.collect();
        }
        Ok(())
    }

    /// A child reads pages the model chose and checks each answer; the parent waits.
    fn fork(&mut self) -> Step {
        let ps = self.ps();
        let starts = self.m.vmas_by_id();
        let mut probes = Vec::new();
        for _ in 0..12 {
            let start = *self.rng.pick(&starts);
            let page = start + self.rng.below(self.m.vmas[&start].len as u64) as usize * ps;
            let (area, index) = self.m.page_of(page);
            let addr = page + self.m.probe_offset(index);
            let unknown = self.m.areas[&area].unknown;
            let want = self.m.expect_touch(addr, false, true);
            // The child's touches change the file, probe after probe: so does the model.
            if matches!(want, Outcome::Ok(_) | Outcome::Signal(libc::SIGBUS)) {
                self.m.note_touch(area, index);
            }
            probes.push((addr, area, index, want, unknown));
        }
        let pid = sys::fork().map_err(|e| format!("fork: errno {e}"))?;
        if pid == 0 {
            for &(addr, area, index, want, unknown) in &probes {
                // SAFETY: `addr` is in a tracked mapping, or unmapped in this child.
                let got = unsafe { sys::touch(addr, None) };
                let ok = match (want, got) {
                    (Outcome::Ok(w), Touched::Read(b)) => b == w || unknown,
                    (Outcome::Signal(w), Touched::Signal(s, _, at)) => w == s && at == addr,
                    _ => false,
                };
                if !ok {
                    eprintln!("# fork child: read of area {area} page {index}: {got:?}, where the model expects {want:?}");
                    sys::exit_child(1);
                }
            }
            sys::exit_child(0);
        }
        let status = sys::wait(pid).map_err(|e| format!("waitpid: errno {e}"))?;
        *self.results.entry((Op::Fork.index(), 0)).or_default() += 1;
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            return Err(format!(
                "a fork child ended with {} {}",
                if libc::WIFSIGNALED(status) {
                    "signal"
                } else {
                    "exit"
                },
                if libc::WIFSIGNALED(status) {
                    libc::WTERMSIG(status)
                } else {
                    libc::WEXITSTATUS(status)
                }
            ));
        }
        Ok(())
    }

    fn close(&mut self) -> Step {
        let (id, fd) = self.pick_open_area();
        let result = sys::close(fd);
        if self.check(Op::Close, &format!("close(area {id})"), &result, Expect::Ok)? {
            self.m.areas.get_mut(&id).expect("picked").fd = None;
            self.m.collect();
        }
        Ok(())
    }

    fn io(&mut self) -> Step {
        let (id, fd) = self.pick_open_area();
        let which = self.rng.below(4) as u32;
        let expect = if which < 2 {
            Expect::Err(&[EINVAL])
        } else {
            Expect::Err(&[ESPIPE])
        };
        let name = ["read", "write", "pread", "pwrite"][which as usize];
        self.check(
            Op::Io,
            &format!("{name}(area {id})"),
            &sys::io(fd, which),
            expect,
        )?;
        Ok(())
    }

    /// `fstat`, fdinfo and the module's counters against the model.
    fn inspect(&mut self) -> Step {
        let (id, fd) = self.pick_open_area();
        *self.results.entry((Op::Inspect.index(), 0)).or_default() += 1;
        let area = &self.m.areas[&id];
        let size = sys::fstat_size(fd).map_err(|e| format!("fstat: errno {e}"))?;
        let info_size = sys::fdinfo(fd, "secretmem-size");
        let info_pages = sys::fdinfo(fd, "secretmem-pages");
        let info_mode =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        let mode = if area.uncached {
            "uncached"
        } else {
            "exclusive"
        };
        if size as u64 != area.size || info_size != Some(area.size as i64) {
            return Err(format!(
                "area {id}: fstat size {size}, fdinfo {info_size:?}, model {}",
                area.size
            ));
        }
        if !info_mode.contains(&format!("secretmem-mode:\t{mode}")) {
            return Err(format!("area {id}: fdinfo does not say {mode}"));
        }
        if !area.unknown && info_pages != Some(area.resident.len() as i64) {
            return Err(format!(
                "area {id}: fdinfo pages {info_pages:?}, model {}",
                area.resident.len()
            ));
        }
        if self.stats {
            self.check_counters()?;
        }
        Ok(())
    }

    /// The module's `areas` and `pages` against the model.
    fn check_counters(&self) -> Step {
        let areas = sys::stat("areas");
        let pages = sys::stat("pages");
        if areas != Some(self.m.areas.len() as i64) {
            return Err(format!(
                "stats areas {areas:?}, model {}",
                self.m.areas.len()
            ));
        }
        if !self.m.areas.values().any(|a| a.unknown)
            && pages != Some(self.m.resident_pages() as i64)
        {
            return Err(format!(
                "stats pages {pages:?}, model {}",
                self.m.resident_pages()
            ));
        }
        Ok(())
    }

    /// Unmaps and closes everything, then checks that the module holds nothing.
    pub fn finish(&mut self) -> Step {
        let ps = self.ps();
        let vmas: Vec<(usize, usize)> = self.m.vmas.iter().map(|(&s, v)| (s, v.len)).collect();
        for (start, len) in vmas {
            // SAFETY: Every tracked mapping is ours and used no more.
            unsafe { sys::munmap(start, len * ps) }
                .map_err(|e| format!("final munmap: errno {e}"))?;
            self.m.unmap(start, start + len * ps);
        }
        for id in self.m.open_areas() {
            let fd = self.m.areas[&id].fd.expect("open");
            sys::close(fd).map_err(|e| format!("final close: errno {e}"))?;
            self.m.areas.get_mut(&id).expect("open").fd = None;
        }
        self.m.collect();
        if self.stats {
            self.check_counters()?;
        }
        Ok(())
    }

    /// One line per operation: calls and answers.
    pub fn summary(&self) -> Vec<String> {
        Op::ALL
            .iter()
            .filter_map(|&op| {
                let answers: Vec<String> = self
                    .results
                    .iter()
                    .filter(|((o, _), _)| *o == op.index())
                    .map(|((_, e), n)| format!("{} {n}", errno_name(*e)))
                    .collect();
                (!answers.is_empty()).then(|| format!("{}: {}", op.name(), answers.join(", ")))
            })
            .collect()
    }
}

/// Names a signal for the report.
pub fn describe_signal(sig: i32) -> String {
    signal_name(sig)
}

#[cfg(test)]
mod tests {
    use super::errno_name;

    #[test]
    fn answers_have_names() {
        assert_eq!(errno_name(0), "ok");
        assert_eq!(errno_name(libc::EINVAL), "EINVAL");
        assert_eq!(errno_name(-libc::SIGBUS), "SIGBUS");
        assert!(errno_name(libc::ENOMEM).starts_with("errno 12"));
    }
}
