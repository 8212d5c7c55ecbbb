//! `RwLock<T>`: a robust, writer-preferring reader-writer lock around plain data.
//!
//! # Layout of the body
//!
//! ```text
//! offset   size   word           written by                          meaning
//!      0      4   state          writers (CAS), waiters (PARKED)     see the state table
//!      4      4   drain          readers leaving while a writer waits the futex a pending writer sleeps on
//!      8      4   poison         writers; clear_poison: anyone       0 = clean
//!     12      4   high_water     every attaching handle (fetch_max)  slots in use so far: 1 + highest slot
//!     16    112   (padding)
//!    128  16384   entries[128]   entry i: the handle in slot i       one per participant slot, 128 bytes each:
//!                                                                     (token << 32) | read guards held
//!  16512      N   data           the write holder                    the `T`, on its own line
//! ```
//!
//! # The state word
//!
//! Bits 0..=28 hold a writer's [`Token`](crate::region::Token), bit 29 is [`HELD`], bit 30 is
//! [`PARKED`]; bit 31 is never set by the protocol.
//!
//! | state                | meaning                                                         |
//! |----------------------|-----------------------------------------------------------------|
//! | `0`                  | no writer: readers come and go through their entries             |
//! | `token`              | writer `token` is pending: new readers wait, it waits for the entries to drain |
//! | `token \| HELD`      | writer `token` holds the lock                                    |
//! | `.. \| PARKED`       | a reader or writer may sleep on `state`: whoever clears the token wakes all |
//! | anything else        | scribbled: waiters treat it as a dead writer                     |
//!
//! # Readers
//!
//! A handle owns the entry of its participant slot: at attach it stores `(token, 0)`. A reader
//! adds 1 to its entry (`SeqCst`), then loads `state` (`SeqCst`): no writer token, and it holds
//! a read lock; a token, and it backs out (subtracts 1, waking the writer if the entry became 0)
//! and waits on `state`. On the uncontended path a reader therefore writes no shared word but
//! its own entry, and readers of different processes never write to a common cache line
//! (they only read `state`). Readers that wait set `PARKED` in `state` with a CAS on the exact
//! word they saw, as mutex waiters do; whoever clears the writer token wakes them all.
//!
//! Like std's, this lock is not re-entrant: a thread that holds a read lock and asks for
//! another while a writer waits, or asks for the write lock, deadlocks (the timed variants
//! time out).
//!
//! # Writers
//!
//! A writer first sets its token in `state` with a CAS (`SeqCst`); from then on new readers
//! back out: writers cannot starve. Then it waits until every entry `0..high_water` reads 0:
//! it loads `drain`, scans the entries (`SeqCst`), and if some reader remains, sleeps on
//! `drain`. A reader that leaves while a writer is pending (token set, `HELD` clear) and whose
//! entry drops to 0 bumps `drain` and wakes it. Once the entries are empty it sets `HELD`.
//!
//! The reader's (entry `+= 1`; load `state`) against the writer's (set token; read entries) is
//! a store-buffer pattern; at least one side must see the other, so a reader and a writer
//! never both proceed. `SeqCst` on all four guarantees it; the writer additionally reads the
//! entries with an RMW (`fetch_add(0)`), which reads the latest value in the entry's
//! modification order, so the guarantee holds even under acquire/release alone (if the
//! writer's RMW came first, the reader's increment reads from it, which orders the writer's
//! token before the reader's load of `state`). That is also the form loom can check. Readers
//! keep a plain load of `state`: no RMW on a line every reader shares. The reader's `fetch_sub` (a release) and the writer's scan
//! (acquire loads) order every read before the write; the writer's clearing CAS and the
//! reader's load of `state` order the write before later reads. The scan reads
//! `high_water` after setting the token; a handle raises `high_water` before its first read,
//! so no active entry lies beyond it.
//!
//! # Dead peers: what is guaranteed
//!
//! - **A dead writer** (pending or holding) is detected like a dead mutex owner: waiters on
//!   `state` check its liveness before their first park and after every 20 ms slice, and one
//!   of them replaces exactly the observed word. If the dead writer held the lock (`HELD`) or
//!   the word is scribbled, the lock becomes poisoned (until [`RwLock::clear_poison`]) and the
//!   next `read()`/`write()` anywhere returns `Err(PoisonError)`; a writer that died while
//!   still waiting for readers never touched the data and poisons nothing. The replacing word
//!   keeps `HELD` until the poison is stored, so a waiter that dies half-way through a
//!   take-over leaves a dead holding writer for the next one to poison again.
//! - **A dead reader** never poisons (as in std, readers cannot have changed the data). Its
//!   entry keeps a count under a token that is no longer alive; a writer waiting for readers
//!   checks, before its first park and after every slice, the liveness of every entry that
//!   still counts readers, clears those of dead tokens (CAS on the exact entry), and goes on.
//!   So a writer blocked by a dead reader proceeds within about one slice of the death. The
//!   slot's next holder overwrites the stale entry when it attaches.
//! - **A stopped (`SIGSTOP`) reader or writer** is alive: never overtaken; timed calls time out.
//! - Scribbled entries whose token is not valid count as dead readers.
//!
//! A write guard dropped during a panic poisons; a read guard does not (as in std).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
#[cfg(doc)]
use std::sync::TryLockError; // the `# Errors` sections link to it
use std::sync::{LockResult, TryLockResult};
use std::time::Duration;

