//! `BiasedLock<T>`: a process-local lock that costs its first user no locked instruction.
//!
//! A `Connection` end is `Sync`, so its send side and its receive side each need a local lock,
//! yet nearly every program drives a side from one thread. An ordinary mutex costs that thread
//! two locked read-modify-writes per message, and each one drains the store buffer: it waits
//! for the previous message's position store to win its cache line back from the peer core
//! that polls it. On a 16-byte message that wait *is* most of the cost. So the lock is biased
//! to the first thread that takes it, with an asymmetric barrier (the same pattern as
//! [`asym`](super::asym), inside one process):
//!
//! # Words (process-local, one cache line)
//!
//! | word       | written by                                       | meaning                       |
//! |------------|--------------------------------------------------|-------------------------------|
//! | `owner`    | the slow-lock holder                             | `0` none yet, a thread id, or [`UNBIASED`] |
//! | `owner_in` | the owner thread only                            | 1 while it is inside (fast)   |
//! | `revoked`  | the slow-lock holder, once, `0 -> 1`, never back | the fast path is closed       |
//! | `slow`     | any thread (CAS/swap)                            | futex mutex: 0 free, 1 held, 2 held + waiters |
//!
//! **Fast path** (the owner): `owner_in = 1`; barrier; load `revoked` (`Acquire`), then
//! `owner`; if `revoked == 0` and `owner == me`, the lock is held. Release: `owner_in = 0`
//! (`Release`); barrier; if `revoked`, wake whoever waits on `owner_in`. No locked
//! instruction: the barrier is a compiler fence.
//!
//! **Slow path** (everyone else, and the owner once revoked): take `slow`, then by `owner`:
//! `0` -> claim the bias (`owner = me`, `owner_in = 1`, release `slow`: held as the owner
//! holds it); [`UNBIASED`] or `me` -> nothing to do; another thread
//! -> *revoke*: `revoked = 1`, `membarrier(PRIVATE_EXPEDITED)`, wait until `owner_in == 0`,
//! `owner = UNBIASED`. The lock is held while `slow` is held.
//!
//! **Why the owner and a revoker never overlap** (Dekker with an asymmetric barrier): the
//! owner stores `owner_in` then loads `revoked`; the revoker stores `revoked` then loads
//! `owner_in`. `membarrier` makes every running thread of the process execute a full barrier
//! before it returns, at some point P of the owner's program. If the owner's load of
//! `revoked` comes after P it sees 1 and backs out; if it comes before P, its earlier store
//! `owner_in = 1` precedes P and the revoker sees it and waits. A fast attempt that backs out
//! stores `owner_in = 0` and never entered. The same argument, the other way round, makes
//! the owner's release wake a revoker that went to sleep on `owner_in`: either the owner's
//! load of `revoked` follows P (it wakes), or its store `owner_in = 0` precedes P (the
//! revoker sees 0 and does not sleep; `FUTEX_WAIT` re-checks the word in the kernel).
//!
//! `owner` is loaded *after* `revoked` (`Acquire`): a thread that still believes it is the
//! owner after a revocation either reads `revoked == 1` or, having read the old 0 before P,
//! made the revoker wait for it. Revocation is final (a second thread ever taking the lock
//! makes it an ordinary futex mutex for good), so `owner_in` has one writer at any time:
//! the bias holder, or a stale one that backs out before anyone else could own the fast path.
//! A program that takes a side from two threads therefore pays one `membarrier` (a few µs)
//! once, then what `std::sync::Mutex` costs.
//!
//! **Re-entry**: the owner thread finding `owner_in == 1` on its fast path already holds the
//! lock, and panics rather than hand out a second `&mut T`.
//!
//! **Orderings of the protected data**: owner -> owner is program order; owner -> revoker is
//! the owner's `Release` store of `owner_in = 0` read by the revoker's `Acquire` load; slow ->
//! slow is the futex mutex's `Acquire` CAS/swap and `Release` swap; the bias claim happens
//! under `slow`, and its section ends with a fast release (`owner_in = 0`, `Release`).
//!
//! Without `membarrier` (old kernels, seccomp) the lock starts revoked: an ordinary futex
//! mutex. Under loom both barriers are `fence(SeqCst)` (the symmetric form of the same
//! argument), and the models below check exclusion across a bias claim and a revocation.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};

