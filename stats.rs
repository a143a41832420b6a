// SPDX-License-Identifier: GPL-2.0

//! Global counters, shown in `/sys/kernel/debug/secretmemfd/stats`.

use crate::hibernation::SLEEP_GUARD;
use core::fmt;
use kernel::{
    page::PAGE_SIZE,
    sync::atomic::{
        Atomic,
        Relaxed, //
    }, //
};

/// Counters of what the module holds now and what it has done since it was loaded.
pub(crate) struct Stats {
    /// Secret pages that exist now (all out of the direct map), in blocks or alone.
    pub(crate) pages: Atomic<usize>,
    /// Fresh pages out of the direct map that wait in the page pool (`page_pool.rs`), not
    /// counted in `pages`.
    pub(crate) pool_pages: Atomic<usize>,
    /// 2 MiB blocks that exist now.
    pub(crate) blocks: Atomic<usize>,
    /// Faults that wanted a block and took a single page instead.
    pub(crate) block_fallbacks: Atomic<u64>,
    /// Page faults served.
    pub(crate) faults: Atomic<u64>,
    /// Pages removed from the direct map.
    pub(crate) direct_map_removals: Atomic<u64>,
    /// Pages put back into the direct map.
    pub(crate) direct_map_restores: Atomic<u64>,
    /// Kernel TLB range flushes.
    pub(crate) tlb_flushes: Atomic<u64>,
    /// Pages never freed because their direct map or memory type could not be restored: each
    /// time with a `pr_err`. Those that failed at release are also removals never restored.
    pub(crate) leaked_pages: Atomic<u64>,
}

/// The module's counters.
pub(crate) static STATS: Stats = Stats {
    pages: Atomic::new(0),
    pool_pages: Atomic::new(0),
    blocks: Atomic::new(0),
    block_fallbacks: Atomic::new(0),
    faults: Atomic::new(0),
    direct_map_removals: Atomic::new(0),
    direct_map_restores: Atomic::new(0),
    tlb_flushes: Atomic::new(0),
    leaked_pages: Atomic::new(0),
};

/// The debugfs view of [`STATS`]; `Debug` is what the file shows.
pub(crate) struct StatsFile;

impl fmt::Debug for StatsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &STATS;
        let pages = s.pages.load(Relaxed);
        writeln!(f, "backend: {}", crate::direct_map::BACKEND)?;
        writeln!(f, "kvm: {}", crate::kvm_guard::state())?;
        writeln!(f, "areas: {}", SLEEP_GUARD.areas())?;
        writeln!(f, "pages: {}", pages)?;
        writeln!(f, "bytes: {}", pages * PAGE_SIZE)?;
        writeln!(f, "pool_pages: {}", s.pool_pages.load(Relaxed))?;
        writeln!(f, "blocks: {}", s.blocks.load(Relaxed))?;
        writeln!(f, "block_fallbacks: {}", s.block_fallbacks.load(Relaxed))?;
        writeln!(f, "faults: {}", s.faults.load(Relaxed))?;
        writeln!(
            f,
            "direct_map_removals: {}",
            s.direct_map_removals.load(Relaxed)
        )?;
        writeln!(
            f,
            "direct_map_restores: {}",
            s.direct_map_restores.load(Relaxed)
        )?;
        writeln!(f, "tlb_flushes: {}", s.tlb_flushes.load(Relaxed))?;
        writeln!(f, "leaked_pages: {}", s.leaked_pages.load(Relaxed))
    }
}
