//! The index protocol of the spsc ring, free of regions and element types.
//!
//! Everything here works on a [`Words`] view (three lines of facade atomics) and on positions;
//! the caller copies elements in and out of the slots between "how much may I touch"
//! ([`Producer::free`] / [`Consumer::available`]) and "publish it" ([`Producer::commit`] /
//! [`Consumer::release`]). The handles in `mod.rs` give it a region's lines; the loom models
//! at the bottom give it heap lines and loom `UnsafeCell` slots. See the module docs of
//! [`super`] for the protocol itself.

use std::cell::Cell;

use crate::loom::atomic::{
    fence, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use crate::sync::asym::{self, park_barrier};
use crate::sync::wait::{self, Park};

/// Value of a parked flag while its owner is (about to be) asleep on it.
pub(crate) const PARKED: u32 = 1;

/// The read-mostly line: who is attached, and who sleeps. Written only on attach and detach
/// and around a futex sleep; read by both sides on every publication.
#[repr(C, align(128))]
pub(crate) struct ControlLine {
    /// The sender's attach word (see [`Endpoint`]); written by the sender-role holder.
    pub(crate) sender: AtomicU32,
    /// The receiver's attach word; written by the receiver-role holder.
    pub(crate) receiver: AtomicU32,
    /// [`LIGHT`](crate::sync::asym::LIGHT) while the sender's process elides its publication fence (see
    /// [`attach`]); written by the sender-role holder before its attach word.
    pub(crate) sender_light: AtomicU32,
    /// The same for the receiver.
    pub(crate) receiver_light: AtomicU32,
    /// The consumer's futex word: the consumer stores [`PARKED`] before it sleeps on it; the
    /// producer (or a detaching sender) stores 0 and wakes it. The producer loads it after
    /// every publication. It lives here, not on the producer's hot line, because a load from
    /// the line whose store is still waiting for ownership (the consumer keeps pulling that
    /// line to read `tail`) stalls; this line stays shared in both caches while nobody
    /// parks, so the load is an L1 hit.
    pub(crate) consumer_parked: AtomicU32,
    /// The producer's futex word (mirror of `consumer_parked`): loaded by the consumer after
    /// every release.
    pub(crate) producer_parked: AtomicU32,
    #[cfg(not(loom))]
    _pad: [AtomicU32; 26],
}

/// The producer's hot line: nothing but the tail (the consumer polls it).
#[repr(C, align(128))]
pub(crate) struct ProducerLine {
    /// Producer-owned: position of the next slot to write. Stored with `Release` after the
    /// slots below it are written; loaded with `Acquire` by the consumer.
    pub(crate) tail: AtomicU64,
    #[cfg(not(loom))]
    _pad: [AtomicU64; 15],
}

/// The consumer's hot line: nothing but the head.
#[repr(C, align(128))]
pub(crate) struct ConsumerLine {
    /// Consumer-owned: position of the next slot to read. Stored with `Release` after the
    /// slots below it are read; loaded with `Acquire` by the producer.
    pub(crate) head: AtomicU64,
    #[cfg(not(loom))]
    _pad: [AtomicU64; 15],
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<ControlLine>() == 128);
    assert!(std::mem::size_of::<ProducerLine>() == 128);
    assert!(std::mem::size_of::<ConsumerLine>() == 128);
};

// SAFETY: repr(C), atomics only (padding spelled out as atomics), 128 bytes, alignment 128.
unsafe impl crate::region::Shared for ControlLine {}
// SAFETY: as above.
unsafe impl crate::region::Shared for ProducerLine {}
// SAFETY: as above.
unsafe impl crate::region::Shared for ConsumerLine {}

/// The shared words of one ring, wherever they live.
#[derive(Clone, Copy)]
pub(crate) struct Words<'a> {
    pub(crate) control: &'a ControlLine,
    pub(crate) producer: &'a ProducerLine,
    pub(crate) consumer: &'a ConsumerLine,
}

