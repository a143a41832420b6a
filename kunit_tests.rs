// SPDX-License-Identifier: GPL-2.0

//! KUnit tests, run when the module loads on a kernel with `CONFIG_KUNIT`.

use kernel::prelude::*;

#[kunit_tests(secretmemfd)]
mod cases {
    use crate::{
        area::{
            publish,
            CreateFlags,
            SecretArea,
            O_CLOEXEC,
            SECRETMEM_UNCACHED, //
        },
        direct_map::{
            CacheMode,
            PageSource,
            SecretPage,
            HIBERNATION_REFUSED_AT_LAST_RESTORE, //
        },
        hibernation::{
            SleepGuard,
            Transition,
            SLEEP_GUARD, //
        },
        shim, //
    };
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
        init::InPlaceInit,
        page::{
            Page,
            PAGE_SIZE, //
        },
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
        let area = SecretArea::new(CacheMode::Cached).unwrap();
        assert_eq!(area.size(), 0);
        assert_eq!(area.set_size(3 * PAGE_SIZE as u64 + 1), Ok(()));
        assert_eq!(area.size(), 3 * PAGE_SIZE as u64 + 1);
        assert_eq!(area.set_size(PAGE_SIZE as u64), Err(EINVAL));
        assert_eq!(area.size(), 3 * PAGE_SIZE as u64 + 1);
    }

    #[test]
    fn store_creates_each_page_once_within_the_size() {
        let area = SecretArea::new(CacheMode::Cached).unwrap();
        assert_eq!(area.pfn_at(0), Err(EFAULT));
        area.set_size(2 * PAGE_SIZE as u64 + 1).unwrap();
        let first = area.pfn_at(0).unwrap();
        assert_eq!(area.pfn_at(0), Ok(first));
        let last = area.pfn_at(2).unwrap();
        assert_ne!(first, last);
        for pfn in [first, last] {
            // SAFETY: `pfn` is a page of `area`, alive until `area` drops.
            let page = unsafe { shim::secretmem_shim_pfn_to_page(pfn) };
            assert!(!present(page));
            assert_eq!(read(page, true), EFAULT.to_errno());
        }
        assert_eq!(area.pfn_at(3), Err(EFAULT));
        assert_eq!(area.resident_pages(), 2);
    }

    #[test]
    fn secret_page_is_out_of_the_direct_map_on_every_cpu() {
        for mode in [CacheMode::Cached, CacheMode::Uncached] {
            let page = PageSource::take(mode).unwrap();
            assert!(!present(page.as_ptr()));
            assert_eq!(uncached(page.as_ptr()), mode == CacheMode::Uncached);
            assert_eq!(read(page.as_ptr(), false), EFAULT.to_errno());
            let other = read(page.as_ptr(), true);
            assert_ne!(other, ENODEV.to_errno(), "the guest needs a second CPU");
            assert_eq!(other, EFAULT.to_errno());
        }
    }

    #[test]
    fn released_page_is_back_and_zeroed() {
        for mode in [CacheMode::Cached, CacheMode::Uncached] {
            let page = Page::alloc_page(GFP_KERNEL).unwrap();
            let secret = [0x5au8; 64];
            // SAFETY: We own the page; `secret` fits in it.
            unsafe { page.write_raw(secret.as_ptr(), 128, secret.len()) }.unwrap();
            let page = SecretPage::remove_from_direct_map(page, mode).unwrap();
            assert!(!present(page.as_ptr()));

            let page = page.restore().unwrap();
            assert!(present(page.as_ptr()));
            assert!(!uncached(page.as_ptr()));
            assert_eq!(read(page.as_ptr(), true), 0);
            let mut back = [0xffu8; 256];
            for offset in (0..PAGE_SIZE).step_by(back.len()) {
                // SAFETY: We own the page; `back` fits at `offset`.
                unsafe { page.read_raw(back.as_mut_ptr(), offset, back.len()) }.unwrap();
                assert!(back.iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn area_is_counted_until_its_pages_are_restored() {
        let areas = SLEEP_GUARD.areas();
        // The suite runs before any other secret memory exists.
        assert_eq!(areas, 0);
        let area = SecretArea::new(CacheMode::Cached).unwrap();
        area.set_size(2 * PAGE_SIZE as u64).unwrap();
        area.pfn_at(0).unwrap();
        area.pfn_at(1).unwrap();
        assert_eq!(SLEEP_GUARD.begin(Transition::Hibernation), Err(EBUSY));
        HIBERNATION_REFUSED_AT_LAST_RESTORE.store(false, Relaxed);
        drop(area);
        // The last page was restored and zeroed while hibernation was still refused.
        assert!(HIBERNATION_REFUSED_AT_LAST_RESTORE.load(Relaxed));
        assert_eq!(SLEEP_GUARD.areas(), areas);
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
        let area = SecretArea::new(CacheMode::Cached).unwrap();
        area.set_size(2 * PAGE_SIZE as u64).unwrap();
        area.pfn_at(0).unwrap();
        SLEEP_GUARD.set_in_progress(true);
        assert!(matches!(
            SecretArea::new(CacheMode::Cached),
            Err(e) if e == EBUSY
        ));
        // A page that exists stays reachable.
        assert!(area.pfn_at(0).is_ok());
        assert_eq!(area.pfn_at(1), Err(EBUSY));
        SLEEP_GUARD.set_in_progress(false);
        assert!(area.pfn_at(1).is_ok());
        assert_eq!(area.resident_pages(), 2);
    }

    #[test]
    fn largest_file_size_is_usable() {
        // MAX_LFS_FILESIZE, the anonymous-inode filesystem's limit, as for memfd_secret(2).
        let size = i64::MAX as u64;
        let last = (size.div_ceil(PAGE_SIZE as u64) - 1) as usize;
        let area = SecretArea::new(CacheMode::Cached).unwrap();
        area.set_size(size).unwrap();
        assert!(area.pfn_at(last).is_ok());
        assert_eq!(area.pfn_at(last + 1), Err(EFAULT));
        assert_eq!(area.resident_pages(), 1);
    }

    #[test]
    fn publish_never_replaces_a_page() {
        let store = KBox::pin_init(XArray::new(AllocKind::Alloc), GFP_KERNEL).unwrap();
        let first = KBox::new(PageSource::take(CacheMode::Cached).unwrap(), GFP_KERNEL).unwrap();
        let second = KBox::new(PageSource::take(CacheMode::Cached).unwrap(), GFP_KERNEL).unwrap();
        let (first_pfn, second_pfn) = (first.pfn(), second.pfn());
        let (pfn, unused) = publish(&mut store.lock(), 7, first);
        assert_eq!(pfn, Ok(first_pfn));
        assert!(unused.is_none());
        let (pfn, unused) = publish(&mut store.lock(), 7, second);
        assert_eq!(pfn, Ok(first_pfn));
        assert_eq!(unused.map(|page| page.pfn()), Some(second_pfn));
        assert_eq!(store.lock().get(7).map(|page| page.pfn()), Some(first_pfn));
    }
}
