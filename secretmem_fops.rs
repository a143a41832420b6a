// SPDX-License-Identifier: GPL-2.0

//! File, inode and VMA operations of a secret memory file.
//!
//! Each file owns one [`SecretArea`] through `file->private_data`. The inode (private to the
//! file) and every VMA of the file borrow it: `inode->i_private` until the file is released, and
//! `vma->vm_private_data` while the VMA exists, which a VMA's reference on its file outlives.
//!
//! Lock order: the inode lock, then the area's locks (`area.rs`).

use crate::{
    access,
    area::{
        CreateFlags,
        Resident,
        SecretArea,
        O_CLOEXEC, //
    },
    direct_map::{
        CacheMode,
        BLOCK_PAGES, //
    },
    shim,
    stats::STATS, //
};
use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::{
        c_int,
        c_void, //
    },
    fs::{
        file::FileDescriptorReservation,
        File, //
    },
    mm::virt::{
        flags,
        VmaNew, //
    },
    page::PAGE_SIZE,
    prelude::*,
    seq_file::{
        seq_print,
        SeqFile, //
    },
    sync::{
        aref::ARef,
        atomic::Relaxed,
        Arc,
        ArcBorrow, //
    },
    types::ForeignOwnable, //
};

/// Creates a secret memory file for `flags` and installs it as a new descriptor.
///
/// Fails with `EINVAL` for unknown flags and `EPERM` for a mode the caller may not have.
pub(crate) fn create_fd(flags: u32) -> Result<u32> {
    let flags = CreateFlags::parse(flags)?;
    access::check_mode(flags.mode)?;
    let fd_flags = if flags.cloexec { O_CLOEXEC } else { 0 };
    let reservation = FileDescriptorReservation::get_unused_fd_flags(fd_flags)?;
    let area = SecretArea::new(flags.mode)?;

    let area_ptr = area_ptr(&area);
    let private = area.into_foreign();
    // SAFETY: The tables are `'static`; `private` came from `into_foreign` and is owned by the
    // file from here on (`release` takes it back); `area_ptr` points into it.
    let raw =
        unsafe { shim::secretmem_shim_file_create(SECRET_FOPS, SECRET_IOPS, private, area_ptr) };
    let raw = match from_err_ptr(raw) {
        Ok(raw) => raw,
        Err(e) => {
            // SAFETY: The file was not created, so `private` is still ours.
            drop(unsafe { Arc::<SecretArea>::from_foreign(private) });
            return Err(e);
        }
    };
    // SAFETY: `raw` is a new file with one reference, which `ARef` takes over; `File` is a
    // transparent wrapper of `struct file`, and no `fdget_pos` region is active on it.
    let file = unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(raw.cast::<File>())) };
    let fd = reservation.reserved_fd();
    reservation.fd_install(file);
    Ok(fd)
}

/// Returns the raw pointer to `area` that the inode and the VMAs hold.
///
/// It is not `file->private_data`, which is the `Arc`'s foreign pointer.
fn area_ptr(area: &SecretArea) -> *mut c_void {
    core::ptr::from_ref(area).cast_mut().cast()
}

/// Borrows the area of a secret memory file.
///
/// # Safety
///
/// `file` must be a secret memory file that has not been released.
unsafe fn file_area<'a>(file: *mut bindings::file) -> ArcBorrow<'a, SecretArea> {
    // SAFETY: `private_data` was set from `Arc::into_foreign` at creation and is only taken
    // back in `release`, which has not run.
    unsafe { Arc::<SecretArea>::borrow((*file).private_data) }
}

/// Checks and sets up a new mapping: shared, never executable, special PFN entries.
fn mmap(area: ArcBorrow<'_, SecretArea>, vma: &VmaNew) -> Result {
    if vma.flags() & flags::SHARED == 0 {
        return Err(EINVAL);
    }
    if vma.executable() {
        return Err(EPERM);
    }
    vma.try_clear_mayexec()?;
    vma.set_io();
    vma.set_dontexpand();
    vma.set_dontdump();
    let uncached = area.mode() == CacheMode::Uncached;
    let private = area_ptr(&area);
    // SAFETY: `vma` is being set up in `->mmap`, so its flags, ops and page protection may be
    // written. `private` stays valid for the VMA's lifetime: the VMA holds a reference on the
    // file, whose release frees the area.
    unsafe { shim::secretmem_shim_vma_set_pfnmap(vma.as_ptr(), SECRET_VM_OPS, private, uncached) };
    Ok(())
}

