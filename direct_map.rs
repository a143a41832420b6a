// SPDX-License-Identifier: GPL-2.0

//! Pages that the kernel direct map does not cover: single pages and 2 MiB blocks.
//!
//! This is the only file that changes the direct map. A [`SecretPages`] is out of the direct map
//! for as long as it exists; dropping it puts the pages back, zeroes them and frees them, so a
//! page that is out of the direct map can never reach the page allocator.
//!
//! How pages leave and re-enter the direct map depends on what the kernel exports ([`backend`],
//! chosen by Kbuild from `Module.symvers`). With kernel/patches/0001 a 2 MiB block leaves it
//! with one change and one TLB flush: x86 changes a whole, aligned 2 MiB direct-map entry in
//! place, so blocks never split the direct map either. On a kernel nobody patched, the MCE
//! helpers change one page and flush every CPU's TLB per call.

use crate::{
    shim,
    stats::STATS, //
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    ffi::{
        c_uint,
        c_ulong,
        c_void, //
    },
    prelude::*,
    sync::atomic::Relaxed,
    task::might_sleep,
    types::ForeignOwnable, //
};

/// How user space maps secret pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheMode {
    /// Write-back, as ordinary memory.
    Cached,
    /// Uncached: the pages' memory type is switched to UC- before they leave the direct map.
    Uncached,
}

/// The order of a block: 512 pages, 2 MiB, one direct-map entry on x86.
pub(crate) const BLOCK_ORDER: u32 = 9;
/// The number of pages in a block.
pub(crate) const BLOCK_PAGES: usize = 1 << BLOCK_ORDER;

/// `2^ORDER` contiguous pages that are out of the kernel direct map.
///
/// # Invariants
///
/// - `page` is the first of `2^ORDER` contiguous pages that were allocated together with
///   `alloc_pages(.., ORDER)` and are owned by this value.
/// - None of them is present in the direct map, and no CPU's TLB holds a direct-map entry for
///   them.
/// - If `mode` is [`CacheMode::Uncached`], their memory type is UC-.
///
/// # Dropping
///
/// Dropping a `SecretPages` restores, zeroes and frees the pages, so no page table may map them
/// any more by then. Their owners see to that: an area's pages drop with the area, after the
/// file is released and every VMA, each holding a reference on the file, is gone; pages that the
/// fault path did not publish were never mapped.
pub(crate) struct SecretPages<const ORDER: u32> {
    page: NonNull<bindings::page>,
    mode: CacheMode,
}

/// One secret page, for areas and chunks that cannot take a block.
pub(crate) type SecretPage = SecretPages<0>;
/// A 2 MiB block of secret pages.
pub(crate) type SecretBlock = SecretPages<BLOCK_ORDER>;

// SAFETY: The pages are owned by the value and are not touched through it; they can be given
// back from any thread.
unsafe impl<const ORDER: u32> Send for SecretPages<ORDER> {}
// SAFETY: `&self` methods only read the page frame number.
unsafe impl<const ORDER: u32> Sync for SecretPages<ORDER> {}

impl<const ORDER: u32> SecretPages<ORDER> {
    /// The number of pages.
    pub(crate) const PAGES: usize = 1 << ORDER;

    /// Allocates zeroed pages, charged to the caller's memory cgroup, and takes them out of the
    /// direct map.
    ///
    /// A block is allocated with no retries and no warning: its callers fall back to single
    /// pages. Fails with `ENOMEM` when no pages can be had.
    pub(crate) fn take(mode: CacheMode) -> Result<Self> {
        // SAFETY: Allocating pages has no precondition.
        let page = unsafe { shim::secretmem_shim_alloc_pages(ORDER, ORDER > 0) };
        let page = NonNull::new(page).ok_or(ENOMEM)?;
        // SAFETY: `page` was just allocated with `ORDER` and is ours.
        let page = unsafe { backend::usable::<ORDER>(page) }?;
        // SAFETY: `page` was allocated with `ORDER`: the pages are ours, in the direct map,
        // write-back, and mapped nowhere else.
        unsafe { Self::remove_from_direct_map(page, mode) }
    }

