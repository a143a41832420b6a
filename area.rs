// SPDX-License-Identifier: GPL-2.0

//! A secret memory area: the state behind one secret memory file.
//!
//! Lock order: `SecretArea::fill_lock` (a mutex), then the `XArray` lock of `SecretArea::chunks`
//! or `SecretArea::pages` (spinlocks, never both at once). Nothing sleeps under an `XArray`
//! lock: pages are taken and given back outside them.

use crate::{
    direct_map::{
        CacheMode,
        SecretBlock,
        SecretPage,
        BLOCK_PAGES, //
    },
    hibernation::{
        AreaHold,
        SleepGuard,
        SLEEP_GUARD, //
    },
    kvm_guard,
    memlock::MemlockCharge,
    page_pool,
    shim,
    stats::STATS, //
};
use kernel::{
    alloc::{
        flags::GFP_KERNEL_ACCOUNT,
        KBox, //
    },
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
    types::ForeignOwnable,
    xarray::{
        AllocKind,
        Guard,
        XArray, //
    }, //
};

/// Mode flag: map uncached as well (`SECRETMEM_UNCACHED` in the UAPI header).
pub(crate) const SECRETMEM_UNCACHED: u32 = 0x1;
/// Close-on-exec for the new descriptor: the kernel's `O_CLOEXEC`.
pub(crate) const O_CLOEXEC: u32 = kernel::bindings::O_CLOEXEC;

/// What a creation request asked for, once its flags are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CreateFlags {
    /// How user space maps the pages.
    pub(crate) mode: CacheMode,
    /// Whether the descriptor is close-on-exec.
    pub(crate) cloexec: bool,
}

impl CreateFlags {
    /// Checks the flags of `secretmemfd(flags)`: one mode and `O_CLOEXEC`, nothing else.
    pub(crate) fn parse(flags: u32) -> Result<Self> {
        if flags & !(SECRETMEM_UNCACHED | O_CLOEXEC) != 0 {
            return Err(EINVAL);
        }
        let mode = if flags & SECRETMEM_UNCACHED != 0 {
            CacheMode::Uncached
        } else {
            CacheMode::Cached
        };
        Ok(Self {
            mode,
            cloexec: flags & O_CLOEXEC != 0,
        })
    }
}

/// What a page index of an area resolves to, for the fault handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resident {
    /// A single page, by page frame number.
    Page(usize),
    /// A 2 MiB block: the page index of its first page, and that page's frame number.
    Block {
        /// Page index of the block's first page.
        first: usize,
        /// Page frame number of the block's first page.
        pfn: usize,
    },
}

/// What one 2 MiB chunk of an area holds.
enum Chunk {
    /// The whole chunk is one block.
    Block(SecretBlock),
    /// The chunk could not have a block: its pages are single pages in `SecretArea::pages`.
    Split,
}

/// The pages of one secret memory file, its size and its locked-memory charge.
///
/// Each 2 MiB chunk that lies wholly inside the size gets one block on its first fault; a chunk
/// whose block cannot be had (no order-9 memory, or the memlock limit) is marked split and takes
/// single pages, as do the tail past the last whole chunk and areas smaller than a block. A
/// chunk never holds both, so every page index resolves to one page for every mapping.
///
/// Fields drop in declaration order: the pages go back to the direct map, zeroed, then
/// `memlock` refunds them, and only then does `hold` stop counting the area.
#[pin_data]
pub(crate) struct SecretArea {
    mode: CacheMode,
    /// Whether chunks may get blocks; fixed at creation from the `blocks` module parameter.
    blocks: bool,
    /// Size in bytes: zero until the one `ftruncate` sets it.
    size: Atomic<u64>,
    /// Serialises creating pages, so a store never replaces a published entry.
    #[pin]
    fill_lock: Mutex<()>,
    /// Chunk index to its block or its split mark. Dropped before `memlock`.
    #[pin]
    chunks: XArray<KBox<Chunk>>,
    /// Page index to single page. Dropped before `memlock`, so pages are freed before the refund.
    #[pin]
    pages: XArray<SecretPage>,
    memlock: MemlockCharge,
    /// Counts the area for the hibernation guard for as long as any of its pages may hold a
    /// secret.
    hold: AreaHold,
}