/// What an attach word says. The word is `0` (never attached), `(g << 1) | 1` (attached,
/// attachment number `g >= 1`) or `g << 1` (attachment `g` detached). Every value decodes to
/// something, so a scribbled word cannot make a reader fail, only misjudge the peer (and a
/// misjudged "attached" is still checked against the role lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// No endpoint of this side has ever attached.
    Never,
    /// An endpoint attached and has not detached (it may have died: check its role lock).
    Attached,
    /// The last endpoint detached cleanly.
    Detached,
}

impl Endpoint {
    pub(crate) fn decode(word: u32) -> Endpoint {
        if word == 0 {
            Endpoint::Never
        } else if word & 1 == 1 {
            Endpoint::Attached
        } else {
            Endpoint::Detached
        }
    }

    /// The word a new attachment writes after the word `previous`.
    pub(crate) fn next_attached(previous: u32) -> u32 {
        let g = (previous >> 1).wrapping_add(1) & (u32::MAX >> 1);
        (g.max(1) << 1) | 1
    }

    /// The word of attachment `attached` once it detached (never 0).
    pub(crate) fn detached(attached: u32) -> u32 {
        (attached & !1).max(2)
    }
}

/// Writes a new attachment into `word` (the caller holds the side's role lock), after
/// declaring in `light_word` whether this endpoint will publish with a compiler fence only
/// (see [`asym::declare`] for why the order makes the switch safe).
pub(crate) fn attach(word: &AtomicU32, light_word: &AtomicU32, light: bool) -> u32 {
    asym::declare(light_word, light);
    let mine = Endpoint::next_attached(word.load(Relaxed));
    word.store(mine, Release);
    mine
}

/// Marks attachment `mine` detached in `word` and wakes the peer parked on `peer_parked`.
///
/// The `Release` store makes every publication of this side visible to a peer that loads the
/// word with `Acquire`. The fence orders the store before the wake-up's store of 0 (Dekker
/// with the peer's "store PARKED; fence; load attach word"): either the peer sees the detach
/// before sleeping, or it is asleep (or about to find the flag cleared) when we wake it.
pub(crate) fn detach(word: &AtomicU32, mine: u32, peer_parked: &AtomicU32) {
    word.store(Endpoint::detached(mine), Release);
    fence(SeqCst);
    unpark(peer_parked);
}

/// Clears a parked flag and wakes whoever sleeps on it.
pub(crate) fn unpark(flag: &AtomicU32) {
    // The futex contract: change the word, then FUTEX_WAKE (the kernel orders the two). A
    // sleeper that has not entered the kernel yet finds 0 and returns at once.
    flag.store(0, Relaxed);
    wait::wake(flag, u32::MAX);
}

/// Wakes the peer parked on `flag` after a publication; if that turns this side heavy (see
/// [`asym::Mode`]), looks at the flag once more after the switch's fence.
#[cold]
#[inline(never)]
fn wake_peer(mode: &asym::Mode, flag: &AtomicU32, light_word: &AtomicU32) {
    unpark(flag);
    if mode.woke(light_word) && flag.load(Relaxed) == PARKED {
        unpark(flag);
    }
}

/// Answers "does the peer endpoint still live?" (its role lock, in a real region).
pub(crate) trait Liveness {
    /// `force`: answer now. Otherwise an implementation may answer "alive" without looking
    /// when it looked very recently (rate-limiting the syscall).
    fn peer_alive(&self, force: bool) -> bool;
}

/// How a blocked call waits: the crate's [`Wait`](crate::sync::wait::Wait) ([`Waiter`](crate::sync::wait::Waiter) in real
/// use; loom models bring their own).
pub(crate) use crate::sync::wait::Wait as Parker;

/// Test diagnostics: slices that ran out although the awaited condition already held when
/// the sleeper looked again, i.e. wake-ups that were lost (or delayed by a preempted waker).
#[cfg(all(test, not(loom)))]
pub(crate) static LATE_WAKES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

#[cfg(all(test, not(loom)))]
fn count_late_wake(late: bool) {
    if late {
        LATE_WAKES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(not(all(test, not(loom))))]
#[inline(always)]
fn count_late_wake(_late: bool) {}

/// The ring's state does not check out (a peer scribbled over an index). Sticky.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Broken;

/// Why a blocking wait ended without room or items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitError {
    /// The deadline passed.
    Timeout,
    /// The peer is gone (or the ring is broken).
    Disconnected,
}