use bytemuck::Pod;

use super::mutex::{
    check_data_type, data_layout, init_data, lock_result, owner_dead, region_liveness, try_result,
};
use super::wait::{self, Park, Wait};
#[cfg(doc)]
use crate::error::Error; // the `# Errors` sections link to it
use crate::error::Result;
use crate::loom::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use crate::object::{self, Object};
use crate::region::registry::MAX_PARTICIPANTS;
use crate::region::{Kind, LayoutFn, Region, Shared, Spec, Token};

/// Bits of `state` that hold the writer's token.
const TOKEN_MASK: u32 = (1 << 29) - 1;
/// `state` bit: the writer holds the lock (the readers have drained).
const HELD: u32 = 1 << 29;
/// `state` bit: someone may sleep on `state`; whoever clears the token wakes all.
const PARKED: u32 = 1 << 30;
/// Where the entries start.
const ENTRIES_OFFSET: u64 = 128;
/// Where the data starts.
const DATA_OFFSET: u64 = ENTRIES_OFFSET + (MAX_PARTICIPANTS * 128) as u64;

fn owner(s: u32) -> u32 {
    s & TOKEN_MASK
}

/// A word no correct peer writes: bit 31, `HELD` without a token, or an invalid token.
fn garbage(s: u32) -> bool {
    s & (1 << 31) != 0
        || (owner(s) == 0 && s & HELD != 0)
        || (owner(s) != 0 && Token::from_raw(owner(s)).is_none())
}

/// No writer pending or holding (`PARKED` may linger).
fn free(s: u32) -> bool {
    s & !PARKED == 0
}

fn entry_token(e: u64) -> u32 {
    (e >> 32) as u32
}

fn entry_count(e: u64) -> u32 {
    e as u32
}

/// The four control words (see the module doc).
#[repr(C)]
pub(crate) struct RwWords {
    state: AtomicU32,
    drain: AtomicU32,
    poison: AtomicU32,
    high_water: AtomicU32,
}

/// One participant's reader entry on its own 128-byte line: `(token << 32) | count`.
#[repr(C)]
pub(crate) struct ReaderEntry {
    value: AtomicU64,
    _pad: [AtomicU64; 15],
}

