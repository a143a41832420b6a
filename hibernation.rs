// SPDX-License-Identifier: GPL-2.0

//! Keeping secret pages out of hibernation images.
//!
//! A hibernation image holds a copy of every page in use (`safe_copy_page()` maps a page that is
//! out of the direct map for the copy), so no secret page may exist while one is written, nor
//! while one is restored. [`SleepGuard`] enforces that from both sides:
//!
//! - the PM notifier's `PM_HIBERNATION_PREPARE` and `PM_RESTORE_PREPARE` ([`SleepGuard::begin`])
//!   refuse with `EBUSY` while any area exists, and otherwise mark a transition in progress until
//!   `PM_POST_HIBERNATION` or `PM_POST_RESTORE` ([`SleepGuard::end`]);
//! - while one is in progress, no area is created ([`SleepGuard::hold_area`], `EBUSY`) and no
//!   page is added to an area ([`SleepGuard::may_add_page`], `SIGBUS` for the fault);
//! - once tasks are frozen and devices suspended, the syscore suspend callback checks again
//!   ([`SleepGuard::check_frozen`]) and aborts the hibernation if an area exists after all.
//!
//! The notifier alone is racy: a creator may pass its check before the notifier runs and count
//! its area after. So `begin` publishes the transition and then reads the count, while a creator
//! counts its area and then reads the transition, each with a full barrier in between: at least
//! one of them sees the other and backs off.

use crate::shim;
use kernel::{
    error::to_result,
    ffi::c_int,
    prelude::*,
    sync::atomic::{
        Atomic,
        Full,
        Relaxed, //
    }, //
};

/// Which transition a PM notifier event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Writing a hibernation image.
    Hibernation,
    /// Restoring one.
    Restore,
}

impl Transition {
    fn name(self) -> &'static str {
        match self {
            Transition::Hibernation => "hibernation",
            Transition::Restore => "restore from hibernation",
        }
    }
}

/// The state shared by the PM callbacks and the creation and fault paths.
pub(crate) struct SleepGuard {
    /// Secret memory files that exist now, counted until their pages are restored and zeroed.
    areas: Atomic<usize>,
    /// Whether a hibernation or a restore is between its prepare and post notifications.
    in_progress: Atomic<bool>,
    /// Whether the areas are user space's, which KVM can reach (`kvm_guard.rs`).
    user_areas: bool,
}

/// The module's guard.
pub(crate) static SLEEP_GUARD: SleepGuard = SleepGuard::new().for_user_areas();

/// The guard of the areas that the KUnit suite creates. The suite runs while the module is
/// live, so it never counts its areas in, or starts a transition on, [`SLEEP_GUARD`]: users of
/// the module must not see its tests.
#[cfg(CONFIG_KUNIT)]
pub(crate) static TEST_GUARD: SleepGuard = SleepGuard::new();

impl SleepGuard {
    /// A guard with no area and no transition in progress.
    pub(crate) const fn new() -> Self {
        Self {
            areas: Atomic::new(0),
            in_progress: Atomic::new(false),
            user_areas: false,
        }
    }

    /// The same guard, counting areas that user space maps.
    pub(crate) const fn for_user_areas(self) -> Self {
        Self {
            user_areas: true,
            ..self
        }
    }

    /// Whether the areas it counts are user space's.
    pub(crate) fn user_areas(&self) -> bool {
        self.user_areas
    }

    /// Returns the number of areas that exist now.
    pub(crate) fn areas(&self) -> usize {
        self.areas.load(Relaxed)
    }

    /// Whether a hibernation or a restore is in progress.
    pub(crate) fn in_progress(&self) -> bool {
        self.in_progress.load(Relaxed)
    }

    /// Starts a transition (a PM `*_PREPARE` event); fails with `EBUSY` while any area exists.
    pub(crate) fn begin(&self, transition: Transition) -> Result {
        // Fully ordered: the flag is visible before the count is read (see the module doc).
        self.in_progress.xchg(true, Full);
        let areas = self.areas.load(Relaxed);
        if areas == 0 {
            return Ok(());
        }
        // The notifier chain does not send the post event to a notifier that failed.
        self.in_progress.store(false, Relaxed);
        pr_info!(
            "refusing {} while {areas} secret memory file(s) exist\n",
            transition.name()
        );
        Err(EBUSY)
    }