    /// Takes `page` and the pages after it out of the direct map, after switching their memory
    /// type for `mode`.
    ///
    /// On failure the pages are freed, or leaked if their memory type cannot be restored.
    ///
    /// # Safety
    ///
    /// `page` must be the first of `2^ORDER` pages allocated together with `ORDER`, owned by the
    /// caller, in the direct map with the write-back type, and not mapped anywhere else.
    pub(crate) unsafe fn remove_from_direct_map(
        page: NonNull<bindings::page>,
        mode: CacheMode,
    ) -> Result<Self> {
        // The TLB flushes below need interrupts enabled; this says so under
        // `CONFIG_DEBUG_ATOMIC_SLEEP`.
        might_sleep();
        if mode == CacheMode::Uncached {
            // SAFETY: The pages are ours and in the direct map (the caller's guarantee).
            let ret =
                unsafe { shim::secretmem_shim_set_pages_uc(page.as_ptr(), Self::PAGES as c_uint) };
            if ret != 0 {
                // A change of memory type can fail half way: make every page write-back again
                // before freeing them, or leak them.
                // SAFETY: The pages are ours and in the direct map.
                if unsafe { restore_write_back(page, Self::PAGES, mode) } {
                    // SAFETY: In the direct map, write-back and never handed out.
                    unsafe { give_back_pages::<ORDER>(page) };
                }
                return Err(Error::from_errno(ret));
            }
        }
        // SAFETY: The pages are ours, in the direct map, and nothing else maps or reads them;
        // we run in process context that may sleep (a fault, or a KUnit case), as the
        // allocation before this did.
        if let Err(failed) = unsafe { backend::remove(page, Self::PAGES) } {
            if !failed.restored {
                pr_err!(
                    "cannot undo a failed direct-map removal: leaking {} pages\n",
                    Self::PAGES
                );
                STATS.leaked_pages.add(Self::PAGES as u64, Relaxed);
            // SAFETY: The pages are ours and back in the direct map. On failure
            // `restore_write_back` counts and reports the leak itself.
            } else if unsafe { restore_write_back(page, Self::PAGES, mode) } {
                // SAFETY: Back in the direct map, write-back and never handed out.
                unsafe { give_back_pages::<ORDER>(page) };
            }
            return Err(failed.error);
        }
        STATS.pages.add(Self::PAGES, Relaxed);
        if ORDER > 0 {
            STATS.blocks.add(1, Relaxed);
        }

        // INVARIANT: The pages left the direct map and every CPU's TLB entry for them is
        // flushed; their memory type matches `mode`.
        Ok(Self { page, mode })
    }

    /// Returns the page frame number of the first page, for the user page table.
    pub(crate) fn pfn(&self) -> usize {
        // SAFETY: `self.page` is a valid page.
        unsafe { shim::secretmem_shim_page_to_pfn(self.page.as_ptr()) as usize }
    }

    /// Returns the first `struct page`, for checks that do not touch the contents.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn as_ptr(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    /// Puts the pages back into the direct map, zeroes them and restores write-back.
    ///
    /// Returns the first page, ready to be freed with `ORDER`, or `None` if the pages could not
    /// be put back: such pages are leaked, never freed.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn restore(self) -> Option<NonNull<bindings::page>> {
        let (page, mode) = (self.page, self.mode);
        core::mem::forget(self);
        // SAFETY: By the type invariants the pages are out of the direct map with `mode`; `self`
        // is forgotten, so they are not restored twice.
        unsafe { restore_pages(page, Self::PAGES, mode) }.then_some(page)
    }
}

impl<const ORDER: u32> Drop for SecretPages<ORDER> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the pages are out of the direct map with `self.mode`,
        // and the owner drops them only once nothing maps them (see `SecretArea`).
        if unsafe { restore_pages(self.page, Self::PAGES, self.mode) } {
            // SAFETY: The pages are back, zeroed, write-back, and allocated with `ORDER`.
            unsafe { give_back_pages::<ORDER>(self.page) };
        }
    }
}

/// The low pointer bit that marks an uncached page in the store: `struct page` is at least
/// 8-byte aligned, and the `XArray` keeps the two lowest bits for itself.
const UNCACHED_TAG: usize = 0x4;
const _: () = assert!(core::mem::align_of::<bindings::page>() > UNCACHED_TAG);

