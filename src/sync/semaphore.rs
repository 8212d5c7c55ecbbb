//! `Semaphore`: a counting semaphore shared by name, whose permits come back when a holder dies.
//!
//! # Shared words
//!
//! ```text
//! offset  size  word       written by                 meaning
//!      0     8  count      acquirers, releasers,      low 32 bits: permits available now
//!                          waiters, reclaimers        high 32 bits: waiters registered to park
//!      8     4  seq        releasers (only when       futex word the waiters sleep on: bumped by
//!                          count said "waiters")      every release that saw a registered waiter
//!     12   116  (reserved, zero)
//!    128  1024  held[128]  slot i's holder; any       per participant slot: owner token (high 32)
//!                          reclaimer once the         and permits it holds (low 32)
//!                          owner is proven dead
//! ```
//!
//! Permits and waiters share one 64-bit word, so "take a permit" and "register as a waiter
//! because there is none" are the same CAS on the same word: a release either comes before the
//! registration (the registration CAS fails, the waiter sees the permit) or after it (the
//! release's CAS reads the waiter count and wakes). No store→load (Dekker) ordering and no
//! `SeqCst` is involved; every ordering pairs on a single location:
//!
//! - acquire: CAS `count` `(p, w) → (p-1, w)` with `Acquire`, pairing with the `Release` half of
//!   the release CAS that put the permit there (so what a holder wrote before `release` is
//!   visible to the next holder).
//! - park: load `seq` (`Acquire`), then `count`; register with a CAS `(0, w) → (0, w+1)`
//!   (`AcqRel`); sleep on `seq` expecting the loaded value. A release whose CAS comes after the
//!   registration reads `w ≥ 1`, bumps `seq` (`Release`) and wakes; since our `seq` load is
//!   ordered before our registration, which the release's CAS acquires, the bump is newer than
//!   the value we sleep on, so the futex either refuses to sleep or is woken.
//! - release: CAS `(p, w) → (p+1, w)` (`AcqRel`); if `w > 0`, bump `seq` and `FUTEX_WAKE` as
//!   many waiters as permits were added (at most `w`). With no registered waiter a release is
//!   one CAS and no syscall.
//!
//! A woken waiter that finds the permit already taken (another process barged in) registers
//! again; a waiter deregisters in the same CAS that takes its permit, or when it times out.
//!
//! # Who holds what: permits of dead processes
//!
//! A plain counting semaphore cannot know who holds a permit, so a holder that dies leaks it
//! (POSIX `sem_t`, Python's `multiprocessing.Semaphore`). Here each acquisition is tagged with
//! its owner: `held[slot]` (the slot of the handle's participant [`Token`]) packs the token and
//! how many permits that handle holds.
//!
//! | `held[i]`         | meaning                                                     |
//! |-------------------|-------------------------------------------------------------|
//! | `0`               | nobody / reclaimed                                          |
//! | `(token t, 0)`    | slot i is (or was) attached as `t`, holds nothing           |
//! | `(token t, c>0)`  | `t` holds `c` permits; if `t` is dead they are reclaimable  |
//!
//! - `acquire` takes the permit from `count` first, then increments its own `held` count;
//!   `release` decrements its own `held` count first (saturating at 0), then adds the permit.
//!   Dying between the two steps therefore *leaks* one permit instead of creating one: the
//!   residual window is a few instructions per acquire or release, and it errs on the safe side
//!   (the semaphore never admits more holders than it has permits).
//! - A waiter that finds no permits checks, at the end of every park slice (20 ms), every slot
//!   whose `held` count is non-zero: if the recorded token is proven dead (its OFD lock is gone
//!   or its slot was claimed again, see `region::registry`), it CASes that exact word to `0` and
//!   adds the count back to `count`. The CAS on the whole `(token, count)` word makes the
//!   reclaim exclusive: two reclaimers (or a reclaimer and the slot's next owner) cannot both
//!   return the same permits, and tokens carry a generation, so a slot reused by a new process
//!   never looks like its dead predecessor. A live holder is never reclaimed from, however slow
//!   (a stopped process still holds its lock). So a permit held by a killed process is back
//!   within about one slice of a waiter noticing; [`Semaphore::recover`] does the same scan on
//!   demand (`try_acquire` never scans: it makes no syscalls).
//! - A new handle that takes over a slot first returns whatever its predecessor in that slot
//!   left (it holds the slot's lock, so the predecessor is gone); a dropped handle returns the
//!   permits it still holds.
//!
//! Accounting of `release` by a handle that holds nothing (a semaphore used as a signal, as
//! std's and Python's allow): the handle's `held` count stays 0 and the permit is added anyway.
//! The count is per handle, net of its own releases, so when one process acquires and *another*
//! releases (a signal, or a permit handed over), the acquirer's count keeps the permit, and its
//! death or handle drop would return it a second time. Such users call [`Semaphore::forget`]
//! after `acquire` to mark the permit consumed rather than borrowed.
//!
//! `count` saturates: a release past `u32::MAX` available permits is dropped (the counter stays
//! at `u32::MAX`); the number of waiters wraps only after 2^32 of them.
//!
//! # What a dead peer leaves
//!
//! - Permits it held: reclaimed as above.
//! - A waiter killed while registered leaves the waiter count one too high for the rest of the
//!   region's life (nothing can tell a dead registration from a live waiter still spinning
//!   towards its futex wait): every later release then makes a `FUTEX_WAKE` syscall that may
//!   wake nobody (about a microsecond). Correctness is unaffected.
//! - A waiter killed after a release woke it (and before it took the permit) consumed a wake-up:
//!   the permit stays available and another parked waiter finds it at the end of its slice.

