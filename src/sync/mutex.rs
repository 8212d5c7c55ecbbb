//! `Mutex<T>` and `Lock`: a robust, poisoning lock around plain data, shared by name.
//!
//! # Layout of the body
//!
//! ```text
//! offset  size  word     written by                         meaning
//!      0     4  lock     lockers (CAS), the holder (unlock)  see the state table below
//!      4     4  poison   the holder; clear_poison: anyone    0 = clean, anything else = poisoned
//!      8   120  (padding, atomics, never touched)
//!    128     N  data     the holder only                     the `T`, on its own 128-byte line
//! ```
//!
//! # The lock word
//!
//! Bits 0..=28 hold the owner's [`Token`] (the participant slot and generation of the handle
//! that locked; never 0), bit 29 is [`PARKED`]. Bits 30 and 31 are never set by the protocol.
//!
//! | word                 | meaning                                                     | who moves it next |
//! |----------------------|-------------------------------------------------------------|-------------------|
//! | `0`                  | free                                                        | a locker: CAS `0 -> token` (or `token \| PARKED` after it parked once) |
//! | `token`              | held by `token`, nobody parked                              | the holder: CAS `token -> 0`; a waiter: CAS `token -> token \| PARKED` |
//! | `token \| PARKED`    | held, a waiter may sleep on the futex                       | the holder: CAS `-> 0`, then `FUTEX_WAKE` 1 |
//! | anything else        | scribbled (not a valid token, bits 30/31, `PARKED` alone)    | a waiter: treated as a dead owner (below) |
//!
//! Orderings: the acquiring CAS is `Acquire`, the releasing CAS is `Release`; they pair, so
//! everything a holder wrote to the data happens-before the next holder's reads. Setting
//! `PARKED` is `Relaxed`: it orders nothing, and the futex re-checks the word atomically, so a
//! waiter that announced itself and sleeps on the exact word it announced in can never miss
//! the wake of an unlock that follows (the unlocker's CAS either sees `PARKED` and wakes, or
//! fails because the word changed, or happened before, in which case the futex returns at once).
//! A waiter that acquires after it parked stores `token | PARKED` (never plain `token`): the
//! unlock that woke it erased the bit, and other waiters may still sleep.
//!
//! # Dead owners (robustness)
//!
//! A waiter checks the recorded owner's liveness (`Region::is_alive`, an OFD lock the kernel
//! drops when the holder's process dies) once right before it first parks, and again each time
//! a park slice ([`SLICE`](super::wait::SLICE), 20 ms) ends without a wake-up. Only when the
//! OS proves the owner dead does it take the lock over, with one CAS on the exact word it
//! observed (`observed -> me | PARKED`: other waiters may sleep), and then it sets `poison`.
//! A live owner is never overtaken, however slow: a stopped (`SIGSTOP`) holder keeps its lock,
//! and waiters time out instead. A scribbled word, whose owner cannot be named, is treated as a
//! dead owner (taken over and poisoned) so that it can never hang anyone. The data a dead
//! holder wrote is kept as it is; `poison` tells the next holders to check it, and stays set
//! until [`Mutex::clear_poison`]. While the owner is alive and healthy, nothing polls except the
//! waiters themselves (one liveness check per 20 ms slice each).
//!
//! Other deaths leave less: a waiter that dies after setting `PARKED` costs the next unlock
//! one wake syscall that wakes nobody; a holder that dies inside `unlock`, between its
//! releasing CAS and the wake, leaves sleepers that find the word free at the end of their
//! slice; a taker that dies between its CAS and the poison store is a dead owner in turn, and
//! the next waiter takes over and poisons.
//!
//! A panic that unwinds through a guard poisons the mutex too, as in std.
//!
//! # Trust
//!
//! The guard hands out `&T` / `&mut T` into the shared mapping: the lock makes that access
//! exclusive among peers that follow the protocol. This is the one place where the crate's
//! "scribbling peers cannot cause undefined behaviour" promise is narrowed: a peer that writes
//! the data *without holding the lock* races with the reference, which is undefined behaviour in
//! Rust's model (the compiler may, for example, re-load a field after checking it). The lock
//! word itself, the poison word and every other shared word stay robust against scribbling; only
//! the guarded data relies on peers that respect the lock. `T: Pod` keeps every value a peer
//! leaves behind a valid `T`. (The RwLock's guards are the same.)

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

