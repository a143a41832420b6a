//! What the tester believes the kernel holds: secret memory files and the mappings of them.
//!
//! Mappings are kept as VMAs the way the kernel splits them: an `mprotect`, `madvise` or
//! `munmap` of part of a VMA cuts it at the range's ends. Secret memory VMAs are `VM_SPECIAL`, so
//! the kernel never merges them again; the model may keep a cut the kernel did not make (an
//! `mprotect` to the same protection), which only makes it choose smaller `mremap` ranges.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One secret memory file.
#[derive(Debug)]
pub struct Area {
    /// The descriptor, until closed; the mappings keep the file after that.
    pub fd: Option<i32>,
    /// Bytes; 0 until an `ftruncate` to a non-zero size.
    pub size: u64,
    /// Created with `SECRETMEM_UNCACHED`.
    pub uncached: bool,
    /// The byte last written at each page's probe offset.
    pub contents: HashMap<u64, u8>,
    /// Pages that exist: every page a touch or a fork child reached inside the size, and every
    /// page of the blocks they created.
    pub resident: BTreeSet<u64>,
    /// Whether whole 2 MiB chunks take blocks: the `blocks` module parameter at creation.
    pub blocks: bool,
    /// Chunks that could not take a block and hold single pages.
    pub split: BTreeSet<u64>,
    /// Something (a successful `MADV_REMOVE` or `MADV_POPULATE_*`) may have changed the pages
    /// behind the model's back: contents and the page count are no longer checked.
    pub unknown: bool,
}

impl Area {
    /// Pages inside the size.
    pub fn pages(&self, ps: u64) -> u64 {
        self.size.div_ceil(ps)
    }
}

/// One VMA of a secret memory file.
#[derive(Clone, Debug)]
pub struct Vma {
    /// A stable name: the tester chooses VMAs by id, never by address, so that a seed replays
    /// the same choices wherever the kernel places the mappings.
    pub id: u64,
    /// Pages.
    pub len: usize,
    /// The area it maps.
    pub area: usize,
    /// The file page at the VMA's start.
    pub pgoff: u64,
    /// `PROT_*`.
    pub prot: i32,
    /// `MADV_DONTFORK`: a child does not inherit it.
    pub dontfork: bool,
}

/// What a touch of one page must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Succeed; a read sees this byte (0 for a page never written).
    Ok(u8),
    /// Raise this signal.
    Signal(i32),
}

/// Pages in a 2 MiB block.
pub const BLOCK_PAGES: u64 = 512;

/// What the module does when a page that does not exist is touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Residency {
    /// The page exists.
    Exists,
    /// Its chunk takes a block: all of the chunk's pages.
    Block,
    /// It takes a single page; `split` if its chunk wanted a block and fell back.
    Page { split: bool },
    /// The locked-memory limit has no room: `SIGBUS`, and the chunk falls back if it wanted a
    /// block.
    OverLimit { split: bool },
}

/// The whole model.
#[derive(Default)]
pub struct Model {
    /// Whether new areas take blocks (the module's `blocks` parameter).
    pub blocks: bool,
    /// `RLIMIT_MEMLOCK` in pages: every page of every area is charged to the one user.
    pub memlock_pages: u64,
    /// Areas by id.
    pub areas: BTreeMap<usize, Area>,
    /// VMAs by start address.
    pub vmas: BTreeMap<usize, Vma>,
    next_area: usize,
    next_vma: u64,
    /// The page size.
    pub ps: usize,
}

impl Model {
    /// An empty model.
    pub fn new(ps: usize) -> Self {
        Self {
            ps,
            memlock_pages: u64::MAX,
            ..Default::default()
        }
    }

    /// Adds a new area with descriptor `fd`; returns its id.
    pub fn add_area(&mut self, fd: i32, uncached: bool) -> usize {
        let id = self.next_area;
        self.next_area += 1;
        self.areas.insert(
            id,
            Area {
                fd: Some(fd),
                size: 0,
                uncached,
                contents: HashMap::new(),
                resident: BTreeSet::new(),
                blocks: self.blocks,
                split: BTreeSet::new(),
                unknown: false,
            },
        );
        id
    }

