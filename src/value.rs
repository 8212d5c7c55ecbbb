//! `Value<T>`: one lock-free atomic in its own region, like `multiprocessing.Value`.
//!
//! The body is a single naturally aligned atomic of `T`'s width (`AtomicU8` .. `AtomicU64`,
//! `AtomicBool`); every operation is one hardware atomic instruction, `SeqCst`. There is no
//! protocol, so nothing a dead peer leaves behind needs repair, and any bit pattern a scribbling
//! peer writes is some value of `T` (a `bool` is stored as `AtomicBool`, whose every nonzero
//! byte reads as... see [`AtomicPrimitive`] for how `bool` is kept sound).
//!
//! `params[0]` records which primitive the creator used, so a `Value<u32>` cannot open a
//! `Value<i32>` or `Value<f32>`-sized look-alike by accident: [`Error::Incompatible`].

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::loom::atomic::{self as at, Ordering::Relaxed, Ordering::SeqCst};
use crate::object::{self, Object};
use crate::region::{Kind, LayoutFn, Region, Shared, Spec};

mod sealed {
    pub trait Sealed {}
}

/// The primitive types a [`Value`] can hold: `i8`..`i64`, `u8`..`u64`, `isize`, `usize`, `bool`.
///
/// Sealed: the crate maps each type to its hardware atomic.
pub trait AtomicPrimitive: sealed::Sealed + Copy + Send + Sync + fmt::Debug + 'static {
    #[doc(hidden)]
    type Atomic: Shared + Sync;
    #[doc(hidden)]
    const TAG: u64;
    #[doc(hidden)]
    fn new_atomic(atomic: &Self::Atomic, v: Self);
    #[doc(hidden)]
    fn load(atomic: &Self::Atomic) -> Self;
    #[doc(hidden)]
    fn store(atomic: &Self::Atomic, v: Self);
    #[doc(hidden)]
    fn swap(atomic: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn compare_exchange(
        atomic: &Self::Atomic,
        current: Self,
        new: Self,
    ) -> std::result::Result<Self, Self>;
}