/// Tracks the peer's attach word and remembers an attachment proven dead.
#[derive(Debug)]
pub(crate) struct PeerWatch {
    /// The attached word whose role lock was found free (0: none). While the word still
    /// reads so, the peer is gone without another syscall; a new attachment writes a new word.
    dead: Cell<u32>,
    /// The last word [`PeerWatch::gone_by_word`] judged "not gone" (`NO_WORD`: none yet), so
    /// the next call with the same word is one comparison instead of a decode.
    not_gone: Cell<u64>,
}

/// A `PeerWatch::not_gone` that no `u32` word equals.
const NO_WORD: u64 = u64::MAX;

impl PeerWatch {
    pub(crate) fn new() -> PeerWatch {
        PeerWatch {
            dead: Cell::new(0),
            not_gone: Cell::new(NO_WORD),
        }
    }

    /// Gone by the word alone (no syscall): detached, or an attachment already proven dead.
    #[inline(always)]
    pub(crate) fn gone_by_word(&self, word: &AtomicU32) -> bool {
        let w = word.load(Relaxed);
        if u64::from(w) == self.not_gone.get() {
            return false;
        }
        self.judge_word(w)
    }

    #[inline(never)]
    fn judge_word(&self, w: u32) -> bool {
        let gone = match Endpoint::decode(w) {
            Endpoint::Never => false,
            Endpoint::Detached => true,
            Endpoint::Attached => w == self.dead.get(),
        };
        if !gone {
            self.not_gone.set(u64::from(w));
        }
        gone
    }

    /// Gone: detached, or attached but its role lock is free (it died). Loads the word with
    /// `Acquire`, so a detached peer's publications are visible afterwards.
    pub(crate) fn gone(&self, word: &AtomicU32, live: &dyn Liveness, force: bool) -> bool {
        let w = word.load(Acquire);
        match Endpoint::decode(w) {
            Endpoint::Never => false,
            Endpoint::Detached => true,
            Endpoint::Attached if w == self.dead.get() => true,
            Endpoint::Attached => {
                if live.peer_alive(force) {
                    false
                } else {
                    // A live endpoint holds its role lock from before it writes its word until
                    // after it writes "detached", so a free lock under an attached word means
                    // that attachment is over (dead, or detached just now).
                    self.dead.set(w);
                    self.not_gone.set(NO_WORD);
                    true
                }
            }
        }
    }
}

/// The producer's private half of the protocol.
#[derive(Debug)]
pub(crate) struct Producer {
    capacity: u64,
    /// Light (compiler fence) or heavy publication, adapted to how often the consumer parks.
    mode: asym::Mode,
    /// Always in sync with the shared tail (only this handle writes it).
    tail: Cell<u64>,
    /// The consumer's head as last seen (may be stale, never ahead of the real head) plus the
    /// capacity: the position the producer may fill up to without looking at `head` again.
    /// Once broken, equal to `tail`: the cache then says "full", so the fast path needs no
    /// separate check of `broken` and every caller ends up on the slow path, which has one.
    limit: Cell<u64>,
    broken: Cell<bool>,
    pub(crate) peer: PeerWatch,
}

impl Producer {
    /// Takes over the producer side: loads both positions once and checks them.
    pub(crate) fn attach(w: Words<'_>, capacity: u64, light: bool) -> Result<Producer, String> {
        let tail = w.producer.tail.load(Relaxed);
        // Acquire: the consumer's reads of the slots below `head` happen before we overwrite.
        let head = w.consumer.head.load(Acquire);
        if tail.wrapping_sub(head) > capacity {
            return Err(format!(
                "head {head} and tail {tail} are more than the capacity {capacity} apart"
            ));
        }
        // A parked flag left by a dead predecessor would cost the consumer one wasted wake.
        w.control.producer_parked.store(0, Relaxed);
        Ok(Producer {
            capacity,
            mode: asym::Mode::new(light),
            tail: Cell::new(tail),
            limit: Cell::new(head.wrapping_add(capacity)),
            broken: Cell::new(false),
            peer: PeerWatch::new(),
        })
    }