    /// Areas that still have a descriptor.
    pub fn open_areas(&self) -> Vec<usize> {
        self.areas
            .iter()
            .filter(|(_, a)| a.fd.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// Forgets areas with neither a descriptor nor a mapping: the kernel has released them.
    pub fn collect(&mut self) {
        let mapped: BTreeSet<usize> = self.vmas.values().map(|v| v.area).collect();
        self.areas
            .retain(|id, a| a.fd.is_some() || mapped.contains(id));
    }

    /// Cuts the VMA that contains `addr` strictly inside it, so that one starts at `addr`.
    fn split_at(&mut self, addr: usize) {
        let ps = self.ps;
        let Some((&start, vma)) = self.vmas.range(..addr).next_back() else {
            return;
        };
        let end = start + vma.len * ps;
        if addr <= start || addr >= end {
            return;
        }
        let head = (addr - start) / ps;
        let mut tail = vma.clone();
        tail.id = self.next_vma;
        self.next_vma += 1;
        tail.len = vma.len - head;
        tail.pgoff = vma.pgoff + head as u64;
        self.vmas.get_mut(&start).expect("found above").len = head;
        self.vmas.insert(addr, tail);
    }

    /// The VMAs wholly inside `[start, end)` once it is cut at both ends.
    fn cut(&mut self, start: usize, end: usize) -> Vec<usize> {
        self.split_at(start);
        self.split_at(end);
        self.vmas.range(start..end).map(|(&s, _)| s).collect()
    }

    /// Unmaps `[start, end)`.
    pub fn unmap(&mut self, start: usize, end: usize) {
        for s in self.cut(start, end) {
            self.vmas.remove(&s);
        }
    }

    /// Applies `f` to every VMA in `[start, end)`, cutting at the ends.
    pub fn update(&mut self, start: usize, end: usize, f: impl Fn(&mut Vma)) {
        for s in self.cut(start, end) {
            f(self.vmas.get_mut(&s).expect("cut returns existing VMAs"));
        }
    }

    /// Adds a VMA at `start`, which must be free in the model, under a new id.
    pub fn map(&mut self, start: usize, mut vma: Vma) {
        vma.id = self.next_vma;
        self.next_vma += 1;
        self.vmas.insert(start, vma);
    }

    /// The starts of all VMAs, in the order of their ids.
    pub fn vmas_by_id(&self) -> Vec<usize> {
        let mut v: Vec<(u64, usize)> = self.vmas.iter().map(|(&s, v)| (v.id, s)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// The VMA that contains `addr`, with its start.
    pub fn vma_at(&self, addr: usize) -> Option<(usize, &Vma)> {
        let (&start, vma) = self.vmas.range(..=addr).next_back()?;
        (addr < start + vma.len * self.ps).then_some((start, vma))
    }

    /// The probe offset inside file page `index`: bytes differ from page to page.
    pub fn probe_offset(&self, index: u64) -> usize {
        (index as usize * 131 + 17) % self.ps
    }

    /// What touching the page at `addr` (reading, or writing if `write`) must do.
    pub fn expect_touch(&self, addr: usize, write: bool, in_child: bool) -> Outcome {
        let Some((start, vma)) = self.vma_at(addr) else {
            return Outcome::Signal(libc::SIGSEGV);
        };
        if in_child && vma.dontfork {
            return Outcome::Signal(libc::SIGSEGV);
        }
        let allowed = if write {
            vma.prot & libc::PROT_WRITE != 0
        } else {
            vma.prot & (libc::PROT_READ | libc::PROT_WRITE) != 0
        };
        if !allowed {
            return Outcome::Signal(libc::SIGSEGV);
        }
        let area = &self.areas[&vma.area];
        let index = vma.pgoff + ((addr - start) / self.ps) as u64;
        if index >= area.pages(self.ps as u64) {
            return Outcome::Signal(libc::SIGBUS);
        }
        if let Residency::OverLimit { .. } = self.residency(vma.area, index) {
            return Outcome::Signal(libc::SIGBUS);
        }
        Outcome::Ok(area.contents.get(&index).copied().unwrap_or(0))
    }

    /// What touching page `index` of area `id`, inside its size, creates. As the module does:
    /// a whole 2 MiB chunk of an area with blocks, not yet split, takes a block if the limit
    /// has room for 512 pages, else falls back to single pages for good.
    fn residency(&self, id: usize, index: u64) -> Residency {
        let area = &self.areas[&id];
        if area.resident.contains(&index) {
            return Residency::Exists;
        }
        let chunk = index / BLOCK_PAGES;
        let whole = (chunk + 1) * BLOCK_PAGES <= area.pages(self.ps as u64);
        let wants_block = area.blocks && whole && !area.split.contains(&chunk);
        let charged = self.resident_pages() as u64;
        if wants_block && charged + BLOCK_PAGES <= self.memlock_pages {
            Residency::Block
        } else if charged < self.memlock_pages {
            Residency::Page { split: wants_block }
        } else {
            Residency::OverLimit { split: wants_block }
        }
    }

    /// Records a touch of page `index` of area `id` that went as `expect_touch` said.
    pub fn note_touch(&mut self, id: usize, index: u64) {
        if index >= self.areas[&id].pages(self.ps as u64) {
            return;
        }
        let residency = self.residency(id, index);
        let area = self.areas.get_mut(&id).expect("a mapped area");
        let chunk = index / BLOCK_PAGES;
        match residency {
            Residency::Exists => {}
            Residency::Block => area
                .resident
                .extend(chunk * BLOCK_PAGES..(chunk + 1) * BLOCK_PAGES),
            Residency::Page { split } => {
                if split {
                    area.split.insert(chunk);
                }
                area.resident.insert(index);
            }
            Residency::OverLimit { split } => {
                if split {
                    area.split.insert(chunk);
                }
            }
        }
    }

    /// The area and file page behind `addr`, which must be mapped.
    pub fn page_of(&self, addr: usize) -> (usize, u64) {
        let (start, vma) = self.vma_at(addr).expect("a mapped address");
        (vma.area, vma.pgoff + ((addr - start) / self.ps) as u64)
    }

    /// Pages that exist in all areas, as the model counts them.
    pub fn resident_pages(&self) -> usize {
        self.areas.values().map(|a| a.resident.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::{Model, Outcome, Vma};

    const PS: usize = 4096;

    fn vma(len: usize, pgoff: u64) -> Vma {
        Vma {
            id: 0,
            len,
            area: 0,
            pgoff,
            prot: libc::PROT_READ | libc::PROT_WRITE,
            dontfork: false,
        }
    }

    #[test]
    fn whole_chunks_take_blocks_until_the_limit() {
        let mut m = Model::new(PS);
        m.blocks = true;
        m.memlock_pages = 600;
        let id = m.add_area(3, false);
        m.areas.get_mut(&id).expect("added").size = 3 * 512 * PS as u64;
        m.vmas.insert(0x100000, vma(3 * 512, 0));
        m.note_touch(id, 5);
        assert_eq!(m.resident_pages(), 512);
        // No room for a second block: the chunk falls back to single pages for good.
        m.note_touch(id, 600);
        assert_eq!(m.resident_pages(), 513);
        assert!(m.areas[&id].split.contains(&1));
        for i in 601..688 {
            m.note_touch(id, i);
        }
        assert_eq!(m.resident_pages(), 600);
        assert_eq!(
            m.expect_touch(0x100000 + 700 * PS, false, false),
            Outcome::Signal(libc::SIGBUS)
        );
        assert_eq!(
            m.expect_touch(0x100000 + 7 * PS, false, false),
            Outcome::Ok(0)
        );
    }

    #[test]
    fn cuts_follow_the_kernel() {
        let mut m = Model::new(PS);
        let id = m.add_area(3, false);
        m.areas.get_mut(&id).unwrap().size = 4 * PS as u64;
        m.map(0x10000, vma(6, 0));
        m.update(0x10000 + PS, 0x10000 + 3 * PS, |v| v.prot = libc::PROT_READ);
        let starts: Vec<usize> = m.vmas.keys().copied().collect();
        assert_eq!(starts, [0x10000, 0x10000 + PS, 0x10000 + 3 * PS]);
        assert_eq!(m.vmas[&(0x10000 + 3 * PS)].pgoff, 3);
        assert_eq!(
            m.expect_touch(0x10000 + PS, true, false),
            Outcome::Signal(libc::SIGSEGV)
        );
        assert_eq!(m.expect_touch(0x10000 + PS, false, false), Outcome::Ok(0));
        // Page 4 and 5 of the mapping lie past the 4-page size.
        assert_eq!(
            m.expect_touch(0x10000 + 4 * PS, false, false),
            Outcome::Signal(libc::SIGBUS)
        );
        m.unmap(0x10000 + 2 * PS, 0x10000 + 5 * PS);
        assert!(m.vma_at(0x10000 + 3 * PS).is_none());
        assert_eq!(
            m.vma_at(0x10000 + 5 * PS).map(|(s, v)| (s, v.pgoff)),
            Some((0x10000 + 5 * PS, 5))
        );
        m.areas.get_mut(&id).unwrap().fd = None;
        m.collect();
        assert_eq!(m.areas.len(), 1);
        m.unmap(0x10000, 0x10000 + 6 * PS);
        m.collect();
        assert!(m.areas.is_empty());
    }
}