/// The integer [`AtomicPrimitive`]s: those with `fetch_add` and `fetch_sub` (wrapping).
pub trait AtomicInteger: AtomicPrimitive {
    #[doc(hidden)]
    fn fetch_add(atomic: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn fetch_sub(atomic: &Self::Atomic, v: Self) -> Self;
}

macro_rules! primitive {
    ($t:ty, $atomic:ident, $tag:expr) => {
        impl sealed::Sealed for $t {}
        // SAFETY: a std atomic integer is repr(C)-compatible with its integer, valid for every
        // bit pattern, and accessed only atomically.
        unsafe impl Shared for at::$atomic {}
        impl AtomicPrimitive for $t {
            type Atomic = at::$atomic;
            const TAG: u64 = $tag;
            fn new_atomic(a: &at::$atomic, v: $t) {
                a.store(v, SeqCst)
            }
            fn load(a: &at::$atomic) -> $t {
                a.load(SeqCst)
            }
            fn store(a: &at::$atomic, v: $t) {
                a.store(v, SeqCst)
            }
            fn swap(a: &at::$atomic, v: $t) -> $t {
                a.swap(v, SeqCst)
            }
            fn compare_exchange(a: &at::$atomic, c: $t, n: $t) -> std::result::Result<$t, $t> {
                a.compare_exchange(c, n, SeqCst, SeqCst)
            }
        }
    };
}

macro_rules! integer {
    ($($t:ty => $atomic:ident, $tag:expr;)+) => {$(
        primitive!($t, $atomic, $tag);
        impl AtomicInteger for $t {
            fn fetch_add(a: &at::$atomic, v: $t) -> $t {
                a.fetch_add(v, SeqCst)
            }
            fn fetch_sub(a: &at::$atomic, v: $t) -> $t {
                a.fetch_sub(v, SeqCst)
            }
        }
    )+};
}

integer! {
    u8 => AtomicU8, 1;
    u16 => AtomicU16, 2;
    u32 => AtomicU32, 3;
    u64 => AtomicU64, 4;
    usize => AtomicUsize, 5;
    i8 => AtomicI8, 6;
    i16 => AtomicI16, 7;
    i32 => AtomicI32, 8;
    i64 => AtomicI64, 9;
    isize => AtomicIsize, 10;
}

// `bool` is kept in an `AtomicU8` and read as `!= 0`, so a peer that writes 2 into the byte
// cannot produce an invalid `bool` (an `AtomicBool` holding 2 would be undefined behaviour).
impl sealed::Sealed for bool {}
impl AtomicPrimitive for bool {
    type Atomic = at::AtomicU8;
    const TAG: u64 = 11;
    fn new_atomic(a: &at::AtomicU8, v: bool) {
        a.store(v as u8, SeqCst)
    }
    fn load(a: &at::AtomicU8) -> bool {
        a.load(SeqCst) != 0
    }
    fn store(a: &at::AtomicU8, v: bool) {
        a.store(v as u8, SeqCst)
    }
    fn swap(a: &at::AtomicU8, v: bool) -> bool {
        a.swap(v as u8, SeqCst) != 0
    }
    fn compare_exchange(a: &at::AtomicU8, c: bool, n: bool) -> std::result::Result<bool, bool> {
        // A scribbled byte (not 0 or 1) is not `c` even if it reads as `c`: normalise it first
        // so the exchange neither spins nor fails forever on a value it cannot name.
        loop {
            let seen = a.load(SeqCst);
            if (seen != 0) != c {
                return Err(seen != 0);
            }
            match a.compare_exchange(seen, n as u8, SeqCst, SeqCst) {
                Ok(_) => return Ok(c),
                Err(_) => continue,
            }
        }
    }
}

/// A lock-free atomic value of type `T` shared by name between processes.
///
/// All operations are `SeqCst`. A value that needs more than one word updated together
/// belongs in a [`Mutex`](crate::Mutex) instead.
pub struct Value<T: AtomicPrimitive> {
    region: Region,
    /// The atomic in `region`'s body, resolved once at attach (`Region::body` checks bounds
    /// and alignment on every call, a measurable part of a 5 ns `fetch_add`).
    atomic: NonNull<T::Atomic>,
    _t: PhantomData<T>,
}

// SAFETY: `atomic` points into the mapping that `region` (owned alongside it) keeps alive, at
// an atomic (`T::Atomic: Sync`, checked), which any thread may use through a shared reference;
// the rest is `Region` (Send and Sync) and a primitive type tag.
unsafe impl<T: AtomicPrimitive> Send for Value<T> {}
// SAFETY: as above.
unsafe impl<T: AtomicPrimitive> Sync for Value<T> {}

/// The type tag in `params[0]` is checked after validation (a mismatch is `Incompatible`, not
/// `Corrupted`), so the layout depends on the capacity alone.
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    (spec.capacity == 1
        && matches!(spec.elem_size, 1 | 2 | 4 | 8)
        && spec.elem_align == spec.elem_size)
        .then_some(spec.elem_size as u64)
}

/// What `interproc inspect` shows of a value: its raw bits (the type tag says how to read them).
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let spec = region.spec();
    let bits = match spec.elem_size {
        1 => region.body::<at::AtomicU8>(0).load(Relaxed) as u64,
        2 => region.body::<at::AtomicU16>(0).load(Relaxed) as u64,
        4 => region.body::<at::AtomicU32>(0).load(Relaxed) as u64,
        _ => region.body::<at::AtomicU64>(0).load(Relaxed),
    };
    let ty = match spec.params[0] {
        1 => "u8",
        2 => "u16",
        3 => "u32",
        4 => "u64",
        5 => "usize",
        6 => "i8",
        7 => "i16",
        8 => "i32",
        9 => "i64",
        10 => "isize",
        11 => "bool",
        _ => "?",
    };
    let shown = match ty {
        "i8" => (bits as u8 as i8).to_string(),
        "i16" => (bits as u16 as i16).to_string(),
        "i32" => (bits as u32 as i32).to_string(),
        "i64" | "isize" => (bits as i64).to_string(),
        "bool" => (bits != 0).to_string(),
        _ => bits.to_string(),
    };
    vec![("type", ty.to_string()), ("value", shown)]
}

impl<T: AtomicPrimitive> Object for Value<T> {
    type Args = T;
    const KIND: Kind = Kind::Value;
    const ELEM_SIZE: u32 = std::mem::size_of::<T>() as u32;
    const ELEM_ALIGN: u32 = std::mem::align_of::<T::Atomic>() as u32;
    const PARAMS: [u64; 4] = [T::TAG, 0, 0, 0];
    const LAYOUT: &'static LayoutFn = &layout;

    fn init(region: &Region, initial: T) -> Result<()> {
        T::new_atomic(region.body::<T::Atomic>(0), initial);
        Ok(())
    }

