// SPDX-License-Identifier: GPL-2.0

//! KUnit tests, run when the module loads on a kernel with `CONFIG_KUNIT`.

use kernel::prelude::*;

#[kunit_tests(secretmemfd)]
mod cases {
    use crate::{
        area::{
            publish,
            CreateFlags,
            Resident,
            SecretArea,
            O_CLOEXEC,
            SECRETMEM_UNCACHED, //
        },
        direct_map::{
            CacheMode,
            SecretBlock,
            SecretPage,
            SecretPages,
            BLOCK_ORDER,
            BLOCK_PAGES,
            RESTORED_WHILE_TEST_AREA_COUNTED, //
        },
        hibernation::{
            SleepGuard,
            Transition,
            TEST_GUARD, //
        },
        shim, //
    };
    use core::ptr::NonNull;
    use kernel::{
        alloc::{
            flags::GFP_KERNEL,
            KBox, //
        },
        error::code::{
            EBUSY,
            EFAULT,
            EINVAL,
            ENODEV, //
        },
        ffi::{
            c_uint,
            c_ulong, //
        },
        init::InPlaceInit,
        page::PAGE_SIZE,
        sync::atomic::Relaxed,
        xarray::{
            AllocKind,
            XArray, //
        }, //
    };

    /// Whether the direct map has a present entry for `page`.
    fn present(page: *mut kernel::bindings::page) -> bool {
        // SAFETY: `page` is a valid page for the caller's whole test.
        unsafe { shim::secretmem_shim_direct_map_present(page) }
    }

    /// Whether the direct-map entry of `page` has the UC- memory type.
    fn uncached(page: *mut kernel::bindings::page) -> bool {
        // SAFETY: `page` is a valid page for the caller's whole test.
        unsafe { shim::secretmem_shim_direct_map_uncached(page) }
    }

    /// Reads `page` through the direct map on this CPU or another: 0 or a negative errno.
    fn read(page: *mut kernel::bindings::page, other_cpu: bool) -> i32 {
        // SAFETY: `page` is a valid page for the caller's whole test; the read cannot fault the
        // kernel, it reports a fault.
        unsafe { shim::secretmem_shim_direct_map_read(page, other_cpu) }
    }

    #[test]
    fn flags_accept_modes_and_cloexec_only() {
        let f = CreateFlags::parse(0).unwrap();
        assert_eq!(f.mode, CacheMode::Cached);
        assert!(!f.cloexec);
        let f = CreateFlags::parse(SECRETMEM_UNCACHED | O_CLOEXEC).unwrap();
        assert_eq!(f.mode, CacheMode::Uncached);
        assert!(f.cloexec);
        assert_eq!(CreateFlags::parse(0x2), Err(EINVAL));
        assert_eq!(CreateFlags::parse(1 << 31), Err(EINVAL));
        assert_eq!(
            CreateFlags::parse(kernel::bindings::O_NONBLOCK),
            Err(EINVAL)
        );
    }

    #[test]
    fn size_is_set_once() {
        let area = SecretArea::create(CacheMode::Cached, true, &TEST_GUARD).unwrap();
        assert_eq!(area.size(), 0);
        assert_eq!(area.set_size(3 * PAGE_SIZE as u64 + 1), Ok(()));
        assert_eq!(area.size(), 3 * PAGE_SIZE as u64 + 1);
        assert_eq!(area.set_size(PAGE_SIZE as u64), Err(EINVAL));
        assert_eq!(area.size(), 3 * PAGE_SIZE as u64 + 1);
    }

    /// Checks that `count` pages from `page` are out of the direct map and unreadable through
    /// it on this CPU and another, with the memory type of `mode`.
    fn assert_secret(page: *mut kernel::bindings::page, count: usize, mode: CacheMode) {
        for i in 0..count {
            // SAFETY: `page` is the first of `count` pages alive for the caller's whole test.
            let page = unsafe { page.add(i) };
            assert!(!present(page));
            assert_eq!(uncached(page), mode == CacheMode::Uncached);
        }
        // Reading every page on both CPUs takes an IPI each: the first, one inside, the last.
        for i in [0, count / 2, count - 1] {
            // SAFETY: As above.
            let page = unsafe { page.add(i) };
            assert_eq!(read(page, false), EFAULT.to_errno());
            let other = read(page, true);
            assert_ne!(other, ENODEV.to_errno(), "the guest needs a second CPU");
            assert_eq!(other, EFAULT.to_errno());
        }
    }