impl ReaderEntry {
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> ReaderEntry {
        ReaderEntry {
            value: AtomicU64::new(0),
            _pad: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The protocol core over the control words and the entries.
pub(crate) struct RawRwLock<'a> {
    w: &'a RwWords,
    entries: &'a [ReaderEntry],
}

impl RawRwLock<'_> {
    fn entry(&self, me: Token) -> &AtomicU64 {
        &self.entries[me.slot() as usize].value
    }

    /// Claims this handle's entry: called once per handle, before its first read.
    pub(crate) fn attach(&self, me: Token) {
        // We hold the slot, so any token left in the entry is dead: overwrite it.
        self.entry(me).store((me.raw() as u64) << 32, SeqCst);
        self.w.high_water.fetch_max(me.slot() + 1, SeqCst);
    }

    /// Registers a reader if no writer is pending; otherwise backs out and returns the
    /// blocking state word.
    fn read_attempt(&self, me: Token) -> Option<u32> {
        let s = self.w.state.load(SeqCst);
        if !free(s) {
            return Some(s);
        }
        self.entry(me).fetch_add(1, SeqCst);
        let s = self.w.state.load(SeqCst);
        if free(s) {
            return None;
        }
        self.read_unlock(me);
        Some(s)
    }

    /// Sets `PARKED` in the exact word `s`; `None` if the word moved.
    fn announce(&self, s: u32) -> Option<u32> {
        if s & PARKED != 0 {
            return Some(s);
        }
        self.w
            .state
            .compare_exchange(s, s | PARKED, SeqCst, SeqCst)
            .ok()
            .map(|_| s | PARKED)
    }

    /// If the non-free word `s` names a dead writer (or is garbage), replaces exactly that
    /// word with our token and `PARKED`, and poisons if the dead writer held the lock (or the
    /// word was garbage). True if it did; we then stand in the writer's place.
    ///
    /// The replacement keeps `HELD` when the lock is to be poisoned, and `HELD` stays until the
    /// poison is stored and the caller clears it: if we die in between, the next waiter finds
    /// a dead *holding* writer again and poisons in our place, so no death goes unrecorded.
    fn take_over_dead_writer(&self, s: u32, me: Token, alive: &dyn Fn(u32) -> bool) -> bool {
        let bad = garbage(s);
        if !bad && !owner_dead(owner(s), alive) {
            return false;
        }
        let poisonous = bad || s & HELD != 0;
        let new = me.raw() | PARKED | if poisonous { HELD } else { 0 };
        if self
            .w
            .state
            .compare_exchange(s, new, SeqCst, SeqCst)
            .is_err()
        {
            return false;
        }
        if poisonous {
            self.w.poison.store(1, SeqCst);
        }
        true
    }

    /// After a take-over by a writer: back to "pending" (our token without `HELD`), so that
    /// readers draining meanwhile wake us.
    fn clear_held(&self, me: Token) {
        let s = self.w.state.load(SeqCst);
        if owner(s) == me.raw() && s & HELD != 0 {
            // Only PARKED can change under us while our token is in the word.
            self.w.state.fetch_and(!HELD, SeqCst);
        }
    }

    /// Takes a read lock, waiting at most `timeout`. False if the time ran out.
    pub(crate) fn read(
        &self,
        me: Token,
        timeout: Option<Duration>,
        alive: &dyn Fn(u32) -> bool,
    ) -> bool {
        let Some(mut s) = self.read_attempt(me) else {
            return true;
        };
        let mut w = wait::lock_waiter(timeout);
        let mut check = true;
        loop {
            if !w.spin() {
                if let Some(parked) = self.announce(s) {
                    let mut skip_park = false;
                    if check {
                        check = false;
                        if self.take_over_dead_writer(parked, me, alive) {
                            // We stand in the dead writer's place only to clear it.
                            self.write_unlock(me);
                            skip_park = true;
                        }
                    }
                    if !skip_park {
                        match w.park(&self.w.state, parked) {
                            Park::Woken => {}
                            Park::Slice => check = true,
                            Park::TimedOut => return false,
                        }
                    }
                }
            }
            match self.read_attempt(me) {
                None => return true,
                Some(now) => s = now,
            }
        }
    }

    /// One read attempt that never blocks (clears a dead writer first).
    pub(crate) fn try_read(&self, me: Token, alive: &dyn Fn(u32) -> bool) -> bool {
        match self.read_attempt(me) {
            None => true,
            Some(s) => {
                if self.take_over_dead_writer(s, me, alive) {
                    self.write_unlock(me);
                    self.read_attempt(me).is_none()
                } else {
                    false
                }
            }
        }
    }

    /// Releases one read lock of `me`; wakes a pending writer if this entry drained.
    pub(crate) fn read_unlock(&self, me: Token) {
        let prev = self.entry(me).fetch_sub(1, SeqCst);
        if entry_count(prev) == 1 {
            let s = self.w.state.load(SeqCst);
            if owner(s) != 0 && s & HELD == 0 {
                self.w.drain.fetch_add(1, SeqCst);
                wait::wake(&self.w.drain, 1);
            }
        }
    }

    /// True if some entry counts readers. With `check`, entries of dead tokens are cleared
    /// (and not counted) on the way: that costs a liveness syscall per counting entry.
    fn readers_present(&self, check: bool, alive: &dyn Fn(u32) -> bool) -> bool {
        let n = (self.w.high_water.load(SeqCst) as usize).min(self.entries.len());
        let mut present = false;
        for e in &self.entries[..n] {
            // An RMW, not a load: it reads the latest value of the entry, which makes the
            // handshake with readers hold even under acquire/release reasoning (what loom
            // checks; loom treats SeqCst loads as acquire loads). See the module doc.
            let v = e.value.fetch_add(0, SeqCst);
            if entry_count(v) == 0 {
                continue;
            }
            if check
                && owner_dead(entry_token(v), alive)
                && e.value.compare_exchange(v, 0, SeqCst, SeqCst).is_ok()
            {
                continue;
            }
            present = true;
            if !check {
                break;
            }
        }
        present
    }

    /// Sets `HELD` on our pending token. False if the word no longer names us (scribbled).
    fn set_held(&self, me: Token) -> bool {
        let mut s = self.w.state.load(SeqCst);
        for _ in 0..4 {
            if s & !PARKED != me.raw() {
                return false;
            }
            match self.w.state.compare_exchange(s, s | HELD, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Takes the write lock, waiting at most `timeout`. False if the time ran out.
    pub(crate) fn write(
        &self,
        me: Token,
        timeout: Option<Duration>,
        alive: &dyn Fn(u32) -> bool,
    ) -> bool {
        let mut w = wait::lock_waiter(timeout);
        loop {
            // Phase 1: put our token in `state`.
            let mut check = true;
            loop {
                let s = self.w.state.load(SeqCst);
                if free(s) {
                    if self
                        .w
                        .state
                        .compare_exchange(s, me.raw() | (s & PARKED), SeqCst, SeqCst)
                        .is_ok()
                    {
                        break;
                    }
                    continue;
                }
                if w.spin() {
                    continue;
                }
                let Some(parked) = self.announce(s) else {
                    continue;
                };
                if check {
                    check = false;
                    if self.take_over_dead_writer(parked, me, alive) {
                        self.clear_held(me);
                        break;
                    }
                }
                match w.park(&self.w.state, parked) {
                    Park::Woken => {}
                    Park::Slice => check = true,
                    Park::TimedOut => return false,
                }
            }
            // Crash tests: our token is in `state` (pending), the readers not drained yet.
            crate::failpoint::hit("rwlock.write.pending");
            // Phase 2: wait for the readers to drain.
            let mut check = false;
            let mut checked = false;
            loop {
                let d = self.w.drain.load(SeqCst);
                if !self.readers_present(check, alive) {
                    break;
                }
                check = false;
                if w.spin() {
                    continue;
                }
                if !checked {
                    // Before the first park: scan once more, clearing dead readers.
                    checked = true;
                    check = true;
                    continue;
                }
                match w.park(&self.w.drain, d) {
                    Park::Woken => {}
                    Park::Slice => check = true,
                    Park::TimedOut => {
                        self.write_unlock(me);
                        return false;
                    }
                }
            }
            if self.set_held(me) {
                // Crash tests: the write lock is held, no guard exists yet.
                crate::failpoint::hit("rwlock.write.held");
                return true;
            }
            // Our token vanished (a scribbling peer): start over.
        }
    }

    /// One write attempt that never blocks (clears dead writers and dead readers first).
    pub(crate) fn try_write(&self, me: Token, alive: &dyn Fn(u32) -> bool) -> bool {
        let s = self.w.state.load(SeqCst);
        let claimed = if free(s) {
            self.w
                .state
                .compare_exchange(s, me.raw() | (s & PARKED), SeqCst, SeqCst)
                .is_ok()
        } else {
            let took = self.take_over_dead_writer(s, me, alive);
            if took {
                self.clear_held(me);
            }
            took
        };
        if !claimed {
            return false;
        }
        if self.readers_present(false, alive) && self.readers_present(true, alive) {
            self.write_unlock(me);
            return false;
        }
        if self.set_held(me) {
            true
        } else {
            self.write_unlock(me);
            false
        }
    }

    /// Clears our token (held or pending); wakes everyone parked on `state`.
    pub(crate) fn write_unlock(&self, me: Token) {
        let mut s = self.w.state.load(SeqCst);
        for _ in 0..4 {
            if owner(s) != me.raw() || s & (1 << 31) != 0 {
                return;
            }
            match self.w.state.compare_exchange(s, 0, SeqCst, SeqCst) {
                Ok(_) => {
                    if s & PARKED != 0 {
                        wait::wake(&self.w.state, u32::MAX);
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.w.poison.load(SeqCst) != 0
    }

    fn set_poison(&self) {
        self.w.poison.store(1, SeqCst);
    }

    fn clear_poison(&self) {
        self.w.poison.store(0, SeqCst);
    }
}

/// The whole control part of the body.
#[repr(C)]
struct RwHead {
    words: RwWords,
    _pad: [AtomicU32; 28],
    entries: [ReaderEntry; MAX_PARTICIPANTS],
}

// SAFETY: repr(C), atomics only (padding included), 16512 bytes, alignment 8.
unsafe impl Shared for RwHead {}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RwHead>() == DATA_OFFSET as usize);

/// Body bytes an rwlock spec needs.
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    data_layout(spec, DATA_OFFSET)
}

/// What `interproc inspect` shows of an rwlock. `Relaxed` loads only: the region may be a
/// read-only observer mapping, where Rust guarantees only small `Relaxed` atomic loads.
#[allow(dead_code)] // called by the CLI
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let head = region.body::<RwHead>(0);
    let s = head.words.state.load(Relaxed);
    let n = (head.words.high_water.load(Relaxed) as usize).min(MAX_PARTICIPANTS);
    let readers: u64 = head.entries[..n]
        .iter()
        .map(|e| entry_count(e.value.load(Relaxed)) as u64)
        .sum();
    let state = if garbage(s) {
        format!("corrupt state word {s:#010x}")
    } else if owner(s) == 0 {
        if readers == 0 { "free" } else { "read-locked" }.to_string()
    } else {
        let slot = owner(s) & 127;
        if s & HELD != 0 {
            format!("write-locked by participant slot {slot}")
        } else {
            format!("writer pending (participant slot {slot})")
        }
    };
    vec![
        ("state", state),
        ("readers", readers.to_string()),
        (
            "poisoned",
            (head.words.poison.load(Relaxed) != 0).to_string(),
        ),
        ("data bytes", region.spec().elem_size.to_string()),
    ]
}

/// A reader-writer lock around a `T`, shared by name between processes; robust against
/// readers and writers that die. Writer-preferring: once a writer waits, new readers wait too.
///
/// The counterpart of `std::sync::RwLock`, with the same poisoning rule as [`Mutex`](crate::Mutex):
/// a writer that dies (or panics) while holding the lock poisons it. A reader that dies
/// holding a read lock is discounted by the next writer within about 20 ms of its death. See
/// the module documentation for the precise guarantees. At most 2³² − 1 read guards per handle
/// may exist at once.
///
/// # Examples
/// ```
/// let cfg = interproc::RwLock::<[u32; 4]>::create("doc-rwlock", [1, 2, 3, 4])?;
/// {
///     let a = cfg.read().unwrap();
///     let b = cfg.read().unwrap(); // readers share
///     assert_eq!(a[0] + b[3], 5);
/// }
/// cfg.write().unwrap()[0] = 10;
/// assert_eq!(cfg.read().unwrap()[0], 10);
/// # Ok::<(), interproc::Error>(())
/// ```
pub struct RwLock<T: Pod> {
    region: Region,
    me: Token,
    _t: PhantomData<T>,
}

// SAFETY: as for `Mutex`: the data is reached only through guards the protocol makes
// exclusive (writers) or shared (readers, which need `T: Sync`), as for `std::sync::RwLock`.
unsafe impl<T: Pod + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Send + Sync> Sync for RwLock<T> {}

impl<T: Pod> Object for RwLock<T> {
    type Args = T;
    const KIND: Kind = Kind::RwLock;
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

    fn attach(region: Region) -> Result<RwLock<T>> {
        let me = object::participant(&region)?;
        let lock = RwLock {
            region,
            me,
            _t: PhantomData,
        };
        lock.raw().attach(me);
        Ok(lock)
    }
}

impl<T: Pod> RwLock<T> {
    /// Creates the rwlock `name` holding `value`.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::InvalidArgument`] if `T` is
    /// larger than 1 GiB or aligned to more than 128 bytes, [`Error::Io`].
    pub fn create(name: &str, value: T) -> Result<RwLock<T>> {
        object::create(name, value)
    }

    /// Opens the existing rwlock `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Incompatible`] if `name` is another kind of object or
    /// holds data of another size or alignment; [`Error::Corrupted`]; [`Error::Busy`] if 128
    /// handles are attached already.
    pub fn open(name: &str) -> Result<RwLock<T>> {
        object::open(name)
    }

    /// Opens `name`, creating it with `value` if it does not exist (race-free).
    ///
    /// # Errors
    /// As [`RwLock::open`] and [`RwLock::create`].
    pub fn open_or_create(name: &str, value: T) -> Result<RwLock<T>> {
        object::open_or_create(name, value)
    }

    fn raw(&self) -> RawRwLock<'_> {
        let head = self.region.body::<RwHead>(0);
        RawRwLock {
            w: &head.words,
            entries: &head.entries,
        }
    }

    fn data_ptr(&self) -> *mut T {
        self.region.body_ptr(DATA_OFFSET as usize) as *mut T
    }

    fn read_guard(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let guard = RwLockReadGuard {
            lock: self,
            _not_send: PhantomData,
        };
        lock_result(self.raw().is_poisoned(), guard)
    }

    fn write_guard(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let guard = RwLockWriteGuard {
            lock: self,
            panicking: std::thread::panicking(),
            _not_send: PhantomData,
        };
        lock_result(self.raw().is_poisoned(), guard)
    }

    /// Takes a shared read lock, blocking while a writer holds the lock or waits for it.
    ///
    /// # Errors
    /// `Err(PoisonError)` (holding the read guard) if the lock is poisoned.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let alive = region_liveness(&self.region);
        while !self.raw().read(self.me, None, &alive) {}
        self.read_guard()
    }

    /// Takes a read lock if that needs no waiting. When a writer holds or waits, telling a
    /// live writer from a dead one costs one liveness check (an `fcntl`).
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if a live writer holds or waits for the lock;
    /// [`TryLockError::Poisoned`] as for [`RwLock::read`].
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let alive = region_liveness(&self.region);
        try_result(self.raw().try_read(self.me, &alive), || self.read_guard())
    }

    /// Takes a read lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if the time ran out; [`TryLockError::Poisoned`] as for
    /// [`RwLock::read`].
    pub fn read_timeout(&self, timeout: Duration) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let alive = region_liveness(&self.region);
        try_result(self.raw().read(self.me, Some(timeout), &alive), || {
            self.read_guard()
        })
    }

    /// Takes the exclusive write lock, blocking until no reader or writer holds it.
    ///
    /// # Errors
    /// `Err(PoisonError)` (holding the write guard) if the lock is poisoned.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let alive = region_liveness(&self.region);
        while !self.raw().write(self.me, None, &alive) {}
        self.write_guard()
    }

