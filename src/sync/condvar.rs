//! `Condvar`: a condition variable shared by name, used with any interproc [`Mutex`].
//!
//! # Layout of the body
//!
//! ```text
//! offset  size  word      written by                     meaning
//!      0     4  seq       notifiers (fetch_add)          the futex word: bumped by every notify
//!      4     4  waiters   waiters (fetch_add/fetch_sub)  how many may be waiting: a hint only
//!      8   120  (padding, atomics, never touched)
//! ```
//!
//! # Protocol
//!
//! A futex on a sequence counter, the shape of Rust std's own futex condvar; no waiter keeps
//! any record in shared memory beyond one counter that is only a hint:
//!
//! - `wait`: `waiters += 1`, then load `seq` **while still holding the mutex**, then unlock
//!   the mutex, then sleep while `seq` still reads what was loaded (bounded spin, then futex
//!   parks in 20 ms slices, re-checking `seq` each time), then `waiters -= 1` and re-lock.
//! - `notify_one` / `notify_all`: `seq += 1`, then, if `waiters != 0`, `FUTEX_WAKE` 1 / all.
//!
//! No lost wake-ups: a notifier that changes the predicate under the mutex does so after the
//! waiter's unlock, so its `seq += 1` follows the waiter's load of `seq` (mutex Release/Acquire
//! orders them) and the waiter's futex sees a different value or receives the wake; the
//! waiter's `waiters += 1` precedes its unlock, so the notifier sees it and issues the wake.
//! For notifiers that skip the mutex it is a store-buffer pattern (the waiter writes `waiters`
//! then reads `seq`, the notifier writes `seq` then reads `waiters`): all four are `SeqCst`,
//! and the notifier reads `waiters` with an RMW (`fetch_add(0)`, which reads the latest value),
//! so at least one side sees the other even under acquire/release reasoning.
//!
//! Spurious wake-ups happen, as std allows: a `notify_one` may return more than one waiter
//! (those that had not gone to sleep yet, and, within a slice, sleepers that see `seq` moved).
//! Use [`Condvar::wait_while`] or re-check the predicate in a loop.
//!
//! # Dead peers
//!
//! A waiter that dies leaves `waiters` one too high: notifiers then make a wake syscall that
//! wakes nobody, nothing worse. A notifier that dies between `seq += 1` and the wake costs the
//! sleepers at most one slice: they see `seq` moved when the slice ends. A mutex holder that
//! dies is handled by the mutex: the re-lock at the end of `wait` takes it over and returns
//! `Err(PoisonError)`.
//!
//! # One mutex per condvar
//!
//! As in std, a condvar is meant to be used with one mutex (by every process). Using two
//! mutexes with one condvar is not detected (std panics); it only makes wake-ups spurious.

use std::fmt;
use std::sync::LockResult;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::mutex::{lock_result, MutexGuard};
use super::wait::{self, Park, Wait};
use crate::error::Result;
use crate::loom::atomic::{AtomicU32, Ordering};
use crate::object::{self, Object};
use crate::region::{Kind, LayoutFn, Region, Shared, Spec};

/// Bytes of the body: one 128-byte line.
const BODY_LEN: u64 = 128;

/// The two shared words of a condvar (see the module doc).
#[repr(C)]
pub(crate) struct RawCondvar {
    /// Bumped by every notify; the futex word waiters sleep on.
    seq: AtomicU32,
    /// Waiters that may be asleep (a hint: only used to skip a wake syscall).
    waiters: AtomicU32,
}

impl RawCondvar {
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> RawCondvar {
        RawCondvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Waits for a notification: `unlock` releases the caller's mutex after the sequence was
    /// read; the caller re-locks afterwards. True if `timeout` ran out first.
    pub(crate) fn wait(&self, unlock: impl FnOnce(), timeout: Option<Duration>) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let seq = self.seq.load(Ordering::SeqCst);
        unlock();
        let mut w = wait::waiter(timeout);
        let timed_out = loop {
            if self.seq.load(Ordering::Acquire) != seq {
                break false;
            }
            if w.spin() {
                continue;
            }
            match w.park(&self.seq, seq) {
                Park::Woken | Park::Slice => {}
                Park::TimedOut => break true,
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        timed_out
    }

    /// Wakes up to `n` waiters.
    pub(crate) fn notify(&self, n: u32) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        // An RMW read (the line is ours already after the `seq` RMW): it sees the latest
        // `waiters`, so a waiter that missed our `seq` bump is seen here even under
        // acquire/release reasoning (see the module doc).
        if self.waiters.fetch_add(0, Ordering::SeqCst) != 0 {
            wait::wake(&self.seq, n);
        }
    }
}

/// The body: the two words, padded to a line.
#[repr(C)]
struct CondvarHead {
    raw: RawCondvar,
    _pad: [AtomicU32; 30],
}

// SAFETY: repr(C), atomics only (padding included), 128 bytes, alignment 4.
unsafe impl Shared for CondvarHead {}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<CondvarHead>() == BODY_LEN as usize);