use bytemuck::Pod;

use super::wait::{self, Park, Wait};
use crate::error::{Error, Result};
use crate::loom::atomic::{AtomicU32, Ordering};
use crate::object::{self, Object};
use crate::region::{Kind, LayoutFn, Region, Shared, Spec, Token};

/// Bits of the lock word that hold the owner's token.
pub(crate) const TOKEN_MASK: u32 = (1 << 29) - 1;
/// Lock-word bit: a waiter may be asleep on the futex; whoever releases must wake one.
pub(crate) const PARKED: u32 = 1 << 29;
/// Where the data starts in the body: its own 128-byte line after the lock words.
const DATA_OFFSET: u64 = 128;
/// The largest `align_of::<T>()` a mutex accepts (the body is 128-byte aligned).
pub(crate) const MAX_ALIGN: u32 = 128;
/// The largest `size_of::<T>()` a mutex accepts.
pub(crate) const MAX_DATA: u32 = 1 << 30;

// ---------------------------------------------------------------------------------------------
// Helpers shared with condvar.rs and rwlock.rs.

/// `Ok(guard)`, or, if the lock is `poisoned`, `Err(PoisonError)` carrying the guard (as std's
/// locks return theirs).
pub(crate) fn lock_result<G>(poisoned: bool, guard: G) -> LockResult<G> {
    if poisoned {
        Err(PoisonError::new(guard))
    } else {
        Ok(guard)
    }
}

/// What a `try_*` or `*_timeout` call returns: [`TryLockError::WouldBlock`] unless `locked`,
/// else the guard (poisoned or not) that `guard` makes once the lock is held.
pub(crate) fn try_result<G>(
    locked: bool,
    guard: impl FnOnce() -> LockResult<G>,
) -> TryLockResult<G> {
    if !locked {
        return Err(TryLockError::WouldBlock);
    }
    Ok(guard()?)
}

/// True if the raw owner token `raw` cannot name a live participant: not a valid token, or the
/// OS says its holder is gone. `alive` is only asked about valid tokens.
pub(crate) fn owner_dead(raw: u32, alive: &dyn Fn(u32) -> bool) -> bool {
    Token::from_raw(raw).is_none() || !alive(raw)
}

/// The liveness oracle of a region: is the participant with this raw token still attached?
pub(crate) fn region_liveness(region: &Region) -> impl Fn(u32) -> bool + '_ {
    move |raw| Token::from_raw(raw).is_some_and(|t| region.is_alive(t))
}

/// Checks that `T` fits the layout rules of a lock's data slot.
pub(crate) fn check_data_type<T>() -> Result<()> {
    let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
    if align > MAX_ALIGN as usize || size > MAX_DATA as usize {
        return Err(Error::InvalidArgument(format!(
            "lock data of {size} bytes aligned to {align} (at most {MAX_DATA} bytes aligned to at most {MAX_ALIGN})"
        )));
    }
    Ok(())
}

/// Body length of a lock whose data slot starts at `data_offset`, or `None` for an element
/// layout no `T` could have. Never overflows: every input is a `u32` or compared first.
pub(crate) fn data_layout(spec: &Spec, data_offset: u64) -> Option<u64> {
    let (size, align) = (spec.elem_size, spec.elem_align);
    (spec.capacity == 1
        && align.is_power_of_two()
        && align <= MAX_ALIGN
        && size % align == 0
        && size <= MAX_DATA)
        .then(|| data_offset + size as u64)
}

/// Writes a lock's initial data into the data slot at `data_offset` of a region being created
/// with [`data_layout`] (`T` passed [`check_data_type`]).
pub(crate) fn init_data<T: Pod>(region: &Region, data_offset: u64, value: T) {
    let ptr = region.body_ptr(data_offset as usize) as *mut T;
    // SAFETY: the body holds `data_offset + size_of::<T>()` bytes (`data_layout`, from which the
    // region was created); the data offset is a multiple of 128 from a page-aligned mapping and
    // align_of::<T>() <= 128 (`check_data_type`); nobody else can see the region before it is
    // published.
    unsafe { ptr.write(value) };
}

