//! `Event`: a flag processes wait on, like `multiprocessing.Event`.
//!
//! # The shared word
//!
//! One `u32`, which is also the futex word every waiter sleeps on:
//!
//! ```text
//! bit 0      SET      the flag                      set by `set`, cleared by `clear`
//! bit 1      PARKED   someone sleeps (or is about   set by a waiter before it parks,
//!                     to) on this word              cleared by `set` (which then wakes all)
//! bits 2..   epoch    number of `clear`s of a set   bumped by `clear` (wrapping)
//!                     event
//! ```
//!
//! | SET | PARKED | meaning                                                          |
//! |-----|--------|------------------------------------------------------------------|
//! | 0   | 0      | clear, nobody parked: `set` is one CAS, no syscall               |
//! | 0   | 1      | clear, waiters parked (or a parked waiter died): `set` wakes all |
//! | 1   | 0      | set: waiters return at once                                      |
//! | 1   | 1      | never written by the protocol (a scribble); `set`/`clear` heal it and wake |
//!
//! Every operation is a CAS (or a load) on this one word, so all orderings pair on a single
//! location: `set` and `clear` are `AcqRel` read-modify-writes; waiters load with `Acquire`.
//! What a process wrote before `set` is therefore visible to a waiter that returns because of
//! it, even when it sees only a later `clear` (an RMW continues the release sequence of the
//! `set`).
//!
//! # Waiting
//! A waiter remembers the word it first saw (`SET` clear, epoch `e`). It returns `true` as soon
//! as the word shows `SET`, *or a different epoch*: the event was set and cleared again while it
//! slept, and like Python's `Event.wait` (which returns `True` once `set` notified it, whatever
//! happened next) that counts as having been set. Before parking it CASes `PARKED` into the
//! exact value it saw and sleeps on that value; `set`'s CAS either comes first (the waiter's
//! CAS fails, it re-checks) or reads `PARKED` and wakes everyone. The futex refuses to sleep if
//! the word changed in between. So `set` makes a syscall only when someone parked.
//!
//! The epoch wraps after 2^30 `clear`s; a waiter that sleeps through exactly that many
//! set/clear cycles would miss them (and find out at its next `set`).
//!
//! # What a dead peer leaves
//! An event has no owner. A waiter killed while parked leaves `PARKED` set: the next `set` makes
//! one `FUTEX_WAKE` nobody needed and clears it. A setter killed mid-`set` either set the flag
//! or did not (one CAS); if it died between its CAS and its wake, waiters notice at the end of
//! their slice (20 ms).

use std::fmt;
use std::time::Duration;

use crate::error::Result;
use crate::loom::atomic::{
    AtomicU32,
    Ordering::{Acquire, Relaxed},
};
use crate::object::{self, Object};
use crate::region::{Kind, LayoutFn, Region, Shared, Spec};
use crate::sync::wait::{self, Park, Wait, Waiter};

/// The flag.
const SET: u32 = 1;
/// Someone parked on the word since the last `set`.
const PARKED: u32 = 2;
/// One step of the epoch that `clear` bumps.
const EPOCH_ONE: u32 = 4;

/// Bytes of the body: the word, padded to 8.
const BODY_LEN: u64 = 8;

/// The shared state.
#[repr(C)]
pub(crate) struct State {
    /// `SET | PARKED | epoch`, see the module doc.
    word: AtomicU32,
    _reserved: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<State>() as u64 == BODY_LEN);

// SAFETY: repr(C), two AtomicU32s, no padding, valid for every bit pattern.
unsafe impl Shared for State {}

impl State {
    #[cfg(all(test, loom))]
    fn new() -> State {
        State {
            word: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        }
    }

    fn is_set(&self) -> bool {
        self.word.load(Acquire) & SET != 0
    }

    /// Sets the flag; wakes every parked waiter if any parked.
    fn set(&self) {
        // Even an already-set event takes the CAS (cur → cur): it is a release operation, so
        // this setter's writes are published like the first setter's.
        wait::update_and_wake_all(&self.word, PARKED, |cur| Some((cur | SET) & !PARKED));
    }