use crate::loom::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use crate::loom::futex;
use crate::loom::hint;

/// `owner` once the bias is revoked.
pub(crate) const UNBIASED: u64 = u64::MAX;

/// Spin polls on `slow` before sleeping on it.
const SLOW_SPINS: u32 = 64;

/// A process-local lock biased to its first user (see the module docs).
pub(crate) struct BiasedLock<T> {
    owner: AtomicU64,
    owner_in: AtomicU32,
    revoked: AtomicU32,
    slow: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one thread at a time (module docs), so sharing it
// moves `T` between threads: `T: Send` is what is needed, as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for BiasedLock<T> {}
// SAFETY: as above: owning the lock owns the `T`.
unsafe impl<T: Send> Send for BiasedLock<T> {}

impl<T> BiasedLock<T> {
    /// A lock around `value`, biased to its first user if this process can issue private
    /// expedited membarriers, else an ordinary futex mutex.
    pub(crate) fn new(value: T) -> BiasedLock<T> {
        BiasedLock::with_bias(value, private_barriers())
    }

    /// A lock that may be biased (`biasable`) or is revoked from the start.
    pub(crate) fn with_bias(value: T, biasable: bool) -> BiasedLock<T> {
        BiasedLock {
            owner: AtomicU64::new(if biasable { 0 } else { UNBIASED }),
            owner_in: AtomicU32::new(0),
            revoked: AtomicU32::new(u32::from(!biasable)),
            slow: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock for the calling thread.
    #[inline]
    pub(crate) fn lock(&self) -> BiasedGuard<'_, T> {
        self.lock_as(thread_id())
    }

    /// Takes the lock for the thread whose id is `me` (never 0 nor [`UNBIASED`], unique to
    /// the calling thread among the lock's users).
    #[inline]
    pub(crate) fn lock_as(&self, me: u64) -> BiasedGuard<'_, T> {
        if self.owner.load(Relaxed) == me {
            // Only this thread writes `owner_in` while it owns the bias, so a 1 here means this
            // thread holds the lock already: a second guard would alias the first one's `&mut T`.
            // (Past the bias, a re-lock deadlocks on the futex instead, as `std::sync::Mutex`
            // may.)
            assert!(
                self.owner_in.load(Relaxed) == 0,
                "a local lock taken again by the thread that holds it (e.g. a Pipe end used \
                 from inside its own send_with/recv_with closure)"
            );
            self.owner_in.store(1, Relaxed);
            light_barrier();
            let revoked = self.revoked.load(Acquire);
            if revoked == 0 && self.owner.load(Relaxed) == me {
                return BiasedGuard {
                    lock: self,
                    fast: true,
                };
            }
            self.release_fast();
        }
        self.lock_slow(me)
    }

    #[cold]
    fn lock_slow(&self, me: u64) -> BiasedGuard<'_, T> {
        self.take_slow();
        let owner = self.owner.load(Relaxed);
        if owner == 0 {
            // Only slow-lock holders write `owner`; the owner-to-be is us. We hold on as the
            // owner does (`owner_in = 1`), so that a re-lock by this thread meets the check of
            // the fast path, and hand `slow` back: a revoker takes `slow` after us (`Acquire`
            // of our `Release`), so it sees `owner_in = 1` and waits for our release.
            self.owner.store(me, Relaxed);
            self.owner_in.store(1, Relaxed);
            self.release_slow();
            return BiasedGuard {
                lock: self,
                fast: true,
            };
        } else if owner != UNBIASED && owner != me {
            self.revoke();
        }
        BiasedGuard {
            lock: self,
            fast: false,
        }
    }

    /// Closes the fast path for good and waits for its last user to leave (slow held).
    #[cold]
    fn revoke(&self) {
        self.revoked.store(1, Relaxed);
        heavy_barrier();
        while self.owner_in.load(Acquire) != 0 {
            // The owner wakes us on release when it sees `revoked` (module docs); the timed
            // wait is a belt: a wake lost to a refused membarrier costs one slice.
            let _ = futex::wait(
                &self.owner_in,
                1,
                Some(futex::now().saturating_add(super::wait::SLICE)),
            );
        }
        self.owner.store(UNBIASED, Relaxed);
    }