/// Body bytes a condvar spec needs.
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    (spec.capacity == 1 && spec.elem_size == 0 && spec.elem_align == 1).then_some(BODY_LEN)
}

/// What `interproc inspect` shows of a condvar (relaxed loads only).
#[allow(dead_code)] // called by the CLI
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let raw = &region.body::<CondvarHead>(0).raw;
    vec![
        ("waiters", raw.waiters.load(Ordering::Relaxed).to_string()),
        ("notifications", raw.seq.load(Ordering::Relaxed).to_string()),
    ]
}

/// Whether a timed wait on a [`Condvar`] ran out of time (std's type of the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout elapsed.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable shared by name between processes, used with an interproc
/// [`Mutex`](crate::Mutex) (any `T`; one mutex per condvar, as in std).
///
/// The counterpart of `std::sync::Condvar`: `wait*` take the guard by value, release the
/// mutex while sleeping, and return it re-locked, as `Err(PoisonError)` if the mutex is
/// poisoned by then (for instance because its holder died meanwhile). Waits may wake
/// spuriously; loop on the predicate or use [`Condvar::wait_while`].
///
/// # Examples
/// ```
/// use interproc::{Condvar, Mutex};
/// use std::time::Duration;
/// let ready = Mutex::<u32>::create("doc-cv-mutex", 0)?;
/// let cv = Condvar::create("doc-cv")?;
/// // Another process: set `*ready.lock().unwrap() = 1` and call `cv.notify_all()`.
/// let (g, res) = cv
///     .wait_timeout_while(ready.lock().unwrap(), Duration::from_millis(10), |r| *r == 0)
///     .unwrap();
/// assert!(res.timed_out() && *g == 0);
/// # Ok::<(), interproc::Error>(())
/// ```
pub struct Condvar {
    region: Region,
}

impl Object for Condvar {
    type Args = ();
    const KIND: Kind = Kind::Condvar;
    const LAYOUT: &'static LayoutFn = &layout;

    fn attach(region: Region) -> Result<Condvar> {
        Ok(Condvar { region })
    }
}