// ---------------------------------------------------------------------------------------------
// The protocol core: written against two atomics, so loom can run it on the heap.

/// The two shared words of a mutex (see the module doc).
#[repr(C)]
pub(crate) struct RawMutex {
    /// The lock word: owner token | [`PARKED`], or 0.
    lock: AtomicU32,
    /// Nonzero while poisoned.
    poison: AtomicU32,
}

impl RawMutex {
    /// A free, unpoisoned mutex (the region starts zeroed, which is the same).
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> RawMutex {
        RawMutex {
            lock: AtomicU32::new(0),
            poison: AtomicU32::new(0),
        }
    }

    /// The uncontended path: one CAS.
    #[inline]
    fn try_lock_fast(&self, me: u32) -> bool {
        self.lock
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// One attempt that never blocks; takes the lock over if its owner is proven dead
    /// (then the mutex is poisoned).
    pub(crate) fn try_lock(&self, me: u32, alive: &dyn Fn(u32) -> bool) -> bool {
        if self.try_lock_fast(me) {
            return true;
        }
        let cur = self.lock.load(Ordering::Relaxed);
        if cur == 0 {
            return self.try_lock_fast(me);
        }
        self.take_over_if_dead(cur, me, alive)
    }

    /// If `observed` names a dead (or no valid) owner, replaces exactly that word with
    /// `me | PARKED` and poisons. True if this call took the lock.
    fn take_over_if_dead(&self, observed: u32, me: u32, alive: &dyn Fn(u32) -> bool) -> bool {
        let garbage = observed & !(TOKEN_MASK | PARKED) != 0;
        if !garbage && !owner_dead(observed & TOKEN_MASK, alive) {
            return false;
        }
        // PARKED stays set: other waiters may be asleep, and our unlock must wake one.
        if self
            .lock
            .compare_exchange(observed, me | PARKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // Crash tests: a taker that dies here is a dead holder in turn (module doc).
        crate::failpoint::hit("mutex.takeover.before_poison");
        // We hold the lock: our unlock (Release) publishes this to the next holder.
        self.poison.store(1, Ordering::Relaxed);
        true
    }

    /// Locks, waiting at most `timeout` (`None`: forever). False if the time ran out.
    #[inline]
    pub(crate) fn lock(
        &self,
        me: u32,
        timeout: Option<Duration>,
        alive: &dyn Fn(u32) -> bool,
    ) -> bool {
        self.try_lock_fast(me) || self.lock_slow(me, timeout, alive)
    }

    #[cold]
    fn lock_slow(&self, me: u32, timeout: Option<Duration>, alive: &dyn Fn(u32) -> bool) -> bool {
        let mut w = wait::lock_waiter(timeout);
        // Once we announced ourselves, we acquire with PARKED set (see the module doc).
        let mut announced = false;
        // Check the owner's liveness before the first park, then after every slice.
        let mut check = true;
        loop {
            let cur = self.lock.load(Ordering::Relaxed);
            if cur == 0 {
                let new = if announced { me | PARKED } else { me };
                if self
                    .lock
                    .compare_exchange(0, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if w.spin() {
                continue;
            }
            let mut expected = cur;
            if cur & PARKED == 0 {
                if self
                    .lock
                    .compare_exchange(cur, cur | PARKED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                expected = cur | PARKED;
            }
            announced = true;
            if check {
                check = false;
                if self.take_over_if_dead(expected, me, alive) {
                    return true;
                }
            }
            match w.park(&self.lock, expected) {
                Park::Woken => {}
                Park::Slice => check = true,
                Park::TimedOut => return false,
            }
        }
    }

    /// Releases a lock held by `me`; wakes one waiter if any announced itself. A word that no
    /// longer names `me` (scribbled) is left alone: waiters treat it as a dead owner.
    #[inline]
    pub(crate) fn unlock(&self, me: u32) {
        if let Err(cur) = self
            .lock
            .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed)
        {
            self.unlock_slow(me, cur);
        }
    }

    #[cold]
    fn unlock_slow(&self, me: u32, mut cur: u32) {
        // Only PARKED can appear under a live holder, so two rounds suffice; the bound guards
        // against a peer that keeps scribbling.
        for _ in 0..4 {
            if cur & !PARKED != me {
                return;
            }
            match self
                .lock
                .compare_exchange(cur, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if cur & PARKED != 0 {
                        // Crash tests: released, the sleeper not woken yet.
                        crate::failpoint::hit("mutex.unlock.before_wake");
                        wait::wake(&self.lock, 1);
                    }
                    return;
                }
                Err(now) => cur = now,
            }
        }
    }

    /// True while poisoned.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poison.load(Ordering::Relaxed) != 0
    }

    /// Marks the mutex poisoned (a guard unwound by a panic).
    pub(crate) fn set_poison(&self) {
        self.poison.store(1, Ordering::Relaxed);
    }

    /// Clears the poison mark.
    pub(crate) fn clear_poison(&self) {
        self.poison.store(0, Ordering::Relaxed);
    }

    /// The raw lock word (for `inspect` and tests).
    pub(crate) fn word(&self) -> u32 {
        self.lock.load(Ordering::Relaxed)
    }
}

/// The first line of the body: the lock words, padded to 128 bytes.
#[repr(C)]
struct MutexHead {
    raw: RawMutex,
    _pad: [AtomicU32; 30],
}

// SAFETY: repr(C), atomics only (padding included), 128 bytes, alignment 4.
unsafe impl Shared for MutexHead {}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<MutexHead>() == DATA_OFFSET as usize);

/// Body bytes a mutex spec needs (the CLI's `list`/`inspect` and every `open`).
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    data_layout(spec, DATA_OFFSET)
}