impl SecretArea {
    /// Creates an empty area of size zero, charged to the current user.
    ///
    /// Fails with `EBUSY` while a hibernation or a restore is in progress, or while an
    /// unpatched KVM is present (`kvm_guard.rs`).
    pub(crate) fn new(mode: CacheMode) -> Result<Arc<Self>> {
        // SAFETY: Reading a module parameter has no precondition.
        let blocks = unsafe { shim::secretmem_shim_blocks_enabled() };
        let area = Self::create(mode, blocks, &SLEEP_GUARD)?;
        // After the area is counted (see `kvm_guard.rs`); a refused area has no page yet.
        kvm_guard::check_create()?;
        Ok(area)
    }

    /// Creates an empty area that uses blocks only if `blocks` says so, counted by `guard`.
    pub(crate) fn create(
        mode: CacheMode,
        blocks: bool,
        guard: &'static SleepGuard,
    ) -> Result<Arc<Self>> {
        let area = Arc::pin_init(
            try_pin_init!(Self {
                // First, so that a refusal allocates nothing more; it drops last.
                hold: guard.hold_area()?,
                mode,
                blocks,
                size: Atomic::new(0),
                fill_lock <- new_mutex!(()),
                chunks <- XArray::new(AllocKind::Alloc),
                pages <- XArray::new(AllocKind::Alloc),
                memlock: MemlockCharge::for_current_user(),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        Ok(area)
    }

    /// Returns how user space maps the pages.
    pub(crate) fn mode(&self) -> CacheMode {
        self.mode
    }

    /// Returns the size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Relaxed)
    }

    /// Sets the size; it can be set once, as for `memfd_secret(2)`.
    pub(crate) fn set_size(&self, size: u64) -> Result {
        self.size
            .cmpxchg(0, size, Relaxed)
            .map(|_| ())
            .map_err(|_| EINVAL)
    }

    /// Returns the number of pages that exist now.
    pub(crate) fn resident_pages(&self) -> usize {
        self.memlock.pages()
    }

    /// Returns what page `index` resolves to, if it exists.
    fn lookup(&self, index: usize) -> Option<Resident> {
        let chunk = index / BLOCK_PAGES;
        if let Some(Chunk::Block(block)) = self.chunks.lock().get(chunk) {
            return Some(Resident::Block {
                first: chunk * BLOCK_PAGES,
                pfn: block.pfn(),
            });
        }
        self.pages
            .lock()
            .get(index)
            .map(|page| Resident::Page(page.pfn()))
    }

    /// Returns what page `index` resolves to, creating its block or page on first use.
    ///
    /// Fails with `EFAULT` past the size, `EBUSY` while a hibernation or a restore is in
    /// progress, `EAGAIN` over the faulting task's locked-memory limit and `ENOMEM` when no page
    /// can be had.
    pub(crate) fn fault(&self, index: usize) -> Result<Resident> {
        let pages = self.size().div_ceil(PAGE_SIZE as u64);
        if index as u64 >= pages {
            return Err(EFAULT);
        }
        if let Some(resident) = self.lookup(index) {
            return Ok(resident);
        }

        // Allocating and charging sleep: the fill lock is a mutex. Charging only after the
        // re-check means two faults on one page at the limit never fail for each other.
        let _fill = self.fill_lock.lock();
        if let Some(resident) = self.lookup(index) {
            return Ok(resident);
        }
        self.hold.guard().may_add_page()?;
        if self.hold.guard().user_areas() {
            kvm_guard::may_add_page()?;
        }
        let chunk = index / BLOCK_PAGES;
        let whole = ((chunk + 1) * BLOCK_PAGES) as u64 <= pages;
        if self.blocks && whole && self.chunks.lock().get(chunk).is_none() {
            match self.take_block() {
                Some(block) => return self.publish_block(index, chunk, block),
                None => self.mark_split(chunk)?,
            }
        }
        self.take_page(index)
    }

    /// Charges and takes a block, or `None` if either fails: the caller falls back to pages.
    fn take_block(&self) -> Option<SecretBlock> {
        if self.memlock.charge(BLOCK_PAGES).is_err() {
            STATS.block_fallbacks.add(1, Relaxed);
            return None;
        }
        match SecretBlock::take(self.mode) {
            Ok(block) => Some(block),
            Err(_) => {
                self.memlock.uncharge(BLOCK_PAGES);
                STATS.block_fallbacks.add(1, Relaxed);
                None
            }
        }
    }

    /// Publishes `block` as chunk `chunk`, which is empty: the caller holds the fill lock.
    fn publish_block(&self, index: usize, chunk: usize, block: SecretBlock) -> Result<Resident> {
        let pfn = block.pfn();
        let entry = match KBox::new(Chunk::Block(block), GFP_KERNEL_ACCOUNT) {
            Ok(entry) => entry,
            Err(e) => {
                // `KBox::new` dropped the block: its pages are back and freed.
                self.memlock.uncharge(BLOCK_PAGES);
                return Err(e.into());
            }
        };
        if !self.store(&self.chunks, chunk, entry, BLOCK_PAGES)? {
            return self.lookup(index).ok_or(EFAULT);
        }
        Ok(Resident::Block {
            first: chunk * BLOCK_PAGES,
            pfn,
        })
    }

    /// Marks chunk `chunk` split, so that no block ever covers its single pages.
    fn mark_split(&self, chunk: usize) -> Result {
        let mark = KBox::new(Chunk::Split, GFP_KERNEL_ACCOUNT)?;
        self.store(&self.chunks, chunk, mark, 0).map(|_| ())
    }

    /// Charges, takes and publishes one page at `index`; the caller holds the fill lock.
    fn take_page(&self, index: usize) -> Result<Resident> {
        self.memlock.charge(1)?;
        let page = match page_pool::take_page(self.mode) {
            Ok(page) => page,
            Err(e) => {
                self.memlock.uncharge(1);
                return Err(e);
            }
        };
        let pfn = page.pfn();
        if !self.store(&self.pages, index, page, 1)? {
            return self.lookup(index).ok_or(EFAULT);
        }
        Ok(Resident::Page(pfn))
    }

    /// Publishes `value`, which holds `charged` charged pages, at `index` of `store`, unless
    /// an entry is there already; never replaces one. The caller holds the fill lock.
    ///
    /// Returns whether `value` was published. If it was not, or on failure, it is dropped, which
    /// gives its pages back, and the charge is refunded.
    pub(crate) fn store<T: ForeignOwnable>(
        &self,
        store: &XArray<T>,
        index: usize,
        value: T,
        charged: usize,
    ) -> Result<bool> {
        let (published, unused) = publish(&mut store.lock(), index, value);
        // The guard is gone: dropping a value restores its pages, which may sleep. The value
        // was never visible, so nothing maps it.
        if let Some(value) = unused {
            drop(value);
            self.memlock.uncharge(charged);
        }
        published
    }
}

/// Stores `value` at `index` unless an entry is there already; never replaces one.
///
/// Returns whether `value` was published, or the error of the store, and the value if it was
/// not published, for the caller to drop once the lock is released.
pub(crate) fn publish<T: ForeignOwnable>(
    store: &mut Guard<'_, T>,
    index: usize,
    value: T,
) -> (Result<bool>, Option<T>) {
    if store.get(index).is_some() {
        return (Ok(false), Some(value));
    }
    match store.store(index, value, GFP_KERNEL_ACCOUNT) {
        Ok(None) => (Ok(true), None),
        // Under the fill lock nothing else stores, so the slot stays empty even when the store
        // drops the lock to allocate. Should an old entry come back all the same, it may be
        // mapped: it must not be dropped. Put it back and give ours up; ours was never visible,
        // as the lock is held from the store until here.
        Ok(Some(old)) => {
            pr_err!("entry {index} was published twice: keeping the first\n");
            match store.store(index, old, GFP_KERNEL_ACCOUNT) {
                Ok(ours) => (Ok(false), ours),
                Err(e) => {
                    pr_err!("cannot put back entry {index}: leaking it\n");
                    // Leaked, never freed: it may still be mapped.
                    core::mem::forget(e.value);
                    (Ok(true), None)
                }
            }
        }
        Err(e) => (Err(e.error), Some(e.value)),
    }
}
