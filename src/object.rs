//! The plumbing every synchronisation object and `Value` share: how a type describes its
//! region's header, and its three constructors.
//!
//! A type implements [`Object`]: what identifies its regions (kind, element layout, layout
//! function), what `create` writes (capacity, params, initial body) and how a validated
//! participant region becomes a handle. [`create`], [`open`] and [`open_or_create`] do the
//! rest the same way for every type: type check, then the [`Spec`] that `create` writes (its
//! `body_len` computed by the kind's own layout function, so `create` never writes a header
//! that `open` would refuse), then the region, then [`Object::attach`]. So `open_or_create`
//! takes exactly `create`'s arguments and accepts exactly what `open` accepts.
//!
//! Nothing here touches shared memory itself: the region validates the header, the object's
//! `init` and `attach` own the body.

use std::fmt;

use crate::error::{Error, Result};
use crate::region::{self, Attach, Expect, Kind, LayoutFn, Region, Spec, Token};

/// An object type stored in one region: the description the constructors need.
pub(crate) trait Object: Sized {
    /// What `create` and `open_or_create` take after the name (an initial value, a count).
    type Args: Copy;

    /// The kind written to and expected in the header.
    const KIND: Kind;
    /// `size_of` of the element type in the header (0 if the kind has none).
    const ELEM_SIZE: u32 = 0;
    /// `align_of` of the element type in the header (1 if the kind has none).
    const ELEM_ALIGN: u32 = 1;
    /// Kind-specific header parameters `create` writes (`attach` checks them if they matter).
    const PARAMS: [u64; 4] = [0; 4];
    /// The kind's layout function (the one `interproc list`/`inspect` use too).
    const LAYOUT: &'static LayoutFn;

    /// Refuses a type parameter the kind cannot hold, before any syscall: checked by `create`,
    /// `open` and `open_or_create` alike.
    fn check_type() -> Result<()> {
        Ok(())
    }

    /// The header capacity `create` writes for `args` (1: one lock, one value), or an error
    /// for arguments that cannot work, before any syscall.
    fn capacity(_args: Self::Args) -> Result<u64> {
        Ok(1)
    }

    /// Writes the initial body of a region nobody else can see yet. The default writes
    /// nothing: the kernel zero-fills the region.
    fn init(_region: &Region, _args: Self::Args) -> Result<()> {
        Ok(())
    }

    /// Makes a handle of a participant region whose header checked out: checks what the
    /// header validation cannot (e.g. `params`) and claims per-handle state.
    fn attach(region: Region) -> Result<Self>;
}

/// The header `create` writes for `args`.
///
/// # Errors
/// What [`Object::capacity`] refuses; [`Error::InvalidArgument`] if the kind's layout refuses
/// the spec (a type that [`Object::check_type`] should have refused).
pub(crate) fn spec<O: Object>(args: O::Args) -> Result<Spec> {
    let mut spec = Spec {
        kind: O::KIND,
        elem_size: O::ELEM_SIZE,
        elem_align: O::ELEM_ALIGN,
        capacity: O::capacity(args)?,
        params: O::PARAMS,
        body_len: 0,
    };
    // Layout functions ignore `body_len`; the one they compute is the one `open` requires.
    spec.body_len = (O::LAYOUT)(&spec).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "no {} of capacity {} with elements of {} bytes aligned to {}",
            O::KIND,
            spec.capacity,
            spec.elem_size,
            spec.elem_align
        ))
    })?;
    Ok(spec)
}

/// What `open` checks a header against.
pub(crate) fn expect<O: Object>() -> Expect<'static> {
    Expect {
        kind: O::KIND,
        elem_size: O::ELEM_SIZE,
        elem_align: O::ELEM_ALIGN,
        body_len: O::LAYOUT,
    }
}

/// Creates the object `name` from `args` (the body of every type's `create`).
pub(crate) fn create<O: Object>(name: &str, args: O::Args) -> Result<O> {
    O::check_type()?;
    let spec = spec::<O>(args)?;
    let region = Region::create(name, &spec, region::create_mode(), |r| O::init(r, args))?;
    O::attach(region)
}

/// Opens the existing object `name` (the body of every type's `open`).
pub(crate) fn open<O: Object>(name: &str) -> Result<O> {
    O::check_type()?;
    O::attach(Region::open(name, &expect::<O>(), Attach::Participant)?)
}