// SAFETY: `into_foreign` returns the page pointer, at least 8-byte aligned, with bit 2 holding
// the mode; `from_foreign` and `borrow` take both apart again.
unsafe impl<const ORDER: u32> ForeignOwnable for SecretPages<ORDER> {
    const FOREIGN_ALIGN: usize = UNCACHED_TAG;
    type Borrowed<'a> = SecretPagesRef<'a, ORDER>;
    type BorrowedMut<'a> = SecretPagesRef<'a, ORDER>;

    fn into_foreign(self) -> *mut c_void {
        let tag = match self.mode {
            CacheMode::Cached => 0,
            CacheMode::Uncached => UNCACHED_TAG,
        };
        let ptr = self.page.as_ptr().map_addr(|addr| addr | tag);
        core::mem::forget(self);
        ptr.cast()
    }

    unsafe fn from_foreign(ptr: *mut c_void) -> Self {
        let mode = if ptr.addr() & UNCACHED_TAG != 0 {
            CacheMode::Uncached
        } else {
            CacheMode::Cached
        };
        let page = ptr.map_addr(|addr| addr & !UNCACHED_TAG).cast();
        // SAFETY: `ptr` came from `into_foreign`, which tagged a non-null page pointer.
        let page = unsafe { NonNull::new_unchecked(page) };
        // INVARIANT: `into_foreign` gave up a value that kept the invariants.
        Self { page, mode }
    }

    unsafe fn borrow<'a>(ptr: *mut c_void) -> SecretPagesRef<'a, ORDER> {
        let page = ptr.map_addr(|addr| addr & !UNCACHED_TAG).cast();
        SecretPagesRef {
            page,
            _owner: PhantomData,
        }
    }

    unsafe fn borrow_mut<'a>(ptr: *mut c_void) -> SecretPagesRef<'a, ORDER> {
        // SAFETY: The caller's guarantees for `borrow_mut` include those for `borrow`.
        unsafe { Self::borrow(ptr) }
    }
}

/// A borrow of [`SecretPages`] held in an `XArray`: only its page frame number can be read.
pub(crate) struct SecretPagesRef<'a, const ORDER: u32> {
    page: *mut bindings::page,
    _owner: PhantomData<&'a SecretPages<ORDER>>,
}

impl<const ORDER: u32> SecretPagesRef<'_, ORDER> {
    /// Returns the page frame number of the first page.
    pub(crate) fn pfn(&self) -> usize {
        // SAFETY: The borrowed `SecretPages` owns the page while `self` lives.
        unsafe { shim::secretmem_shim_page_to_pfn(self.page) as usize }
    }
}

/// Set when pages are restored while the KUnit suite's guard counts an area, for the suite.
#[cfg(CONFIG_KUNIT)]
pub(crate) static RESTORED_WHILE_TEST_AREA_COUNTED: kernel::sync::atomic::Atomic<bool> =
    kernel::sync::atomic::Atomic::new(false);

/// Puts `count` pages from `page` back into the direct map, zeroes them and restores
/// write-back. Returns whether they may be freed: on any failure they are leaked instead, since
/// a page that may still be out of the direct map, hold a secret or be UC- must never be freed.
///
/// # Safety
///
/// The pages must have been taken out of the direct map by
/// [`SecretPages::remove_from_direct_map`] with `mode`, and nothing may map them any more.
unsafe fn restore_pages(page: NonNull<bindings::page>, count: usize, mode: CacheMode) -> bool {
    let raw = page.as_ptr();
    // SAFETY: The pages are ours, out of the direct map, and mapped by nobody.
    let restored = unsafe { backend::restore(page, count) };
    STATS.pages.fetch_sub(count, Relaxed);
    if count > 1 {
        STATS.blocks.fetch_sub(1, Relaxed);
    }
    if let Err(e) = restored {
        pr_err!(
            "cannot restore the direct map of {count} secret pages ({}): leaking them\n",
            e.to_errno()
        );
        STATS.leaked_pages.add(count as u64, Relaxed);
        return false;
    }
    STATS.direct_map_restores.add(count as u64, Relaxed);
    // SAFETY: The pages are back in the direct map, ours, and mapped by nobody else.
    unsafe { shim::secretmem_shim_zero_pages(raw, count as c_uint) };
    // SAFETY: The pages are in the direct map; their type is UC- if `mode` says so.
    let restored = unsafe { restore_write_back(page, count, mode) };
    #[cfg(CONFIG_KUNIT)]
    if crate::hibernation::TEST_GUARD.areas() != 0 {
        RESTORED_WHILE_TEST_AREA_COUNTED.store(true, Relaxed);
    }
    restored
}