    pub(crate) fn tail(&self) -> u64 {
        self.tail.get()
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// Free slots at [`Producer::tail`] by the cache alone (0 once broken). No shared access.
    #[inline(always)]
    pub(crate) fn free_cached(&self) -> u64 {
        self.limit.get().wrapping_sub(self.tail.get())
    }

    /// Free slots starting at [`Producer::tail`]: the cached count if it is at least `want`
    /// (`want >= 1`), else a fresh look at the consumer's head.
    #[inline]
    pub(crate) fn free(&self, w: Words<'_>, want: u64) -> Result<u64, Broken> {
        debug_assert!(want >= 1);
        let free = self.free_cached();
        if free >= want {
            return Ok(free);
        }
        if self.broken.get() {
            return Err(Broken);
        }
        self.refresh(w, self.capacity - free)
    }

    #[inline(never)]
    fn refresh(&self, w: Words<'_>, cached_used: u64) -> Result<u64, Broken> {
        // Loaded once; pairs with the consumer's Release in `Consumer::release`.
        let head = w.consumer.head.load(Acquire);
        let used = self.tail.get().wrapping_sub(head);
        // The head only moves forward and never passes the tail: `used` can only shrink.
        // (Wrapping arithmetic turns "behind the cache" or "beyond the tail" into a huge value.)
        if used > cached_used {
            self.mark_broken();
            return Err(Broken);
        }
        self.limit.set(head.wrapping_add(self.capacity));
        Ok(self.capacity - used)
    }

    /// Sticky: from now on the cache says "full" and the slow paths report `Broken`.
    fn mark_broken(&self) {
        self.broken.set(true);
        self.limit.set(self.tail.get());
    }

    /// Publishes `n` slots written at [`Producer::tail`] and wakes a parked consumer.
    #[inline]
    pub(crate) fn commit(&self, w: Words<'_>, n: u64) {
        self.commit_at(w, self.tail.get(), n)
    }

    /// [`Producer::commit`] with the tail passed in: the caller read it before writing the
    /// slots, so the compiler need not load it again after those stores.
    #[inline(always)]
    pub(crate) fn commit_at(&self, w: Words<'_>, tail: u64, n: u64) {
        debug_assert!(tail == self.tail.get());
        debug_assert!(n <= self.free_cached());
        let tail = tail.wrapping_add(n);
        self.tail.set(tail);
        // Crash tests: the slots are written, nothing is published yet.
        crate::failpoint::hit("spsc.send.before_publish");
        // Release: the slot writes above happen before the consumer's Acquire of `tail`.
        w.producer.tail.store(tail, Release);
        // Store->load barrier (Dekker with `Consumer::wait`: "store PARKED; barrier; load
        // tail"): either the consumer sees this tail, or we see its flag.
        self.mode.barrier();
        if w.control.consumer_parked.load(Relaxed) == PARKED {
            wake_peer(
                &self.mode,
                &w.control.consumer_parked,
                &w.control.sender_light,
            );
        } else {
            self.mode.quiet(&w.control.sender_light);
        }
    }

    /// Blocks until at least one slot is free. `Disconnected` once the receiver is gone.
    pub(crate) fn wait(
        &self,
        w: Words<'_>,
        parker: &mut impl Parker,
        live: &dyn Liveness,
    ) -> Result<u64, WaitError> {
        let flag = &w.control.producer_parked;
        let mut announced = false;
        let mut ever_announced = false;
        let mut force = false;
        let result = loop {
            // While spinning, only the attach word is looked at (one load of the read-mostly
            // line; no clock read, no syscall). The role lock is asked before sleeping (the
            // round after the announcement) and after every slice.
            let spinning = !announced && !self.peer.gone_by_word(&w.control.receiver);
            if !spinning {
                if self.peer.gone(&w.control.receiver, live, force) {
                    break Err(WaitError::Disconnected);
                }
                force = false;
            }
            match self.free(w, 1) {
                Err(Broken) => break Err(WaitError::Disconnected),
                Ok(0) => {}
                Ok(n) => break Ok(n),
            }
            if spinning && parker.spin() {
                continue;
            }
            if !announced {
                flag.store(PARKED, Relaxed);
                // Store->load barrier, paired with `Consumer::release`'s.
                park_barrier(&w.control.receiver_light);
                announced = true;
                ever_announced = true;
                // Re-check everything with the flag up before sleeping.
                continue;
            }
            match parker.park(flag, PARKED) {
                // Woken (the flag is 0 now): re-announce on the next round.
                Park::Woken => announced = false,
                Park::Slice => {
                    count_late_wake(matches!(self.free(w, 1), Ok(n) if n > 0));
                    force = true
                }
                Park::TimedOut => {
                    break match self.free(w, 1) {
                        Ok(n) if n > 0 => Ok(n),
                        Err(Broken) => Err(WaitError::Disconnected),
                        // A peer that died during the wait is a disconnect, not a timeout.
                        _ if self.peer.gone(&w.control.receiver, live, true) => {
                            Err(WaitError::Disconnected)
                        }
                        _ => Err(WaitError::Timeout),
                    };
                }
            }
        };
        if ever_announced {
            // Leave no stale flag behind (it would cost the peer a wasted wake syscall).
            flag.store(0, Relaxed);
        }
        result
    }

    /// `tail - head` as the consumer last published it, clamped to the capacity.
    pub(crate) fn len(&self, w: Words<'_>) -> u64 {
        let head = w.consumer.head.load(Acquire);
        self.tail.get().wrapping_sub(head).min(self.capacity)
    }
}

/// The consumer's private half of the protocol.
#[derive(Debug)]
pub(crate) struct Consumer {
    capacity: u64,
    /// Publish with a compiler fence only (this process is registered for membarrier).
    /// Light or heavy release, adapted to how often the producer parks.
    mode: asym::Mode,
    /// Always in sync with the shared head (only this handle writes it).
    head: Cell<u64>,
    /// The producer's tail as last seen; may be stale (never ahead of the real tail). Once
    /// broken, equal to `head`: the cache then says "empty" (see `Producer::limit`).
    cached_tail: Cell<u64>,
    broken: Cell<bool>,
    pub(crate) peer: PeerWatch,
}

impl Consumer {
    /// Takes over the consumer side: loads both positions once and checks them.
    pub(crate) fn attach(w: Words<'_>, capacity: u64, light: bool) -> Result<Consumer, String> {
        let head = w.consumer.head.load(Relaxed);
        // Acquire: the slots below `tail` are written.
        let tail = w.producer.tail.load(Acquire);
        if tail.wrapping_sub(head) > capacity {
            return Err(format!(
                "head {head} and tail {tail} are more than the capacity {capacity} apart"
            ));
        }
        w.control.consumer_parked.store(0, Relaxed);
        Ok(Consumer {
            capacity,
            mode: asym::Mode::new(light),
            head: Cell::new(head),
            cached_tail: Cell::new(tail),
            broken: Cell::new(false),
            peer: PeerWatch::new(),
        })
    }