/// What `interproc inspect` shows of a mutex (relaxed loads only: may be an observer mapping).
#[allow(dead_code)] // called by the CLI
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let head = region.body::<MutexHead>(0);
    let word = head.raw.word();
    let owner = word & TOKEN_MASK;
    let state = if word == 0 {
        "unlocked".to_string()
    } else if word & !(TOKEN_MASK | PARKED) != 0 || Token::from_raw(owner).is_none() {
        format!("corrupt lock word {word:#010x}")
    } else {
        let t = Token::from_raw(owner).map_or(0, |t| t.slot());
        let alive = Token::from_raw(owner).is_some_and(|t| region.is_alive(t));
        format!(
            "locked by participant slot {t}{}",
            if alive {
                ""
            } else {
                " (dead: next lock takes over)"
            }
        )
    };
    vec![
        ("state", state),
        (
            "waiters",
            if word & PARKED != 0 { "parked" } else { "none" }.to_string(),
        ),
        ("poisoned", head.raw.is_poisoned().to_string()),
        ("data bytes", region.spec().elem_size.to_string()),
    ]
}

// ---------------------------------------------------------------------------------------------
// The handle.

/// A mutual-exclusion lock around a `T`, shared by name between processes; robust against
/// holders that die.
///
/// The counterpart of `std::sync::Mutex` (and, as [`Lock`], of `multiprocessing.Lock`). The
/// data lives in the shared region: every process that opens the name locks the same `T`.
///
/// **Poisoning**: if a process dies while it holds the lock (or a panic unwinds through a
/// guard), the next `lock()` anywhere returns promptly (within one 20 ms park slice of the
/// death) with `Err(PoisonError)`; its [`PoisonError::into_inner`] is the guard, with the data
/// as the dead holder left it. The mutex stays poisoned until [`Mutex::clear_poison`]. A live
/// holder is never overtaken, however slow or stopped it is.
///
/// **Re-entrancy**: locking twice from one thread deadlocks, as with std; [`Mutex::lock_timeout`]
/// then times out.
///
/// # Examples
/// ```
/// use interproc::Mutex;
/// let m = Mutex::<u64>::create("doc-mutex", 5)?;
/// *m.lock().unwrap() += 1;
/// // Another process: `Mutex::<u64>::open("doc-mutex")?`
/// assert_eq!(*m.lock().unwrap(), 6);
/// # Ok::<(), interproc::Error>(())
/// ```
pub struct Mutex<T: Pod> {
    region: Region,
    me: Token,
    _t: PhantomData<T>,
}