/// # Safety
///
/// `file` must be a secret memory file and `vma` a VMA being set up for it in `->mmap`.
unsafe extern "C" fn secret_mmap(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: `->mmap` runs on an open file.
    let area = unsafe { file_area(file) };
    // SAFETY: The caller provides a VMA undergoing initial setup.
    let vma = unsafe { VmaNew::from_raw(vma) };
    match mmap(area, vma) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `inode` and `file` must be a secret memory file's, being released.
unsafe extern "C" fn secret_release(
    inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // A path-based truncate may still reach the inode: make it see no area before it goes.
    // SAFETY: `inode` is valid while its file is released.
    unsafe {
        shim::secretmem_shim_inode_lock(inode);
        (*inode).i_private = core::ptr::null_mut();
        shim::secretmem_shim_inode_unlock(inode);
    }
    // SAFETY: `private_data` came from `into_foreign` at creation; release owns it.
    drop(unsafe { Arc::<SecretArea>::from_foreign((*file).private_data) });
    0
}

/// # Safety
///
/// `m` must be a valid `seq_file` and `file` an open secret memory file.
unsafe extern "C" fn secret_show_fdinfo(m: *mut bindings::seq_file, file: *mut bindings::file) {
    // SAFETY: `->show_fdinfo` runs on an open file.
    let area = unsafe { file_area(file) };
    // SAFETY: The caller provides a `seq_file` that is ours for this call.
    let m = unsafe { SeqFile::from_raw(m) };
    let mode = match area.mode() {
        CacheMode::Cached => "exclusive",
        CacheMode::Uncached => "uncached",
    };
    seq_print!(m, "secretmem-size:\t{}\n", area.size());
    seq_print!(m, "secretmem-mode:\t{}\n", mode);
    seq_print!(m, "secretmem-pages:\t{}\n", area.resident_pages());
}

/// # Safety
///
/// Called by `notify_change()` with the inode of `dentry` locked.
unsafe extern "C" fn secret_setattr(
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    attr: *mut bindings::iattr,
) -> c_int {
    // SAFETY: `dentry` and `attr` are valid for this call; the inode lock is held, so
    // `i_private` cannot change under us.
    let (area, sizing) = unsafe {
        let inode = (*dentry).d_inode;
        (
            (*inode).i_private.cast::<SecretArea>().cast_const(),
            (*attr).ia_valid & bindings::ATTR_SIZE != 0,
        )
    };
    if sizing {
        // SAFETY: A non-null `i_private` points to the area of a file that is not released:
        // `secret_release` clears it under the inode lock, which we hold.
        match unsafe { area.as_ref() } {
            Some(area) if area.size() == 0 => {}
            _ => return EINVAL.to_errno(),
        }
    }
    // SAFETY: Arguments as given to us by `notify_change()`.
    let ret = unsafe { bindings::simple_setattr(idmap, dentry, attr) };
    if ret == 0 && sizing {
        // SAFETY: As above; `ia_size` is valid when `ATTR_SIZE` is set.
        let (area, size) = unsafe { (&*area, (*attr).ia_size) };
        // The inode lock serialises sizing, so the size is still unset.
        if area.set_size(size as u64).is_err() {
            return EINVAL.to_errno();
        }
    }
    ret
}

/// The part of a VMA that a fault handler may fill: the VMA itself, borrowed for one fault.
///
/// # Invariants
///
/// `vma` is a VMA that `secret_mmap` set up, whose fault locks (the mmap read lock or the VMA
/// lock) are held while this exists.
struct FaultingVma {
    vma: *mut bindings::vm_area_struct,
}

impl FaultingVma {
    /// Maps page `index` of the file to page frame `pfn`, if the VMA covers that index.
    ///
    /// Returns the `vm_fault_t` of the insertion, or `VM_FAULT_NOPAGE` if not covered.
    fn insert(&self, index: usize, pfn: usize) -> bindings::vm_fault_t {
        // SAFETY: The VMA is valid while its fault locks are held (the type invariants).
        let (start, end, pgoff, prot) = unsafe {
            let vma = &*self.vma;
            let bounds = &vma.__bindgen_anon_1.__bindgen_anon_1;
            (
                bounds.vm_start,
                bounds.vm_end,
                vma.vm_pgoff,
                vma.vm_page_prot,
            )
        };
        let pages = (end - start) / PAGE_SIZE;
        let Some(offset) = index.checked_sub(pgoff).filter(|&offset| offset < pages) else {
            return bindings::vm_fault_reason_VM_FAULT_NOPAGE;
        };
        // SAFETY:
        // - The VMA is `VM_PFNMAP` and not `VM_MIXEDMAP` (the shim sets only the first) and not
        //   a COW mapping (`mmap` requires `VM_SHARED`), as `vmf_insert_pfn_prot` asserts, and
        //   we hold its fault locks.
        // - The address lies in the VMA: `offset` is below its page count.
        // - `pfn` is a page of the file's area, which outlives the VMA: the area drops its
        //   pages only when the file is released, after the last VMA is gone. The page's
        //   direct-map entry is already gone on every CPU.
        unsafe { bindings::vmf_insert_pfn_prot(self.vma, start + offset * PAGE_SIZE, pfn, prot) }
    }
}

/// Maps what a fault on page `index` resolved to: the page itself, then, for a block, every
/// other page of it that the VMA covers, so that a block takes one fault instead of 512.
///
/// Only the faulting page's result counts: the others are a prefetch, and one that cannot be
/// mapped now (no memory for a page table) is mapped by its own fault later.
fn map_resident(vma: &FaultingVma, index: usize, resident: Resident) -> bindings::vm_fault_t {
    let (first, pfn) = match resident {
        Resident::Page(pfn) => return vma.insert(index, pfn),
        Resident::Block { first, pfn } => (first, pfn),
    };
    let ret = vma.insert(index, pfn + (index - first));
    // Success, and a page that another fault mapped first, both say `VM_FAULT_NOPAGE`.
    if ret == bindings::vm_fault_reason_VM_FAULT_NOPAGE {
        for i in (0..BLOCK_PAGES).filter(|&i| first + i != index) {
            if vma.insert(first + i, pfn + i) != bindings::vm_fault_reason_VM_FAULT_NOPAGE {
                break;
            }
        }
    }
    ret
}

/// # Safety
///
/// `vmf` must be a fault on a VMA that `secret_mmap` set up.
unsafe extern "C" fn secret_fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: `vmf` is valid for the fault; its VMA was set up by `secret_mmap`, so
    // `vm_private_data` is the file's area, which outlives the VMA.
    let (vma, area, index) = unsafe {
        let f = &(*vmf).__bindgen_anon_1;
        let area = &*(*f.vma).vm_private_data.cast::<SecretArea>();
        (f.vma, area, f.pgoff)
    };
    STATS.faults.add(1, Relaxed);
    let resident = match area.fault(index) {
        Ok(resident) => resident,
        Err(e) if e == ENOMEM => return bindings::vm_fault_reason_VM_FAULT_OOM,
        Err(_) => return bindings::vm_fault_reason_VM_FAULT_SIGBUS,
    };
    // INVARIANT: The fault handler runs with the VMA's fault locks held.
    map_resident(&FaultingVma { vma }, index, resident)
}

/// File operations: no read or write, so those fail with `EINVAL`.
const SECRET_FOPS: &bindings::file_operations = &bindings::file_operations {
    owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
    mmap: Some(secret_mmap),
    release: Some(secret_release),
    show_fdinfo: Some(secret_show_fdinfo),
    ..pin_init::zeroed()
};

/// Inode operations: `setattr` enforces the one sizing.
const SECRET_IOPS: &bindings::inode_operations = &bindings::inode_operations {
    setattr: Some(secret_setattr),
    ..pin_init::zeroed()
};

/// VMA operations: only `fault`; no `access`, so ptrace and `/proc/PID/mem` find no way in.
const SECRET_VM_OPS: &bindings::vm_operations_struct = &bindings::vm_operations_struct {
    fault: Some(secret_fault),
    ..pin_init::zeroed()
};
