// SPDX-License-Identifier: GPL-2.0

//! Keeping secret memory and an unpatched KVM apart.
//!
//! KVM reaches guest memory through the user mappings of its memslots, the module's `VM_PFNMAP`
//! mappings included, and then reads or writes some of it through the direct map (kvmclock's
//! page, its gfn-to-pfn caches): on a secret page that is a host oops. kernel/patches/0003 makes
//! KVM refuse such pages. Without it nothing a module can do keeps KVM from following the
//! mappings, so on a kernel without the patch secret memory and KVM exclude each other:
//!
//! - while KVM is present (built in, or its module live), no secret memory file is created
//!   ([`check_create`]) and no page is added to one ([`may_add_page`]): `EBUSY`, and `SIGBUS`
//!   for a fault;
//! - while a secret memory file exists, the kvm module does not load (its `MODULE_STATE_COMING`
//!   notification fails with `EBUSY`).
//!
//! The `allow_unpatched_kvm` module parameter lifts both, for an administrator who accepts the
//! risk. As for hibernation (`hibernation.rs`), a creator counts its area and then reads the
//! flag, the notifier sets the flag and then reads the count, each with a full barrier in
//! between: at least one of them sees the other. A kvm module that is already in its init when
//! this module registers its notifier is only seen once it is live: the flag is set then, an
//! area created in that window is reported, and it gets no page from then on. Pages it got
//! before KVM was live are the one thing this cannot take back.
//!
//! Kbuild knows the patch from kernel/patches/0001's exports, which come with it
//! (`secretmem_kvm_patched`); with it this guard does nothing.

use kernel::prelude::*;

#[cfg(not(secretmem_kvm_patched))]
use {
    crate::{
        hibernation::SLEEP_GUARD,
        shim, //
    },
    kernel::{
        error::to_result,
        ffi::c_int,
        pr_warn_once,
        sync::atomic::{
            Atomic,
            Full,
            Relaxed, //
        }, //
    },
};

/// Whether KVM is present: built in, or its module coming or live.
#[cfg(not(secretmem_kvm_patched))]
static KVM_PRESENT: Atomic<bool> = Atomic::new(false);

/// Whether the administrator accepted secret memory next to an unpatched KVM.
#[cfg(not(secretmem_kvm_patched))]
fn allowed() -> bool {
    // SAFETY: Reading a module parameter has no precondition.
    unsafe { shim::secretmem_shim_allow_unpatched_kvm() }
}

/// Checks, after a new area is counted in `SLEEP_GUARD`, that it may exist next to KVM; fails
/// with `EBUSY` while an unpatched KVM is present and not allowed.
#[cfg(not(secretmem_kvm_patched))]
pub(crate) fn check_create() -> Result {
    if !KVM_PRESENT.load(Relaxed) {
        return Ok(());
    }
    if allowed() {
        pr_warn_once!("secret memory next to KVM without the KVM patch: KVM can oops the host\n");
        return Ok(());
    }
    // Once: unprivileged callers must not flood the log.
    pr_warn_once!(
        "refusing secret memory: KVM is loaded and this kernel lacks the secretmem KVM patch \
         (allow_unpatched_kvm=1 accepts the risk of a host oops)\n"
    );
    Err(EBUSY)
}

/// Checks that a page may be added to an area now; fails with `EBUSY` while an unpatched KVM is
/// present and not allowed (an area created while kvm was loading, or before the parameter was
/// turned off).
#[cfg(not(secretmem_kvm_patched))]
pub(crate) fn may_add_page() -> Result {
    if KVM_PRESENT.load(Relaxed) && !allowed() {
        return Err(EBUSY);
    }
    Ok(())
}

/// The patched KVM refuses secret pages itself.
#[cfg(secretmem_kvm_patched)]
pub(crate) fn may_add_page() -> Result {
    Ok(())
}

/// The patched KVM refuses secret pages itself.
#[cfg(secretmem_kvm_patched)]
pub(crate) fn check_create() -> Result {
    Ok(())
}

/// A description of the guard's state, for the stats.
#[cfg(not(secretmem_kvm_patched))]
pub(crate) fn state() -> &'static str {
    match (KVM_PRESENT.load(Relaxed), allowed()) {
        (false, _) => "absent",
        (true, false) => "present, secret memory refused",
        (true, true) => "present, allowed by allow_unpatched_kvm",
    }
}

/// A description of the guard's state, for the stats.
#[cfg(secretmem_kvm_patched)]
pub(crate) fn state() -> &'static str {
    "patched"
}

/// The watch on the kvm module, registered at module init.
///
/// # Invariants
///
/// On a kernel without the KVM patch, the shim's module notifier, calling [`kvm_coming`],
/// [`kvm_live`] and [`kvm_going`], is registered while this exists.
pub(crate) struct KvmWatch(());

impl KvmWatch {
    #[cfg(not(secretmem_kvm_patched))]
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: The callbacks are plain functions that stay valid while the module is loaded;
        // drop unregisters them.
        to_result(unsafe { shim::secretmem_shim_kvm_watch(kvm_coming, kvm_live, kvm_going) })?;
        // Registered first, so a kvm module that loads from here on is seen by the notifier.
        // SAFETY: Looking up an exported symbol has no precondition.
        if unsafe { shim::secretmem_shim_kvm_present() } {
            KVM_PRESENT.store(true, Relaxed);
        }
        // INVARIANT: Registered just above.
        Ok(Self(()))
    }

    #[cfg(secretmem_kvm_patched)]
    pub(crate) fn register() -> Result<Self> {
        Ok(Self(()))
    }
}

#[cfg(not(secretmem_kvm_patched))]
impl Drop for KvmWatch {
    fn drop(&mut self) {
        // SAFETY: Registered by the type invariants.
        unsafe { shim::secretmem_shim_kvm_unwatch() };
    }
}

/// The kvm module is about to run its init: 0, or `-EBUSY` while secret memory exists.
#[cfg(not(secretmem_kvm_patched))]
extern "C" fn kvm_coming() -> c_int {
    // Fully ordered: the flag is visible before the count is read (see the module doc).
    KVM_PRESENT.xchg(true, Full);
    let areas = SLEEP_GUARD.areas();
    if areas == 0 || allowed() {
        return 0;
    }
    // A notifier that fails gets no MODULE_STATE_GOING.
    KVM_PRESENT.store(false, Relaxed);
    pr_warn!(
        "refusing to let kvm load while {areas} secret memory file(s) exist: this kernel lacks \
         the secretmem KVM patch (allow_unpatched_kvm=1 accepts the risk of a host oops)\n"
    );
    EBUSY.to_errno()
}

/// The kvm module is live.
#[cfg(not(secretmem_kvm_patched))]
extern "C" fn kvm_live() {
    if !KVM_PRESENT.xchg(true, Full) && SLEEP_GUARD.areas() != 0 && !allowed() {
        pr_err!("kvm loaded while this module registered, next to secret memory\n");
    }
}

/// The kvm module is gone, or failed to load.
#[cfg(not(secretmem_kvm_patched))]
extern "C" fn kvm_going() {
    KVM_PRESENT.store(false, Relaxed);
}