/// A lock without data: `multiprocessing.Lock`. Create it with `Lock::create(name, ())`.
///
/// # Examples
/// ```
/// let lock = interproc::Lock::create("doc-lock", ())?;
/// let _held = lock.lock().unwrap();
/// assert!(lock.try_lock().is_err());
/// # Ok::<(), interproc::Error>(())
/// ```
pub type Lock = Mutex<()>;

// SAFETY: the handle is a region (Send + Sync) plus a token; the `T` it guards is only reached
// through a guard, which the lock makes exclusive, so sharing the handle between threads is
// sound when `T` may move between threads, exactly as for `std::sync::Mutex`.
unsafe impl<T: Pod + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Send> Sync for Mutex<T> {}

impl<T: Pod> Object for Mutex<T> {
    type Args = T;
    const KIND: Kind = Kind::Mutex;
    const ELEM_SIZE: u32 = std::mem::size_of::<T>() as u32;
    const ELEM_ALIGN: u32 = std::mem::align_of::<T>() as u32;
    const LAYOUT: &'static LayoutFn = &layout;

    fn check_type() -> Result<()> {
        check_data_type::<T>()
    }

    fn init(region: &Region, value: T) -> Result<()> {
        init_data(region, DATA_OFFSET, value);
        Ok(())
    }

    fn attach(region: Region) -> Result<Mutex<T>> {
        Ok(Mutex {
            me: object::participant(&region)?,
            region,
            _t: PhantomData,
        })
    }
}

impl<T: Pod> Mutex<T> {
    /// Creates the mutex `name` holding `value`.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::InvalidArgument`] if `T` is
    /// larger than 1 GiB or aligned to more than 128 bytes, [`Error::Io`].
    pub fn create(name: &str, value: T) -> Result<Mutex<T>> {
        object::create(name, value)
    }

    /// Opens the existing mutex `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Incompatible`] if `name` is another kind of object or
    /// holds data of another size or alignment; [`Error::Corrupted`] if its region does not
    /// check out; [`Error::Busy`] if 128 handles are attached already.
    pub fn open(name: &str) -> Result<Mutex<T>> {
        object::open(name)
    }

    /// Opens `name`, creating it with `value` if it does not exist (safe when processes race:
    /// exactly one creates).
    ///
    /// # Errors
    /// As [`Mutex::open`] and [`Mutex::create`].
    pub fn open_or_create(name: &str, value: T) -> Result<Mutex<T>> {
        object::open_or_create(name, value)
    }

    pub(crate) fn raw(&self) -> &RawMutex {
        &self.region.body::<MutexHead>(0).raw
    }

    /// This handle's token as stored in the lock word.
    pub(crate) fn me(&self) -> u32 {
        self.me.raw()
    }

    fn data_ptr(&self) -> *mut T {
        self.region.body_ptr(DATA_OFFSET as usize) as *mut T
    }

    /// Blocks until the lock is held by this handle (never times out).
    pub(crate) fn lock_raw(&self) {
        let alive = region_liveness(&self.region);
        while !self.raw().lock(self.me(), None, &alive) {}
    }

