// SPDX-License-Identifier: GPL-2.0

//! Pages that the kernel direct map does not cover, and the source that hands them out.
//!
//! This is the only file that changes the direct map. A [`SecretPage`] is out of the direct map
//! for as long as it exists; dropping it puts the page back, zeroes it and frees it, so a page
//! that is out of the direct map can never reach the page allocator.

use crate::{
    shim,
    stats::STATS, //
};
use core::mem::ManuallyDrop;
use kernel::{
    alloc::flags::{
        __GFP_ZERO,         //
        GFP_KERNEL_ACCOUNT, //
    },
    error::to_result,
    ffi::c_ulong,
    page::{
        Page,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::atomic::Relaxed,
    task::might_sleep, //
};

/// How the user page table maps a secret page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheMode {
    /// Write-back, as ordinary memory.
    Cached,
    /// Uncached: the page's memory type is switched to UC- before it leaves the direct map.
    Uncached,
}

/// A page that is out of the kernel direct map.
///
/// # Invariants
///
/// - `page` is not present in the direct map and no CPU's TLB holds a direct-map entry for it.
/// - If `mode` is [`CacheMode::Uncached`], the page's memory type is UC-.
/// - `page` is only given up by `restore_page`, after it is back in the direct map.
///
/// # Dropping
///
/// Dropping a `SecretPage` restores, zeroes and frees the page, so no page table may map it any
/// more by then. Its owners see to that: an area's pages drop with the area, after the file is
/// released and every VMA, each holding a reference on the file, is gone; a page that the fault
/// path did not publish was never mapped.
pub(crate) struct SecretPage {
    page: ManuallyDrop<Page>,
    mode: CacheMode,
}

impl SecretPage {
    /// Removes `page` from the direct map, after switching its memory type for `mode`.
    ///
    /// Runs in process context and may sleep. On failure the page is back in the state it came
    /// in and is freed, or, if its memory type cannot be set back to write-back, leaked.
    pub(crate) fn remove_from_direct_map(page: Page, mode: CacheMode) -> Result<Self> {
        // The TLB flush below needs interrupts enabled; this says so under
        // `CONFIG_DEBUG_ATOMIC_SLEEP`.
        might_sleep();
        if mode == CacheMode::Uncached {
            // SAFETY: `page` is a valid order-0 page that we own and that is in the direct map.
            to_result(unsafe { shim::set_pages_uc(page.as_ptr(), 1) })?;
        }
        // SAFETY: `page` is a valid page that we own; nobody else maps or reads it.
        let ret = unsafe { shim::set_direct_map_invalid_noflush(page.as_ptr()) };
        if ret != 0 {
            if mode == CacheMode::Uncached {
                // SAFETY: The memory type of `page` was set to UC- above.
                let wb = unsafe { shim::set_pages_wb(page.as_ptr(), 1) };
                if wb != 0 {
                    // A page that may still be UC- must not reach the allocator, as in
                    // `restore_page`.
                    pr_err!("cannot restore write-back on a page ({wb}): leaking it\n");
                    core::mem::forget(page);
                }
            }
            return Err(Error::from_errno(ret));
        }
        STATS.direct_map_removals.add(1, Relaxed);

        // SAFETY: `page` is a valid page, so `page_address` is its direct-map address.
        let start = unsafe { shim::secretmem_shim_page_address(page.as_ptr()) };
        // SAFETY: The range is this one page of the direct map. `flush_tlb_kernel_range` may send
        // IPIs and wait for them, so it needs interrupts enabled and no spinlock held: we run in
        // process context that may sleep (`might_sleep()` above; the caller allocated the page
        // with `GFP_KERNEL`).
        unsafe { shim::flush_tlb_kernel_range(start, start + PAGE_SIZE as c_ulong) };
        STATS.tlb_flushes.add(1, Relaxed);
        STATS.pages.add(1, Relaxed);

        // INVARIANT: The page left the direct map and every CPU's TLB entry for it is flushed;
        // its memory type matches `mode`.
        Ok(Self {
            page: ManuallyDrop::new(page),
            mode,
        })
    }

