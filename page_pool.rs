// SPDX-License-Identifier: GPL-2.0

//! A stock of single pages already out of the direct map, so that most first touches of a small
//! secret pay no TLB flush.
//!
//! A fault that takes a single page must take it out of the direct map and flush every CPU's TLB
//! for it, as `memfd_secret(2)` does: an IPI to each CPU, most of the cost of touching a 4 KiB
//! secret. The pool takes `pool_batch` fresh pages out at a time with one flush and hands them
//! out one per fault.
//!
//! - Only fresh pages enter the pool. A page that held a secret goes back to the direct map,
//!   zeroed, and is freed, as before; the pool never has to zero a page it cannot reach.
//! - Memory cgroups: a page is charged when it is allocated, to the task that fills the pool.
//!   So each cgroup has a batch of its own, and a fault takes only from its cgroup's batch (by
//!   cgroup id, never reused while the system runs). Up to [`GROUPS`] cgroups keep a batch; a
//!   refill for another gives the least recently used batch back.
//! - At most `GROUPS * pool_batch` pages wait. A shrinker gives them back under memory
//!   pressure (and to `drop_caches`), as do `pool_batch=0`, a hibernation and module unload.
//! - Only cached pages, and only on the patched backend: uncached pages change their memory
//!   type one by one, and the MCE helpers flush once per page whatever the caller does.

use crate::direct_map::{
    CacheMode,
    SecretPage, //
};
use kernel::prelude::*;

/// Takes a page for a fault that wants a single page of `mode`.
///
/// Fails with `ENOMEM` when no page can be had, or with the error of the direct-map change.
#[cfg(not(secretmem_backend_patched))]
pub(crate) fn take_page(mode: CacheMode) -> Result<SecretPage> {
    SecretPage::take(mode)
}

/// Gives every waiting page back: there are none without the patched backend.
#[cfg(not(secretmem_backend_patched))]
pub(crate) fn drain() {}

/// Keeps the pool's shrinker registered: nothing to register without the patched backend.
#[cfg(not(secretmem_backend_patched))]
pub(crate) struct PoolRegistration(());

#[cfg(not(secretmem_backend_patched))]
impl PoolRegistration {
    pub(crate) fn register() -> Result<Self> {
        Ok(Self(()))
    }
}

#[cfg(secretmem_backend_patched)]
pub(crate) use pool::*;

#[cfg(secretmem_backend_patched)]
mod pool {
    use super::*;
    use crate::{
        direct_map::PreparedPage,
        shim, //
    };
    use kernel::{
        error::to_result,
        ffi::c_ulong, //
    };

    /// How many memory cgroups keep a batch at once.
    pub(crate) const GROUPS: usize = 8;
    /// The most pages of one batch.
    pub(crate) const BATCH_MAX: usize = PreparedPage::MAX;

    /// One cgroup's batch.
    struct Group {
        /// The cgroup id that the pages are charged to; meaningless while `len` is zero.
        cgroup: u64,
        /// The pool's clock at the last take, for choosing which batch to give back.
        last_use: u64,
        /// The pages, in `pages[..len]`.
        len: usize,
        pages: [Option<PreparedPage>; BATCH_MAX],
    }

    /// Every cgroup's batch.
    ///
    /// # Invariants
    ///
    /// In each group, `pages[..len]` are `Some` and `pages[len..]` are `None`, so that storing
    /// into a slot at `len` or past it never drops a page (which must not happen under the
    /// lock: giving a page back changes the direct map).
    pub(crate) struct Pool {
        groups: [Group; GROUPS],
        clock: u64,
    }

    kernel::sync::global_lock! {
        // SAFETY: `PoolRegistration::register` initialises it in the module's init before
        // anything that can reach it is registered: the PM notifier (which drains it), the
        // device and the system call entry (faults), the shrinker; the KUnit suite runs after
        // the init.
        unsafe(uninit) static POOL: SpinLock<Pool> = Pool::new();
    }

    impl Pool {
        pub(crate) const fn new() -> Self {
            Self {
                groups: [const {
                    Group {
                        cgroup: 0,
                        last_use: 0,
                        len: 0,
                        pages: [const { None }; BATCH_MAX],
                    }
                }; GROUPS],
                clock: 0,
            }
        }

        /// Takes a page of `cgroup`'s batch, if it has one.
        pub(crate) fn take(&mut self, cgroup: u64) -> Option<PreparedPage> {
            self.clock += 1;
            let group = self
                .groups
                .iter_mut()
                .find(|g| g.len > 0 && g.cgroup == cgroup)?;
            group.last_use = self.clock;
            group.len -= 1;
            group.pages[group.len].take()
        }

