//! `Barrier`: `n` parties wait until all have arrived, then all go on; reusable, like
//! `std::sync::Barrier` and `multiprocessing.Barrier`.
//!
//! # Shared words
//!
//! ```text
//! offset  size  word          written by                meaning
//!      0     8  state         arrivals, the leader,     generation (high 32) | arrivals in it (low 32)
//!                             withdrawals
//!      8     4  seq           the leader; waiters set   futex word: bit 0 PARKED, bits 1.. count
//!                             PARKED                    completed generations (wrapping)
//!     12   116  (reserved, zero)
//!    128  1024  arrivals[128] slot i's holder; any      per participant slot: who is waiting in
//!                             withdrawer once the       which generation (see below)
//!                             holder is proven dead
//! ```
//!
//! `n` itself is not in shared memory: it is the header's capacity, validated at attach and
//! kept in the handle, so a scribbler cannot change how many parties a generation needs.
//!
//! # One generation
//! - Arrive: CAS `state` `(g, c) → (g, c+1)` (`AcqRel`). The arrival that makes `c + 1 == n`
//!   is the *leader*: it CASes `(g, n-1) → (g+1, 0)` instead, then bumps `seq` by 2 and clears
//!   `PARKED` in one CAS (`AcqRel`); if `PARKED` was set it wakes everyone parked on `seq`.
//!   (A scribbled count `c >= n` is treated as complete: the barrier releases early rather than
//!   hang.)
//! - Wait: load `seq` (`Acquire`), then `state` (`Acquire`); done once the generation is no
//!   longer `g`. Otherwise CAS `PARKED` into the exact `seq` value seen and sleep on it. If the
//!   leader's `seq` CAS came first, the waiter's `seq` load would have synchronised with it and
//!   seen generation `g+1`; if it came later, it reads `PARKED` and wakes; the futex refuses to
//!   sleep on a value that changed in between. A leader of an older generation that is late with
//!   its `seq` CAS just causes one extra wake-up. So the last arrival makes a syscall only if
//!   someone parked.
//! - Everything each party wrote before `wait` happens-before everything after every party's
//!   `wait` returns: arrivals are RMWs on `state` (a release sequence the leader's CAS acquires),
//!   and the waiters acquire the leader's CAS.
//!
//! # Timeouts: withdrawing an arrival
//! `wait_timeout` that runs out withdraws its arrival with a CAS `(g, c) → (g, c-1)`, which
//! fails if the generation completed in the meantime (then the wait succeeded after all, and
//! returns `Ok`): so the count always equals the live arrivals of the current generation, and
//! the barrier stays usable after any number of timeouts.
//!
//! # Dead parties
//! A process killed while waiting has been counted. If nothing repaired that, its arrival would
//! complete a later round one party early: a restarted replacement plus the survivors would go
//! on before everyone arrived, and from then on generations would be misaligned. So each
//! waiting party records itself in `arrivals[slot]` (its participant slot):
//!
//! ```text
//! bits 42..64  owner generation (the participant token's generation; the slot is the index)
//! bits 16..42  generation it waits in (low 26 bits)
//! bits  0..16  how many of its threads wait there (one handle shared by several threads)
//! ```
//!
//! - A non-leader arrival records itself *after* its `state` CAS, with a CAS on its own record.
//!   A waiter that times out decrements its record first, then withdraws from `state`.
//! - A waiter whose slice (20 ms) runs out looks at every other record of the current
//!   generation whose owner token is proven dead (OFD lock gone or slot claimed again); it CASes
//!   that record to 0 (exclusive: one withdrawer per record, and a token never comes back), then
//!   withdraws the count from `state` with a CAS that requires the generation still to be `g`.
//! - A handle taking over a slot clears its predecessor's record the same way (it holds the
//!   slot's lock, so the predecessor is gone).
//!
//! Residual windows, documented rather than hidden: a party killed between its `state` CAS and
//! its record (a few instructions) stays counted, exactly as without records; a replacement that
//! arrives within one slice of the death, before any waiter looked, may still be released with
//! the dead arrival counted. Records of a dead party left from a finished generation are ignored
//! (their generation is not the current one) until 2^26 generations later, when one could alias;
//! any later scan or the slot's next owner clears them. A party killed while the generation was
//! completing is simply released with it.
//!
//! A waiter killed while parked leaves `PARKED` set: the next leader makes one unneeded
//! `FUTEX_WAKE` and clears it.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::loom::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use crate::object::{self, Object};
use crate::region::{registry::MAX_PARTICIPANTS, Kind, LayoutFn, Region, Shared, Spec, Token};
use crate::sync::wait::{self, Park, Wait, Waiter};