    /// Returns the `struct page` of `pfn`.
    fn pfn_page(pfn: usize) -> *mut kernel::bindings::page {
        // SAFETY: Callers pass the frame number of a page that they keep alive.
        unsafe { shim::secretmem_shim_pfn_to_page(pfn as c_ulong) }
    }

    #[test]
    fn small_area_takes_single_pages_within_the_size() {
        let area = SecretArea::create(CacheMode::Cached, true, &TEST_GUARD).unwrap();
        assert_eq!(area.fault(0), Err(EFAULT));
        area.set_size(2 * PAGE_SIZE as u64 + 1).unwrap();
        let Ok(Resident::Page(first)) = area.fault(0) else {
            panic!("a small area takes single pages");
        };
        assert_eq!(area.fault(0), Ok(Resident::Page(first)));
        let Ok(Resident::Page(last)) = area.fault(2) else {
            panic!("a small area takes single pages");
        };
        assert_ne!(first, last);
        assert_secret(pfn_page(first), 1, CacheMode::Cached);
        assert_secret(pfn_page(last), 1, CacheMode::Cached);
        assert_eq!(area.fault(3), Err(EFAULT));
        assert_eq!(area.resident_pages(), 2);
    }

    #[test]
    fn whole_chunks_take_blocks_and_the_tail_single_pages() {
        for mode in [CacheMode::Cached, CacheMode::Uncached] {
            let area = SecretArea::create(mode, true, &TEST_GUARD).unwrap();
            // Two whole chunks and one page more.
            area.set_size(((2 * BLOCK_PAGES + 1) * PAGE_SIZE) as u64)
                .unwrap();
            let Ok(Resident::Block { first: 0, pfn }) = area.fault(7) else {
                panic!("a whole chunk takes a block");
            };
            // A block is 2 MiB aligned.
            assert_eq!(pfn % BLOCK_PAGES, 0);
            assert_eq!(
                area.fault(BLOCK_PAGES - 1),
                Ok(Resident::Block { first: 0, pfn })
            );
            assert_eq!(area.resident_pages(), BLOCK_PAGES);
            assert_secret(pfn_page(pfn), BLOCK_PAGES, mode);
            let Ok(Resident::Block { first, .. }) = area.fault(BLOCK_PAGES + 3) else {
                panic!("the second chunk takes a block");
            };
            assert_eq!(first, BLOCK_PAGES);
            assert!(matches!(area.fault(2 * BLOCK_PAGES), Ok(Resident::Page(_))));
            assert_eq!(area.resident_pages(), 2 * BLOCK_PAGES + 1);
        }
    }

    #[test]
    fn chunks_fall_back_to_single_pages_without_blocks() {
        let area = SecretArea::create(CacheMode::Cached, false, &TEST_GUARD).unwrap();
        area.set_size((BLOCK_PAGES * PAGE_SIZE) as u64).unwrap();
        let Ok(Resident::Page(pfn)) = area.fault(5) else {
            panic!("without blocks a chunk takes single pages");
        };
        assert_secret(pfn_page(pfn), 1, CacheMode::Cached);
        assert!(matches!(area.fault(6), Ok(Resident::Page(_))));
        assert_eq!(area.resident_pages(), 2);
    }

    #[test]
    fn secret_pages_are_out_of_the_direct_map_on_every_cpu() {
        for mode in [CacheMode::Cached, CacheMode::Uncached] {
            let page = SecretPage::take(mode).unwrap();
            assert_secret(page.as_ptr(), 1, mode);
            let block = SecretBlock::take(mode).unwrap();
            assert_secret(block.as_ptr(), BLOCK_PAGES, mode);
        }
    }

