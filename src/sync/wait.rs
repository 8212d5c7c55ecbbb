//! The one wait loop every blocking call uses: a short bounded spin, then futex parks in slices.
//!
//! A blocking operation is written as
//!
//! ```text
//! let mut w = Waiter::new(timeout);
//! loop {
//!     if let Some(done) = try_it() { return done }        // fast path, no syscall
//!     if w.spin() { continue }                            // bounded spin/yield phase
//!     announce "I park" on the word, re-check try_it()    // primitive-specific
//!     match w.park(&word, observed) {
//!         Park::Woken => {}                               // re-check
//!         Park::Slice => check the peer's liveness        // at most every SLICE
//!         Park::TimedOut => return Err(timeout),
//!     }
//! }
//! ```
//!
//! The spin phase has two schedules: [`Waiter::new`] / [`Waiter::with_spin`] (polls, then a
//! doubling spin and a few yields) for waits on a peer's progress, and [`Waiter::for_lock`] (a
//! few sparse looks, each a pause and a yield) for lock acquisitions, where frequent looks hand
//! the lock over on every short critical section.
//!
//! Parking never lasts longer than [`SLICE`]: a missed wake-up (a peer that died between
//! publishing and waking, or a scribbled word) costs at most one slice, and every slice end is a
//! chance to check whether the peer still lives. While nobody waits, none of this runs.
//! The deadline is an absolute `CLOCK_MONOTONIC` time computed once, so spurious wake-ups never
//! stretch a timeout.

use std::time::Duration;

use crate::loom::atomic::{AtomicU32, Ordering};
use crate::loom::futex::{self, WaitResult};
use crate::loom::hint;

/// The longest a waiter sleeps before it re-checks the peer's liveness and its condition.
pub const SLICE: Duration = Duration::from_millis(20);

/// Spin steps (each doubling its `spin_loop` count) before yielding.
const SPIN_STEPS: u32 = 6;
/// Yield steps after spinning, before parking.
const YIELD_STEPS: u32 = 4;

/// Steps of a lock waiter's spin phase ([`Waiter::for_lock`]) before it parks.
const LOCK_STEPS: u32 = 4;
/// `spin_loop` hints per lock waiter step, before the step's yield.
const LOCK_PAUSES: u32 = 32;

/// Polls (one `spin_loop` hint apart) a queue's blocking call makes before the default backoff
/// and the futex sleep ([`Waiter::with_spin`]): about 5 µs on current x86 cores (a `pause`
/// takes ~40 ns), longer than a round trip to a peer that is running, far shorter than a sleep
/// and a wake-up (~20 µs here).
pub const QUEUE_SPIN_POLLS: u32 = 128;

/// In the poll phase of [`Waiter::with_spin`], one poll in this many yields the CPU instead
/// of pausing: on an idle core a `sched_yield` returns in well under a microsecond, and when
/// the peer shares this core it gets to run after ~1 µs of polling instead of after the whole
/// phase (which would make every hand-over cost the phase plus a futex sleep and wake-up).
const POLLS_PER_YIELD: u32 = 32;

/// Why [`Waiter::park`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Park {
    /// Woken, or the word had already changed: re-check the condition.
    Woken,
    /// A slice ran out without a wake-up: check liveness, then re-check the condition.
    Slice,
    /// The deadline passed.
    TimedOut,
}

/// State of one blocking call: its deadline and how far its backoff has gone.
#[derive(Debug)]
pub struct Waiter {
    deadline: Option<Duration>,
    /// Polls left before the doubling backoff (see [`Waiter::with_spin`]).
    polls: u32,
    step: u32,
    /// The spin schedule of a lock acquisition ([`Waiter::for_lock`]).
    lock: bool,
}

impl Waiter {
    /// A waiter that gives up after `timeout` (`None`: never).
    pub fn new(timeout: Option<Duration>) -> Waiter {
        Waiter::with_spin(timeout, 0)
    }

    /// A waiter whose spin phase starts with `polls` steps of a single `spin_loop` hint each
    /// (the caller re-checks its condition after every one), before the usual doubling spin,
    /// yields and park. For callers whose peer usually answers within microseconds (a queue
    /// endpoint waiting for the next message): a sleep costs both sides a syscall and the
    /// sleeper a wake-up latency of tens of microseconds, so spinning a few microseconds
    /// first pays off. The phase stays bounded: at most `polls` hints (about 40 ns each on
    /// current x86 cores, a few ns on older ones) plus the default budget.
    pub fn with_spin(timeout: Option<Duration>, polls: u32) -> Waiter {
        Waiter {
            deadline: timeout.map(|t| futex::now().saturating_add(t)),
            polls,
            step: 0,
            lock: false,
        }
    }

