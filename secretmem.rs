// SPDX-License-Identifier: GPL-2.0

//! secretmemfd: memory that not even the kernel can read through its direct map.
//!
//! A process asks `/dev/secretmem` (or the `secretmemfd()` system call) for a secret memory file
//! descriptor, sizes it with `ftruncate` and maps it `MAP_SHARED`:
//!
//! ```c
//! int dev = open("/dev/secretmem", O_RDWR);
//! int fd = ioctl(dev, SECRETMEM_CREATE, SECRETMEM_EXCLUSIVE | O_CLOEXEC);
//! ftruncate(fd, 4096);
//! char *key = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
//! ```
//!
//! Each page is removed from the kernel direct map before it reaches user space, and put back and
//! zeroed when the last user of the file is gone. `Documentation/secretmem-abi.rst` has the rest.

use kernel::{
    bindings,
    debugfs,
    error::to_result,
    ffi::{
        c_int,
        c_long,
        c_uint, //
    },
    fs::File,
    ioctl::_IO,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*,
    types::Opaque, //
};

mod access;
mod area;
mod direct_map;
mod hibernation;
#[cfg(CONFIG_KUNIT)]
mod kunit_tests;
mod kvm_guard;
mod memlock;
mod page_pool;
mod secretmem_fops;
mod shim;
mod stats;

module! {
    type: SecretMemModule,
    name: "secretmemfd",
    authors: ["secretmem developers"],
    description: "Secret memory file descriptors backed by pages out of the kernel direct map",
    license: "GPL",
}

/// `ioctl(devfd, SECRETMEM_CREATE, flags)`: the UAPI header's request.
const SECRETMEM_CREATE: u32 = _IO(0xB9, 0x01);

/// The module: the stats file, the hibernation guard, the watch on KVM, the page pool, the
/// system call entry and the device.
///
/// The user-visible entries are registered last, the device very last, and unregistered first:
/// fields drop in declaration order, the reverse of the order `init` registers them in. Nothing
/// that can fail comes after the device, so a failed init never leaves an open device or a
/// secret memory file behind: until the device is registered the system call serves nothing
/// (`access.rs`), and files of either kind would otherwise outlive the module that a failed
/// init frees.
#[pin_data]
struct SecretMemModule {
    #[pin]
    _device: DeviceRegistration,
    _entry: SyscallEntry,
    _kvm_watch: kvm_guard::KvmWatch,
    _hibernation: hibernation::PmRegistration,
    _pool: page_pool::PoolRegistration,
    #[pin]
    _stats_file: debugfs::File<stats::StatsFile>,
    _debugfs_dir: debugfs::Dir,
}

impl kernel::InPlaceModule for SecretMemModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let dir = debugfs::Dir::new(c"secretmemfd");
        try_pin_init!(Self {
            _stats_file <- dir.read_only_file(c"stats", stats::StatsFile),
            _debugfs_dir: dir,
            // Before the PM notifier, which drains the pool.
            _pool: page_pool::PoolRegistration::register()?,
            _hibernation: hibernation::PmRegistration::register()?,
            _kvm_watch: kvm_guard::KvmWatch::register()?,
            _: { init_fault_point(1)? },
            _entry: SyscallEntry::register()?,
            _: { init_fault_point(2)? },
            _device <- DeviceRegistration::register(),
        })
    }
}

/// Fails the init here if the `fail_init_at` fault-injection parameter names `point`.
fn init_fault_point(point: c_int) -> Result {
    // SAFETY: Reads a module parameter; no precondition.
    to_result(unsafe { shim::secretmem_shim_init_fault(point) })
}

/// The registration of [`entry_create`] behind the `secretmemfd()` system call.
///
/// # Invariants
///
/// `entry_create` is registered with the kernel's stub while this exists.
struct SyscallEntry(());

impl SyscallEntry {
    fn register() -> Result<Self> {
        // SAFETY: `entry_create` stays valid while the module is loaded; the kernel pins the
        // module while a call runs, and drop unregisters it.
        to_result(unsafe { shim::secretmem_shim_entry_register(entry_create) })?;
        // INVARIANT: Registered just above.
        Ok(Self(()))
    }
}

impl Drop for SyscallEntry {
    fn drop(&mut self) {
        // SAFETY: Registered by the type invariants. At module exit no call is in flight: the
        // stub holds a module reference for each call, and exit only runs with none left.
        unsafe { shim::secretmem_shim_entry_unregister() };
    }
}

/// The `secretmemfd(flags)` system call, dispatched here by the kernel's stub.
///
/// The caller needs the access to `/dev/secretmem` that the ioctl entry needs (`access.rs`).
extern "C" fn entry_create(flags: c_uint) -> c_long {
    match access::check_system_call().and_then(|()| secretmem_fops::create_fd(flags)) {
        Ok(fd) => fd as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

/// `/dev/secretmem`: an open device only serves `SECRETMEM_CREATE`.
struct SecretMemDevice;

#[vtable]
impl MiscDevice for SecretMemDevice {
    type Ptr = ();

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result {
        Ok(())
    }

    fn ioctl(_device: (), file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            SECRETMEM_CREATE => {
                access::check_device_file(file)?;
                let flags = u32::try_from(arg).map_err(|_| EINVAL)?;
                Ok(secretmem_fops::create_fd(flags)? as isize)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// A registration of `/dev/secretmem` with mode 0666.
///
/// [`MiscDeviceOptions`] carries only a name, which gives a 0600 node; the node's mode must be
/// in the `struct miscdevice` before `misc_register()` creates it. The device number is
/// published to the system call entry while the device is registered.
///
/// # Invariants
///
/// `inner` is a `struct miscdevice` built by [`MiscDeviceOptions::into_raw`] for
/// [`SecretMemDevice`] and registered with `misc_register()` until drop.
#[pin_data(PinnedDrop)]
struct DeviceRegistration {
    #[pin]
    inner: Opaque<bindings::miscdevice>,
}

// SAFETY: `misc_deregister` may run on any thread.
unsafe impl Send for DeviceRegistration {}
// SAFETY: There are no `&self` methods.
unsafe impl Sync for DeviceRegistration {}

impl DeviceRegistration {
    fn register() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                let mut raw = MiscDeviceOptions {
                    name: c"secretmem",
                }
                .into_raw::<SecretMemDevice>();
                raw.mode = 0o666;
                // SAFETY: The initializer may write to `slot`.
                unsafe { slot.write(raw) };
                // SAFETY: `slot` holds a miscdevice whose fops expect a
                // `MiscDeviceRegistration<SecretMemDevice>` in `private_data`: that type is a
                // transparent wrapper of the same `struct miscdevice`. `slot` is pinned and
                // deregistered in drop before it is freed.
                // INVARIANT: On success `slot` is registered.
                to_result(unsafe { bindings::misc_register(slot) })?;
                // SAFETY: `slot` is registered, so its `this_device` is set.
                access::publish_device(unsafe { shim::secretmem_shim_misc_devt(slot) });
                Ok::<(), Error>(())
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for DeviceRegistration {
    fn drop(self: Pin<&mut Self>) {
        access::withdraw_device();
        // SAFETY: Registered by the type invariants.
        unsafe { bindings::misc_deregister(self.inner.get()) };
    }
}