    /// Fills `2^ORDER` new pages, takes them out of the direct map, puts them back and checks
    /// that they are present, readable, write-back and zeroed.
    fn check_release<const ORDER: u32>(mode: CacheMode) {
        let count = 1usize << ORDER;
        // SAFETY: Allocating pages has no precondition.
        let page = unsafe { shim::secretmem_shim_alloc_pages(ORDER, false) };
        let page = NonNull::new(page).expect("no memory for the test");
        // SAFETY: The pages are ours and in the direct map.
        unsafe { shim::secretmem_shim_fill_pages(page.as_ptr(), count as c_uint, 0x5a) };
        // SAFETY: The pages were allocated with `ORDER`, are ours, write-back, in the direct
        // map and mapped nowhere else.
        let secret = unsafe { SecretPages::<ORDER>::remove_from_direct_map(page, mode) }.unwrap();
        assert_secret(page.as_ptr(), count, mode);

        let page = secret.restore().unwrap();
        for i in 0..count {
            // SAFETY: The pages are ours until freed below.
            let page = unsafe { page.as_ptr().add(i) };
            assert!(present(page));
            assert!(!uncached(page));
        }
        assert_eq!(read(page.as_ptr(), true), 0);
        // SAFETY: The pages are ours and back in the direct map.
        assert!(unsafe { shim::secretmem_shim_pages_zero(page.as_ptr(), count as c_uint) });
        // SAFETY: The pages were allocated with `ORDER`, are back, zeroed and write-back.
        unsafe { shim::secretmem_shim_free_pages(page.as_ptr(), ORDER) };
    }

    #[test]
    fn released_pages_and_blocks_are_back_and_zeroed() {
        for mode in [CacheMode::Cached, CacheMode::Uncached] {
            check_release::<0>(mode);
            check_release::<BLOCK_ORDER>(mode);
        }
    }

    #[test]
    fn area_is_counted_until_its_pages_are_restored() {
        assert_eq!(TEST_GUARD.areas(), 0);
        let area = SecretArea::create(CacheMode::Cached, true, &TEST_GUARD).unwrap();
        area.set_size(2 * PAGE_SIZE as u64).unwrap();
        area.fault(0).unwrap();
        area.fault(1).unwrap();
        assert_eq!(TEST_GUARD.begin(Transition::Hibernation), Err(EBUSY));
        RESTORED_WHILE_TEST_AREA_COUNTED.store(false, Relaxed);
        drop(area);
        // The pages were restored and zeroed while hibernation was still refused.
        assert!(RESTORED_WHILE_TEST_AREA_COUNTED.load(Relaxed));
        assert_eq!(TEST_GUARD.areas(), 0);
    }

    #[test]
    fn no_area_or_page_while_a_transition_is_in_progress() {
        static GUARD: SleepGuard = SleepGuard::new();
        let hold = GUARD.hold_area().unwrap();
        for transition in [Transition::Hibernation, Transition::Restore] {
            assert_eq!(GUARD.begin(transition), Err(EBUSY));
            assert!(!GUARD.in_progress());
        }
        drop(hold);
        assert_eq!(GUARD.areas(), 0);
        for transition in [Transition::Hibernation, Transition::Restore] {
            assert_eq!(GUARD.begin(transition), Ok(()));
            assert!(matches!(GUARD.hold_area(), Err(e) if e == EBUSY));
            // The refused area is not counted.
            assert_eq!(GUARD.areas(), 0);
            assert_eq!(GUARD.may_add_page(), Err(EBUSY));
            assert_eq!(GUARD.check_frozen(), Ok(()));
            GUARD.end();
            assert_eq!(GUARD.may_add_page(), Ok(()));
        }
    }

    #[test]
    fn area_that_slipped_past_the_notifier_aborts_once_frozen() {
        static GUARD: SleepGuard = SleepGuard::new();
        GUARD.begin(Transition::Hibernation).unwrap();
        // A creator that was past its check when the notifier ran.
        let hold = GUARD.hold_area_unchecked();
        assert_eq!(GUARD.check_frozen(), Err(EBUSY));
        GUARD.end();
        assert_eq!(GUARD.check_frozen(), Ok(()));
        drop(hold);
    }

    #[test]
    fn areas_and_pages_are_refused_during_a_transition() {
        let area = SecretArea::create(CacheMode::Cached, true, &TEST_GUARD).unwrap();
        area.set_size(2 * PAGE_SIZE as u64).unwrap();
        area.fault(0).unwrap();
        TEST_GUARD.set_in_progress(true);
        assert!(matches!(
            SecretArea::create(CacheMode::Cached, true, &TEST_GUARD),
            Err(e) if e == EBUSY
        ));
        // A page that exists stays reachable.
        assert!(area.fault(0).is_ok());
        assert_eq!(area.fault(1), Err(EBUSY));
        TEST_GUARD.set_in_progress(false);
        assert!(area.fault(1).is_ok());
        assert_eq!(area.resident_pages(), 2);
    }