use std::fmt;
use std::time::Duration;

#[cfg(doc)]
use crate::error::Error; // the `# Errors` sections link to it
use crate::error::Result;
use crate::loom::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use crate::object::{self, Object};
use crate::region::{registry::MAX_PARTICIPANTS, Kind, LayoutFn, Region, Shared, Spec, Token};
use crate::sync::wait::{self, Park, Wait, Waiter};

/// Bytes of the body: `count`, `seq`, reserved up to 128, then `held[128]`.
const BODY_LEN: u64 = 128 + 8 * MAX_PARTICIPANTS as u64;

/// The shared state; `N` participant slots (128 in a region; fewer in loom models).
#[repr(C)]
pub(crate) struct State<const N: usize> {
    /// Low 32 bits: permits available. High 32 bits: registered waiters.
    count: AtomicU64,
    /// The futex word waiters sleep on; bumped by releases that saw waiters.
    seq: AtomicU32,
    _reserved0: AtomicU32,
    _reserved: [AtomicU64; 14],
    /// Per participant slot: owner token (high 32 bits), permits held (low 32 bits).
    held: [AtomicU64; N],
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<State<MAX_PARTICIPANTS>>() as u64 == BODY_LEN);

// SAFETY: repr(C), atomics only (no padding: 8 + 4 + 4 + 112 + 8 N bytes, all 8-aligned),
// valid for every bit pattern, alignment 8.
unsafe impl<const N: usize> Shared for State<N> {}

fn split(count: u64) -> (u32, u32) {
    (count as u32, (count >> 32) as u32)
}

fn join(permits: u32, waiters: u32) -> u64 {
    (waiters as u64) << 32 | permits as u64
}

fn record(owner: u32, held: u32) -> u64 {
    (owner as u64) << 32 | held as u64
}

fn unrecord(rec: u64) -> (u32, u32) {
    ((rec >> 32) as u32, rec as u32)
}

