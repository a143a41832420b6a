//! Root's view of physical memory: `/proc/kcore`, an ELF core file whose `PT_LOAD` segments
//! include every range of RAM as the kernel's direct map shows it, and `/proc/PID/pagemap`,
//! which tells the page frames behind a process's virtual pages.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub(crate) const PAGE: usize = 4096;

/// Where the kernel's own image is mapped (`__START_KERNEL_map`): the segment there is the
/// kernel text, which has a physical address too. RAM segments lie in the direct map, below.
const KERNEL_TEXT_START: u64 = 0xffff_ffff_8000_0000;
const PT_LOAD: u32 = 1;
/// `p_paddr` of segments that have no physical address (vmalloc, vmemmap, modules).
const NO_PADDR: u64 = u64::MAX;

/// One range of RAM in `/proc/kcore`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    phys: u64,
    len: u64,
    offset: u64,
}

/// `/proc/kcore`, open, with its RAM segments.
pub(crate) struct Kcore {
    file: File,
    ram: Vec<Segment>,
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("/proc/kcore: {what}"))
}

impl Kcore {
    /// Opens `/proc/kcore` (root only: it needs `CAP_SYS_RAWIO`) and finds its RAM segments.
    pub(crate) fn open() -> io::Result<Self> {
        let file = File::open("/proc/kcore")?;
        let mut ehdr = [0u8; 64];
        file.read_exact_at(&mut ehdr, 0)?;
        // ELF magic, 64-bit, little-endian.
        if ehdr[..4] != *b"\x7fELF" || ehdr[4] != 2 || ehdr[5] != 1 {
            return Err(invalid("not a 64-bit little-endian ELF file"));
        }
        let phoff = le_u64(&ehdr, 0x20);
        let phentsize = usize::from(le_u16(&ehdr, 0x36));
        let phnum = usize::from(le_u16(&ehdr, 0x38));
        // PN_XNUM would put the count elsewhere; only a machine with huge numbers of memory
        // ranges gets there.
        if phentsize < 56 || phnum == 0xffff {
            return Err(invalid("unexpected program header layout"));
        }
        let mut phdrs = vec![0u8; phentsize * phnum];
        file.read_exact_at(&mut phdrs, phoff)?;
        let ram = phdrs
            .chunks_exact(phentsize)
            .filter(|p| le_u32(p, 0) == PT_LOAD)
            .filter(|p| le_u64(p, 24) != NO_PADDR && le_u64(p, 16) < KERNEL_TEXT_START)
            .map(|p| Segment {
                offset: le_u64(p, 8),
                phys: le_u64(p, 24),
                len: le_u64(p, 40),
            })
            .collect::<Vec<_>>();
        if ram.is_empty() {
            return Err(invalid("no RAM segment"));
        }
        Ok(Kcore { file, ram })
    }

    /// The RAM it covers, in bytes.
    pub(crate) fn ram_size(&self) -> u64 {
        self.ram.iter().map(|s| s.len).sum()
    }

    /// Reads the page at physical address `phys` through the direct map. The kernel reads a
    /// page that is not in the direct map as zeros.
    pub(crate) fn read_page(&self, phys: u64, page: &mut [u8; PAGE]) -> io::Result<()> {
        let segment = self
            .ram
            .iter()
            .find(|s| phys >= s.phys && phys + PAGE as u64 <= s.phys + s.len)
            .ok_or_else(|| invalid(&format!("no RAM segment holds {phys:#x}")))?;
        self.file
            .read_exact_at(page, segment.offset + (phys - segment.phys))
    }

    /// The physical addresses of the pages of RAM whose first bytes are `prefix`, read
    /// through the direct map. Only the prefix of each page is read: whole pages cost the
    /// kernel far more (a debug kernel checks every word it copies).
    pub(crate) fn pages_starting_with(&self, prefix: &[u8]) -> io::Result<Vec<u64>> {
        let mut head = vec![0u8; prefix.len().min(PAGE)];
        let mut found = Vec::new();
        for segment in &self.ram {
            for at in (0..segment.len / PAGE as u64).map(|i| i * PAGE as u64) {
                self.file.read_exact_at(&mut head, segment.offset + at)?;
                if head == prefix {
                    found.push(segment.phys + at);
                }
            }
        }
        Ok(found)
    }
}

/// The page frame numbers behind the pages of `len` bytes at `addr` in process `pid`, `None`
/// for a page that `/proc/PID/pagemap` shows no frame for. Frame numbers need root; the kernel
/// shows none for `VM_PFNMAP` mappings.
pub(crate) fn page_frames(pid: libc::pid_t, addr: u64, len: usize) -> io::Result<Vec<Option<u64>>> {
    const PRESENT: u64 = 1 << 63;
    const PFN_MASK: u64 = (1 << 55) - 1;
    let pages = len.div_ceil(PAGE);
    let mut entries = vec![0u8; pages * 8];
    File::open(format!("/proc/{pid}/pagemap"))?
        .read_exact_at(&mut entries, addr / PAGE as u64 * 8)?;
    Ok(entries
        .chunks_exact(8)
        .map(|e| le_u64(e, 0))
        .map(|e| (e & PRESENT != 0 && e & PFN_MASK != 0).then_some(e & PFN_MASK))
        .collect())
}