    /// Clears the flag (a clear event stays as it is). SET and PARKED together is a scribble:
    /// the clear then wakes whoever might sleep on it.
    fn clear(&self) {
        wait::update_and_wake_all(&self.word, PARKED, |cur| {
            (cur & SET != 0).then(|| (cur & !(SET | PARKED)).wrapping_add(EPOCH_ONE))
        });
    }

    /// What a waiter starts from: the word as it is now.
    fn ticket(&self) -> u32 {
        self.word.load(Acquire)
    }

    /// True once the event is set or was set since `ticket` was taken.
    fn fired(ticket: u32, now: u32) -> bool {
        now & SET != 0 || now & !PARKED != ticket & !PARKED
    }

    /// Waits until the event is set, or was set since `ticket`; `false` if `w` timed out.
    fn wait_from(&self, ticket: u32, w: &mut impl Wait) -> bool {
        if ticket & SET != 0 {
            return true;
        }
        loop {
            let cur = self.word.load(Acquire);
            if Self::fired(ticket, cur) {
                return true;
            }
            if w.spin() {
                continue;
            }
            let parked = cur | PARKED;
            if cur & PARKED == 0
                && self
                    .word
                    .compare_exchange(cur, parked, Relaxed, Relaxed)
                    .is_err()
            {
                continue;
            }
            // Nobody owns an event: a slice that runs out just means "look again".
            if w.park(&self.word, parked) == Park::TimedOut {
                return Self::fired(ticket, self.word.load(Acquire));
            }
        }
    }

    fn wait(&self, w: &mut impl Wait) -> bool {
        self.wait_from(self.ticket(), w)
    }
}

/// The body length an event spec needs: fixed, capacity 0.
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    (spec.capacity == 0).then_some(BODY_LEN)
}

/// What `interproc inspect` shows: whether the event is set and whether anyone is parked.
/// Relaxed loads only (the region may be a read-only observer mapping).
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let word = region.body::<State>(0).word.load(Relaxed);
    vec![
        ("set", (word & SET != 0).to_string()),
        (
            "waiters",
            if word & PARKED != 0 { "yes" } else { "no" }.to_string(),
        ),
    ]
}

/// A flag shared by name that processes can wait on, like `multiprocessing.Event`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let ev = interproc::Event::create(&format!("doc-event-{}", std::process::id()))?;
/// assert!(!ev.wait_timeout(Duration::from_millis(1)));
/// ev.set();
/// ev.wait(); // returns at once
/// assert!(ev.is_set());
/// ev.clear();
/// # Ok::<(), interproc::Error>(())
/// ```
pub struct Event {
    region: Region,
}

impl Object for Event {
    type Args = ();
    const KIND: Kind = Kind::Event;
    const LAYOUT: &'static LayoutFn = &layout;

    fn capacity(_: ()) -> Result<u64> {
        Ok(0)
    }

    // `init` writes nothing: the kernel zero-fills the region, and a zero word is "clear,
    // nobody parked".

    fn attach(region: Region) -> Result<Event> {
        Ok(Event { region })
    }
}

impl Event {
    fn state(&self) -> &State {
        self.region.body(0)
    }