impl<const N: usize> State<N> {
    #[cfg(all(test, loom))]
    fn new(permits: u32) -> State<N> {
        State {
            count: AtomicU64::new(join(permits, 0)),
            seq: AtomicU32::new(0),
            _reserved0: AtomicU32::new(0),
            _reserved: std::array::from_fn(|_| AtomicU64::new(0)),
            held: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Permits available now (a relaxed snapshot).
    fn available(&self) -> u32 {
        split(self.count.load(Relaxed)).0
    }

    /// Waiters registered to park now (a relaxed snapshot).
    fn waiters(&self) -> u32 {
        split(self.count.load(Relaxed)).1
    }

    /// Takes a permit if one is available, without waiting.
    fn try_acquire(&self, me: Token) -> bool {
        let mut cur = self.count.load(Relaxed);
        loop {
            let (p, w) = split(cur);
            if p == 0 {
                return false;
            }
            // Acquire: pairs with the Release half of the CAS that added this permit.
            match self
                .count
                .compare_exchange_weak(cur, join(p - 1, w), Acquire, Relaxed)
            {
                Ok(_) => {
                    self.note_acquired(me);
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes a permit, waiting as `w` says; `false` if `w` timed out first. On each slice that
    /// runs out, permits of dead holders (per `alive`) are reclaimed.
    fn acquire(&self, me: Token, w: &mut impl Wait, alive: &dyn Fn(Token) -> bool) -> bool {
        if self.try_acquire(me) {
            return true;
        }
        let mut registered = false;
        loop {
            // `seq` before `count`: see the module doc (a release we do not see in `count`
            // bumps `seq` past the value we sleep on).
            let seq = self.seq.load(Acquire);
            let cur = self.count.load(Acquire);
            let (p, n) = split(cur);
            if p > 0 {
                let n = if registered { n.saturating_sub(1) } else { n };
                if self
                    .count
                    .compare_exchange(cur, join(p - 1, n), Acquire, Relaxed)
                    .is_ok()
                {
                    self.note_acquired(me);
                    return true;
                }
                continue;
            }
            if !registered {
                if w.spin() {
                    continue;
                }
                // Register only while there is no permit: the same word a release changes.
                if self
                    .count
                    .compare_exchange(cur, join(0, n.wrapping_add(1)), AcqRel, Relaxed)
                    .is_err()
                {
                    continue;
                }
                registered = true;
            }
            match w.park(&self.seq, seq) {
                Park::Woken => {}
                Park::Slice => {
                    self.recover(me, alive);
                }
                Park::TimedOut => return self.give_up(me),
            }
        }
    }

    /// A registered waiter's last look after its deadline: take a permit if there is one,
    /// deregister either way.
    fn give_up(&self, me: Token) -> bool {
        let mut cur = self.count.load(Acquire);
        loop {
            let (p, n) = split(cur);
            let new = join(p.saturating_sub(1), n.saturating_sub(1));
            match self.count.compare_exchange(cur, new, Acquire, Relaxed) {
                Ok(_) if p > 0 => {
                    self.note_acquired(me);
                    return true;
                }
                Ok(_) => return false,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives a permit back: un-tags it from `me` (if `me` holds any), then adds it.
    fn release(&self, me: Token) {
        self.note_released(me);
        // Crash tests: the permit is untagged, not yet back in `count` (it leaks).
        crate::failpoint::hit("semaphore.release.before_add");
        self.add_permits(1);
    }

    /// Adds `k` permits (saturating at `u32::MAX`) and wakes up to `k` registered waiters.
    fn add_permits(&self, k: u32) {
        let mut cur = self.count.load(Relaxed);
        loop {
            let (p, n) = split(cur);
            // AcqRel: Release publishes the holder's writes to the next acquirer; Acquire
            // pairs with a waiter's registration (module doc).
            match self.count.compare_exchange_weak(
                cur,
                join(p.saturating_add(k), n),
                AcqRel,
                Relaxed,
            ) {
                Ok(_) => {
                    if n > 0 {
                        self.seq.fetch_add(1, Release);
                        wait::wake(&self.seq, k.min(n));
                    }
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn own(&self, me: Token) -> Option<&AtomicU64> {
        self.held.get(me.slot() as usize)
    }

    /// Tags one more permit as held by `me` (after it was taken from `count`).
    fn note_acquired(&self, me: Token) {
        // Crash tests: the permit is taken from `count`, not yet tagged as ours (it leaks).
        crate::failpoint::hit("semaphore.acquire.before_tag");
        let Some(h) = self.own(me) else { return };
        let mut cur = h.load(Relaxed);
        loop {
            let (owner, held) = unrecord(cur);
            // A foreign owner in our own slot can only be scribbled: our slot's lock is ours.
            let held = if owner == me.raw() { held } else { 0 };
            // Saturated: the extra permit goes untracked (it would leak on death).
            let new = record(me.raw(), held.saturating_add(1));
            if new == cur {
                return;
            }
            match h.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Un-tags one permit held by `me`; `false` if `me` held none.
    fn note_released(&self, me: Token) -> bool {
        let Some(h) = self.own(me) else { return false };
        let mut cur = h.load(Relaxed);
        loop {
            let (owner, held) = unrecord(cur);
            if owner != me.raw() || held == 0 {
                return false;
            }
            match h.compare_exchange_weak(cur, record(owner, held - 1), Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Permits `me` holds.
    fn held_by(&self, me: Token) -> u32 {
        let (owner, held) = self.own(me).map_or((0, 0), |h| unrecord(h.load(Relaxed)));
        if owner == me.raw() {
            held
        } else {
            0
        }
    }

    /// Returns the permits of every holder proven dead by `alive`; how many came back.
    fn recover(&self, me: Token, alive: &dyn Fn(Token) -> bool) -> u32 {
        let mut total = 0u32;
        for (i, h) in self.held.iter().enumerate() {
            if i == me.slot() as usize {
                continue;
            }
            let cur = h.load(Acquire);
            let (owner, held) = unrecord(cur);
            if held == 0 {
                continue;
            }
            // A record that does not name a token of its own slot is scribbled: leave it.
            let Some(t) = Token::from_raw(owner) else {
                continue;
            };
            if t.slot() as usize != i || alive(t) {
                continue;
            }
            // Exclusive: only one CAS from this exact (token, count) succeeds, and a dead
            // token never writes again.
            if h.compare_exchange(cur, 0, AcqRel, Relaxed).is_ok() {
                total = total.saturating_add(held);
            }
        }
        if total > 0 {
            self.add_permits(total);
        }
        total
    }

    /// Makes `me`'s slot record its own, returning what a predecessor in the slot left.
    fn adopt(&self, me: Token) -> u32 {
        let Some(h) = self.own(me) else { return 0 };
        let mut cur = h.load(Acquire);
        loop {
            let (owner, held) = unrecord(cur);
            if owner == me.raw() {
                return 0;
            }
            match h.compare_exchange(cur, record(me.raw(), 0), AcqRel, Acquire) {
                Ok(_) => {
                    // We hold the slot's lock, so whoever recorded `owner` is gone.
                    let back = if owner != 0 { held } else { 0 };
                    if back > 0 {
                        self.add_permits(back);
                    }
                    return back;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Returns every permit `me` still holds (the handle is going away).
    fn leave(&self, me: Token) {
        let Some(h) = self.own(me) else { return };
        let (owner, held) = unrecord(h.swap(0, AcqRel));
        if owner == me.raw() && held > 0 {
            self.add_permits(held);
        }
    }
}

/// The body length a semaphore spec needs: fixed; the capacity (initial permits) is a `u32`.
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    (spec.capacity <= u32::MAX as u64).then_some(BODY_LEN)
}

/// What `interproc inspect` shows: permits available, waiters, permits held by participants.
/// Relaxed loads only (the region may be a read-only observer mapping).
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let s = region.body::<State<MAX_PARTICIPANTS>>(0);
    let held: u64 = s
        .held
        .iter()
        .map(|h| unrecord(h.load(Relaxed)).1 as u64)
        .sum();
    vec![
        ("permits", s.available().to_string()),
        ("initial", region.spec().capacity.to_string()),
        ("held", held.to_string()),
        ("waiters", s.waiters().to_string()),
    ]
}

/// A counting semaphore shared by name between processes.
///
/// Like `multiprocessing.Semaphore`, with one difference: permits held by a process that dies
/// (or by a handle that is dropped) return to the semaphore instead of leaking; see the
/// module documentation for the accounting and its one residual window.
///
/// # Examples
/// ```
/// let sem = interproc::Semaphore::create(&format!("doc-sem-{}", std::process::id()), 2)?;
/// sem.acquire();
/// assert!(sem.try_acquire());
/// assert!(!sem.try_acquire());
/// sem.release();
/// assert_eq!(sem.available(), 1);
/// # Ok::<(), interproc::Error>(())
/// ```
pub struct Semaphore {
    region: Region,
    me: Token,
}

impl Object for Semaphore {
    /// The initial permits.
    type Args = u32;
    const KIND: Kind = Kind::Semaphore;
    const LAYOUT: &'static LayoutFn = &layout;

    fn capacity(permits: u32) -> Result<u64> {
        Ok(permits as u64)
    }

    fn init(region: &Region, permits: u32) -> Result<()> {
        region
            .body::<State<MAX_PARTICIPANTS>>(0)
            .count
            .store(join(permits, 0), Relaxed);
        Ok(())
    }

    fn attach(region: Region) -> Result<Semaphore> {
        let me = object::participant(&region)?;
        let sem = Semaphore { region, me };
        sem.state().adopt(me);
        Ok(sem)
    }
}

impl Semaphore {
    fn state(&self) -> &State<MAX_PARTICIPANTS> {
        self.region.body(0)
    }

    fn alive(&self) -> impl Fn(Token) -> bool + '_ {
        |t| self.region.is_alive(t)
    }

    /// Creates the semaphore `name` with `permits` permits available (0 is fine: a semaphore
    /// used as a signal).
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::Io`].
    pub fn create(name: &str, permits: u32) -> Result<Semaphore> {
        object::create(name, permits)
    }

    /// Opens the existing semaphore `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Incompatible`] if `name` is another kind of object;
    /// [`Error::Corrupted`] if its region does not check out; [`Error::Busy`] if 128 handles
    /// are attached already.
    pub fn open(name: &str) -> Result<Semaphore> {
        object::open(name)
    }

    /// Opens `name`, creating it with `permits` permits if it does not exist (race-free; an
    /// existing semaphore keeps its own count).
    ///
    /// # Errors
    /// As [`Semaphore::open`] and [`Semaphore::create`].
    pub fn open_or_create(name: &str, permits: u32) -> Result<Semaphore> {
        object::open_or_create(name, permits)
    }

    /// Takes a permit, waiting (parked on a futex) as long as none is available.
    pub fn acquire(&self) {
        let alive = self.alive();
        let got = self
            .state()
            .acquire(self.me, &mut Waiter::new(None), &alive);
        debug_assert!(got, "a wait without deadline never times out");
    }

    /// Takes a permit if one is available now; never waits, never makes a syscall.
    pub fn try_acquire(&self) -> bool {
        self.state().try_acquire(self.me)
    }

    /// Takes a permit, waiting at most `timeout`; `false` if none became available in time.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        let alive = self.alive();
        self.state()
            .acquire(self.me, &mut Waiter::new(Some(timeout)), &alive)
    }

    /// Adds a permit and wakes a waiter if one is parked. If this handle holds permits, one of
    /// them is the one given back; otherwise (a semaphore used as a signal) a permit is added
    /// all the same. At `u32::MAX` available permits the count saturates.
    pub fn release(&self) {
        self.state().release(self.me)
    }

    /// Permits available now (a snapshot; others may change it at once).
    pub fn available(&self) -> u32 {
        self.state().available()
    }

    /// Permits this handle holds: acquired and not yet released or forgotten. These return to
    /// the semaphore if this handle is dropped or its process dies.
    pub fn held(&self) -> u32 {
        self.state().held_by(self.me)
    }

    /// Marks one permit this handle holds as consumed: it will not come back when the handle
    /// is dropped or its process dies (for a semaphore used as a signal, whose permits are
    /// released by another process). `false` if this handle held none.
    pub fn forget(&self) -> bool {
        self.state().note_released(self.me)
    }

    /// Returns the permits held by dead processes (or dropped handles) to the semaphore now;
    /// how many came back. Waiters blocked in [`acquire`](Semaphore::acquire) do this on their
    /// own every 20 ms; `try_acquire` never does (it makes no syscalls).
    pub fn recover(&self) -> u32 {
        let alive = self.alive();
        self.state().recover(self.me, &alive)
    }

    object::name_and_persist!();
}

impl Drop for Semaphore {
    fn drop(&mut self) {
        self.state().leave(self.me);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        object::debug_struct(f, "Semaphore", &self.region)
            .field("available", &s.available())
            .field("waiters", &s.waiters())
            .field("held", &s.held_by(self.me))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::{AtomicU32 as StdU32, Ordering::SeqCst};
    use std::sync::Arc;

    fn name(tag: &str) -> String {
        crate::test_names::unit("sem", tag)
    }

    #[test]
    fn counts_and_tags() {
        let s = Semaphore::create(&name("count"), 2).unwrap();
        assert!(s.try_acquire());
        assert!(s.try_acquire());
        assert!(!s.try_acquire());
        assert_eq!(s.held(), 2);
        s.release();
        assert_eq!((s.available(), s.held()), (1, 1));
        assert!(s.forget());
        assert_eq!(s.held(), 0);
        assert!(!s.forget());
        // Released by a handle holding nothing: a signal.
        s.release();
        assert_eq!((s.available(), s.held()), (2, 0));
        let dbg = format!("{s:?}");
        assert!(
            dbg.contains("semaphore") && dbg.contains("available: 2"),
            "{dbg}"
        );
    }

    #[test]
    fn handles_are_send_and_sync_and_inspectable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Semaphore>();
        let s = Semaphore::create(&name("inspect"), 3).unwrap();
        assert!(s.try_acquire());
        let fields = inspect(&s.region);
        assert!(fields.contains(&("permits", "2".into())), "{fields:?}");
        assert!(fields.contains(&("held", "1".into())), "{fields:?}");
        assert!(fields.contains(&("initial", "3".into())), "{fields:?}");
    }

    #[test]
    fn saturates_at_u32_max() {
        let s = Semaphore::create(&name("max"), u32::MAX).unwrap();
        s.release();
        assert_eq!(s.available(), u32::MAX);
        assert!(s.try_acquire());
        assert_eq!(s.available(), u32::MAX - 1);
    }

    #[test]
    fn dropped_handle_returns_its_permits_and_open_checks_kind() {
        let s = Semaphore::create(&name("drop"), 3).unwrap();
        let t = Semaphore::open(s.name()).unwrap();
        assert!(t.try_acquire() && t.try_acquire());
        assert_eq!(s.available(), 1);
        drop(t);
        assert_eq!(s.available(), 3);
        assert!(matches!(
            crate::Value::<u32>::open(s.name()),
            Err(Error::Incompatible { .. })
        ));
        let u = Semaphore::open_or_create(s.name(), 9).unwrap();
        assert_eq!(u.available(), 3, "an existing semaphore keeps its count");
    }

    #[test]
    fn timeout_and_wake_between_threads() {
        let s = Arc::new(Semaphore::create(&name("wake"), 0).unwrap());
        assert!(!s.acquire_timeout(Duration::from_millis(30)));
        assert_eq!(s.state().waiters(), 0, "a timed-out waiter deregisters");
        let inside = Arc::new(StdU32::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (s, inside) = (s.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        s.acquire();
                        assert!(inside.fetch_add(1, SeqCst) < 2);
                        inside.fetch_sub(1, SeqCst);
                        s.release();
                    }
                })
            })
            .collect();
        s.release();
        s.release();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.available(), 2);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::atomic::Ordering::SeqCst;
    use crate::sync::model::{all_alive, token};
    use crate::sync::wait::ModelWaiter;
    use loom::sync::Arc;
    use loom::thread;

    /// Threads of participant slots `slots` each take a permit of `s` `rounds` times (parking
    /// in slices if `slices`, judging liveness by `alive`), check each time that nobody else
    /// holds one, and give it back: `s` must come to hold exactly one permit, and it is back
    /// in the end. Permits are never exceeded, and a parked acquirer is always woken (a lost
    /// wake-up would leave a thread blocked forever: loom reports the deadlock).
    fn contend_for_one_permit(
        s: State<3>,
        slots: std::ops::Range<u32>,
        rounds: u32,
        slices: bool,
        alive: fn(Token) -> bool,
    ) -> Arc<State<3>> {
        let s = Arc::new(s);
        let inside = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = slots
            .map(|slot| {
                let (s, inside) = (s.clone(), inside.clone());
                thread::spawn(move || {
                    let me = token(slot);
                    for _ in 0..rounds {
                        let mut w = ModelWaiter {
                            slices,
                            ..ModelWaiter::blocking()
                        };
                        assert!(s.acquire(me, &mut w, &alive));
                        assert_eq!(inside.fetch_add(1, SeqCst), 0, "two holders of one permit");
                        inside.fetch_sub(1, SeqCst);
                        s.release(me);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(split(s.count.load(SeqCst)), (1, 0));
        s
    }

    /// Two acquirers, two rounds each, so a woken waiter can find the permit gone and park
    /// again: with `LOOM_MAX_PREEMPTIONS=3` (about a minute for this module) this model
    /// catches loading `count` before `seq`.
    #[test]
    fn two_acquirers_one_permit() {
        loom::model(|| {
            let s = contend_for_one_permit(State::new(1), 1..3, 2, false, all_alive);
            assert_eq!(s.held_by(token(1)) + s.held_by(token(2)), 0);
        });
    }

    /// Three acquirers, one round each.
    #[test]
    fn three_acquirers_one_permit() {
        loom::model(|| {
            contend_for_one_permit(State::new(1), 0..3, 1, false, all_alive);
        });
    }

    /// A signal: one side only releases, the other only acquires; no lost wake-up.
    #[test]
    fn release_as_signal_wakes_the_acquirer() {
        loom::model(|| {
            let s = Arc::new(State::<2>::new(0));
            let s2 = s.clone();
            let t = thread::spawn(move || s2.release(token(1)));
            assert!(s.acquire(token(0), &mut ModelWaiter::blocking(), &all_alive));
            t.join().unwrap();
            assert_eq!(split(s.count.load(SeqCst)), (0, 0));
            assert_eq!(s.held_by(token(0)), 1);
            assert_eq!(s.held_by(token(1)), 0, "the releaser held nothing");
        });
    }

    /// A timed-out waiter deregisters, and a release racing with the timeout is not lost.
    #[test]
    fn timeout_races_with_release() {
        loom::model(|| {
            let s = Arc::new(State::<2>::new(0));
            let s2 = s.clone();
            let t = thread::spawn(move || s2.release(token(1)));
            let mut w = ModelWaiter {
                parks: Some(0),
                ..ModelWaiter::blocking()
            };
            let got = s.acquire(token(0), &mut w, &all_alive);
            t.join().unwrap();
            let (p, n) = split(s.count.load(SeqCst));
            assert_eq!(n, 0, "no waiter left registered");
            assert_eq!(
                p + got as u32,
                1,
                "the permit is either taken or still there"
            );
        });
    }

    /// Two waiters reclaim the permit of a dead holder concurrently: it comes back exactly
    /// once, so the one permit still admits one holder at a time.
    #[test]
    fn dead_holder_is_reclaimed_exactly_once() {
        loom::model(|| {
            let s = State::<3>::new(0);
            s.held[2].store(record(token(2).raw(), 1), SeqCst);
            let s = contend_for_one_permit(s, 0..2, 1, true, |t| t != token(2));
            assert_eq!(s.held[2].load(SeqCst), 0);
        });
    }
}