    /// Takes the write lock if that needs no waiting.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if a live reader or writer holds it;
    /// [`TryLockError::Poisoned`] as for [`RwLock::write`].
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        let alive = region_liveness(&self.region);
        try_result(self.raw().try_write(self.me, &alive), || self.write_guard())
    }

    /// Takes the write lock, waiting at most `timeout`. While it waits, new readers wait too.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if the time ran out; [`TryLockError::Poisoned`] as for
    /// [`RwLock::write`].
    pub fn write_timeout(&self, timeout: Duration) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        let alive = region_liveness(&self.region);
        try_result(self.raw().write(self.me, Some(timeout), &alive), || {
            self.write_guard()
        })
    }

    /// True if a writer died or panicked while holding the lock (until cleared).
    pub fn is_poisoned(&self) -> bool {
        self.raw().is_poisoned()
    }

    /// Clears the poison mark.
    pub fn clear_poison(&self) {
        self.raw().clear_poison();
    }

    object::name_and_persist!();
}

impl<T: Pod> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        object::debug_struct(f, "RwLock", &self.region)
            .field("type", &std::any::type_name::<T>())
            .field("poisoned", &self.is_poisoned())
            .finish()
    }
}

/// A shared read lock on an [`RwLock`]; derefs to the data. Not `Send`, as in std.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a `&RwLockReadGuard` only hands out `&T`: sound to share when `T: Sync`.
unsafe impl<T: Pod + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<T: Pod> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: in bounds and aligned (see `init` in `impl Object for RwLock`); the read lock
        // excludes writers that follow the protocol while the reference lives; any bits are a
        // valid `T: Pod`.
        unsafe { &*self.lock.data_ptr() }
    }
}