/// Switches `count` pages back to write-back if `mode` made them UC-; returns `false`, leaking
/// them, if that fails.
///
/// # Safety
///
/// The pages must be ours and present in the direct map.
unsafe fn restore_write_back(page: NonNull<bindings::page>, count: usize, mode: CacheMode) -> bool {
    if mode == CacheMode::Cached {
        return true;
    }
    // SAFETY: The caller's guarantees.
    let ret = unsafe { shim::secretmem_shim_set_pages_wb(page.as_ptr(), count as c_uint) };
    if ret != 0 {
        pr_err!("cannot restore write-back on {count} secret pages ({ret}): leaking them\n");
        STATS.leaked_pages.add(count as u64, Relaxed);
        return false;
    }
    true
}

/// Gives `2^ORDER` pages back to the page allocator.
///
/// # Safety
///
/// The pages must have been allocated together with `ORDER`, be owned by the caller, present
/// in the direct map with the write-back type, zeroed if they ever held a secret, and unused
/// from here on.
unsafe fn give_back_pages<const ORDER: u32>(page: NonNull<bindings::page>) {
    // SAFETY: The caller's guarantees.
    unsafe { shim::secretmem_shim_free_pages(page.as_ptr(), ORDER) };
}

/// A fresh page out of the direct map that no area has had yet: the stock of `page_pool.rs`.
///
/// Prepared pages leave the direct map many at a time, with one TLB flush between them. They
/// hold nothing but the zeroes they were allocated with, so one can go back to the direct map
/// without being zeroed again.
///
/// # Invariants
///
/// - `page` was allocated alone (order 0) and zeroed, and is owned by this value.
/// - It is out of the direct map, no CPU's TLB holds a direct-map entry for it, and it is
///   write-back.
/// - Nothing maps it, and nothing has written to it since it was zeroed.
#[cfg(secretmem_backend_patched)]
pub(crate) struct PreparedPage {
    page: NonNull<bindings::page>,
}

// SAFETY: The page is owned by the value and is not touched through it; it can be given back
// from any thread.
#[cfg(secretmem_backend_patched)]
unsafe impl Send for PreparedPage {}

#[cfg(secretmem_backend_patched)]
impl PreparedPage {
    /// Fills `out` from the start with zeroed pages, charged to the caller's memory cgroup and
    /// taken out of the direct map with one TLB flush for all of them. Returns how many: fewer
    /// than `out.len()` when no more pages can be had or a change fails (that page is freed).
    ///
    /// Only the first page is allocated as a fault's page is, with reclaim, retries and the OOM
    /// killer; the others only if they can be had without direct reclaim, so a batch may be
    /// short. Fills at most [`PreparedPage::MAX`]
    /// slots. Like [`SecretPages::take`] it must be called where it may sleep.
    pub(crate) fn prepare(out: &mut [Option<PreparedPage>]) -> usize {
        // The flush needs interrupts enabled, as in `remove_from_direct_map`.
        might_sleep();
        let mut taken: [Option<NonNull<bindings::page>>; Self::MAX] = [None; Self::MAX];
        let (mut count, mut start, mut end) = (0, usize::MAX, 0);
        for (i, slot) in taken.iter_mut().take(out.len()).enumerate() {
            // Only the first page is one that a fault needs: the others get no direct reclaim.
            // SAFETY: Allocating pages has no precondition.
            let page = unsafe { shim::secretmem_shim_alloc_pages(0, i > 0) };
            let Some(page) = NonNull::new(page) else {
                break;
            };
            // SAFETY: The page was just allocated: ours, in the direct map, mapped nowhere.
            if let Err(failed) = unsafe { backend::remove_noflush(page, 1) } {
                if failed.restored {
                    // SAFETY: Back in the direct map, write-back, zeroed and never handed out.
                    unsafe { give_back_pages::<0>(page) };
                } else {
                    pr_err!("cannot undo a failed direct-map removal: leaking 1 page\n");
                    STATS.leaked_pages.add(1, Relaxed);
                }
                break;
            }
            // SAFETY: `page` is a valid page.
            let address = unsafe { backend::address(page) };
            start = start.min(address);
            end = end.max(address + kernel::page::PAGE_SIZE);
            *slot = Some(page);
            count += 1;
        }
        if count == 0 {
            return 0;
        }
        // SAFETY: Our callers fault pages in, in process context that may sleep.
        unsafe { backend::flush(start, end) };
        STATS.pool_pages.add(count, Relaxed);
        for (slot, page) in out.iter_mut().zip(taken.into_iter().flatten()) {
            // INVARIANT: Allocated zeroed and alone, out of the direct map and flushed just
            // above, write-back (never changed), unmapped and unwritten.
            *slot = Some(Self { page });
        }
        count
    }