impl Condvar {
    /// Creates the condvar `name`.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str) -> Result<Condvar> {
        object::create(name, ())
    }

    /// Opens the existing condvar `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound); [`Error::Incompatible`](crate::Error::Incompatible)
    /// if `name` is another kind of object; [`Error::Corrupted`](crate::Error::Corrupted).
    pub fn open(name: &str) -> Result<Condvar> {
        object::open(name)
    }

    /// Opens `name`, creating it if it does not exist (race-free).
    ///
    /// # Errors
    /// As [`Condvar::open`] and [`Condvar::create`].
    pub fn open_or_create(name: &str) -> Result<Condvar> {
        object::open_or_create(name, ())
    }

    fn raw(&self) -> &RawCondvar {
        &self.region.body::<CondvarHead>(0).raw
    }

    /// Unlocks the guard's mutex, waits (at most `timeout`), re-locks. True if timed out.
    fn wait_inner<T: Pod>(&self, guard: &MutexGuard<'_, T>, timeout: Option<Duration>) -> bool {
        let mutex = guard.mutex();
        let timed_out = self.raw().wait(|| mutex.raw().unlock(mutex.me()), timeout);
        // The guard still exists but the lock is not held until this returns; nothing
        // dereferences it meanwhile.
        mutex.lock_raw();
        timed_out
    }

    /// Releases the guard's mutex, sleeps until notified, then re-locks and returns the guard.
    ///
    /// # Errors
    /// `Err(PoisonError)` (holding the re-locked guard) if the mutex is poisoned.
    pub fn wait<'a, T: Pod>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_inner(&guard, None);
        lock_result(guard.mutex().is_poisoned(), guard)
    }

    /// As [`Condvar::wait`], but gives up after `timeout` (the re-lock itself is not timed,
    /// as in std).
    ///
    /// # Errors
    /// `Err(PoisonError)` (holding the guard and the timeout result) if the mutex is poisoned.
    pub fn wait_timeout<'a, T: Pod>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let timed_out = WaitTimeoutResult(self.wait_inner(&guard, Some(timeout)));
        lock_result(guard.mutex().is_poisoned(), (guard, timed_out))
    }

    /// Waits while `condition` holds for the data, re-checking after every wake-up.
    ///
    /// # Errors
    /// `Err(PoisonError)` as soon as a re-lock finds the mutex poisoned.
    pub fn wait_while<'a, T: Pod, F: FnMut(&mut T) -> bool>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>> {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Waits while `condition` holds, for at most `timeout` in total.
    ///
    /// # Errors
    /// `Err(PoisonError)` as soon as a re-lock finds the mutex poisoned.
    pub fn wait_timeout_while<'a, T: Pod, F: FnMut(&mut T) -> bool>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let start = Instant::now();
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            let Some(left) = timeout.checked_sub(start.elapsed()) else {
                return Ok((guard, WaitTimeoutResult(true)));
            };
            guard = self.wait_timeout(guard, left)?.0;
        }
    }

    /// Wakes one waiting thread (of any process), if any. Others may wake spuriously.
    pub fn notify_one(&self) {
        self.raw().notify(1);
    }

    /// Wakes every waiting thread of every process.
    pub fn notify_all(&self) {
        self.raw().notify(u32::MAX);
    }

    object::name_and_persist!();
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        object::debug_struct(f, "Condvar", &self.region).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Mutex;

    fn name(tag: &str) -> String {
        crate::test_names::unit("condvar", tag)
    }

    #[test]
    fn notify_wakes_a_thread_waiting_through_another_handle() {
        let m = Mutex::<u32>::create(&name("m"), 0).unwrap();
        let cv = Condvar::create(&name("cv")).unwrap();
        let (m2, cv2) = (
            Mutex::<u32>::open(m.name()).unwrap(),
            Condvar::open(cv.name()).unwrap(),
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                let g = cv2.wait_while(m2.lock().unwrap(), |v| *v == 0).unwrap();
                assert_eq!(*g, 1);
            });
            std::thread::sleep(Duration::from_millis(20));
            *m.lock().unwrap() = 1;
            cv.notify_one();
        });
        assert_eq!(cv.raw().waiters.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn wait_timeout_times_out_and_keeps_the_lock() {
        let m = Mutex::<u32>::create(&name("to"), 0).unwrap();
        let cv = Condvar::open_or_create(&name("to-cv")).unwrap();
        let start = Instant::now();
        let (g, r) = cv
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(50))
            .unwrap();
        assert!(r.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(m.try_lock().is_err(), "the guard came back locked");
        drop(g);
        assert!(format!("{cv:?}").contains("condvar"));
        assert!(inspect(&cv.region).contains(&("waiters", "0".to_string())));
    }

    #[test]
    fn layout_accepts_only_the_condvar_shape() {
        let mut spec = object::spec::<Condvar>(()).unwrap();
        assert_eq!(layout(&spec), Some(BODY_LEN));
        spec.elem_size = 4;
        assert_eq!(layout(&spec), None);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::super::mutex::RawMutex;
    use super::*;
    use crate::sync::model::{get, set, token};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    struct Shared {
        m: RawMutex,
        cv: RawCondvar,
        ready: UnsafeCell<bool>,
    }

    fn wait_for_ready(s: &Shared, me: u32) {
        let alive = |_| true;
        assert!(s.m.lock(me, None, &alive));
        while !get(&s.ready) {
            s.cv.wait(|| s.m.unlock(me), None);
            assert!(s.m.lock(me, None, &alive));
        }
        s.m.unlock(me);
    }

    fn set_ready(s: &Shared, me: u32, notify_under_lock: bool) {
        assert!(s.m.lock(me, None, &|_| true));
        set(&s.ready, true);
        if notify_under_lock {
            s.cv.notify(1);
            s.m.unlock(me);
        } else {
            s.m.unlock(me);
            s.cv.notify(1);
        }
    }

    fn model(notify_under_lock: bool) {
        loom::model(move || {
            let s = Arc::new(Shared {
                m: RawMutex::new(),
                cv: RawCondvar::new(),
                ready: UnsafeCell::new(false),
            });
            let s2 = s.clone();
            let waiter = loom::thread::spawn(move || wait_for_ready(&s2, token(1).raw()));
            set_ready(&s, token(2).raw(), notify_under_lock);
            // A lost wake-up leaves the waiter parked forever: loom reports a deadlock.
            waiter.join().unwrap();
        });
    }

    #[test]
    fn no_lost_wakeup_notify_after_unlock() {
        model(false);
    }

    #[test]
    fn no_lost_wakeup_notify_under_lock() {
        model(true);
    }
}