    #[test]
    fn largest_file_size_is_usable() {
        // MAX_LFS_FILESIZE, the anonymous-inode filesystem's limit, as for memfd_secret(2).
        let size = i64::MAX as u64;
        let last = (size.div_ceil(PAGE_SIZE as u64) - 1) as usize;
        let area = SecretArea::create(CacheMode::Cached, true, &TEST_GUARD).unwrap();
        area.set_size(size).unwrap();
        // The last page's chunk lies wholly inside the size: it takes a block.
        assert!(matches!(area.fault(last), Ok(Resident::Block { .. })));
        assert_eq!(area.fault(last + 1), Err(EFAULT));
        assert_eq!(area.resident_pages(), BLOCK_PAGES);
    }

    #[test]
    fn publish_never_replaces_an_entry() {
        let store = KBox::pin_init(XArray::new(AllocKind::Alloc), GFP_KERNEL).unwrap();
        let first = SecretPage::take(CacheMode::Cached).unwrap();
        let second = SecretPage::take(CacheMode::Cached).unwrap();
        let (first_pfn, second_pfn) = (first.pfn(), second.pfn());
        let (published, unused) = publish(&mut store.lock(), 7, first);
        assert_eq!(published, Ok(true));
        assert!(unused.is_none());
        let (published, unused) = publish(&mut store.lock(), 7, second);
        assert_eq!(published, Ok(false));
        assert_eq!(unused.map(|page| page.pfn()), Some(second_pfn));
        assert_eq!(store.lock().get(7).map(|page| page.pfn()), Some(first_pfn));
    }

    // The two page-pool cases have a body per backend: a case compiled out would only show
    // as skipped, which the runner counts as a failure.
    #[test]
    fn single_pages_leave_the_direct_map_in_batches() {
        batches::prepared_pages();
    }

    #[test]
    fn single_page_faults_use_a_batch_where_there_is_one() {
        batches::pool();
    }

    /// With kernel/patches/0001: pages leave a batch at a time, with one flush.
    #[cfg(secretmem_backend_patched)]
    mod batches {
        use super::*;
        use crate::{
            direct_map::PreparedPage,
            page_pool::{
                drain,
                take_page_for,
                Pool,
                Source,
                BATCH_MAX,
                GROUPS, //
            },
        };

        pub(super) fn prepared_pages() {
            let mut pages = [const { None }; 4];
            // The first page is taken as a fault's; the others without direct reclaim.
            let count = PreparedPage::prepare(&mut pages);
            assert!((1..=4).contains(&count));
            for page in pages.iter().flatten() {
                assert_secret(page.as_ptr(), 1, CacheMode::Cached);
            }
            // Handed to an area and released, a page comes back present, zeroed, write-back.
            let secret = pages[0].take().unwrap().into_secret();
            let page = secret.restore().unwrap();
            assert!(present(page.as_ptr()));
            assert!(!uncached(page.as_ptr()));
            // SAFETY: The page is ours and back in the direct map.
            assert!(unsafe { shim::secretmem_shim_pages_zero(page.as_ptr(), 1) });
            // SAFETY: Allocated alone, back, zeroed and write-back.
            unsafe { shim::secretmem_shim_free_pages(page.as_ptr(), 0) };
        }