    /// The most pages one [`PreparedPage::prepare`] fills.
    pub(crate) const MAX: usize = 32;

    /// Hands the page over as a cached secret page, for one area.
    pub(crate) fn into_secret(self) -> SecretPage {
        let page = self.page;
        core::mem::forget(self);
        STATS.pool_pages.fetch_sub(1, Relaxed);
        STATS.pages.add(1, Relaxed);
        // INVARIANT: One page allocated alone and owned, out of the direct map with every TLB
        // entry flushed, write-back as `CacheMode::Cached` says.
        SecretPages {
            page,
            mode: CacheMode::Cached,
        }
    }

    /// Returns the page, for checks that do not touch its contents.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn as_ptr(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }
}

#[cfg(secretmem_backend_patched)]
impl Drop for PreparedPage {
    fn drop(&mut self) {
        STATS.pool_pages.fetch_sub(1, Relaxed);
        // SAFETY: By the type invariants the page is ours, out of the direct map and unmapped.
        if let Err(e) = unsafe { backend::restore(self.page, 1) } {
            pr_err!(
                "cannot restore the direct map of a pooled page ({}): leaking it\n",
                e.to_errno()
            );
            STATS.leaked_pages.add(1, Relaxed);
            return;
        }
        STATS.direct_map_restores.add(1, Relaxed);
        // SAFETY: Back in the direct map, write-back, still zeroed (the type invariants) and
        // allocated alone.
        unsafe { give_back_pages::<0>(self.page) };
    }
}

/// Why pages did not leave the direct map.
struct RemoveFailed {
    error: Error,
    /// Whether every page is back in the direct map, so that the pages may be freed.
    restored: bool,
}

/// Direct-map changes through kernel/patches/0001's exports: one change and one ranged TLB
/// flush for any number of contiguous pages.
#[cfg(secretmem_backend_patched)]
mod backend {
    use super::*;
    use kernel::page::PAGE_SIZE;

    /// The backend's name, for `modinfo`, the stats and `secretmem status`.
    pub(crate) const NAME: &str = "patched";

    /// Takes `count` pages from `page` out of the direct map and flushes every CPU's TLB entry
    /// for them. On failure the pages are put back if possible.
    ///
    /// # Safety
    ///
    /// The pages must be ours, in the direct map and not mapped anywhere else; the caller must
    /// be able to sleep with interrupts enabled (the flush waits for the other CPUs).
    pub(super) unsafe fn remove(
        page: NonNull<bindings::page>,
        count: usize,
    ) -> Result<(), RemoveFailed> {
        // SAFETY: The caller's guarantees.
        unsafe { remove_noflush(page, count) }?;
        // SAFETY: `page` is a valid page (the caller's guarantees).
        let start = unsafe { address(page) };
        // SAFETY: The caller may sleep with interrupts enabled.
        unsafe { flush(start, start + count * PAGE_SIZE) };
        Ok(())
    }