/// Opens `name`, creating it from `args` if it does not exist, race-free (the body of every
/// type's `open_or_create`).
pub(crate) fn open_or_create<O: Object>(name: &str, args: O::Args) -> Result<O> {
    O::check_type()?;
    let spec = spec::<O>(args)?;
    let region = Region::open_or_create(name, &spec, &expect::<O>(), region::create_mode(), |r| {
        O::init(r, args)
    })?;
    O::attach(region)
}

/// The participant token of a region opened or created as a participant.
///
/// # Errors
/// [`Error::Corrupted`] if there is none (cannot happen for a participant region).
pub(crate) fn participant(region: &Region) -> Result<Token> {
    region
        .token()
        .ok_or_else(|| Error::corrupted("participant handle without a token"))
}

/// Starts a handle's `Debug` output as every handle's starts: type, name and kind.
pub(crate) fn debug_struct<'a, 'b>(
    f: &'a mut fmt::Formatter<'b>,
    ty: &str,
    region: &Region,
) -> fmt::DebugStruct<'a, 'b> {
    let mut d = f.debug_struct(ty);
    d.field("name", &region.name())
        .field("kind", &region.spec().kind.as_str());
    d
}

/// The `name` and `persist` methods of a handle whose region is its field `region` (every
/// object type has both, see API.md). Invoked inside the handle's inherent `impl` block.
macro_rules! name_and_persist {
    () => {
        /// The object's name.
        pub fn name(&self) -> &str {
            self.region.name()
        }

        /// Hands the name up: it outlives this handle.
        pub fn persist(&self) {
            self.region.persist()
        }
    };
}
pub(crate) use name_and_persist;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{Barrier, Condvar, Event, Mutex, RwLock, Semaphore, Value};

    /// The headers `create` writes, pinned field by field: they are the on-disk format.
    #[test]
    fn specs_are_the_format() {
        let s = |kind, elem_size, elem_align, capacity, params, body_len| Spec {
            kind,
            elem_size,
            elem_align,
            capacity,
            params,
            body_len,
        };
        let none = [0; 4];
        assert_eq!(
            spec::<Mutex<u64>>(0).unwrap(),
            s(Kind::Mutex, 8, 8, 1, none, 128 + 8)
        );
        assert_eq!(
            spec::<Mutex<()>>(()).unwrap(),
            s(Kind::Mutex, 0, 1, 1, none, 128)
        );
        assert_eq!(
            spec::<RwLock<[u32; 3]>>([0; 3]).unwrap(),
            s(Kind::RwLock, 12, 4, 1, none, 128 + 128 * 128 + 12)
        );
        assert_eq!(
            spec::<Condvar>(()).unwrap(),
            s(Kind::Condvar, 0, 1, 1, none, 128)
        );
        assert_eq!(spec::<Event>(()).unwrap(), s(Kind::Event, 0, 1, 0, none, 8));
        assert_eq!(
            spec::<Semaphore>(u32::MAX).unwrap(),
            s(Kind::Semaphore, 0, 1, u32::MAX as u64, none, 128 + 8 * 128)
        );
        assert_eq!(
            spec::<Barrier>(3).unwrap(),
            s(Kind::Barrier, 0, 1, 3, none, 128 + 8 * 128)
        );
        assert!(matches!(spec::<Barrier>(0), Err(Error::InvalidArgument(_))));
        assert_eq!(
            spec::<Value<bool>>(true).unwrap(),
            s(Kind::Value, 1, 1, 1, [11, 0, 0, 0], 1)
        );
        assert_eq!(
            spec::<Value<i32>>(0).unwrap(),
            s(Kind::Value, 4, 4, 1, [8, 0, 0, 0], 4)
        );
        assert_eq!(
            spec::<Value<usize>>(0).unwrap(),
            s(Kind::Value, 8, 8, 1, [5, 0, 0, 0], 8)
        );
    }

    #[test]
    fn debug_starts_with_name_and_kind() {
        let name = format!("unit-object-debug-{}", std::process::id());
        let cv = Condvar::create(&name).unwrap();
        assert_eq!(
            format!("{cv:?}"),
            format!("Condvar {{ name: {name:?}, kind: \"condvar\" }}")
        );
        cv.persist();
        assert_eq!(cv.name(), name);
        drop(cv);
        // Persisted: the name outlived the handle.
        crate::remove(&name).unwrap();
    }
}