    /// Wraps a lock this thread has just taken into a guard, poisoned or not.
    fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        // Crash tests: the lock word names us, no guard exists yet.
        crate::failpoint::hit("mutex.lock.acquired");
        let guard = MutexGuard {
            mutex: self,
            panicking: std::thread::panicking(),
            _not_send: PhantomData,
        };
        lock_result(self.raw().is_poisoned(), guard)
    }

    /// Acquires the lock, blocking until it is free (or its holder is proven dead).
    ///
    /// # Errors
    /// `Err(PoisonError)` if the mutex is poisoned: a holder died or panicked while holding it
    /// (now or earlier, until [`Mutex::clear_poison`]). The lock *is* held then:
    /// [`PoisonError::into_inner`] returns the guard.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.lock_raw();
        self.guard()
    }

    /// Acquires the lock if that needs no waiting. A lock whose holder is proven dead is taken
    /// over (poisoned). When the lock is held, telling a live holder from a dead one costs one
    /// liveness check (an `fcntl`).
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if another live holder has it (this thread included);
    /// [`TryLockError::Poisoned`] as for [`Mutex::lock`].
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        let alive = region_liveness(&self.region);
        try_result(self.raw().try_lock(self.me(), &alive), || self.guard())
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// Returns the same type as [`Mutex::try_lock`]: running out of time is
    /// [`TryLockError::WouldBlock`] (the lock stayed held by a live holder all along).
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] on timeout; [`TryLockError::Poisoned`] as for
    /// [`Mutex::lock`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::TryLockError;
    /// use std::time::Duration;
    /// let m = interproc::Mutex::<u32>::create("doc-mutex-timeout", 0)?;
    /// let held = m.lock().unwrap();
    /// // Not re-entrant: a second lock from this thread waits for itself, then gives up.
    /// assert!(matches!(m.lock_timeout(Duration::from_millis(10)), Err(TryLockError::WouldBlock)));
    /// drop(held);
    /// assert!(m.lock_timeout(Duration::from_millis(10)).is_ok());
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<MutexGuard<'_, T>> {
        let alive = region_liveness(&self.region);
        try_result(self.raw().lock(self.me(), Some(timeout), &alive), || {
            self.guard()
        })
    }

    /// True if the mutex is poisoned (a holder died or panicked while holding it).
    pub fn is_poisoned(&self) -> bool {
        self.raw().is_poisoned()
    }

    /// Clears the poison mark: the data has been checked or repaired.
    ///
    /// # Examples
    /// ```
    /// let m = interproc::Mutex::<i64>::create("doc-mutex-poison", 1)?;
    /// let _ = std::panic::catch_unwind(|| {
    ///     let _g = m.lock().unwrap();
    ///     panic!("while holding"); // poisons, as with std
    /// });
    /// let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
    /// *g = 0; // repair
    /// drop(g);
    /// m.clear_poison();
    /// assert!(m.lock().is_ok());
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn clear_poison(&self) {
        self.raw().clear_poison();
    }

    object::name_and_persist!();
}

impl<T: Pod> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        object::debug_struct(f, "Mutex", &self.region)
            .field("type", &std::any::type_name::<T>())
            .field("poisoned", &self.is_poisoned())
            .finish()
    }
}

/// Proof that this thread holds a [`Mutex`]; derefs to the data. Unlocks on drop.
///
/// Not `Send`, as in std. Dropping it while a panic unwinds poisons the mutex.
///
/// ```compile_fail
/// fn send<S: Send>(_: S) {}
/// let m = interproc::Mutex::<u32>::create("doc-guard-not-send", 0).unwrap();
/// send(m.lock().unwrap());
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: Pod> {
    mutex: &'a Mutex<T>,
    /// The thread was already panicking when it locked (then its drop does not poison).
    panicking: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a `&MutexGuard` only hands out `&T`, so sharing it is sound when `T: Sync`, as in std.
unsafe impl<T: Pod + Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T: Pod> MutexGuard<'a, T> {
    /// The mutex this guard locks.
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }
}

impl<T: Pod> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the pointer is in bounds and aligned (see `init` in `impl Object for Mutex`);
        // the lock is held by this guard, so no protocol-following peer writes the data while
        // the reference lives; `T: Pod` makes whatever bits a rogue peer may leave a valid `T`.
        unsafe { &*self.mutex.data_ptr() }
    }
}

impl<T: Pod> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the guard is borrowed mutably, so this is the only reference
        // in this process, and the lock excludes other holders.
        unsafe { &mut *self.mutex.data_ptr() }
    }
}

impl<T: Pod> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if !self.panicking && std::thread::panicking() {
            self.mutex.raw().set_poison();
        }
        self.mutex.raw().unlock(self.mutex.me());
    }
}

