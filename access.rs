// SPDX-License-Identifier: GPL-2.0

//! Who may create secret memory, and which kind: one policy for both entries.
//!
//! - Creating needs access to `/dev/secretmem` for reading and writing. The ioctl entry needs a
//!   descriptor of the device opened so; the system call has none, so it opens the node as the
//!   caller and checks that it is this module's device. The node's mode, owner and ACL, LSMs and
//!   the device cgroup therefore decide for both.
//! - [`CacheMode::Uncached`] also needs `CAP_SYS_RAWIO` in the initial user namespace, or
//!   membership of the group that the `uncached_gid` module parameter names. Locked
//!   instructions on uncached memory lock the bus for every CPU, a machine-wide effect like that
//!   of raw port or `/dev/mem` access. The capability check does not audit: a refusal is an
//!   answer, not an incident.

use crate::{
    direct_map::CacheMode,
    shim, //
};
use kernel::{
    bindings,
    error::to_result,
    fs::{
        file::flags::{
            O_ACCMODE,
            O_RDWR,
            O_WRONLY, //
        },
        File, //
    },
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    }, //
};

/// The device number of `/dev/secretmem` while it is registered, zero while it is not.
///
/// The system call entry serves nothing while it is zero: during the module's init before the
/// device exists, and during its exit.
static DEVICE_NUMBER: Atomic<u32> = Atomic::new(0);

/// Publishes the device number of `/dev/secretmem`, once it is registered.
pub(crate) fn publish_device(devt: bindings::dev_t) {
    DEVICE_NUMBER.store(devt, Relaxed);
}

/// Withdraws the device number, before the device is unregistered.
pub(crate) fn withdraw_device() {
    DEVICE_NUMBER.store(0, Relaxed);
}

/// Checks that the caller of the system call may open `/dev/secretmem` for reading and writing.
///
/// Fails with `ENOSYS` while the device is not registered, with the error of the open (`EACCES`,
/// `EPERM`, `ENOENT`, ...) when the caller may not open the node, and with `EACCES` when the node
/// is another device.
///
/// Called from the system call with no lock held: the device file it opens is released before it
/// returns, as `close(2)` releases a file.
pub(crate) fn check_system_call() -> Result {
    let devt = DEVICE_NUMBER.load(Relaxed);
    if devt == 0 {
        return Err(ENOSYS);
    }
    // SAFETY: Opens and closes a file as the current task, in process context with no lock held
    // (the system call entry is the only caller), so the file's release may run here.
    to_result(unsafe { shim::secretmem_shim_may_open_device(devt) })
}

/// Checks that `file`, a descriptor of `/dev/secretmem`, was opened for writing; `EBADF` if not.
pub(crate) fn check_device_file(file: &File) -> Result {
    match file.flags() & O_ACCMODE {
        O_RDWR | O_WRONLY => Ok(()),
        _ => Err(EBADF),
    }
}

/// Checks that the caller may create secret memory of `mode`; `EPERM` if not.
pub(crate) fn check_mode(mode: CacheMode) -> Result {
    if mode == CacheMode::Cached {
        return Ok(());
    }
    // SAFETY: Both only read the current task's credentials.
    if unsafe { shim::secretmem_shim_capable_rawio() || shim::secretmem_shim_in_uncached_group() } {
        return Ok(());
    }
    Err(EPERM)
}