    pub(crate) fn head(&self) -> u64 {
        self.head.get()
    }

    /// Items ready at [`Consumer::head`]: the cached count if it is at least `want`
    /// (`want >= 1`), else a fresh look at the producer's tail. Inlined whole: a consumer
    /// that keeps up with the producer takes the fresh look on almost every item.
    #[inline(always)]
    pub(crate) fn available(&self, w: Words<'_>, want: u64) -> Result<u64, Broken> {
        debug_assert!(want >= 1);
        let head = self.head.get();
        let cached_ready = self.cached_tail.get().wrapping_sub(head);
        if cached_ready >= want {
            return Ok(cached_ready);
        }
        if self.broken.get() {
            return Err(Broken);
        }
        // Loaded once; pairs with the producer's Release in `Producer::commit`.
        let tail = w.producer.tail.load(Acquire);
        let ready = tail.wrapping_sub(head);
        // The tail only moves forward, at most `capacity` ahead of our head. (Wrapping
        // arithmetic turns "behind the cache" into a huge value or one below the cache.)
        if ready > self.capacity || ready < cached_ready {
            self.mark_broken();
            return Err(Broken);
        }
        self.cached_tail.set(tail);
        Ok(ready)
    }

    /// Sticky: from now on the cache says "empty" and the slow paths report `Broken`.
    #[inline(never)]
    fn mark_broken(&self) {
        self.broken.set(true);
        self.cached_tail.set(self.head.get());
    }