    /// Ends a transition (a PM `*_POST` event).
    pub(crate) fn end(&self) {
        self.in_progress.store(false, Relaxed);
    }

    /// Checks again once tasks are frozen, just before the image is made or restored; fails with
    /// `EBUSY` if an area exists during a transition.
    pub(crate) fn check_frozen(&self) -> Result {
        if self.in_progress() && self.areas() != 0 {
            pr_err!("secret memory appeared during hibernation: aborting it\n");
            return Err(EBUSY);
        }
        Ok(())
    }

    /// Counts a new area; fails with `EBUSY` while a transition is in progress.
    pub(crate) fn hold_area(&'static self) -> Result<AreaHold> {
        // Fully ordered: the count is visible before the flag is read (see the module doc).
        self.areas.fetch_add(1, Full);
        // INVARIANT: Counted just above; on failure the hold drops and uncounts it.
        let hold = AreaHold { guard: self };
        if self.in_progress() {
            return Err(EBUSY);
        }
        Ok(hold)
    }

    /// Whether a page may be added to an area now; fails with `EBUSY` during a transition.
    pub(crate) fn may_add_page(&self) -> Result {
        if self.in_progress() {
            return Err(EBUSY);
        }
        Ok(())
    }
}

/// One area counted in a [`SleepGuard`].
///
/// # Invariants
///
/// `guard.areas` holds one count for each `AreaHold` that exists.
pub(crate) struct AreaHold {
    guard: &'static SleepGuard,
}

impl AreaHold {
    /// Returns the guard that counts the area.
    pub(crate) fn guard(&self) -> &'static SleepGuard {
        self.guard
    }
}

impl Drop for AreaHold {
    fn drop(&mut self) {
        // By the type invariants, this count was added by `hold_area`.
        self.guard.areas.fetch_sub(1, Relaxed);
    }
}

/// The registration of [`SLEEP_GUARD`] with the PM notifier chain and the syscore callbacks.
///
/// # Invariants
///
/// The shim's PM notifier and syscore callbacks, calling [`pm_begin`], [`pm_end`] and
/// [`pm_check_frozen`], are registered while this exists.
pub(crate) struct PmRegistration(());

impl PmRegistration {
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: The callbacks are plain functions that stay valid while the module is loaded;
        // drop unregisters them.
        to_result(unsafe { shim::secretmem_shim_pm_register(pm_begin, pm_end, pm_check_frozen) })?;
        // INVARIANT: Registered just above.
        Ok(Self(()))
    }
}

impl Drop for PmRegistration {
    fn drop(&mut self) {
        // SAFETY: Registered by the type invariants.
        unsafe { shim::secretmem_shim_pm_unregister() };
    }
}

/// `PM_HIBERNATION_PREPARE` (`restore` false) or `PM_RESTORE_PREPARE` (true): 0 or `-EBUSY`.
extern "C" fn pm_begin(restore: bool) -> c_int {
    let transition = if restore {
        Transition::Restore
    } else {
        Transition::Hibernation
    };
    match SLEEP_GUARD.begin(transition) {
        Ok(()) => {
            // No area exists and none can add a page until the end: the pool's pages, which
            // are out of the direct map, go back before the image copies every page in use.
            crate::page_pool::drain();
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `PM_POST_HIBERNATION` or `PM_POST_RESTORE`.
extern "C" fn pm_end() {
    SLEEP_GUARD.end();
}

/// The syscore suspend callback: tasks are frozen, interrupts off. 0 or `-EBUSY`.
extern "C" fn pm_check_frozen() -> c_int {
    match SLEEP_GUARD.check_frozen() {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Test helpers that reach past the guard's checks.
#[cfg(CONFIG_KUNIT)]
impl SleepGuard {
    /// Counts an area without checking, as a creator racing with [`SleepGuard::begin`] would.
    pub(crate) fn hold_area_unchecked(&'static self) -> AreaHold {
        self.areas.fetch_add(1, Full);
        // INVARIANT: Counted just above.
        AreaHold { guard: self }
    }

    /// Marks a transition in progress or not, whatever areas exist.
    pub(crate) fn set_in_progress(&self, in_progress: bool) {
        self.in_progress.store(in_progress, Relaxed);
    }
}