/// Bytes of the body: `state`, `seq`, reserved up to 128, then `arrivals[128]`.
const BODY_LEN: u64 = 128 + 8 * MAX_PARTICIPANTS as u64;

/// `seq` bit: someone parked on `seq` since the last completion.
const PARKED: u32 = 1;
/// `seq` step per completed generation.
const SEQ_ONE: u32 = 2;

/// Bits of an arrival record holding the waiter count.
const REC_COUNT_BITS: u32 = 16;
/// Bits of an arrival record holding the (truncated) generation.
const REC_GEN_BITS: u32 = 26;
const REC_COUNT_MASK: u64 = (1 << REC_COUNT_BITS) - 1;
const REC_GEN_MASK: u64 = (1 << REC_GEN_BITS) - 1;

#[cfg(not(loom))]
const _: () = assert!(
    REC_COUNT_BITS + REC_GEN_BITS + crate::region::registry::GENERATION_BITS == 64,
    "an arrival record is exactly one u64"
);

/// The shared state; `N` participant slots (128 in a region; fewer in loom models).
#[repr(C)]
pub(crate) struct State<const N: usize> {
    /// Generation (high 32 bits) and arrivals in it (low 32 bits).
    state: AtomicU64,
    /// Futex word: `PARKED` and a count of completed generations.
    seq: AtomicU32,
    _reserved0: AtomicU32,
    _reserved: [AtomicU64; 14],
    /// Per participant slot: who waits in which generation (module doc).
    arrivals: [AtomicU64; N],
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<State<MAX_PARTICIPANTS>>() as u64 == BODY_LEN);

// SAFETY: repr(C), atomics only (8 + 4 + 4 + 112 + 8 N bytes, no padding), valid for every bit
// pattern, alignment 8.
unsafe impl<const N: usize> Shared for State<N> {}

fn split(state: u64) -> (u32, u32) {
    ((state >> 32) as u32, state as u32)
}

fn join(generation: u32, count: u32) -> u64 {
    (generation as u64) << 32 | count as u64
}

/// An arrival record: (owner token generation, truncated waiting generation, count).
fn record(owner: Token, generation: u32, count: u32) -> u64 {
    (owner.generation() as u64) << (REC_COUNT_BITS + REC_GEN_BITS)
        | (generation as u64 & REC_GEN_MASK) << REC_COUNT_BITS
        | (count as u64 & REC_COUNT_MASK)
}

/// Splits a record of slot `slot`: (owner token, truncated generation, count). The owner is
/// `None` for an empty record.
fn unrecord(slot: usize, rec: u64) -> (Option<Token>, u32, u32) {
    let owner_gen = (rec >> (REC_COUNT_BITS + REC_GEN_BITS)) as u32;
    let owner = (owner_gen != 0).then(|| Token::new(slot as u32, owner_gen));
    let generation = ((rec >> REC_COUNT_BITS) & REC_GEN_MASK) as u32;
    (owner, generation, (rec & REC_COUNT_MASK) as u32)
}

fn same_generation(truncated: u32, generation: u32) -> bool {
    truncated as u64 == generation as u64 & REC_GEN_MASK
}

/// True if the truncated generation `truncated` is later than `generation` (within half the
/// truncated range).
fn is_newer(truncated: u32, generation: u32) -> bool {
    let d = (truncated as u64).wrapping_sub(generation as u64) & REC_GEN_MASK;
    d != 0 && d < 1 << (REC_GEN_BITS - 1)
}