    /// Hands `n` slots read at [`Consumer::head`] back and wakes a parked producer.
    #[inline]
    pub(crate) fn release(&self, w: Words<'_>, n: u64) {
        self.release_at(w, self.head.get(), n)
    }

    /// [`Consumer::release`] with the head passed in (the caller read it to find the slots).
    #[inline(always)]
    pub(crate) fn release_at(&self, w: Words<'_>, head: u64, n: u64) {
        debug_assert!(head == self.head.get());
        debug_assert!(n <= self.cached_tail.get().wrapping_sub(head));
        let head = head.wrapping_add(n);
        self.head.set(head);
        // Crash tests: the slots are read (and maybe returned), the head still holds them.
        crate::failpoint::hit("spsc.recv.before_release");
        // Release: our reads of the slots happen before the producer overwrites them.
        w.consumer.head.store(head, Release);
        // Store->load barrier (Dekker with `Producer::wait`).
        self.mode.barrier();
        if w.control.producer_parked.load(Relaxed) == PARKED {
            wake_peer(
                &self.mode,
                &w.control.producer_parked,
                &w.control.receiver_light,
            );
        } else {
            self.mode.quiet(&w.control.receiver_light);
        }
    }

    /// True once nothing more can arrive: the ring is broken or the sender is gone. (Items
    /// may still be queued: callers look at the ring again after this says yes.)
    pub(crate) fn sender_gone(&self, w: Words<'_>, live: &dyn Liveness, force: bool) -> bool {
        self.broken.get() || self.peer.gone(&w.control.sender, live, force)
    }

    /// Blocks until at least one item is ready. `Disconnected` once the ring is empty and the
    /// sender is gone.
    pub(crate) fn wait(
        &self,
        w: Words<'_>,
        parker: &mut impl Parker,
        live: &dyn Liveness,
    ) -> Result<u64, WaitError> {
        let flag = &w.control.consumer_parked;
        let mut announced = false;
        let mut ever_announced = false;
        let mut force = false;
        let result = loop {
            match self.available(w, 1) {
                Err(Broken) => break Err(WaitError::Disconnected),
                Ok(0) => {}
                Ok(n) => break Ok(n),
            }
            // While spinning, only the attach word is looked at (see `Producer::wait`).
            let spinning = !announced && !self.peer.gone_by_word(&w.control.sender);
            if !spinning {
                if self.peer.gone(&w.control.sender, live, force) {
                    // The Acquire load of the attach word makes every publication before the
                    // detach visible: look once more before reporting the disconnect.
                    break match self.available(w, 1) {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(WaitError::Disconnected),
                    };
                }
                force = false;
            }
            if spinning && parker.spin() {
                continue;
            }
            if !announced {
                flag.store(PARKED, Relaxed);
                // Store->load barrier, paired with `Producer::commit`'s (and `detach`'s):
                // either we see the new tail / the detach, or they see the flag.
                park_barrier(&w.control.sender_light);
                announced = true;
                ever_announced = true;
                continue;
            }
            match parker.park(flag, PARKED) {
                Park::Woken => announced = false,
                Park::Slice => {
                    count_late_wake(matches!(self.available(w, 1), Ok(n) if n > 0));
                    force = true
                }
                Park::TimedOut => {
                    break match self.available(w, 1) {
                        Ok(n) if n > 0 => Ok(n),
                        Err(Broken) => Err(WaitError::Disconnected),
                        _ if self.peer.gone(&w.control.sender, live, true) => {
                            // Publications before the detach are visible now: look again.
                            match self.available(w, 1) {
                                Ok(n) if n > 0 => Ok(n),
                                _ => Err(WaitError::Disconnected),
                            }
                        }
                        _ => Err(WaitError::Timeout),
                    };
                }
            }
        };
        if ever_announced {
            // Leave no stale flag behind (it would cost the peer a wasted wake syscall).
            flag.store(0, Relaxed);
        }
        result
    }