        pub(super) fn pool() {
            // A batch of the module's pool that no task shares, whatever runs beside the suite
            // (the storm test loads the module under load): no cgroup has this id.
            const CGROUP: u64 = u64::MAX;
            // SAFETY: Reading a module parameter has no precondition.
            if unsafe { shim::secretmem_shim_pool_batch() } == 0 {
                // Loaded with `pool_batch=0`: every fault's page is its own.
                let (_page, source) = take_page_for(CacheMode::Cached, 0, CGROUP).unwrap();
                assert_eq!(source, Source::Alone);
                return;
            }
            let take = |mode| take_page_for(mode, 4, CGROUP).unwrap();
            // Allocated first: reclaim in the middle could run the shrinker.
            let mut held = kernel::alloc::KVec::with_capacity(4, GFP_KERNEL).unwrap();
            // Up to four pages a batch: its other pages get no direct reclaim, so it may be
            // short, but not every time: a pool that never keeps a page fails here.
            let mut count = 0;
            for _ in 0..8 {
                held.clear();
                let (page, source) = take(CacheMode::Cached);
                let Source::Batch(n) = source else {
                    panic!("a first fault takes a batch, not {source:?}");
                };
                held.push(page, GFP_KERNEL).unwrap();
                count = n;
                if count > 1 {
                    break;
                }
            }
            assert!((2..=4).contains(&count));
            // The batch's other pages: out of the direct map, all different.
            for _ in 1..count {
                let (page, source) = take(CacheMode::Cached);
                assert_eq!(source, Source::Pool);
                assert_secret(page.as_ptr(), 1, CacheMode::Cached);
                held.push(page, GFP_KERNEL).unwrap();
            }
            for (i, page) in held.iter().enumerate() {
                assert!(held[..i].iter().all(|other| other.pfn() != page.pfn()));
            }
            // The batch is used up: the next page starts another.
            let (next, source) = take(CacheMode::Cached);
            assert!(matches!(source, Source::Batch(_)));
            // Uncached pages never come from the pool.
            let (uncached_page, source) = take(CacheMode::Uncached);
            assert_eq!(source, Source::Alone);
            assert_secret(uncached_page.as_ptr(), 1, CacheMode::Uncached);
            drain();
            drop((held, next, uncached_page));

            // One batch per cgroup; a refill for another evicts the least recently used. One
            // page each, taken as a fault's: the batches' sizes do not depend on free memory.
            let mut pool = KBox::new(Pool::new(), GFP_KERNEL).unwrap();
            for cgroup in 1..=GROUPS as u64 {
                let mut fresh = [const { None }; 1];
                let mut evicted = [const { None }; BATCH_MAX];
                assert_eq!(PreparedPage::prepare(&mut fresh), 1);
                pool.stock(cgroup, &mut fresh, &mut evicted);
                assert!(fresh.iter().all(Option::is_none));
                assert!(evicted.iter().all(Option::is_none));
            }
            // A cgroup takes only from its own batch.
            assert!(pool.take(GROUPS as u64 + 1).is_none());
            let own = pool.take(2).unwrap();
            let mut fresh = [const { None }; 1];
            assert_eq!(PreparedPage::prepare(&mut fresh), 1);
            pool.stock(2, &mut fresh, &mut [const { None }; BATCH_MAX]);
            // Cgroup 1's batch is now the least recently used.
            let mut fresh = [const { None }; 1];
            let mut evicted = [const { None }; BATCH_MAX];
            assert_eq!(PreparedPage::prepare(&mut fresh), 1);
            pool.stock(GROUPS as u64 + 1, &mut fresh, &mut evicted);
            assert_eq!(evicted.iter().flatten().count(), 1);
            assert!(pool.take(1).is_none());
            assert!(pool.take(GROUPS as u64 + 1).is_some());
            assert!(pool.take(2).is_some());
            drop((own, evicted, pool));
        }
    }

    /// With the MCE helpers: one flush per page, and no pool to keep pages in.
    #[cfg(not(secretmem_backend_patched))]
    mod batches {
        use super::*;
        use crate::{
            page_pool::{
                drain,
                take_page, //
            },
            stats::STATS,
        };

        /// The stats' count of kernel TLB flushes: others may add to it while the suite runs.
        fn flushes() -> u64 {
            STATS.tlb_flushes.load(Relaxed)
        }

        pub(super) fn prepared_pages() {
            let before = flushes();
            let pages = [(); 4].map(|()| SecretPage::take(CacheMode::Cached).unwrap());
            assert!(flushes() >= before + 4);
            for page in &pages {
                assert_secret(page.as_ptr(), 1, CacheMode::Cached);
            }
        }

        pub(super) fn pool() {
            let before = flushes();
            let first = take_page(CacheMode::Cached).unwrap();
            let second = take_page(CacheMode::Cached).unwrap();
            assert!(flushes() >= before + 2);
            assert_ne!(first.pfn(), second.pfn());
            drain();
            assert_eq!(STATS.pool_pages.load(Relaxed), 0);
        }
    }
}