impl<T: Pod> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("name", &self.mutex.name())
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    fn name(tag: &str) -> String {
        crate::test_names::unit("mutex", tag)
    }

    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(64))]
    struct Big {
        a: u64,
        b: [u32; 30],
    }

    #[test]
    fn lock_unlock_and_data_round_trip() {
        let m = Mutex::<Big>::create(&name("big"), Big { a: 7, b: [1; 30] }).unwrap();
        {
            let mut g = m.lock().unwrap();
            assert_eq!(g.a, 7);
            g.a = 8;
            g.b[29] = 9;
        }
        let other = Mutex::<Big>::open(m.name()).unwrap();
        let g = other.lock().unwrap();
        assert_eq!((g.a, g.b[29]), (8, 9));
        assert!(m.try_lock().is_err(), "held through the other handle");
        drop(g);
        assert!(m.try_lock().is_ok());
        assert_eq!(m.raw().word(), 0);
    }

    #[test]
    fn lock_is_a_mutex_of_unit() {
        let l = Lock::create(&name("unit"), ()).unwrap();
        let g = l.lock().unwrap();
        assert!(matches!(l.try_lock(), Err(TryLockError::WouldBlock)));
        drop(g);
        let l2 = Lock::open_or_create(l.name(), ()).unwrap();
        let _g = l2.lock().unwrap();
        assert!(format!("{l:?}").contains("mutex"));
    }

    #[test]
    fn reentrant_lock_times_out() {
        let m = Mutex::<u32>::create(&name("reent"), 0).unwrap();
        let _g = m.lock().unwrap();
        let t = Instant::now();
        assert!(matches!(
            m.lock_timeout(Duration::from_millis(60)),
            Err(TryLockError::WouldBlock)
        ));
        assert!(t.elapsed() >= Duration::from_millis(60));
        assert!(!m.is_poisoned());
    }

    #[test]
    fn threads_contend_through_one_handle_and_two() {
        let m = Mutex::<u64>::create(&name("threads"), 0).unwrap();
        let m2 = Mutex::<u64>::open(m.name()).unwrap();
        std::thread::scope(|s| {
            for h in [&m, &m2, &m] {
                s.spawn(move || {
                    for _ in 0..5_000 {
                        *h.lock().unwrap() += 1;
                    }
                });
            }
        });
        assert_eq!(*m.lock().unwrap(), 15_000);
    }

    #[test]
    fn panic_poisons_and_clear_poison_clears() {
        let m = Mutex::<u32>::create(&name("panic"), 0).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut g = m.lock().unwrap();
            *g = 5;
            panic!("boom");
        }));
        assert!(r.is_err());
        assert!(m.is_poisoned());
        let g = m.lock().unwrap_err().into_inner();
        assert_eq!(*g, 5);
        drop(g);
        assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
        m.clear_poison();
        assert!(m.lock().is_ok());
    }

    #[test]
    fn a_dropped_handle_holding_the_lock_is_taken_over() {
        let m = Mutex::<u32>::create(&name("forget"), 1).unwrap();
        let h = Mutex::<u32>::open(m.name()).unwrap();
        std::mem::forget(h.lock().unwrap());
        drop(h); // its participant lock goes: the owner is provably gone
        let t = Instant::now();
        let g = m.lock().unwrap_err().into_inner();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(*g, 1);
    }

    #[test]
    fn a_scribbled_lock_word_is_taken_over_not_hung_on() {
        let m = Mutex::<u32>::create(&name("scribble"), 3).unwrap();
        for garbage in [PARKED, 1 << 31, 5, u32::MAX] {
            m.raw().lock.store(garbage, Ordering::Relaxed);
            let g = m.lock_timeout(Duration::from_secs(5));
            let g = match g {
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                other => panic!("{garbage:#x}: {other:?}"),
            };
            assert_eq!(*g, 3);
            drop(g);
            m.clear_poison();
        }
    }

    #[test]
    fn unusable_types_are_refused() {
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C, align(256))]
        struct Huge([u8; 256]);
        assert!(matches!(
            Mutex::<Huge>::create(&name("huge"), Huge([0; 256])),
            Err(Error::InvalidArgument(_))
        ));
        let m = Mutex::<u32>::create(&name("incompat"), 0).unwrap();
        assert!(matches!(
            Mutex::<u64>::open(m.name()),
            Err(Error::Incompatible { .. })
        ));
        assert!(matches!(
            crate::Value::<u32>::open(m.name()),
            Err(Error::Incompatible { .. })
        ));
    }

    #[test]
    fn layout_never_panics() {
        for (size, align, cap) in [
            (u32::MAX, 1, 1),
            (0, 0, 1),
            (3, 2, 1),
            (8, 8, 0),
            (8, 8, u64::MAX),
            (MAX_DATA, 128, 1),
            (8, 256, 1),
        ] {
            let spec = Spec {
                kind: Kind::Mutex,
                elem_size: size,
                elem_align: align,
                capacity: cap,
                params: [u64::MAX; 4],
                body_len: u64::MAX,
            };
            let got = layout(&spec);
            if let Some(n) = got {
                assert_eq!(n, DATA_OFFSET + size as u64);
            }
        }
    }

    #[test]
    fn inspect_reports_state() {
        let m = Mutex::<u32>::create(&name("inspect"), 0).unwrap();
        let g = m.lock().unwrap();
        let fields = inspect(&m.region);
        assert!(fields
            .iter()
            .any(|(k, v)| *k == "state" && v.starts_with("locked")));
        drop(g);
        let fields = inspect(&m.region);
        assert!(fields.contains(&("state", "unlocked".to_string())));
        assert!(fields.contains(&("poisoned", "false".to_string())));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::model::{get, set, token};
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;

    struct Shared {
        raw: RawMutex,
        data: UnsafeCell<u32>,
        alive: [AtomicBool; 4],
    }

    impl Shared {
        fn new() -> Arc<Shared> {
            Arc::new(Shared {
                raw: RawMutex::new(),
                data: UnsafeCell::new(0),
                alive: std::array::from_fn(|_| AtomicBool::new(true)),
            })
        }
        fn alive(&self, raw: u32) -> bool {
            self.alive[Token::from_raw(raw).unwrap().slot() as usize].load(Ordering::SeqCst)
        }
        fn increment(&self, me: u32) {
            assert!(self.raw.lock(me, None, &|t| self.alive(t)));
            // loom's UnsafeCell reports any access not ordered by the lock.
            set(&self.data, get(&self.data) + 1);
            self.raw.unlock(me);
        }
    }

    /// Three threads increment under the lock: exclusion, and no lost wake-up (a missed wake
    /// leaves a parked thread forever, which loom reports as a deadlock).
    #[test]
    fn lock_unlock_with_parked_waiters() {
        loom::model(|| {
            let s = Shared::new();
            let handles: Vec<_> = (1..3)
                .map(|slot| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.increment(token(slot).raw()))
                })
                .collect();
            s.increment(token(3).raw());
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(get(&s.data), 3);
            assert_eq!(s.raw.word(), 0);
            assert!(!s.raw.is_poisoned());
        });
    }

    /// The lock word names a dead owner: two lockers race to take it over; exactly one CAS
    /// wins, both get the lock in turn, the mutex ends poisoned.
    #[test]
    fn dead_owner_is_taken_over_once() {
        loom::model(|| {
            let s = Shared::new();
            s.alive[0].store(false, Ordering::SeqCst);
            s.raw.lock.store(token(0).raw(), Ordering::SeqCst);
            let s2 = s.clone();
            let h = loom::thread::spawn(move || s2.increment(token(1).raw()));
            s.increment(token(2).raw());
            h.join().unwrap();
            assert_eq!(get(&s.data), 2);
            assert!(s.raw.is_poisoned());
            assert_eq!(s.raw.word(), 0);
        });
    }

    /// The owner dies while a waiter waits: the waiter's timed park ends slice after slice
    /// (the model clock never reaches the deadline), it re-checks liveness and takes over once
    /// the owner is gone, keeping what the owner wrote.
    #[test]
    fn owner_dying_while_a_waiter_parks() {
        loom::model(|| {
            let s = Shared::new();
            let s2 = s.clone();
            let owner = token(1).raw();
            let h = loom::thread::spawn(move || {
                assert!(s2.raw.lock(owner, None, &|t| s2.alive(t)));
                set(&s2.data, 10);
                // Dies holding the lock: the OS drops its liveness token.
                s2.alive[1].store(false, Ordering::SeqCst);
            });
            let me = token(2).raw();
            assert!(s
                .raw
                .lock(me, Some(Duration::from_secs(1)), &|t| s.alive(t)));
            let seen = get(&s.data);
            let poisoned = s.raw.is_poisoned();
            s.raw.unlock(me);
            h.join().unwrap();
            // Either we locked before the owner did (clean), or after its death (poisoned,
            // with its write kept).
            assert!(
                (seen == 0 && !poisoned) || (seen == 10 && poisoned),
                "{seen} {poisoned}"
            );
        });
    }
}
