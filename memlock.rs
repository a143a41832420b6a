// SPDX-License-Identifier: GPL-2.0

//! `RLIMIT_MEMLOCK` accounting of secret pages, as `memfd_secret(2)` does it in Linux 7.3.
//!
//! We follow `mm/secretmem.c` (`__secretmem_account_pages()`): each page is charged when it is
//! created, at fault time, to `user_struct::locked_vm` of the user who created the file, and
//! checked against the `RLIMIT_MEMLOCK` of the task that faults, read at that moment. There is
//! no `CAP_IPC_LOCK` exemption: a privileged creator who passes the descriptor on does not hand
//! out unlimited unswappable memory, and lowering the limit stops new pages (`SIGBUS`). The
//! charge is refunded, exactly, when the file goes.
//!
//! This is not the mlock accounting (`mlock_future_ok()`, `account_locked_vm()`), which charges
//! `mm->locked_vm` under the mmap lock and lets `CAP_IPC_LOCK` pass: a fault handler holds only
//! the read or per-VMA lock, and `user_struct::locked_vm` is atomic, as io_uring and perf use it.

use crate::shim;
use kernel::{
    bindings,
    error::code::EAGAIN,
    ffi::c_ulong,
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    }, //
};

/// The locked-memory charge of one secret area.
///
/// # Invariants
///
/// `user` holds a reference to a `user_struct`, and `charged` pages of its `locked_vm` are ours.
pub(crate) struct MemlockCharge {
    user: *mut bindings::user_struct,
    charged: Atomic<usize>,
}

// SAFETY: The `user_struct` is reference counted and its `locked_vm` is atomic: the charge can be
// taken and dropped from any thread.
unsafe impl Send for MemlockCharge {}
// SAFETY: All `&self` methods only touch atomics.
unsafe impl Sync for MemlockCharge {}

impl MemlockCharge {
    /// Starts an empty charge against the current user, the creator of the area.
    pub(crate) fn for_current_user() -> Self {
        // SAFETY: Takes a reference to the current task's user; no precondition.
        let user = unsafe { shim::secretmem_shim_get_current_user() };
        // INVARIANT: We hold a reference to `user` and have charged nothing yet.
        Self {
            user,
            charged: Atomic::new(0),
        }
    }

    /// Charges `pages` against the current task's `RLIMIT_MEMLOCK` as it is now; fails with
    /// `EAGAIN` over it, charging nothing.
    pub(crate) fn charge(&self, pages: usize) -> Result {
        // SAFETY: Reads the current task's limit; no precondition.
        let limit = unsafe { shim::secretmem_shim_memlock_limit_pages() };
        // SAFETY: `self.user` is a valid `user_struct` by the type invariants.
        let ret = unsafe { shim::secretmem_shim_charge_locked(self.user, pages as c_ulong, limit) };
        // Over the limit is the charge's only failure; whatever an injected failure says, the
        // fault path must see the documented one.
        if ret != 0 {
            return Err(EAGAIN);
        }
        // INVARIANT: `pages` more are ours now.
        self.charged.add(pages, Relaxed);
        Ok(())
    }

    /// Gives back `pages` charged by [`MemlockCharge::charge`].
    pub(crate) fn uncharge(&self, pages: usize) {
        // INVARIANT: The caller charged `pages` before; they stop being ours.
        self.charged.fetch_sub(pages, Relaxed);
        // SAFETY: `self.user` is a valid `user_struct` by the type invariants, and these pages
        // were charged to it.
        unsafe { shim::secretmem_shim_uncharge_locked(self.user, pages as c_ulong) };
    }

    /// Returns the number of pages charged now.
    pub(crate) fn pages(&self) -> usize {
        self.charged.load(Relaxed)
    }
}

impl Drop for MemlockCharge {
    fn drop(&mut self) {
        let pages = self.charged.load(Relaxed);
        // SAFETY: By the type invariants, `self.user` is valid and `pages` are charged to it;
        // this drops our reference to it, which is not used again.
        unsafe {
            shim::secretmem_shim_uncharge_locked(self.user, pages as c_ulong);
            shim::secretmem_shim_put_user(self.user);
        }
    }
}