        /// Adds the pages of `fresh` to `cgroup`'s batch, making room by moving the least
        /// recently used batch of another cgroup into `evicted`, which must be empty. Pages
        /// that do not fit, or all of them if `pool_batch` is now 0, stay in `fresh`. Both are
        /// for the caller to drop once the lock is released.
        pub(crate) fn stock(
            &mut self,
            cgroup: u64,
            fresh: &mut [Option<PreparedPage>],
            evicted: &mut [Option<PreparedPage>; BATCH_MAX],
        ) {
            // Checked under the lock: `pool_batch=0` drains under it after the new value is
            // visible, so either the drain sees these pages or this sees the 0.
            if fresh.iter().all(Option::is_none) || batch() == 0 {
                return;
            }
            let index = match self
                .groups
                .iter()
                .position(|g| g.len > 0 && g.cgroup == cgroup)
            {
                Some(index) => index,
                None => {
                    // An empty batch if there is one, else the least recently used.
                    let index = self
                        .groups
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, g)| (g.len > 0, g.last_use))
                        .map_or(0, |(index, _)| index);
                    let group = &mut self.groups[index];
                    for (page, out) in group.pages[..group.len].iter_mut().zip(evicted.iter_mut()) {
                        // `evicted` is empty (the caller's duty): nothing is dropped here.
                        *out = page.take();
                    }
                    group.len = 0;
                    group.cgroup = cgroup;
                    index
                }
            };
            self.clock += 1;
            let group = &mut self.groups[index];
            group.last_use = self.clock;
            for page in fresh.iter_mut() {
                if group.len == BATCH_MAX {
                    break;
                }
                if let Some(page) = page.take() {
                    group.pages[group.len] = Some(page);
                    group.len += 1;
                }
            }
        }

        /// Takes any waiting page.
        fn pop(&mut self) -> Option<PreparedPage> {
            let group = self.groups.iter_mut().find(|g| g.len > 0)?;
            group.len -= 1;
            group.pages[group.len].take()
        }
    }

    /// The batch size that the `pool_batch` module parameter asks for.
    fn batch() -> usize {
        // SAFETY: Reading a module parameter has no precondition.
        let batch = unsafe { shim::secretmem_shim_pool_batch() } as usize;
        batch.min(BATCH_MAX)
    }

    /// Takes a page for a fault that wants a single page of `mode`: from the caller's cgroup's
    /// batch, else from a new batch, else one page of its own.
    ///
    /// Fails with `ENOMEM` when no page can be had, or with the error of the direct-map change.
    pub(crate) fn take_page(mode: CacheMode) -> Result<SecretPage> {
        // SAFETY: Only reads the current task's cgroup.
        let cgroup = unsafe { shim::secretmem_shim_current_memcg_id() };
        take_page_for(mode, batch(), cgroup).map(|(page, _)| page)
    }

    /// Where a page of [`take_page_for`] came from.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Source {
        /// The cgroup's batch: no direct-map change, no flush.
        Pool,
        /// A new batch of this many pages, with one flush.
        Batch(usize),
        /// A page of its own, as without the pool.
        Alone,
    }

    /// [`take_page`] with batches of `batch` pages (at most [`PreparedPage::MAX`]) kept for
    /// `cgroup`; also says where the page came from.
    pub(crate) fn take_page_for(
        mode: CacheMode,
        batch: usize,
        cgroup: u64,
    ) -> Result<(SecretPage, Source)> {
        let batch = batch.min(BATCH_MAX);
        if mode != CacheMode::Cached || batch == 0 {
            return Ok((SecretPage::take(mode)?, Source::Alone));
        }
        let pooled = POOL.lock().take(cgroup);
        if let Some(page) = pooled {
            return Ok((page.into_secret(), Source::Pool));
        }
        // Allocating sleeps and may reclaim, which calls the shrinker: not under the lock.
        let mut fresh: [Option<PreparedPage>; BATCH_MAX] = [const { None }; BATCH_MAX];
        let count = PreparedPage::prepare(&mut fresh[..batch]);
        if count == 0 {
            // What one page on its own gets: `ENOMEM`, or the change's error.
            return Ok((SecretPage::take(mode)?, Source::Alone));
        }
        let first = fresh[0].take().ok_or(ENOMEM)?;
        let mut evicted: [Option<PreparedPage>; BATCH_MAX] = [const { None }; BATCH_MAX];
        POOL.lock().stock(cgroup, &mut fresh[1..], &mut evicted);
        // `fresh` and `evicted` drop here, without the lock: their pages go back.
        Ok((first.into_secret(), Source::Batch(count)))
    }

    /// Gives back up to `nr` waiting pages; returns how many.
    fn shrink(nr: usize) -> usize {
        let mut freed = 0;
        while freed < nr {
            // One page per lock hold: giving a page back changes the direct map.
            let Some(page) = POOL.lock().pop() else {
                break;
            };
            drop(page);
            freed += 1;
        }
        freed
    }

    /// Gives every waiting page back: for a hibernation, which copies every page in use.
    pub(crate) fn drain() {
        shrink(usize::MAX);
    }

    /// The pool's shrinker and the `pool_batch=0` handler, registered while this exists; drop
    /// gives every waiting page back.
    ///
    /// # Invariants
    ///
    /// The shim's shrinker, calling [`pool_count`] and [`pool_shrink`], is registered while
    /// this exists.
    pub(crate) struct PoolRegistration(());

    impl PoolRegistration {
        /// Initialises the pool and registers its shrinker. Called once, in the module's init.
        pub(crate) fn register() -> Result<Self> {
            // SAFETY: Called once, from the module's init, before it registers anything that
            // uses the pool (see `POOL`).
            unsafe { POOL.init() };
            // SAFETY: The callbacks are plain functions that stay valid while the module is
            // loaded; drop unregisters them.
            to_result(unsafe { shim::secretmem_shim_pool_register(pool_count, pool_shrink) })?;
            // INVARIANT: Registered just above.
            Ok(Self(()))
        }
    }

    impl Drop for PoolRegistration {
        fn drop(&mut self) {
            // SAFETY: Registered by the type invariants; `shrinker_free` waits for running
            // callbacks.
            unsafe { shim::secretmem_shim_pool_unregister() };
            // No fault can take a page any more: every file is gone before the module exits.
            drain();
        }
    }

    /// The shrinker's count: the pages waiting.
    extern "C" fn pool_count() -> c_ulong {
        crate::stats::STATS
            .pool_pages
            .load(kernel::sync::atomic::Relaxed)
    }

    /// The shrinker's scan, and `pool_batch=0`: gives back up to `nr` pages.
    extern "C" fn pool_shrink(nr: c_ulong) -> c_ulong {
        // `c_ulong` is `usize` in the kernel crate.
        shrink(nr)
    }
}