    #[inline]
    fn release_fast(&self) {
        self.owner_in.store(0, Release);
        light_barrier();
        if self.revoked.load(Relaxed) != 0 {
            futex::wake(&self.owner_in, 1);
        }
    }

    fn take_slow(&self) {
        if self.slow.compare_exchange(0, 1, Acquire, Relaxed).is_ok() {
            return;
        }
        for _ in 0..SLOW_SPINS {
            hint::spin_loop();
            if self.slow.load(Relaxed) == 0
                && self.slow.compare_exchange(0, 1, Acquire, Relaxed).is_ok()
            {
                return;
            }
        }
        // Drepper's mutex: 2 says "someone may sleep", so the unlocker wakes one.
        while self.slow.swap(2, Acquire) != 0 {
            let _ = futex::wait(&self.slow, 2, None);
        }
    }

    fn release_slow(&self) {
        if self.slow.swap(0, Release) == 2 {
            futex::wake(&self.slow, 1);
        }
    }

    /// True while the fast path is open (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_biased(&self) -> bool {
        self.revoked.load(Relaxed) == 0
    }
}

/// Proof of holding a [`BiasedLock`]; derefs to the data, releases on drop.
pub(crate) struct BiasedGuard<'a, T> {
    lock: &'a BiasedLock<T>,
    fast: bool,
}

impl<T> Deref for BiasedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access (module docs) for its lifetime.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for BiasedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference from this guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for BiasedGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.fast {
            self.lock.release_fast();
        } else {
            self.lock.release_slow();
        }
    }
}

/// The owner's barrier: a compiler fence (the revoker's `membarrier` supplies the hardware
/// one); `fence(SeqCst)` under loom.
#[inline(always)]
fn light_barrier() {
    #[cfg(not(loom))]
    crate::loom::atomic::compiler_fence(crate::loom::atomic::Ordering::SeqCst);
    #[cfg(loom)]
    crate::loom::atomic::fence(crate::loom::atomic::Ordering::SeqCst);
}

/// The revoker's barrier: `membarrier(PRIVATE_EXPEDITED)`, which includes a full barrier on
/// the calling thread; `fence(SeqCst)` under loom.
fn heavy_barrier() {
    crate::loom::atomic::fence(crate::loom::atomic::Ordering::SeqCst);
    #[cfg(not(loom))]
    if let Err(e) = crate::sys::membarrier::private_expedited() {
        // Registered in `private_barriers` before any lock could be biased, so the kernel
        // accepts the command; only a seccomp filter installed since could refuse it. Without
        // the barrier the owner's `owner_in = 1` may still sit in its store buffer while it
        // enters: going on could let two threads hold the lock, so stop the process instead.
        eprintln!("interproc: membarrier(PRIVATE_EXPEDITED) refused after registration ({e}); aborting rather than risk two holders of a local lock");
        std::process::abort();
    }
}

/// True if this process can issue private expedited membarriers (registers once).
#[cfg(not(loom))]
fn private_barriers() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| crate::sys::membarrier::register_private_expedited().is_ok())
}

#[cfg(loom)]
fn private_barriers() -> bool {
    true
}