    /// Takes `count` pages from `page` out of the direct map, leaving stale TLB entries for
    /// [`flush`] to remove. On failure the pages are put back if possible.
    ///
    /// # Safety
    ///
    /// The pages must be ours, in the direct map and not mapped anywhere else.
    pub(super) unsafe fn remove_noflush(
        page: NonNull<bindings::page>,
        count: usize,
    ) -> Result<(), RemoveFailed> {
        let raw = page.as_ptr();
        // SAFETY: The caller's guarantees.
        let ret = unsafe { shim::secretmem_shim_direct_map_remove(raw, count as c_uint) };
        if ret != 0 {
            // A change can fail half way. Entries that are not present are never cached in a
            // TLB, so putting them back needs no flush.
            // SAFETY: The pages are ours.
            let back = unsafe { shim::secretmem_shim_direct_map_restore(raw, count as c_uint) };
            return Err(RemoveFailed {
                error: Error::from_errno(ret),
                restored: back == 0,
            });
        }
        STATS.direct_map_removals.add(count as u64, Relaxed);
        Ok(())
    }

    /// Returns the direct-map address of `page`.
    ///
    /// # Safety
    ///
    /// `page` must be a valid `struct page`.
    pub(super) unsafe fn address(page: NonNull<bindings::page>) -> usize {
        // SAFETY: `page` is a valid page (the caller's guarantee), so `page_address` is its
        // direct-map address.
        unsafe { shim::secretmem_shim_page_address(page.as_ptr()) as usize }
    }

    /// Flushes every CPU's TLB entries for the direct-map addresses from `start` to `end`.
    ///
    /// # Safety
    ///
    /// The caller must be able to sleep with interrupts enabled: the flush waits for the other
    /// CPUs.
    pub(super) unsafe fn flush(start: usize, end: usize) {
        // SAFETY: The caller's guarantee. A wide range flushes whole TLBs instead.
        unsafe { shim::flush_tlb_kernel_range(start as c_ulong, end as c_ulong) };
        STATS.tlb_flushes.add(1, Relaxed);
    }

    /// Returns `page`: the patched change skips aliases (`CPA_NO_CHECK_ALIAS`), leaving a
    /// kernel-image alias as it was, as `memfd_secret(2)` does.
    ///
    /// # Safety
    ///
    /// `page` must have been allocated with `ORDER` and be owned by the caller.
    pub(super) unsafe fn usable<const ORDER: u32>(
        page: NonNull<bindings::page>,
    ) -> Result<NonNull<bindings::page>> {
        Ok(page)
    }

    /// Puts `count` pages from `page` back into the direct map.
    ///
    /// # Safety
    ///
    /// The pages must be ours and out of the direct map by [`remove`] or [`remove_noflush`].
    pub(super) unsafe fn restore(page: NonNull<bindings::page>, count: usize) -> Result {
        // SAFETY: The caller's guarantees; making entries present needs no flush.
        let ret =
            unsafe { shim::secretmem_shim_direct_map_restore(page.as_ptr(), count as c_uint) };
        kernel::error::to_result(ret)
    }
}

/// Direct-map changes through `set_mce_nospec()` and `clear_mce_nospec()`, which every x86_64
/// kernel since 6.15 exports to GPL modules: one page per call, and each removal flushes every
/// CPU's TLB. The removal goes through a non-canonical alias of the page's address, so the real
/// address is never touched.
#[cfg(not(secretmem_backend_patched))]
mod backend {
    use super::*;

    /// The backend's name, for `modinfo`, the stats and `secretmem status`.
    pub(crate) const NAME: &str = "mce-helpers";