    /// A waiter for a lock acquisition: its spin phase is a few steps of [`LOCK_PAUSES`]
    /// `spin_loop` hints and a yield each, with no short steps, and then it parks.
    ///
    /// Every look at a held lock word takes its cache line from the holder, and because the
    /// holder's releasing CAS keeps the line until it completes, a look that is waiting for the
    /// line tends to be answered with the word just released: the waiter then takes the lock
    /// over and the holder, which was about to lock again, becomes the waiter. Each such
    /// hand-over moves the lock and data lines between cores (hundreds of nanoseconds), so a
    /// waiter that looks often makes every short critical section pay it. Looking once every
    /// microsecond or two, and parking after a few microseconds, lets a holder that locks
    /// repeatedly run on: two pinned processes incrementing under one `Mutex` went from 17-22 M
    /// to 48-56 M lock/unlock pairs per second on the 2-vCPU EPYC VM (`interproc bench --filter
    /// mutex`), against 17 M for a robust pthread mutex (16 hints per step gave 39-49 M). A
    /// waiter for a long critical section notices the release at most one step (~1.5 µs) late
    /// while it spins.
    #[cfg_attr(loom, allow(dead_code))]
    pub fn for_lock(timeout: Option<Duration>) -> Waiter {
        Waiter {
            lock: true,
            ..Waiter::with_spin(timeout, 0)
        }
    }

    /// A waiter that never spins: its first [`spin`](Self::spin) says "park". For callers
    /// that asked not to poll (more processes than cores, or power over latency).
    pub fn without_spin(timeout: Option<Duration>) -> Waiter {
        Waiter {
            step: SPIN_STEPS + YIELD_STEPS,
            ..Waiter::with_spin(timeout, 0)
        }
    }

    /// One backoff step. Returns `false` once the spin budget is spent: park next.
    pub fn spin(&mut self) -> bool {
        if self.lock {
            if self.step >= LOCK_STEPS {
                return false;
            }
            for _ in 0..LOCK_PAUSES {
                hint::spin_loop();
            }
            hint::yield_now();
            self.step += 1;
            return true;
        }
        if self.polls > 0 {
            self.polls -= 1;
            if self.polls % POLLS_PER_YIELD == 0 {
                // The peer may be waiting for this very CPU (two processes on one core):
                // let it run now rather than after the whole poll phase.
                hint::yield_now();
            } else {
                hint::spin_loop();
            }
            return true;
        }
        if self.step < SPIN_STEPS {
            for _ in 0..(1u32 << self.step) {
                hint::spin_loop();
            }
        } else if self.step < SPIN_STEPS + YIELD_STEPS {
            hint::yield_now();
        } else {
            return false;
        }
        self.step += 1;
        true
    }

    /// True once the deadline has passed.
    pub fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| futex::now() >= d)
    }

    /// Sleeps while `*word == expected`, for at most one [`SLICE`] and never past the deadline.
    pub fn park(&mut self, word: &AtomicU32, expected: u32) -> Park {
        let now = futex::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return Park::TimedOut;
        }
        let slice_end = now.saturating_add(SLICE);
        let until = match self.deadline {
            Some(d) if d < slice_end => d,
            _ => slice_end,
        };
        match futex::wait(word, expected, Some(until)) {
            WaitResult::Woken | WaitResult::ValueChanged => Park::Woken,
            WaitResult::TimedOut if self.timed_out() => Park::TimedOut,
            WaitResult::TimedOut => Park::Slice,
        }
    }
}

/// The two steps of a blocking loop, so a protocol core can be written once and run with the
/// real [`Waiter`] or, under loom, with a model waiter that parks without a deadline (so a lost
/// wake-up shows up as a deadlock loom reports) or that times out on demand.
pub trait Wait {
    /// One backoff step; `false` once the caller should park.
    fn spin(&mut self) -> bool;
    /// Sleeps while `*word == expected`, at most one slice.
    fn park(&mut self, word: &AtomicU32, expected: u32) -> Park;
}

impl Wait for Waiter {
    fn spin(&mut self) -> bool {
        Waiter::spin(self)
    }
    fn park(&mut self, word: &AtomicU32, expected: u32) -> Park {
        Waiter::park(self, word, expected)
    }
}

/// The waiter of a protocol core that is handed a timeout rather than a [`Wait`] (the condvar,
/// which makes its waiter on the slow path only, so that an uncontended call never reads the
/// clock): [`Waiter::new`], or under loom `ModelWaiter::for_timeout`. The locks use
/// [`lock_waiter`].
#[cfg(not(loom))]
pub(crate) fn waiter(timeout: Option<Duration>) -> impl Wait {
    Waiter::new(timeout)
}

/// Under loom: [`ModelWaiter::for_timeout`] (see the non-loom twin).
#[cfg(loom)]
pub(crate) fn waiter(timeout: Option<Duration>) -> impl Wait {
    ModelWaiter::for_timeout(timeout)
}

/// The waiter of a lock acquisition (the mutex and the rwlock): [`Waiter::for_lock`], or under
/// loom `ModelWaiter::for_timeout` (loom models never spin).
#[cfg(not(loom))]
pub(crate) fn lock_waiter(timeout: Option<Duration>) -> impl Wait {
    Waiter::for_lock(timeout)
}