    /// Returns the page frame number, for the user page table.
    pub(crate) fn pfn(&self) -> usize {
        // SAFETY: `self.page` is a valid page.
        unsafe { shim::secretmem_shim_page_to_pfn(self.page.as_ptr()) as usize }
    }

    /// Returns the underlying `struct page`, for checks that do not touch its contents.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn as_ptr(&self) -> *mut kernel::bindings::page {
        self.page.as_ptr()
    }

    /// Puts the page back into the direct map, zeroes it and restores write-back.
    ///
    /// Returns the page, ready to be freed, or `None` if it could not be put back: such a page
    /// is leaked, never freed.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn restore(mut self) -> Option<Page> {
        let mode = self.mode;
        // SAFETY: `self` is forgotten right away, so `self.page` is neither used nor dropped
        // again.
        let page = unsafe { ManuallyDrop::take(&mut self.page) };
        core::mem::forget(self);
        // SAFETY: By the type invariants, `page` is out of the direct map, with `mode`; the
        // caller, a KUnit case, never mapped it.
        unsafe { restore_page(page, mode) }
    }
}

impl Drop for SecretPage {
    fn drop(&mut self) {
        // SAFETY: `self` is being dropped, so `self.page` is not used again, and as a
        // `ManuallyDrop` it is not dropped a second time.
        let page = unsafe { ManuallyDrop::take(&mut self.page) };
        // SAFETY:
        // - By the type invariants, `page` is out of the direct map, with `self.mode`.
        // - Nothing maps it: its owner drops a `SecretPage` only once no page table can map it
        //   (see "Dropping" on the type).
        // The restored page is freed when the returned `Page` drops.
        drop(unsafe { restore_page(page, self.mode) });
    }
}

/// Whether hibernation was refused when a page was last restored, for the KUnit suite.
#[cfg(CONFIG_KUNIT)]
pub(crate) static HIBERNATION_REFUSED_AT_LAST_RESTORE: kernel::sync::atomic::Atomic<bool> =
    kernel::sync::atomic::Atomic::new(false);

/// Puts `page` back into the direct map, zeroes it and restores write-back.
///
/// Returns `None`, leaking the page, if any step fails: a page that may still be out of the direct
/// map or hold a secret must never be freed.
///
/// # Safety
///
/// `page` must have been removed from the direct map by [`SecretPage::remove_from_direct_map`]
/// with `mode`, and nothing may map it any more.
unsafe fn restore_page(page: Page, mode: CacheMode) -> Option<Page> {
    // SAFETY: `page` is a valid page that we own; it is out of the direct map.
    let ret = unsafe { shim::set_direct_map_default_noflush(page.as_ptr()) };
    STATS.pages.fetch_sub(1, Relaxed);
    if ret != 0 {
        pr_err!("cannot restore the direct map of a secret page ({ret}): leaking it\n");
        core::mem::forget(page);
        return None;
    }
    STATS.direct_map_restores.add(1, Relaxed);

    // SAFETY: The page is back in the direct map and we own it: there is no concurrent access.
    if unsafe { page.fill_zero_raw(0, PAGE_SIZE) }.is_err() {
        pr_err!("cannot zero a released secret page: leaking it\n");
        core::mem::forget(page);
        return None;
    }
    if mode == CacheMode::Uncached {
        // SAFETY: The page's memory type was set to UC- when it left the direct map.
        let ret = unsafe { shim::set_pages_wb(page.as_ptr(), 1) };
        if ret != 0 {
            pr_err!("cannot restore write-back on a secret page ({ret}): leaking it\n");
            core::mem::forget(page);
            return None;
        }
    }
    #[cfg(CONFIG_KUNIT)]
    HIBERNATION_REFUSED_AT_LAST_RESTORE
        .store(crate::hibernation::SLEEP_GUARD.areas() != 0, Relaxed);
    Some(page)
}

/// Hands out pages that are already out of the direct map.
///
/// The fault path and the page store only see this seam; today it allocates one page at a time.
pub(crate) struct PageSource;

impl PageSource {
    /// Returns a zeroed page, charged to the caller's memory cgroup, out of the direct map.
    pub(crate) fn take(mode: CacheMode) -> Result<SecretPage> {
        let page = Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?;
        SecretPage::remove_from_direct_map(page, mode)
    }
}