impl<T: Pod> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw().read_unlock(self.lock.me);
    }
}

impl<T: Pod> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockReadGuard")
            .field("name", &self.lock.name())
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// The exclusive write lock on an [`RwLock`]; derefs mutably to the data. Not `Send`.
/// Dropping it while a panic unwinds poisons the lock.
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    panicking: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a `&RwLockWriteGuard` only hands out `&T`: sound to share when `T: Sync`.
unsafe impl<T: Pod + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T: Pod> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: in bounds and aligned; the write lock excludes every other holder.
        unsafe { &*self.lock.data_ptr() }
    }
}

impl<T: Pod> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the guard is borrowed mutably, so this is the only reference.
        unsafe { &mut *self.lock.data_ptr() }
    }
}

impl<T: Pod> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        if !self.panicking && std::thread::panicking() {
            self.lock.raw().set_poison();
        }
        self.lock.raw().write_unlock(self.lock.me);
    }
}

impl<T: Pod> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockWriteGuard")
            .field("name", &self.lock.name())
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::TryLockError;
    use std::time::Instant;

    fn name(tag: &str) -> String {
        crate::test_names::unit("rwlock", tag)
    }

    #[test]
    fn readers_share_writers_exclude() {
        let l = RwLock::<u64>::create(&name("basic"), 1).unwrap();
        let l2 = RwLock::<u64>::open(l.name()).unwrap();
        let a = l.read().unwrap();
        let b = l2.read().unwrap();
        let c = l.try_read().unwrap();
        assert_eq!(*a + *b + *c, 3);
        assert!(matches!(l2.try_write(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            l.write_timeout(Duration::from_millis(30)),
            Err(TryLockError::WouldBlock)
        ));
        drop((a, b, c));
        let mut w = l2.write().unwrap();
        *w = 5;
        assert!(matches!(l.try_read(), Err(TryLockError::WouldBlock)));
        assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
        drop(w);
        assert_eq!(*l.read().unwrap(), 5);
        assert!(inspect(&l.region).contains(&("state", "free".to_string())));
    }

    #[test]
    fn pending_writer_blocks_new_readers() {
        let l = RwLock::<u32>::create(&name("pref"), 0).unwrap();
        let lw = RwLock::<u32>::open(l.name()).unwrap();
        let lr = RwLock::<u32>::open(l.name()).unwrap();
        let held = l.read().unwrap();
        std::thread::scope(|s| {
            let writer = s.spawn(|| {
                *lw.write().unwrap() += 1;
            });
            // Wait until the writer is pending.
            let start = Instant::now();
            while owner(lr.raw().w.state.load(SeqCst)) == 0 {
                assert!(start.elapsed() < Duration::from_secs(10));
                std::thread::yield_now();
            }
            assert!(matches!(lr.try_read(), Err(TryLockError::WouldBlock)));
            assert!(matches!(
                lr.read_timeout(Duration::from_millis(30)),
                Err(TryLockError::WouldBlock)
            ));
            drop(held);
            writer.join().unwrap();
        });
        assert_eq!(*lr.read().unwrap(), 1);
    }

    #[test]
    fn threads_keep_an_invariant() {
        let l = RwLock::<[u64; 2]>::create(&name("inv"), [0, 0]).unwrap();
        let l2 = RwLock::<[u64; 2]>::open(l.name()).unwrap();
        std::thread::scope(|s| {
            for h in [&l, &l2] {
                s.spawn(move || {
                    for _ in 0..2_000 {
                        let mut g = h.write().unwrap();
                        g[0] += 1;
                        g[1] += 1;
                    }
                });
                s.spawn(move || {
                    for _ in 0..2_000 {
                        let g = h.read().unwrap();
                        assert_eq!(g[0], g[1]);
                    }
                });
            }
        });
        assert_eq!(*l.read().unwrap(), [4_000, 4_000]);
    }

    #[test]
    fn panics_poison_only_writers() {
        let l = RwLock::<u32>::create(&name("panic"), 0).unwrap();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = l.read().unwrap();
            panic!("reader");
        }));
        assert!(!l.is_poisoned());
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut g = l.write().unwrap();
            *g = 4;
            panic!("writer");
        }));
        assert!(l.is_poisoned());
        assert_eq!(*l.read().unwrap_err().into_inner(), 4);
        assert!(matches!(l.try_write(), Err(TryLockError::Poisoned(_))));
        l.clear_poison();
        assert!(l.write().is_ok());
    }

    #[test]
    fn gone_handles_do_not_block() {
        let l = RwLock::<u32>::create(&name("gone"), 0).unwrap();
        // A reader whose handle went away with its read lock (as if its process died).
        let r = RwLock::<u32>::open(l.name()).unwrap();
        std::mem::forget(r.read().unwrap());
        drop(r);
        let t = Instant::now();
        assert!(l.write_timeout(Duration::from_secs(5)).is_ok());
        assert!(!l.is_poisoned());
        // A writer gone while holding: poisons.
        let w = RwLock::<u32>::open(l.name()).unwrap();
        std::mem::forget(w.write().unwrap());
        drop(w);
        assert!(matches!(
            l.read_timeout(Duration::from_secs(5)),
            Err(TryLockError::Poisoned(_))
        ));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn scribbled_words_never_hang() {
        let l = RwLock::<u32>::create(&name("scribble"), 0).unwrap();
        let raw = l.raw();
        for garbage_word in [1 << 31, HELD, 5, u32::MAX] {
            raw.w.state.store(garbage_word, SeqCst);
            assert!(matches!(
                l.write_timeout(Duration::from_secs(5)),
                Err(TryLockError::Poisoned(_))
            ));
            l.clear_poison();
            raw.w.state.store(garbage_word, SeqCst);
            assert!(l.read_timeout(Duration::from_secs(5)).is_err());
            l.clear_poison();
        }
        // A scribbled entry counting readers under an invalid token.
        raw.entries[100].value.store(7, SeqCst);
        raw.w.high_water.store(u32::MAX, SeqCst);
        assert!(l.write_timeout(Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn layout_never_panics() {
        let mut spec = object::spec::<RwLock<u64>>(0).unwrap();
        assert_eq!(layout(&spec), Some(DATA_OFFSET + 8));
        spec.elem_size = u32::MAX;
        assert_eq!(layout(&spec), None);
        spec.elem_size = 0;
        spec.elem_align = 0;
        assert_eq!(layout(&spec), None);
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
        words: RwWords,
        entries: [ReaderEntry; 3],
        data: UnsafeCell<u32>,
        alive: [AtomicBool; 3],
    }

    impl Shared {
        fn new() -> Arc<Shared> {
            let s = Arc::new(Shared {
                words: RwWords {
                    state: AtomicU32::new(0),
                    drain: AtomicU32::new(0),
                    poison: AtomicU32::new(0),
                    high_water: AtomicU32::new(0),
                },
                entries: std::array::from_fn(|_| ReaderEntry::new()),
                data: UnsafeCell::new(0),
                alive: std::array::from_fn(|_| AtomicBool::new(true)),
            });
            for slot in 0..3 {
                s.raw().attach(token(slot));
            }
            s
        }
        fn raw(&self) -> RawRwLock<'_> {
            RawRwLock {
                w: &self.words,
                entries: &self.entries,
            }
        }
        fn alive(&self, raw: u32) -> bool {
            self.alive[Token::from_raw(raw).unwrap().slot() as usize].load(SeqCst)
        }
        fn read(&self, slot: u32) -> u32 {
            let me = token(slot);
            assert!(self.raw().read(me, None, &|t| self.alive(t)));
            let v = get(&self.data);
            self.raw().read_unlock(me);
            v
        }
        fn write(&self, slot: u32) {
            let me = token(slot);
            assert!(self.raw().write(me, None, &|t| self.alive(t)));
            set(&self.data, get(&self.data) + 1);
            self.raw().write_unlock(me);
        }
    }

    /// A reader and a writer race (the store-buffer handshake): loom's cell checks exclusion
    /// and ordering; a lost drain or state wake-up deadlocks the model.
    #[test]
    fn reader_and_writer_exclude() {
        loom::model(|| {
            let s = Shared::new();
            let s2 = s.clone();
            let w = loom::thread::spawn(move || s2.write(1));
            let seen = s.read(0);
            w.join().unwrap();
            assert!(seen <= 1);
            assert_eq!(get(&s.data), 1);
            assert_eq!(s.words.state.load(SeqCst), 0);
        });
    }

    /// Two writers and a reader.
    #[test]
    fn two_writers_and_a_reader() {
        loom::model(|| {
            let s = Shared::new();
            let (s2, s3) = (s.clone(), s.clone());
            let w1 = loom::thread::spawn(move || s2.write(1));
            let w2 = loom::thread::spawn(move || s3.write(2));
            let seen = s.read(0);
            w1.join().unwrap();
            w2.join().unwrap();
            assert!(seen <= 2);
            assert_eq!(get(&s.data), 2);
        });
    }

    /// Writer preference: with a read lock held, a pending writer makes a new reader fail to
    /// get in; releasing the read lock lets the writer through.
    #[test]
    fn pending_writer_blocks_new_readers() {
        loom::model(|| {
            let s = Shared::new();
            let r0 = token(0);
            assert!(s.raw().read(r0, None, &|_| true));
            let s2 = s.clone();
            let w = loom::thread::spawn(move || s2.write(1));
            // Wait until the writer has put its token in.
            while owner(s.words.state.load(SeqCst)) == 0 {
                loom::thread::yield_now();
            }
            assert!(!s.raw().try_read(token(2), &|_| true));
            s.raw().read_unlock(r0);
            w.join().unwrap();
            assert_eq!(s.read(2), 1);
        });
    }

    /// A writer died holding the lock: a second writer and a reader race to clear it. The
    /// writer that takes over drains the reader (clear_held makes the reader's leave wake it);
    /// the lock ends poisoned and free.
    #[test]
    fn dead_holding_writer_taken_over_by_a_writer() {
        loom::model(|| {
            let s = Shared::new();
            s.alive[1].store(false, SeqCst);
            s.words.state.store(token(1).raw() | HELD, SeqCst);
            let s2 = s.clone();
            let w = loom::thread::spawn(move || s2.write(2));
            let seen = s.read(0);
            w.join().unwrap();
            assert!(seen <= 1);
            assert_eq!(get(&s.data), 1);
            assert!(s.raw().is_poisoned());
            assert_eq!(s.words.state.load(SeqCst), 0);
        });
    }

    /// A dead reader's count is discounted; a dead holding writer is cleared and poisons.
    #[test]
    fn dead_reader_and_dead_writer() {
        loom::model(|| {
            let s = Shared::new();
            // Slot 0 died holding a read lock.
            s.entries[0].value.fetch_add(1, SeqCst);
            s.alive[0].store(false, SeqCst);
            let s2 = s.clone();
            let w = loom::thread::spawn(move || {
                let me = token(1);
                assert!(s2.raw().write(me, None, &|t| s2.alive(t)));
                set(&s2.data, 7);
                // Dies holding the write lock.
                s2.alive[1].store(false, SeqCst);
            });
            let me = token(2);
            assert!(s
                .raw()
                .read(me, Some(Duration::from_secs(1)), &|t| s.alive(t)));
            let v = get(&s.data);
            s.raw().read_unlock(me);
            w.join().unwrap();
            // Either we read before the writer got in, or after its death (poisoned).
            assert!(
                (v == 0 && !s.raw().is_poisoned()) || (v == 7 && s.raw().is_poisoned()),
                "{v}"
            );
        });
    }
}