    /// `tail - head` as the producer last published it, clamped to the capacity.
    pub(crate) fn len(&self, w: Words<'_>) -> u64 {
        let tail = w.producer.tail.load(Acquire);
        tail.wrapping_sub(self.head.get()).min(self.capacity)
    }
}

impl ControlLine {
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> ControlLine {
        ControlLine {
            sender: AtomicU32::new(0),
            receiver: AtomicU32::new(0),
            sender_light: AtomicU32::new(0),
            receiver_light: AtomicU32::new(0),
            consumer_parked: AtomicU32::new(0),
            producer_parked: AtomicU32::new(0),
        }
    }

    /// Writes the initial state (a fresh region is zero-filled already; this says so).
    pub(crate) fn init(&self) {
        self.sender.store(0, Relaxed);
        self.receiver.store(0, Relaxed);
        self.sender_light.store(0, Relaxed);
        self.receiver_light.store(0, Relaxed);
        self.consumer_parked.store(0, Relaxed);
        self.producer_parked.store(0, Relaxed);
    }
}

impl ProducerLine {
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> ProducerLine {
        ProducerLine {
            tail: AtomicU64::new(0),
        }
    }

    pub(crate) fn init(&self) {
        self.tail.store(0, Relaxed);
    }
}

impl ConsumerLine {
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> ConsumerLine {
        ConsumerLine {
            head: AtomicU64::new(0),
        }
    }

    pub(crate) fn init(&self) {
        self.head.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_words_round_trip() {
        assert_eq!(Endpoint::decode(0), Endpoint::Never);
        let a = Endpoint::next_attached(0);
        assert_eq!(Endpoint::decode(a), Endpoint::Attached);
        let d = Endpoint::detached(a);
        assert_eq!(Endpoint::decode(d), Endpoint::Detached);
        let b = Endpoint::next_attached(d);
        assert_ne!(a, b);
        assert_eq!(Endpoint::decode(b), Endpoint::Attached);
        // A takeover after a death (attached -> attached) also gets a new word.
        let c = Endpoint::next_attached(b);
        assert_ne!(b, c);
        assert_eq!(Endpoint::decode(c), Endpoint::Attached);
        // Wrap-around never yields 0 or a detached word.
        for w in [u32::MAX, u32::MAX - 1, u32::MAX - 2, 1, 2, 3] {
            let n = Endpoint::next_attached(w);
            assert_ne!(n, w);
            assert_eq!(Endpoint::decode(n), Endpoint::Attached);
            assert_eq!(Endpoint::decode(Endpoint::detached(n)), Endpoint::Detached);
        }
    }
}

/// Loom models of the protocol: heap lines, loom `UnsafeCell` slots (so loom reports any slot
/// access that the index orderings fail to order), and an untimed futex model (so a lost
/// wake-up is a deadlock loom reports).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::futex;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct Model {
        control: ControlLine,
        producer: ProducerLine,
        consumer: ConsumerLine,
        slots: Vec<UnsafeCell<u64>>,
        capacity: u64,
    }

    // SAFETY: the slots are only accessed under the protocol being checked; loom's
    // `UnsafeCell` reports any access the protocol fails to order.
    unsafe impl Sync for Model {}
    // SAFETY: as above.
    unsafe impl Send for Model {}

    impl Model {
        fn new(capacity: u64) -> Arc<Model> {
            let m = Model {
                control: ControlLine::new(),
                producer: ProducerLine::new(),
                consumer: ConsumerLine::new(),
                slots: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
                capacity,
            };
            // Both ends attached before the threads start.
            attach(&m.control.sender, &m.control.sender_light, false);
            attach(&m.control.receiver, &m.control.receiver_light, false);
            Arc::new(m)
        }

        fn words(&self) -> Words<'_> {
            Words {
                control: &self.control,
                producer: &self.producer,
                consumer: &self.consumer,
            }
        }

