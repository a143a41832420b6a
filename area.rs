// SPDX-License-Identifier: GPL-2.0

//! A secret memory area: the state behind one secret memory file.
//!
//! Lock order: `SecretArea::fill_lock` (a mutex), then the `XArray` lock of `SecretArea::pages`
//! (a spinlock). Nothing sleeps under the `XArray` lock: pages are taken from the source and
//! given back outside it.

use crate::{
    direct_map::{
        CacheMode,
        PageSource,
        SecretPage, //
    },
    hibernation::{
        AreaHold,
        SLEEP_GUARD, //
    },
    memlock::MemlockCharge, //
};
use kernel::{
    alloc::{
        flags::GFP_KERNEL,
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

/// The pages of one secret memory file, its size and its locked-memory charge.
///
/// Fields drop in declaration order: the pages go back to the direct map, zeroed, then
/// `memlock` refunds them, and only then does `_hold` stop counting the area.
#[pin_data]
pub(crate) struct SecretArea {
    mode: CacheMode,
    /// Size in bytes: zero until the one `ftruncate` sets it.
    size: Atomic<u64>,
    /// Serialises publishing pages, so a store never replaces a published page.
    #[pin]
    fill_lock: Mutex<()>,
    /// Page index to page. Dropped before `memlock`, so pages are freed before the refund.
    #[pin]
    pages: XArray<KBox<SecretPage>>,
    memlock: MemlockCharge,
    /// Counts the area for the hibernation guard for as long as any of its pages may hold a
    /// secret.
    _hold: AreaHold,
}

impl SecretArea {
    /// Creates an empty area of size zero, charged to the current user.
    ///
    /// Fails with `EBUSY` while a hibernation or a restore is in progress.
    pub(crate) fn new(mode: CacheMode) -> Result<Arc<Self>> {
        let area = Arc::pin_init(
            try_pin_init!(Self {
                // First, so that a refusal allocates nothing more; it drops last.
                _hold: SLEEP_GUARD.hold_area()?,
                mode,
                size: Atomic::new(0),
                fill_lock <- new_mutex!(()),
                pages <- XArray::new(AllocKind::Alloc),
                memlock: MemlockCharge::for_current_user(),
            }),
            GFP_KERNEL,
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

    /// Returns the page frame number of page `index`, creating the page on first use.
    ///
    /// Fails with `EFAULT` past the size, `EBUSY` while a hibernation or a restore is in
    /// progress, `EAGAIN` over the faulting task's locked-memory limit and `ENOMEM` when no page
    /// can be had.
    pub(crate) fn pfn_at(&self, index: usize) -> Result<usize> {
        let pages = self.size().div_ceil(PAGE_SIZE as u64);
        if index as u64 >= pages {
            return Err(EFAULT);
        }
        if let Some(pfn) = self.pages.lock().get(index).map(|page| page.pfn()) {
            return Ok(pfn);
        }

        SLEEP_GUARD.may_add_page()?;
        // Charge and take a page with no lock held: both may sleep.
        self.memlock.charge(1)?;
        let page = PageSource::take(self.mode).and_then(|page| Ok(KBox::new(page, GFP_KERNEL)?));
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                self.memlock.uncharge(1);
                return Err(e);
            }
        };

        let fill = self.fill_lock.lock();
        let (pfn, unused) = publish(&mut self.pages.lock(), index, page);
        drop(fill);

        if let Some(page) = unused {
            // Restoring the direct map may sleep: only now, with no lock held. The page was never
            // published, so nothing maps it.
            drop(page);
            self.memlock.uncharge(1);
        }
        pfn
    }
}

/// Publishes `page` at `index` unless a page is there already; never replaces one.
///
/// Returns the page frame number now at `index`, or the error of the store, and the page that
/// was not published, if any, for the caller to drop once the lock is released. The caller holds
/// `SecretArea::fill_lock`.
pub(crate) fn publish(
    store: &mut Guard<'_, KBox<SecretPage>>,
    index: usize,
    page: KBox<SecretPage>,
) -> (Result<usize>, Option<KBox<SecretPage>>) {
    // A racing fault may have published this page first: use it and give ours back.
    if let Some(pfn) = store.get(index).map(|page| page.pfn()) {
        return (Ok(pfn), Some(page));
    }
    let pfn = page.pfn();
    match store.store(index, page, GFP_KERNEL) {
        Ok(None) => (Ok(pfn), None),
        // Under `fill_lock` nothing else stores, so the slot stays empty even when the store drops
        // the lock to allocate. Should an old page come back all the same, it may be mapped: it
        // must not be dropped. Put it back and give ours up; ours was never visible, as the lock
        // is held from the store until here.
        Ok(Some(old)) => {
            pr_err!("page {index} was published twice: keeping the first\n");
            let old_pfn = old.pfn();
            match store.store(index, old, GFP_KERNEL) {
                Ok(ours) => (Ok(old_pfn), ours),
                Err(e) => {
                    pr_err!("cannot put back page {index}: leaking it\n");
                    // Leaked, never freed: it may still be mapped.
                    core::mem::forget(e.value);
                    (Ok(pfn), None)
                }
            }
        }
        Err(e) => (Err(e.error), Some(e.value)),
    }
}
