// SPDX-License-Identifier: GPL-2.0

//! Prototypes of `secretmem_shim.c` and of the kernel functions that the kernel crate does not
//! bind (`asm/tlbflush.h` is not in its bindings).
//!
//! Calls whose failure the module handles go through the shim's injectable wrappers, never to
//! the kernel directly, so that `fail_function` can fail them (`secretmem_shim.c`).
//!
//! Only the thin wrappers in `access.rs`, `direct_map.rs`, `hibernation.rs`, `memlock.rs`,
//! `secretmem_fops.rs` and `secretmem.rs` call these.

use kernel::{
    bindings,
    ffi::{
        c_int,
        c_long,
        c_uint,
        c_ulong,
        c_void, //
    }, //
};

// `improper_ctypes`: some of these structs hold lockdep maps only under `CONFIG_LOCKDEP`, so the
// lint's verdict depends on the config; they are only ever passed by pointer.
#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn secretmem_shim_file_create(
        fops: *const bindings::file_operations,
        iops: *const bindings::inode_operations,
        file_private: *mut c_void,
        inode_private: *mut c_void,
    ) -> *mut bindings::file;
    pub(crate) fn secretmem_shim_inode_lock(inode: *mut bindings::inode);
    pub(crate) fn secretmem_shim_inode_unlock(inode: *mut bindings::inode);

    pub(crate) fn secretmem_shim_init_fault(point: c_int) -> c_int;
    pub(crate) fn secretmem_shim_may_open_device(devt: bindings::dev_t) -> c_int;
    pub(crate) fn secretmem_shim_misc_devt(misc: *const bindings::miscdevice) -> bindings::dev_t;
    pub(crate) fn secretmem_shim_capable_rawio() -> bool;
    pub(crate) fn secretmem_shim_in_uncached_group() -> bool;

    pub(crate) fn secretmem_shim_page_to_pfn(page: *mut bindings::page) -> c_ulong;
    #[cfg(secretmem_backend_patched)]
    pub(crate) fn secretmem_shim_page_address(page: *mut bindings::page) -> c_ulong;
    pub(crate) fn secretmem_shim_blocks_enabled() -> bool;
    pub(crate) fn secretmem_shim_alloc_pages(order: c_uint, spare: bool) -> *mut bindings::page;
    pub(crate) fn secretmem_shim_free_pages(page: *mut bindings::page, order: c_uint);
    pub(crate) fn secretmem_shim_zero_pages(page: *mut bindings::page, nr: c_uint);
    #[cfg(not(secretmem_backend_patched))]
    pub(crate) fn secretmem_shim_kernel_image_alias(page: *mut bindings::page, nr: c_uint) -> bool;
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn secretmem_shim_pfn_to_page(pfn: c_ulong) -> *mut bindings::page;

    pub(crate) fn secretmem_shim_vma_set_pfnmap(
        vma: *mut bindings::vm_area_struct,
        ops: *const bindings::vm_operations_struct,
        private: *mut c_void,
        uncached: bool,
    );

    pub(crate) fn secretmem_shim_get_current_user() -> *mut bindings::user_struct;
    pub(crate) fn secretmem_shim_put_user(user: *mut bindings::user_struct);
    pub(crate) fn secretmem_shim_memlock_limit_pages() -> c_ulong;
    pub(crate) fn secretmem_shim_charge_locked(
        user: *mut bindings::user_struct,
        pages: c_ulong,
        limit: c_ulong,
    ) -> c_int;
    pub(crate) fn secretmem_shim_uncharge_locked(user: *mut bindings::user_struct, pages: c_ulong);

    pub(crate) fn secretmem_shim_pm_register(
        begin: unsafe extern "C" fn(restore: bool) -> c_int,
        end: unsafe extern "C" fn(),
        check_frozen: unsafe extern "C" fn() -> c_int,
    ) -> c_int;
    pub(crate) fn secretmem_shim_pm_unregister();

    pub(crate) fn secretmem_shim_entry_register(
        create: unsafe extern "C" fn(flags: c_uint) -> c_long,
    ) -> c_int;
    pub(crate) fn secretmem_shim_entry_unregister();

    #[cfg(not(secretmem_kvm_patched))]
    pub(crate) fn secretmem_shim_kvm_watch(
        coming: unsafe extern "C" fn() -> c_int,
        live: unsafe extern "C" fn(),
        going: unsafe extern "C" fn(),
    ) -> c_int;
    #[cfg(not(secretmem_kvm_patched))]
    pub(crate) fn secretmem_shim_kvm_unwatch();
    #[cfg(not(secretmem_kvm_patched))]
    pub(crate) fn secretmem_shim_kvm_present() -> bool;
    #[cfg(not(secretmem_kvm_patched))]
    pub(crate) fn secretmem_shim_allow_unpatched_kvm() -> bool;

    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn secretmem_shim_fill_pages(page: *mut bindings::page, nr: c_uint, byte: u8);
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn secretmem_shim_pages_zero(page: *mut bindings::page, nr: c_uint) -> bool;
    #[cfg(any(CONFIG_KUNIT, not(secretmem_backend_patched)))]
    pub(crate) fn secretmem_shim_direct_map_present(page: *mut bindings::page) -> bool;
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn secretmem_shim_direct_map_uncached(page: *mut bindings::page) -> bool;
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn secretmem_shim_direct_map_read(
        page: *mut bindings::page,
        other_cpu: bool,
    ) -> c_int;

    // The direct-map change of each backend (`direct_map.rs`), one kernel call each. The
    // patched backend's calls `set_direct_map_valid_noflush()`, exported to this module by
    // kernel/patches/0001; the other one's `set_mce_nospec()` and `clear_mce_nospec()`,
    // exported to GPL modules by x86_64 kernels since 6.15.
    #[cfg(secretmem_backend_patched)]
    pub(crate) fn secretmem_shim_direct_map_remove(page: *mut bindings::page, nr: c_uint) -> c_int;
    #[cfg(secretmem_backend_patched)]
    pub(crate) fn secretmem_shim_direct_map_restore(page: *mut bindings::page, nr: c_uint)
        -> c_int;
    #[cfg(not(secretmem_backend_patched))]
    pub(crate) fn secretmem_shim_direct_map_remove(pfn: c_ulong) -> c_int;
    #[cfg(not(secretmem_backend_patched))]
    pub(crate) fn secretmem_shim_direct_map_restore(pfn: c_ulong) -> c_int;
    // The page pool (`page_pool.rs`): its module parameter, the cgroup of an allocation and the
    // shrinker that gives its pages back.
    #[cfg(secretmem_backend_patched)]
    pub(crate) fn secretmem_shim_current_memcg_id() -> u64;
    #[cfg(secretmem_backend_patched)]
    pub(crate) fn secretmem_shim_pool_batch() -> c_uint;
    #[cfg(secretmem_backend_patched)]
    pub(crate) fn secretmem_shim_pool_register(
        count: unsafe extern "C" fn() -> c_ulong,
        shrink: unsafe extern "C" fn(nr: c_ulong) -> c_ulong,
    ) -> c_int;
    #[cfg(secretmem_backend_patched)]
    pub(crate) fn secretmem_shim_pool_unregister();
    pub(crate) fn secretmem_shim_set_pages_uc(page: *mut bindings::page, nr: c_uint) -> c_int;
    pub(crate) fn secretmem_shim_set_pages_wb(page: *mut bindings::page, nr: c_uint) -> c_int;

    // Exported to this module by kernel/patches/0001.
    #[cfg(secretmem_backend_patched)]
    pub(crate) fn flush_tlb_kernel_range(start: c_ulong, end: c_ulong);
}