/// Under loom: [`ModelWaiter::for_timeout`] (see the non-loom twin).
#[cfg(loom)]
pub(crate) fn lock_waiter(timeout: Option<Duration>) -> impl Wait {
    ModelWaiter::for_timeout(timeout)
}

/// A [`Wait`] for loom models: never spins (spinning only multiplies interleavings); parks
/// untimed on the model futex (`crate::loom::futex`, which wakes at most `n` waiters as the
/// kernel does: a protocol that loses a wake-up deadlocks the model, and loom reports it,
/// instead of being rescued by the next slice), or, with `slices`, returns [`Park::Slice`] at
/// once (the model of "a slice ran out": the caller re-checks liveness); after `parks` parks it
/// reports [`Park::TimedOut`].
#[cfg(loom)]
#[derive(Debug)]
pub struct ModelWaiter {
    /// Park in slices (yield, then `Slice`) instead of blocking.
    pub slices: bool,
    /// Parks left before `TimedOut` (`None`: never times out).
    pub parks: Option<u32>,
    /// Report a wake from an untimed park as [`Park::Slice`] too, so the caller re-checks
    /// liveness after every park.
    pub wake_as_slice: bool,
}

#[cfg(loom)]
impl ModelWaiter {
    /// Blocks untimed on every park, never times out (the models of the cores that take a
    /// [`Wait`]).
    #[cfg(test)]
    pub fn blocking() -> ModelWaiter {
        ModelWaiter {
            slices: false,
            parks: None,
            wake_as_slice: false,
        }
    }

    /// The model of `Waiter::new(timeout)` / `Waiter::for_lock(timeout)` that [`waiter`] and
    /// [`lock_waiter`] give the condvar and the lock cores under loom (loom models never spin). An
    /// *untimed* wait blocks on the model futex. A *timed* wait returns from every park at
    /// once, as if a slice had ended (the model clock never reaches a deadline), which lets
    /// models explore the liveness re-check that a slice end triggers. Every park returns
    /// [`Park::Slice`], so that re-check follows every wake.
    pub fn for_timeout(timeout: Option<Duration>) -> ModelWaiter {
        ModelWaiter {
            slices: timeout.is_some(),
            parks: None,
            wake_as_slice: true,
        }
    }
}

#[cfg(loom)]
impl Wait for ModelWaiter {
    fn spin(&mut self) -> bool {
        false
    }
    fn park(&mut self, word: &AtomicU32, expected: u32) -> Park {
        if let Some(n) = &mut self.parks {
            if *n == 0 {
                return Park::TimedOut;
            }
            *n -= 1;
        }
        if self.slices {
            hint::yield_now();
            return Park::Slice;
        }
        futex::wait(word, expected, None);
        if self.wake_as_slice {
            Park::Slice
        } else {
            Park::Woken
        }
    }
}

/// Wakes up to `n` waiters parked on `word`.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    futex::wake(word, n)
}

/// The publishing step of a word whose waiters announce themselves with a `parked` bit in it
/// before they sleep on it: moves `word` from its value `cur` to `next(cur)` with one CAS
/// (`AcqRel`, retried while others change the word; `next` returning `None` leaves the word
/// alone), then, if the value it replaced had `parked` set, wakes every waiter parked on it.
/// A waiter that set `parked` before this CAS is woken; one that tries after it fails its own
/// CAS (the word changed) and re-checks; the futex refuses to sleep on a changed word.
pub(crate) fn update_and_wake_all(
    word: &AtomicU32,
    parked: u32,
    mut next: impl FnMut(u32) -> Option<u32>,
) {
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        let Some(new) = next(cur) else { return };
        match word.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => {
                if cur & parked != 0 {
                    wake(word, u32::MAX);
                }
                return;
            }
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The steps `w` spins before it says "park" (failing past 1000).
    fn steps_before_park(mut w: Waiter) -> u32 {
        let mut n = 0;
        while w.spin() {
            n += 1;
            assert!(n < 1000, "the spin phase does not end");
        }
        n
    }

    #[test]
    fn spin_budget_is_bounded() {
        assert_eq!(
            steps_before_park(Waiter::new(None)),
            SPIN_STEPS + YIELD_STEPS
        );
    }

    #[test]
    fn a_lock_waiter_spins_a_few_steps_then_parks() {
        assert_eq!(steps_before_park(Waiter::for_lock(None)), LOCK_STEPS);
    }

    #[test]
    fn a_longer_spin_is_bounded_too() {
        assert_eq!(
            steps_before_park(Waiter::with_spin(None, 100)),
            100 + SPIN_STEPS + YIELD_STEPS
        );
    }

    #[test]
    fn park_honours_the_deadline_across_slices() {
        let word = AtomicU32::new(0);
        let start = Instant::now();
        let mut w = Waiter::new(Some(Duration::from_millis(50)));
        let mut slices = 0;
        loop {
            match w.park(&word, 0) {
                Park::TimedOut => break,
                Park::Slice => slices += 1,
                Park::Woken => {}
            }
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(slices >= 1, "a 50 ms wait spans at least one 20 ms slice");
    }
}