/// A number unique to the calling thread for the life of the process (never 0 nor
/// [`UNBIASED`]).
#[inline]
fn thread_id() -> u64 {
    // Not a protocol word: it only hands out distinct numbers, so std's atomic is named here.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    #[cfg(not(loom))]
    thread_local! {
        // Const-initialised (no lazy-init check on access); 0 until first use.
        static ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    #[cfg(loom)]
    loom::thread_local! {
        static ID: std::cell::Cell<u64> = std::cell::Cell::new(0);
    }
    ID.with(|id| match id.get() {
        0 => {
            let fresh = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            id.set(fresh);
            fresh
        }
        known => known,
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn first_user_is_biased_and_a_second_thread_revokes() {
        let lock = Arc::new(BiasedLock::new(0u64));
        for _ in 0..1000 {
            *lock.lock() += 1;
        }
        let biased = lock.is_biased();
        let other = Arc::clone(&lock);
        std::thread::spawn(move || *other.lock() += 1)
            .join()
            .unwrap();
        assert_eq!(*lock.lock(), 1001);
        assert!(!lock.is_biased(), "a second thread revokes the bias");
        // Biased until then exactly when this kernel lets the process issue the barrier.
        assert_eq!(biased, private_barriers());
    }

    #[test]
    fn threads_hammering_never_lose_an_increment() {
        for biasable in [true, false] {
            let lock = Arc::new(BiasedLock::with_bias(
                (0u64, 0u64),
                biasable && private_barriers(),
            ));
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let lock = Arc::clone(&lock);
                    std::thread::spawn(move || {
                        for _ in 0..20_000 {
                            let mut g = lock.lock();
                            // Two words that only move together: a torn view means two holders.
                            assert_eq!(g.0, g.1);
                            g.0 += 1;
                            hint::spin_loop();
                            g.1 += 1;
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(*lock.lock(), (60_000, 60_000));
        }
    }

    #[test]
    fn owner_keeps_working_while_another_thread_revokes() {
        let lock = Arc::new(BiasedLock::new(0u64));
        *lock.lock() += 1; // main is the owner
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let other = {
            let (lock, stop, done) = (Arc::clone(&lock), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    *lock.lock() += 1;
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        // The owner keeps locking until the other thread got in at least once (it revoked
        // the bias meanwhile), and for 50 000 rounds at least.
        let mut mine = 1u64;
        while mine <= 50_000 || done.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            *lock.lock() += 1;
            mine += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        other.join().unwrap();
        let theirs = done.load(std::sync::atomic::Ordering::Relaxed);
        assert!(theirs > 0);
        assert!(!lock.is_biased(), "the other thread revoked the bias");
        assert_eq!(*lock.lock(), mine + theirs);
    }

    #[test]
    fn the_holder_locking_again_panics_instead_of_aliasing() {
        let lock = BiasedLock::new(0u64);
        let guard = lock.lock();
        if !lock.is_biased() {
            // Without the bias the lock is a futex mutex, and a re-lock would deadlock.
            eprintln!("private membarrier unavailable: nothing to check here");
            return;
        }
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(lock.lock())));
        assert!(again.is_err(), "a second guard for the holding thread");
        drop(guard);
        *lock.lock() += 1;
        assert_eq!(
            *lock.lock(),
            1,
            "the lock still works after the refused re-lock"
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// The owner (id 1) claims the bias, then takes the fast path while thread 2 revokes:
    /// the two critical sections never overlap (loom's `UnsafeCell` inside `BiasedLock`
    /// would report it) and no increment is lost.
    #[test]
    fn bias_claim_fast_path_and_revocation_exclude_each_other() {
        loom::model(|| {
            let lock = Arc::new(BiasedLock::with_bias(
                loom::cell::UnsafeCell::new(0u32),
                true,
            ));
            let other = {
                let lock = Arc::clone(&lock);
                loom::thread::spawn(move || {
                    let g = lock.lock_as(2);
                    // SAFETY: the guard makes this the only access (what the model checks).
                    g.with_mut(|v| unsafe { *v += 1 });
                })
            };
            for _ in 0..2 {
                let g = lock.lock_as(1);
                // SAFETY: the guard makes this the only access (what the model checks).
                g.with_mut(|v| unsafe { *v += 1 });
            }
            other.join().unwrap();
            let g = lock.lock_as(1);
            // SAFETY: as above.
            assert_eq!(g.with(|v| unsafe { *v }), 3);
        });
    }

    /// Three users: the bias is claimed by whoever comes first and revoked by the next; the
    /// third finds an ordinary mutex.
    #[test]
    fn three_users_share_one_lock() {
        loom::model(|| {
            let lock = Arc::new(BiasedLock::with_bias(
                loom::cell::UnsafeCell::new(0u32),
                true,
            ));
            let handles: Vec<_> = (2..4)
                .map(|id| {
                    let lock = Arc::clone(&lock);
                    loom::thread::spawn(move || {
                        let g = lock.lock_as(id);
                        // SAFETY: the guard makes this the only access (what the model checks).
                        g.with_mut(|v| unsafe { *v += 1 });
                    })
                })
                .collect();
            {
                let g = lock.lock_as(1);
                // SAFETY: the guard makes this the only access (what the model checks).
                g.with_mut(|v| unsafe { *v += 1 });
            }
            for h in handles {
                h.join().unwrap();
            }
            let g = lock.lock_as(1);
            // SAFETY: as above.
            assert_eq!(g.with(|v| unsafe { *v }), 3);
        });
    }
}