impl<const N: usize> State<N> {
    #[cfg(all(test, loom))]
    fn new() -> State<N> {
        State {
            state: AtomicU64::new(0),
            seq: AtomicU32::new(0),
            _reserved0: AtomicU32::new(0),
            _reserved: std::array::from_fn(|_| AtomicU64::new(0)),
            arrivals: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// (generation, arrivals) now (a relaxed snapshot).
    fn snapshot(&self) -> (u32, u32) {
        split(self.state.load(Relaxed))
    }

    /// Arrives and waits for the other `n - 1` parties. `Ok(true)` for the leader (the last
    /// arrival), `Ok(false)` for the others; `Err(Timeout)` if `w` timed out first, in which
    /// case the arrival has been withdrawn. Each slice that runs out withdraws the arrivals of
    /// dead parties (per `alive`).
    fn wait(
        &self,
        me: Token,
        n: u32,
        w: &mut impl Wait,
        alive: &dyn Fn(Token) -> bool,
    ) -> Result<bool> {
        let mut cur = self.state.load(Relaxed);
        let generation = loop {
            let (g, c) = split(cur);
            let (new, leader) = if c.saturating_add(1) >= n {
                (join(g.wrapping_add(1), 0), true)
            } else {
                (join(g, c + 1), false)
            };
            // AcqRel: the leader acquires every arrival's writes (a release sequence of RMWs)
            // and every arrival releases its own.
            match self.state.compare_exchange_weak(cur, new, AcqRel, Relaxed) {
                Ok(_) if leader => {
                    self.complete();
                    return Ok(true);
                }
                Ok(_) => break g,
                Err(actual) => cur = actual,
            }
        };
        self.note_arrival(me, generation);
        loop {
            // `seq` before `state`: see the module doc.
            let seq = self.seq.load(Acquire);
            if split(self.state.load(Acquire)).0 != generation {
                return Ok(false);
            }
            if w.spin() {
                continue;
            }
            let parked = seq | PARKED;
            if seq & PARKED == 0
                && self
                    .seq
                    .compare_exchange(seq, parked, Relaxed, Relaxed)
                    .is_err()
            {
                continue;
            }
            match w.park(&self.seq, parked) {
                Park::Woken => {}
                Park::Slice => {
                    self.withdraw_dead(me, generation, alive);
                }
                Park::TimedOut => return self.withdraw(me, generation),
            }
        }
    }

    /// The leader's second step: tell the waiters, waking them if any parked.
    fn complete(&self) {
        // Release (the CAS is AcqRel): a waiter that sees the new `seq` sees the new generation.
        wait::update_and_wake_all(&self.seq, PARKED, |seq| {
            Some(seq.wrapping_add(SEQ_ONE) & !PARKED)
        });
    }

    /// Withdraws `me`'s arrival in `generation` after a timeout: `Err(Timeout)`, or `Ok(false)`
    /// if the generation completed first (the wait succeeded after all).
    fn withdraw(&self, me: Token, generation: u32) -> Result<bool> {
        self.note_departure(me, generation);
        let mut cur = self.state.load(Acquire);
        loop {
            let (g, c) = split(cur);
            if g != generation {
                return Ok(false);
            }
            if c == 0 {
                // Our arrival is not in the count (a scribble or a wrong withdrawal): there
                // is nothing to take back.
                return Err(Error::Timeout);
            }
            match self
                .state
                .compare_exchange_weak(cur, join(g, c - 1), AcqRel, Acquire)
            {
                Ok(_) => return Err(Error::Timeout),
                Err(actual) => cur = actual,
            }
        }
    }

    fn own(&self, me: Token) -> Option<&AtomicU64> {
        self.arrivals.get(me.slot() as usize)
    }

    /// Records one more of `me`'s threads waiting in `generation`.
    fn note_arrival(&self, me: Token, generation: u32) {
        let Some(r) = self.own(me) else { return };
        let slot = me.slot() as usize;
        let mut cur = r.load(Relaxed);
        loop {
            let (owner, g, count) = unrecord(slot, cur);
            if owner == Some(me) && is_newer(g, generation) {
                // Another thread of this handle already waits in a later generation, so ours
                // has completed: nothing to record.
                return;
            }
            let count = if owner == Some(me) && same_generation(g, generation) {
                if count as u64 == REC_COUNT_MASK {
                    return; // 65535 threads of one handle: the rest go unrecorded
                }
                count + 1
            } else {
                1
            };
            match r.compare_exchange_weak(cur, record(me, generation, count), AcqRel, Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Un-records one of `me`'s threads from `generation` (it timed out).
    fn note_departure(&self, me: Token, generation: u32) {
        let Some(r) = self.own(me) else { return };
        let slot = me.slot() as usize;
        let mut cur = r.load(Relaxed);
        loop {
            let (owner, g, count) = unrecord(slot, cur);
            if owner != Some(me) || !same_generation(g, generation) || count == 0 {
                return;
            }
            match r.compare_exchange_weak(cur, record(me, generation, count - 1), AcqRel, Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Withdraws the arrivals in `generation` of every party proven dead by `alive`; how many.
    fn withdraw_dead(&self, me: Token, generation: u32, alive: &dyn Fn(Token) -> bool) -> u32 {
        let mut total = 0;
        for (i, r) in self.arrivals.iter().enumerate() {
            if i == me.slot() as usize {
                continue;
            }
            let cur = r.load(Acquire);
            let (Some(owner), g, count) = unrecord(i, cur) else {
                continue;
            };
            if count == 0 || !same_generation(g, generation) || alive(owner) {
                continue;
            }
            // Exclusive: one CAS from this exact record succeeds; a dead token never writes.
            if r.compare_exchange(cur, 0, AcqRel, Relaxed).is_ok() {
                total += self.uncount(generation, count);
            }
        }
        total
    }

    /// Takes `k` arrivals out of `generation`'s count if it is still current; how many.
    fn uncount(&self, generation: u32, k: u32) -> u32 {
        let mut cur = self.state.load(Acquire);
        loop {
            let (g, c) = split(cur);
            if g != generation || c < k {
                return 0;
            }
            match self
                .state
                .compare_exchange_weak(cur, join(g, c - k), AcqRel, Acquire)
            {
                Ok(_) => return k,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Makes `me`'s slot record its own, withdrawing what a predecessor left in the current
    /// generation.
    fn adopt(&self, me: Token) {
        let Some(r) = self.own(me) else { return };
        let slot = me.slot() as usize;
        let cur = r.load(Acquire);
        let (owner, g, count) = unrecord(slot, cur);
        if owner == Some(me) || cur == 0 {
            return;
        }
        // We hold the slot's lock, so the recorded owner is gone.
        if r.compare_exchange(cur, 0, AcqRel, Relaxed).is_ok() && count > 0 {
            let (generation, _) = split(self.state.load(Acquire));
            if same_generation(g, generation) {
                self.uncount(generation, count);
            }
        }
    }
}

/// The body length a barrier spec needs: fixed; the capacity (`n`) is `1..=u32::MAX`.
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    (1..=u32::MAX as u64)
        .contains(&spec.capacity)
        .then_some(BODY_LEN)
}

/// What `interproc inspect` shows: parties, arrivals in the current generation, generation.
/// Relaxed loads only (the region may be a read-only observer mapping).
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let (g, c) = region.body::<State<MAX_PARTICIPANTS>>(0).snapshot();
    vec![
        ("parties", region.spec().capacity.to_string()),
        ("waiting", c.to_string()),
        ("generation", g.to_string()),
    ]
}

/// What [`Barrier::wait`] returns: whether this party was the leader (the last to arrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// True for exactly one party per generation: the one whose arrival completed it.
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

/// A reusable barrier for `n` parties, shared by name between processes.
///
/// # Examples
/// ```
/// let b = interproc::Barrier::create(&format!("doc-barrier-{}", std::process::id()), 1)?;
/// assert!(b.wait().is_leader()); // one party: every wait completes a generation
/// # Ok::<(), interproc::Error>(())
/// ```
pub struct Barrier {
    region: Region,
    me: Token,
    /// Parties per generation: the validated header capacity, never re-read.
    n: u32,
}

impl Object for Barrier {
    /// The parties per generation.
    type Args = u32;
    const KIND: Kind = Kind::Barrier;
    const LAYOUT: &'static LayoutFn = &layout;

    fn capacity(n: u32) -> Result<u64> {
        if n == 0 {
            return Err(Error::InvalidArgument(
                "a barrier needs at least one party".into(),
            ));
        }
        Ok(n as u64)
    }

    // `init` writes nothing: the kernel zero-fills the region (generation 0, nobody arrived).

    fn attach(region: Region) -> Result<Barrier> {
        let me = object::participant(&region)?;
        // `layout` accepted the capacity, so it is 1..=u32::MAX.
        let n = u32::try_from(region.spec().capacity)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::corrupted("barrier of no parties"))?;
        let b = Barrier { region, me, n };
        b.state().adopt(me);
        Ok(b)
    }
}

impl Barrier {
    fn state(&self) -> &State<MAX_PARTICIPANTS> {
        self.region.body(0)
    }

    /// Creates the barrier `name` for `n` parties.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `n` is 0; [`Error::InvalidName`], [`Error::AlreadyExists`],
    /// [`Error::Io`].
    pub fn create(name: &str, n: u32) -> Result<Barrier> {
        object::create(name, n)
    }

    /// Opens the existing barrier `name` (with the `n` it was created with).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Incompatible`] if `name` is another kind of object;
    /// [`Error::Corrupted`] if its region does not check out.
    pub fn open(name: &str) -> Result<Barrier> {
        object::open(name)
    }

    /// Opens `name`, creating it for `n` parties if it does not exist (race-free). An existing
    /// barrier keeps its own `n` (see [`Barrier::parties`]).
    ///
    /// # Errors
    /// As [`Barrier::open`] and [`Barrier::create`].
    pub fn open_or_create(name: &str, n: u32) -> Result<Barrier> {
        object::open_or_create(name, n)
    }

    /// Waits (parked on a futex) until all `n` parties have called `wait`, then returns in all
    /// of them; exactly one gets a result whose [`is_leader`](BarrierWaitResult::is_leader) is
    /// true. The barrier is then ready for the next generation.
    pub fn wait(&self) -> BarrierWaitResult {
        let alive = |t| self.region.is_alive(t);
        let leader = self
            .state()
            .wait(self.me, self.n, &mut Waiter::new(None), &alive)
            // Only a deadline makes the core give up; none was given.
            .unwrap_or(false);
        BarrierWaitResult { leader }
    }

    /// As [`wait`](Barrier::wait), but gives up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the other parties did not all arrive in time. This party's arrival
    /// is then withdrawn, so the barrier stays usable: the generation still needs `n` arrivals.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult> {
        let alive = |t| self.region.is_alive(t);
        let leader = self
            .state()
            .wait(self.me, self.n, &mut Waiter::new(Some(timeout)), &alive)?;
        Ok(BarrierWaitResult { leader })
    }

    /// Parties per generation.
    pub fn parties(&self) -> u32 {
        self.n
    }

    /// Parties waiting in the current generation now (a snapshot).
    pub fn waiting(&self) -> u32 {
        self.state().snapshot().1
    }

    object::name_and_persist!();
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (generation, waiting) = self.state().snapshot();
        object::debug_struct(f, "Barrier", &self.region)
            .field("parties", &self.n)
            .field("waiting", &waiting)
            .field("generation", &generation)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn name(tag: &str) -> String {
        crate::test_names::unit("barrier", tag)
    }

    #[test]
    fn zero_parties_is_an_error() {
        assert!(matches!(
            Barrier::create(&name("zero"), 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Barrier::open_or_create(&name("zero"), 0),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn handles_are_send_and_sync_and_inspectable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Barrier>();
        send_sync::<BarrierWaitResult>();
        let b = Barrier::create(&name("inspect"), 4).unwrap();
        let fields = inspect(&b.region);
        assert!(fields.contains(&("parties", "4".into())), "{fields:?}");
        assert!(fields.contains(&("waiting", "0".into())), "{fields:?}");
    }

    #[test]
    fn records_round_trip() {
        let t = Token::new(5, 0x3f_ffff);
        let r = record(t, u32::MAX, 7);
        assert_eq!(unrecord(5, r), (Some(t), REC_GEN_MASK as u32, 7));
        assert!(same_generation(REC_GEN_MASK as u32, u32::MAX));
        assert_eq!(unrecord(5, 0), (None, 0, 0));
    }

    #[test]
    fn threads_pass_generations_together() {
        let b = Arc::new(Barrier::create(&name("threads"), 3).unwrap());
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..50).filter(|_| b.wait().is_leader()).count())
            })
            .collect();
        let leaders: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(leaders, 50, "one leader per generation");
        assert_eq!(b.state().snapshot(), (50, 0));
    }

    #[test]
    fn timeout_withdraws_the_arrival() {
        let b = Barrier::create(&name("timeout"), 2).unwrap();
        assert!(matches!(
            b.wait_timeout(Duration::from_millis(30)),
            Err(Error::Timeout)
        ));
        assert_eq!(b.waiting(), 0);
        let other = Barrier::open(b.name()).unwrap();
        assert_eq!(other.parties(), 2);
        std::thread::scope(|s| {
            let t = s.spawn(|| other.wait_timeout(Duration::from_secs(30)).unwrap());
            let mine = b.wait_timeout(Duration::from_secs(30)).unwrap();
            assert_ne!(mine.is_leader(), t.join().unwrap().is_leader());
        });
        assert!(format!("{b:?}").contains("generation: 1"));
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

    /// Two parties, two generations: nobody passes a generation before the other arrived in
    /// it, one leader per generation, and no lost wake-up (parks are untimed).
    #[test]
    fn two_parties_two_generations() {
        loom::model(|| {
            let b = Arc::new(State::<2>::new());
            let phase: Arc<[AtomicU32; 2]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
            let leaders = Arc::new(AtomicU32::new(0));
            let threads: Vec<_> = (0..2u32)
                .map(|me| {
                    let (b, phase, leaders) = (b.clone(), phase.clone(), leaders.clone());
                    thread::spawn(move || {
                        for round in 1..=2 {
                            phase[me as usize].store(round, Relaxed);
                            let leader = b
                                .wait(token(me), 2, &mut ModelWaiter::blocking(), &all_alive)
                                .unwrap();
                            leaders.fetch_add(leader as u32, Relaxed);
                            // Relaxed on purpose: the barrier itself must order it.
                            assert!(phase[1 - me as usize].load(Relaxed) >= round);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(leaders.load(SeqCst), 2);
            assert_eq!(split(b.state.load(SeqCst)), (2, 0));
        });
    }

    /// Both parties time out at their first park while racing to arrive: either the
    /// generation completed for both, or both withdrew; never a count left behind.
    #[test]
    fn timeouts_withdraw_cleanly() {
        loom::model(|| {
            let b = Arc::new(State::<2>::new());
            let threads: Vec<_> = (0..2u32)
                .map(|me| {
                    let b = b.clone();
                    thread::spawn(move || {
                        let mut w = ModelWaiter {
                            parks: Some(0),
                            ..ModelWaiter::blocking()
                        };
                        b.wait(token(me), 2, &mut w, &all_alive)
                    })
                })
                .collect();
            let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let (g, c) = split(b.state.load(SeqCst));
            assert_eq!(
                c, 0,
                "a withdrawn or completed generation leaves no arrivals"
            );
            match (&results[0], &results[1]) {
                (Ok(first), Ok(second)) => {
                    assert_eq!(g, 1);
                    assert!(first ^ second, "exactly one leader");
                }
                (Err(Error::Timeout), Err(Error::Timeout)) => assert_eq!(g, 0),
                other => panic!("one passed while the other withdrew: {other:?}"),
            }
        });
    }

    /// Two waiters find the same dead arrival at the end of a slice: it is withdrawn once.
    #[test]
    fn dead_arrival_withdrawn_exactly_once() {
        loom::model(|| {
            let b = Arc::new(State::<3>::new());
            let dead = token(2);
            // Generation 0 holds three arrivals: slots 0 and 1 (live) and the dead slot 2.
            b.state.store(join(0, 3), SeqCst);
            b.arrivals[2].store(record(dead, 0, 1), SeqCst);
            let threads: Vec<_> = (0..2u32)
                .map(|me| {
                    let b = b.clone();
                    thread::spawn(move || b.withdraw_dead(token(me), 0, &|t| t != dead))
                })
                .collect();
            let withdrawn: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(withdrawn, 1);
            assert_eq!(split(b.state.load(SeqCst)), (0, 2));
            assert_eq!(b.arrivals[2].load(SeqCst), 0);
        });
    }
}