    /// Checks the type tag (`layout` ignores it, see there).
    fn attach(region: Region) -> Result<Value<T>> {
        let found = region.spec().params[0];
        if found != T::TAG {
            return Err(Error::Incompatible {
                expected: format!("value of {}", std::any::type_name::<T>()),
                found: format!("value of type tag {found}"),
            });
        }
        let atomic = NonNull::from(region.body::<T::Atomic>(0));
        Ok(Value {
            region,
            atomic,
            _t: PhantomData,
        })
    }
}

impl<T: AtomicPrimitive> Value<T> {
    /// Creates the value `name` holding `initial`.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::Io`].
    ///
    /// # Examples
    /// ```
    /// let v = interproc::Value::<i64>::create("doc-value-create", 5)?;
    /// assert_eq!(v.fetch_add(2), 5);
    /// assert_eq!(v.load(), 7);
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn create(name: &str, initial: T) -> Result<Value<T>> {
        object::create(name, initial)
    }

    /// Opens the existing value `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Incompatible`] if `name` is another kind of object or a
    /// value of another type; [`Error::Corrupted`] if its region does not check out.
    pub fn open(name: &str) -> Result<Value<T>> {
        object::open(name)
    }

    /// Opens `name`, creating it with `initial` if it does not exist (race-free).
    ///
    /// # Errors
    /// As [`Value::open`] and [`Value::create`].
    pub fn open_or_create(name: &str, initial: T) -> Result<Value<T>> {
        object::open_or_create(name, initial)
    }

    #[inline]
    fn atomic(&self) -> &T::Atomic {
        // SAFETY: resolved by `Region::body` (in bounds, aligned) at attach; the mapping lives
        // as long as `self.region`, so as long as `&self`.
        unsafe { self.atomic.as_ref() }
    }

    /// The current value.
    pub fn load(&self) -> T {
        T::load(self.atomic())
    }

    /// Replaces the value.
    pub fn store(&self, v: T) {
        T::store(self.atomic(), v)
    }

    /// Replaces the value, returning the previous one.
    pub fn swap(&self, v: T) -> T {
        T::swap(self.atomic(), v)
    }

    /// Stores `new` if the value is `current`. `Ok(previous)` on success, `Err(actual)` if not.
    pub fn compare_exchange(&self, current: T, new: T) -> std::result::Result<T, T> {
        T::compare_exchange(self.atomic(), current, new)
    }

    object::name_and_persist!();
}

impl<T: AtomicInteger> Value<T> {
    /// Adds `v` (wrapping), returning the previous value.
    pub fn fetch_add(&self, v: T) -> T {
        T::fetch_add(self.atomic(), v)
    }

    /// Subtracts `v` (wrapping), returning the previous value.
    pub fn fetch_sub(&self, v: T) -> T {
        T::fetch_sub(self.atomic(), v)
    }
}

impl<T: AtomicPrimitive> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        object::debug_struct(f, "Value", &self.region)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn name(tag: &str) -> String {
        crate::test_names::unit("value", tag)
    }

    #[test]
    fn every_operation_of_an_integer() {
        let v = Value::<i8>::create(&name("i8"), 127).unwrap();
        assert_eq!(v.fetch_add(1), 127);
        assert_eq!(v.load(), -128, "wraps at the type's width");
        assert_eq!(v.fetch_sub(1), -128);
        assert_eq!(v.swap(3), 127);
        assert_eq!(v.compare_exchange(3, 4), Ok(3));
        assert_eq!(v.compare_exchange(3, 5), Err(4));
        v.store(9);
        let w = Value::<i8>::open(v.name()).unwrap();
        assert_eq!(w.load(), 9);
    }

    #[test]
    fn bool_value() {
        let v = Value::<bool>::create(&name("bool"), false).unwrap();
        assert!(!v.swap(true));
        assert_eq!(v.compare_exchange(true, false), Ok(true));
        assert_eq!(v.compare_exchange(true, false), Err(false));
    }

    #[test]
    fn other_types_of_the_same_size_are_incompatible() {
        let v = Value::<u32>::create(&name("u32"), 1).unwrap();
        assert!(matches!(
            Value::<i32>::open(v.name()),
            Err(Error::Incompatible { .. })
        ));
        assert!(matches!(
            Value::<u64>::open(v.name()),
            Err(Error::Incompatible { .. })
        ));
        assert_eq!(Value::<u32>::open_or_create(v.name(), 0).unwrap().load(), 1);
    }
}
