//! [`SecretBox`]: one value of a plain-data type in secret memory.

use crate::{Options, Result, SecretMem};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// Plain data that may live in secret memory: valid when all its bytes are zero, no pointers,
/// no drop glue.
///
/// # Safety
///
/// An implementor must be valid for the all-zero bit pattern, must not need dropping, and must
/// not point to memory outside itself (a pointer would lead the secret out of secret memory).
pub unsafe trait Zeroable: Copy + 'static {}

macro_rules! zeroable {
    ($($t:ty),*) => { $(
        // SAFETY: All-zero bytes are a valid integer; integers own no memory and need no drop.
        unsafe impl Zeroable for $t {}
    )* };
}
zeroable!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

// SAFETY: An array of zeroable elements is zeroable: all zeros is all zero elements.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

/// A `T` in secret memory, starting as all zeros: fill it in place, never build the secret
/// elsewhere and move it in.
///
/// ```no_run
/// use secretmem::SecretBox;
///
/// let mut seed = SecretBox::<[u8; 32]>::new()?;
/// seed.copy_from_slice(&[7; 32]);
/// assert_eq!(seed[31], 7);
/// # Ok::<(), secretmem::Error>(())
/// ```
pub struct SecretBox<T: Zeroable> {
    mem: SecretMem,
    _value: PhantomData<T>,
}

impl<T: Zeroable> SecretBox<T> {
    /// A zeroed `T` in secret memory, with the default [`Options`].
    pub fn new() -> Result<Self> {
        Self::with_options(&Options::default())
    }

    /// A zeroed `T` in memory as `options` say. A zero-sized `T` is refused.
    pub fn with_options(options: &Options) -> Result<Self> {
        // The mapping is page-aligned, which no plain-data type exceeds.
        const { assert!(std::mem::align_of::<T>() <= 4096) };
        let mem = SecretMem::with_options(std::mem::size_of::<T>(), options)?;
        Ok(SecretBox {
            mem,
            _value: PhantomData,
        })
    }

    /// Where the memory came from.
    pub fn backend(&self) -> crate::Backend {
        self.mem.backend()
    }
}

impl<T: Zeroable> Deref for SecretBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The mapping is page-aligned, holds `size_of::<T>()` bytes that start zeroed
        // (a valid `T`) and are only ever written as a `T` or as bytes of a `Zeroable` type.
        unsafe { &*self.mem.as_ptr().cast::<T>() }
    }
}

impl<T: Zeroable> DerefMut for SecretBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As in `deref`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.mem.as_mut_ptr().cast::<T>() }
    }
}

impl<T: Zeroable> fmt::Debug for SecretBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("type", &std::any::type_name::<T>())
            .field("backend", &self.mem.backend())
            .finish_non_exhaustive()
    }
}