        fn slot(&self, pos: u64) -> &UnsafeCell<u64> {
            &self.slots[(pos % self.capacity) as usize]
        }
    }

    /// Never spins; parks without a deadline, so a missed wake-up deadlocks the model.
    struct ModelParker;

    impl Parker for ModelParker {
        fn spin(&mut self) -> bool {
            false
        }
        fn park(&mut self, word: &AtomicU32, expected: u32) -> Park {
            futex::wait(word, expected, None);
            Park::Woken
        }
    }

    struct Alive;

    impl Liveness for Alive {
        fn peer_alive(&self, _force: bool) -> bool {
            true
        }
    }

    fn send(m: &Model, p: &Producer, v: u64) {
        let w = m.words();
        let free = match p.free(w, 1) {
            Ok(0) => p.wait(w, &mut ModelParker, &Alive).unwrap(),
            Ok(n) => n,
            Err(Broken) => panic!("broken"),
        };
        assert!(free >= 1);
        // SAFETY: the slot is free per protocol; loom checks that claim.
        m.slot(p.tail()).with_mut(|s| unsafe { *s = v });
        p.commit(w, 1);
    }

    fn recv(m: &Model, c: &Consumer) -> Result<u64, WaitError> {
        let w = m.words();
        let ready = match c.available(w, 1) {
            Ok(0) => c.wait(w, &mut ModelParker, &Alive)?,
            Ok(n) => n,
            Err(Broken) => panic!("broken"),
        };
        assert!(ready >= 1);
        // SAFETY: the slot is published to us per protocol; loom checks that claim.
        let v = m.slot(c.head()).with(|s| unsafe { *s });
        c.release(w, 1);
        Ok(v)
    }

    /// Capacity 2, three values: the ring wraps; both sides may park (producer on full,
    /// consumer on empty). Values arrive in order, none lost or duplicated, no deadlock.
    #[test]
    fn wraps_in_order_with_parking() {
        loom::model(|| {
            let m = Model::new(2);
            let p = Producer::attach(m.words(), 2, false).unwrap();
            let c = Consumer::attach(m.words(), 2, false).unwrap();
            let m2 = m.clone();
            let t = thread::spawn(move || {
                for v in 1..=3 {
                    send(&m2, &p, v);
                }
            });
            for want in 1..=3 {
                assert_eq!(recv(&m, &c), Ok(want));
            }
            t.join().unwrap();
        });
    }

    /// The consumer parks just as the producer publishes: no lost wake-up.
    #[test]
    fn consumer_park_handshake() {
        loom::model(|| {
            let m = Model::new(4);
            let p = Producer::attach(m.words(), 4, false).unwrap();
            let c = Consumer::attach(m.words(), 4, false).unwrap();
            let m2 = m.clone();
            let t = thread::spawn(move || send(&m2, &p, 7));
            assert_eq!(recv(&m, &c), Ok(7));
            t.join().unwrap();
        });
    }

    /// Capacity 1: the producer parks on full just as the consumer frees the slot.
    #[test]
    fn producer_park_handshake() {
        loom::model(|| {
            let m = Model::new(1);
            let p = Producer::attach(m.words(), 1, false).unwrap();
            let c = Consumer::attach(m.words(), 1, false).unwrap();
            let m2 = m.clone();
            let t = thread::spawn(move || {
                send(&m2, &p, 1);
                send(&m2, &p, 2);
            });
            assert_eq!(recv(&m, &c), Ok(1));
            assert_eq!(recv(&m, &c), Ok(2));
            t.join().unwrap();
        });
    }

    /// A sender that publishes one value and detaches: the consumer gets the value, then
    /// Disconnected, whether it was parked or not when the detach happened.
    #[test]
    fn detach_wakes_a_parked_consumer() {
        loom::model(|| {
            let m = Model::new(2);
            let p = Producer::attach(m.words(), 2, false).unwrap();
            let c = Consumer::attach(m.words(), 2, false).unwrap();
            let mine = m.control.sender.load(Relaxed);
            let m2 = m.clone();
            let t = thread::spawn(move || {
                send(&m2, &p, 5);
                detach(&m2.control.sender, mine, &m2.control.consumer_parked);
            });
            assert_eq!(recv(&m, &c), Ok(5));
            assert_eq!(recv(&m, &c), Err(WaitError::Disconnected));
            t.join().unwrap();
        });
    }
}