    /// Creates the event `name`, clear.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists), [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str) -> Result<Event> {
        object::create(name, ())
    }

    /// Opens the existing event `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::Incompatible`](crate::Error::Incompatible) if `name` is another kind of object;
    /// [`Error::Corrupted`](crate::Error::Corrupted) if its region does not check out.
    pub fn open(name: &str) -> Result<Event> {
        object::open(name)
    }

    /// Opens `name`, creating it (clear) if it does not exist (race-free).
    ///
    /// # Errors
    /// As [`Event::open`] and [`Event::create`].
    pub fn open_or_create(name: &str) -> Result<Event> {
        object::open_or_create(name, ())
    }

    /// Sets the flag and wakes every waiter (a futex syscall only if one is parked).
    pub fn set(&self) {
        self.state().set()
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.state().clear()
    }

    /// True if the flag is set.
    pub fn is_set(&self) -> bool {
        self.state().is_set()
    }

    /// Waits (parked on a futex) until the flag is set. Returns at once if it is set already;
    /// also returns if it was set and cleared again while this call waited.
    pub fn wait(&self) {
        let set = self.state().wait(&mut Waiter::new(None));
        debug_assert!(set, "a wait without deadline never times out");
    }

    /// Waits at most `timeout` for the flag; `true` if it was set (now, or at some moment
    /// during the wait), `false` on timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.state().wait(&mut Waiter::new(Some(timeout)))
    }

    object::name_and_persist!();
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        object::debug_struct(f, "Event", &self.region)
            .field("set", &(self.state().word.load(Relaxed) & SET != 0))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn name(tag: &str) -> String {
        crate::test_names::unit("event", tag)
    }

    #[test]
    fn set_clear_and_epochs() {
        let e = Event::create(&name("flag")).unwrap();
        assert!(!e.is_set());
        e.clear();
        assert_eq!(
            e.state().word.load(Relaxed),
            0,
            "clearing a clear event changes nothing"
        );
        e.set();
        e.set();
        assert!(e.is_set());
        let t = e.state().ticket();
        e.clear();
        assert!(!e.is_set());
        assert!(!State::fired(e.state().ticket(), e.state().ticket()));
        assert!(
            State::fired(t & !SET, e.state().ticket()),
            "a set+clear is seen"
        );
        assert!(format!("{e:?}").contains("set: false"));
    }

    #[test]
    fn handles_are_send_and_sync_and_inspectable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Event>();
        let e = Event::create(&name("inspect")).unwrap();
        e.set();
        assert!(inspect(&e.region).contains(&("set", "true".into())));
    }

    #[test]
    fn wakes_threads_and_times_out() {
        let e = Arc::new(Event::create(&name("wake")).unwrap());
        assert!(!e.wait_timeout(Duration::from_millis(30)));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let e = e.clone();
                std::thread::spawn(move || e.wait_timeout(Duration::from_secs(30)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        e.set();
        for t in threads {
            assert!(t.join().unwrap());
        }
        assert_eq!(
            e.state().word.load(Relaxed) & PARKED,
            0,
            "set cleared PARKED"
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::atomic::Ordering::SeqCst;
    use crate::sync::wait::ModelWaiter;
    use loom::sync::Arc;
    use loom::thread;

    /// A waiter parked (untimed) is always woken by `set`, and sees what the setter wrote.
    #[test]
    fn set_wakes_a_waiter_and_publishes() {
        loom::model(|| {
            let e = Arc::new(State::new());
            let data = Arc::new(AtomicU32::new(0));
            let (e2, data2) = (e.clone(), data.clone());
            let t = thread::spawn(move || {
                data2.store(7, Relaxed);
                e2.set();
            });
            assert!(e.wait(&mut ModelWaiter::blocking()));
            assert_eq!(data.load(Relaxed), 7);
            t.join().unwrap();
        });
    }

    /// Two waiters, one `set`: both wake (no lost wake-up with PARKED shared by two).
    #[test]
    fn set_wakes_every_waiter() {
        loom::model(|| {
            let e = Arc::new(State::new());
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let e = e.clone();
                    thread::spawn(move || assert!(e.wait(&mut ModelWaiter::blocking())))
                })
                .collect();
            e.set();
            for t in waiters {
                t.join().unwrap();
            }
        });
    }

    /// A waiter that started before a `set` + `clear` returns, even if it never sees `SET`.
    #[test]
    fn set_then_clear_is_not_lost() {
        loom::model(|| {
            let e = Arc::new(State::new());
            let ticket = e.ticket();
            let e2 = e.clone();
            let t = thread::spawn(move || {
                e2.set();
                e2.clear();
            });
            assert!(e.wait_from(ticket, &mut ModelWaiter::blocking()));
            t.join().unwrap();
            assert_eq!(e.word.load(SeqCst) & (SET | PARKED), 0);
        });
    }
}