    /// Takes `count` pages from `page` out of the direct map, flushing every CPU's TLB after
    /// each. On failure the pages already taken out are put back if possible.
    ///
    /// # Safety
    ///
    /// The pages must be ours, in the direct map and not mapped anywhere else; the caller must
    /// be able to sleep with interrupts enabled (each flush waits for the other CPUs).
    pub(super) unsafe fn remove(
        page: NonNull<bindings::page>,
        count: usize,
    ) -> Result<(), RemoveFailed> {
        // SAFETY: `page` is a valid page.
        let pfn = unsafe { shim::secretmem_shim_page_to_pfn(page.as_ptr()) };
        for i in 0..count {
            // SAFETY: The page is ours, in the direct map and unused (the caller's guarantees).
            let mut ret = unsafe { shim::secretmem_shim_direct_map_remove(pfn + i as c_ulong) };
            let mut taken = i;
            if ret == 0 {
                taken = i + 1;
                // The helper's name is all Kbuild checked, and it leaves some pages alone (SGX
                // memory): the page must be gone from the direct map.
                // SAFETY: `page + i` is a valid page of ours.
                if unsafe { shim::secretmem_shim_direct_map_present(page.as_ptr().add(i)) } {
                    ret = EFAULT.to_errno();
                }
            }
            if ret != 0 {
                STATS.direct_map_removals.add(taken as u64, Relaxed);
                STATS.tlb_flushes.add(taken as u64, Relaxed);
                // Every page that comes back counts as restored, so that removals less restores
                // stays the number of pages out of the direct map. Page `i` is put back too: a
                // failed change may have taken it out before failing on its alias (a no-op on
                // a present page).
                let (mut back, mut restored) = (0, true);
                for j in 0..=i {
                    // SAFETY: Page `j` is ours, out of the direct map or present.
                    let ok = unsafe { shim::secretmem_shim_direct_map_restore(pfn + j as c_ulong) };
                    restored &= ok == 0;
                    if ok == 0 && j < taken {
                        back += 1;
                    }
                }
                STATS.direct_map_restores.add(back as u64, Relaxed);
                return Err(RemoveFailed {
                    error: Error::from_errno(ret),
                    restored,
                });
            }
        }
        STATS.direct_map_removals.add(count as u64, Relaxed);
        STATS.tlb_flushes.add(count as u64, Relaxed);
        Ok(())
    }

    /// Returns `page`, or instead another allocation of `ORDER` if the kernel image's high
    /// mapping aliases it: `clear_mce_nospec()` makes aliases present again at release, and a
    /// freed image page's alias is one the kernel made not present on purpose. Up to eight
    /// allocations are tried; the rejected ones are freed only once a replacement is had, so
    /// that the allocator does not hand them straight back.
    ///
    /// # Safety
    ///
    /// `page` must have been allocated with `ORDER` and be owned by the caller, which owns the
    /// result instead.
    pub(super) unsafe fn usable<const ORDER: u32>(
        page: NonNull<bindings::page>,
    ) -> Result<NonNull<bindings::page>> {
        /// Freed image memory is contiguous, and the allocator hands out neighbours in turn.
        const TRIES: usize = 8;
        let aliased = |page: NonNull<bindings::page>| {
            // SAFETY: `page` is the first of `2^ORDER` valid pages.
            unsafe { shim::secretmem_shim_kernel_image_alias(page.as_ptr(), 1 << ORDER) }
        };
        let mut rejected = [None; TRIES];
        let mut found = Err(ENOMEM);
        let mut next = Some(page);
        for slot in rejected.iter_mut() {
            match next {
                Some(page) if aliased(page) => *slot = Some(page),
                Some(page) => {
                    found = Ok(page);
                    break;
                }
                None => break,
            }
            // SAFETY: Allocating pages has no precondition.
            next = NonNull::new(unsafe { shim::secretmem_shim_alloc_pages(ORDER, ORDER > 0) });
        }
        if found.is_err() {
            if let Some(last) = next.filter(|&page| !aliased(page)) {
                found = Ok(last);
            } else if let Some(last) = next {
                // SAFETY: Ours, allocated with `ORDER`, untouched and in the direct map.
                unsafe { give_back_pages::<ORDER>(last) };
            }
        }
        for page in rejected.into_iter().flatten() {
            // SAFETY: As for `last`: each rejected allocation is given back once.
            unsafe { give_back_pages::<ORDER>(page) };
        }
        found
    }

    /// Puts `count` pages from `page` back into the direct map; fails if any stays out.
    ///
    /// # Safety
    ///
    /// The pages must be ours and out of the direct map by [`remove`].
    pub(super) unsafe fn restore(page: NonNull<bindings::page>, count: usize) -> Result {
        // SAFETY: `page` is a valid page.
        let pfn = unsafe { shim::secretmem_shim_page_to_pfn(page.as_ptr()) };
        let mut ret = 0;
        // Every page that can go back goes back, even after a failure.
        for i in 0..count {
            // SAFETY: The page is ours and out of the direct map (the caller's guarantees).
            let one = unsafe { shim::secretmem_shim_direct_map_restore(pfn + i as c_ulong) };
            if ret == 0 {
                ret = one;
            }
        }
        kernel::error::to_result(ret)
    }
}

pub(crate) use backend::NAME as BACKEND;
