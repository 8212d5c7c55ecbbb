//! `Queue<T>`: a bounded multi-producer multi-consumer ring shared by any number of processes.
//!
//! # Algorithm
//!
//! Dmitry Vyukov's bounded MPMC queue in the shape of crossbeam's `ArrayQueue`: two position
//! words (`tail` for producers, `head` for consumers) claimed with a CAS, and one *stamp* per
//! slot that says which position the slot is ready for and in which phase. A producer claims
//! position `t` by moving `tail` from `t` to `t + 1` once slot `t % cap`'s stamp says "free for
//! `t`", writes the value, then publishes the stamp "full at `t`" (`Release`). A consumer claims
//! position `h` by moving `head` once the stamp says "full at `h`" (`Acquire`), copies the value
//! out, then releases the stamp to "free for `h + cap`" (`Release`). Each side does one locked
//! instruction per message (its CAS); the capacity is a power of two, at least 2 (a one-slot
//! Vyukov ring lets a second send overwrite the first).
//!
//! What crossbeam does not need and we do: **naming the claimer**. A process can die between
//! its claim and its publish (or release). To recover without ever skipping a *live* claimer,
//! every claim names the claiming participant's [`Token`](crate::region::Token) (29 bits, its
//! liveness is an OFD lock the kernel drops when the process dies):
//!
//! - The CAS that claims a position writes the claimer's token into the position word itself
//!   (`tail = (t + 1, me)`), so the word always names the claimer of the *last* position claimed.
//! - Before a claimer overwrites that name (its own CAS), it looks at the previous position's
//!   stamp: if that slot is still unpublished (unreleased), it *records* the previous claimer in
//!   the stamp with a CAS (`free(t-1)` -> `writing(X, t-1)`). The look is one load, usually of
//!   the line the claimer is about to write anyway; the CAS happens only when two claims are
//!   close together (on a 1->1 queue the previous slot is long done). The record happens before
//!   the claimer's own CAS on the position word, which publishes it.
//!
//! Invariant: every claimed-but-unfinished position `p` below `tail - 1` carries its claimer in
//! its stamp, except the inner positions of a batch claim (one CAS for up to [`MAX_BATCH`]
//! positions), which belong to whoever is named at the batch's last position. A participant
//! stuck behind position `p` therefore finds the claimer by scanning forward from `p` (at most
//! [`MAX_BATCH`] stamps) to the first recorded name, or the position word's name.
//!
//! # Shared words (all in the region body; every word is an atomic)
//!
//! ```text
//! offset size  word          written by                        encoding
//!      0    8  tail          producers (CAS), close (fetch_or)  pos:34 | CLOSED:1 | token:29
//!    128    8  head          consumers (CAS)                    pos:34 | 0:1      | token:29
//!    256   16  recv_parked   parking receivers (fetch_or/and)   one bit per participant slot (128)
//!    272   16  send_parked   parking senders                    one bit per participant slot (128)
//!    288    8  closed        close (store 1, after CLOSED)      a hint for light checks (below)
//!    384    4  not_empty     producers after a publish, close   futex sequence (receivers park)
//!    512    4  not_full      consumers after a release, close   futex sequence (senders park)
//!    640    …  slots         see below                          cap x { stamp: u64, value: T }
//! ```
//! `tail` and `head` each own a 128-byte line pair (adjacent-line prefetch); the parked bitmaps
//! are read on every operation but written only by parking threads; the futex words are
//! written only when someone is parked. Positions count modulo 2^34; `cap` divides 2^34.
//!
//! A slot stamp is `pos:34 | PHASE:1 | low:29`:
//!
//! ```text
//! PHASE low       name            meaning                                   next state (who)
//!   0   0         free(p)         ready for the producer of position p      claimed (tail CAS)
//!   0   token X   writing(X, p)   p claimed by X, unpublished (recorded)    full/skipped(p)
//!   1   0         full(p)         the message of position p                 claimed (head CAS)
//!   1   1         skipped(p)      position p holds no message (abandoned)   claimed (head CAS)
//!   1   token C   reading(C, p)   p claimed by consumer C, unreleased (rec.) free(p + cap)
//! ```
//! Stamps are only ever moved forward: `free(p)` -> (`writing(X, p)`) -> `full(p)` |
//! `skipped(p)` -> (`reading(C, p)`) -> `free(p + cap)`, the parenthesised records being
//! optional. Publishes and releases are plain `Release` stores by the claimer (a swap under
//! loom, see [`store_stamp`]); everything else (records, skips, releases on behalf of the dead)
//! is a CAS from the exact value observed, so it can never undo a claimer's store.
//!
//! # Orderings that pair
//! - Producer: value write, then `Release` store `full(p)`; consumer: `Acquire` load of
//!   `full(p)` before its head CAS and before reading the value.
//! - Consumer: value read, then `Release` store `free(p + cap)`; next producer: `Acquire` load of
//!   `free(p + cap)` before its tail CAS and before writing.
//! - A record CAS (`Release`) happens before the recorder's `SeqCst` CAS of the position word;
//!   anyone who loads that word (or a later one: all later writes are RMWs, so they continue the
//!   release sequence) with `Acquire` sees the record when it then loads the stamp.
//! - Parking (the lost-wake-up handshake, a Dekker pattern): a receiver about to park sets its
//!   bit in `recv_parked` (`SeqCst` RMW), issues a `SeqCst` fence, then re-checks the ring, whose
//!   empty test loads `tail` with `SeqCst`. A producer's claim is a `SeqCst` CAS of `tail`
//!   followed by a `SeqCst` load of `recv_parked`. In the single total order of `SeqCst`
//!   operations one of the two comes first: either the receiver's re-check sees the claim (and
//!   does not park on it; see "pending" below), or the producer sees the bit and, after its
//!   publish, bumps `not_empty` and `FUTEX_WAKE`s. The bump makes a receiver that is between
//!   its re-check and its `futex_wait` return at once (`EAGAIN`). Senders and `head` mirror
//!   this with `send_parked`/`not_full`. The producer side needs no fence of its own: its CAS is
//!   already a full barrier on x86-64 and AArch64, so the fast path has no extra cost (nor would
//!   a weaker ordering save anything: every locked RMW is a full barrier on x86-64, and on
//!   AArch64 a `SeqCst` CAS is the same `casal` as an `AcqRel` one). The parked-bitmap load may
//!   come anywhere after the claim CAS in program order, even after the publish (the fast
//!   paths, below, load it last). Loom treats `SeqCst` operations as `AcqRel`, so under
//!   `cfg(loom)` an explicit fence is placed after each claim CAS ([`rmw_load_barrier`]) to let
//!   the model verify the same argument.
//! - "Pending": a receiver that sees a claimed-but-unpublished message cannot count on a wake-up
//!   (the producer may have looked at `recv_parked` before the receiver set its bit). It yields a
//!   few times and then parks for at most one slice (20 ms); the same holds for a sender waiting
//!   on a slot a consumer has claimed but not released. This costs latency only when a claimer is
//!   descheduled inside its few-nanosecond copy.
//!
//! # Light and full checks
//! A side that finds its next slot not ready (empty for a receiver, full for a sender) could
//! tell "empty" from "claimed but not yet published" only by reading the other side's
//! position word, and every such read steals that line from the side that is about to CAS it:
//! a cross-core round trip per message in the common near-empty (or near-full) regime. So a
//! first, *light* check answers "not ready" from the slot stamp alone (plus `closed`, on the
//! read-mostly parked line, so that a receiver of a closed queue still sees `Disconnected` at
//! once). The *full* check (position word, stuck-claimer scan, liveness) runs when a blocking
//! call has spent its spin budget and before every park (the handshake above needs it), and
//! in `try_*` calls on every [`LIGHT_MISSES`]-th consecutive miss of a handle: a `try_recv`
//! loop behind a dead claimer therefore recovers after at most that many calls, and a
//! `try_recv` may report `Empty` while a message claimed before it is still being written.
//!
//! # The one-message fast paths
//! `send`, `try_send`, `send_timeout` and the one-message receives first try an inlined claim
//! that handles only the common case: the queue is open, the next slot is ready now (`free(p)`
//! for a sender; `full(p)`, not `skipped`, for a receiver) and the claim CAS succeeds at the
//! first try. It takes the same steps as the general claim (stamp check, record of the previous
//! claimer, claim CAS) and otherwise changes nothing, so every other case falls through to the
//! general path, which starts over. One step moves: the parked-bitmap load of the handshake
//! comes after the publish (release) instead of between the claim and the copy. It still follows
//! the claim CAS, which is all the handshake needs, and the window between a claimer's stamp
//! load and its stamp store, in which the other side takes the slot's cache line away, stays as
//! short as in a bare Vyukov ring.
//!
//! # Waiting: polls and their adaptation
//! A blocking call that finds its slot not ready polls the stamp (the light check) one
//! `spin_loop` hint apart, up to [`SPIN_POLLS`] times (a few microseconds), then goes on with
//! the crate's wait loop ([`Waiter`]: a short doubling spin, a few yields, then the full check
//! and futex parks in slices). A peer that runs on another CPU usually answers within the poll
//! phase, which saves both sides the park and the wake syscalls. The phase adapts per handle and
//! side: a wait that ends within its polls doubles the next one (up to `SPIN_POLLS`), a wait that
//! needs more halves it (down to [`MIN_POLLS`]): when both sides share a CPU (more processes
//! than CPUs), every poll is time taken from the process waited for.
//!
//! # Wake-ups cost nothing while nobody waits
//! A send loads `recv_parked` (a line nobody writes unless parking) and makes the `not_empty`
//! bump and the wake syscall only if a bit is set; a receive does the same with `send_parked`.
//! A process holds one bit per handle: the handle's threads count their parkers in a
//! process-local mutex, so the bit is cleared exactly when the last of them leaves. Each
//! parking round sets the bit again, so a bit cleared by mistake (see below) costs one slice.
//!
//! # What a dead peer leaves behind, and who repairs it
//! - **A producer that died after claiming** leaves position `p` unpublished: consumers stall at
//!   `p`. A consumer stuck there (after a bounded spin; then at most once per slice) finds the
//!   claimer as described above and asks the region whether that participant lives
//!   ([`Region::is_alive`]: its OFD lock). If it is dead, the consumer CASes the claimer's
//!   unpublished positions to `skipped`, and consumers step over them. A *paused* claimer
//!   (SIGSTOP, a debugger, a long `send_with` closure) still holds its lock, so it is never
//!   declared dead and its late publish never meets a skipped slot: the queue waits for it.
//!   This holds by construction; "dead" is a kernel fact, never a timeout.
//! - **A consumer that died after claiming** loses that message (delivery is at most once) and
//!   leaves the slot unreleased: a producer that wraps around to it stalls. It identifies the
//!   consumer the same way (from `head` and `reading` records) and, if it is dead, releases the
//!   slots to `free(p + cap)` on its behalf.
//! - **A parked waiter that died** leaves its bit set in `recv_parked`/`send_parked`: the other
//!   side then bumps and wakes needlessly (a syscall per operation). Repair: a waiter at the end
//!   of each slice, and a waker after 16 wakes in a row that woke nobody, clears every bit whose
//!   participant slot nobody holds ([`Region::slot_attached`]). A bit cleared for a slot just
//!   taken over by a new parker is set again by that parker within one slice.
//! - A process that `fork`s shares its handles' OFD locks with the child: a claim made by the
//!   child under the parent's token is not recovered while either lives. Open a fresh handle in
//!   a forked child (exec'd children are unaffected: descriptors are close-on-exec).
//!
//! # Close
//! `close` sets `CLOSED` in `tail` (`fetch_or`), then `closed` (the hint light checks read),
//! then bumps both futex words and wakes everyone.
//! A producer's claim CAS compares the whole word, so no claim succeeds after the bit is set:
//! sends fail with `Disconnected`, receivers drain every position claimed before, then see
//! `head == tail` with `CLOSED` and report `Disconnected`. Closing is permanent.
//!
//! # Untrusted memory
//! Every shared word is loaded once into a local and judged against the capacity validated at
//! attach (indices are masked, so no load is ever out of bounds). A stamp that cannot occur for
//! an unchanged position (an encoding no protocol step writes) means the queue is corrupted:
//! the operation that meets it reports `Disconnected` (sends and receives, `try_*` and timed
//! variants alike). Every loop is bounded ([`MAX_TRIES`] CAS rounds,
//! [`MAX_BATCH`]-stamp scans); state that stays merely inconsistent makes `try_*` report
//! `Empty`/`Full` and blocking calls park in slices (no CPU is burnt) until their deadline.
//! Positions are 34 bits: a thread that stays paused between its load of a position word and its
//! CAS while others complete a multiple of 2^34 operations (minutes at full speed) could see an
//! ABA; crossbeam's stamps have the same property at 2^64.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::loom::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use crate::loom::{futex, hint};
use crate::region::{self, Attach, Expect, Kind, Region, Shared, Spec, Token};
use crate::sync::wait::{self, Park, Waiter, SLICE};
use crate::Pod;

use Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

// ---------------------------------------------------------------------------------------------
// Encoding of position words and stamps
// ---------------------------------------------------------------------------------------------

/// Bits of a position.
const POS_BITS: u32 = 34;
/// Where the position starts in a word.
const POS_SHIFT: u32 = 30;
/// Positions count modulo 2^34.
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// In `tail`: the queue is closed. In a stamp: the message phase (full/skipped/reading).
const FLAG_BIT: u64 = 1 << 29;
/// The low 29 bits: a participant token (>= 128), or a code below 128.
const LOW_MASK: u64 = FLAG_BIT - 1;
/// Low code of `skipped(p)` (`full(p)` is 0).
const CODE_SKIPPED: u64 = 1;
/// Tokens are never below this (their generation bits are never 0).
const MIN_TOKEN: u64 = 1 << 7;

/// The largest number of positions one CAS claims (batches), and the longest scan for a
/// claimer's name.
pub(crate) const MAX_BATCH: usize = 64;
/// CAS rounds (and stale re-reads) one claim attempt makes before it gives up for this round.
const MAX_TRIES: u32 = 1024;
/// The largest capacity (slots) a queue may have.
pub const MAX_CAPACITY: u64 = 1 << 30;
/// The largest element alignment supported (the body is 128-byte aligned).
const MAX_ALIGN: u64 = 128;
/// Bytes of the control block before the slots.
pub(crate) const CONTROL_LEN: usize = 640;

/// A `try_*` call spins this many rounds on a claimed-but-unfinished slot before it checks the
/// claimer's liveness once and reports `Empty`/`Full`.
#[cfg(not(loom))]
const TRY_SPINS: u32 = 64;
#[cfg(loom)]
const TRY_SPINS: u32 = 1;
/// A blocking call yields this many times on a claimed-but-unfinished slot before it parks
/// (sliced: no wake-up is guaranteed in that state, see "Pending" in the module doc).
#[cfg(not(loom))]
const PENDING_YIELDS: u32 = 32;
#[cfg(loom)]
const PENDING_YIELDS: u32 = 0;
/// Exponent of the longest CAS backoff spin.
#[cfg(not(loom))]
const BACKOFF_LIMIT: u32 = 6;
#[cfg(loom)]
const BACKOFF_LIMIT: u32 = 0;
/// Polls (one `spin_loop` hint apart, each re-checking the slot stamp only) a blocking call
/// makes before the default backoff, the full check and the futex sleep: a few microseconds,
/// longer than the peer's next publish or release when it is running, far shorter than a
/// sleep and a wake-up (both sides' syscalls, tens of microseconds). The same as every
/// channel's ([`QUEUE_SPIN_POLLS`](crate::sync::wait::QUEUE_SPIN_POLLS)).
const SPIN_POLLS: u32 = crate::sync::wait::QUEUE_SPIN_POLLS;
/// The shortest poll phase adaptation leaves (see [`Ring::adapt_polls`]).
const MIN_POLLS: u32 = 8;
/// Wakes in a row that woke nobody before a waker clears the bits of dead parkers.
const FRUITLESS_BEFORE_REPAIR: u32 = 16;
/// A `try_*` call that finds nothing ready uses the light check (the slot stamp only); every
/// this many consecutive misses of a handle it makes the full check instead (reads the other
/// side's position word, identifies and liveness-checks a stuck claimer).
#[cfg(not(loom))]
const LIGHT_MISSES: u32 = 64;
#[cfg(loom)]
const LIGHT_MISSES: u32 = 2;
/// Dead-claimer recoveries one `try_*` call performs at most.
const TRY_RECOVERIES: u32 = 8;

#[inline]
const fn word(pos: u64, flag: bool, low: u64) -> u64 {
    ((pos & POS_MASK) << POS_SHIFT) | if flag { FLAG_BIT } else { 0 } | (low & LOW_MASK)
}
#[inline]
const fn pos_of(w: u64) -> u64 {
    w >> POS_SHIFT
}
#[inline]
const fn low_of(w: u64) -> u64 {
    w & LOW_MASK
}
#[inline]
const fn flag_of(w: u64) -> bool {
    w & FLAG_BIT != 0
}
/// `to - from` modulo 2^34.
#[inline]
const fn dist(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from) & POS_MASK
}
/// `p + n` modulo 2^34.
#[inline]
const fn add(p: u64, n: u64) -> u64 {
    p.wrapping_add(n) & POS_MASK
}
#[inline]
const fn is_token(low: u64) -> bool {
    low >= MIN_TOKEN
}
#[inline]
const fn free(p: u64) -> u64 {
    word(p, false, 0)
}
#[inline]
const fn writing(p: u64, token: u64) -> u64 {
    word(p, false, token)
}
#[inline]
const fn full(p: u64) -> u64 {
    word(p, true, 0)
}
#[inline]
const fn skipped(p: u64) -> u64 {
    word(p, true, CODE_SKIPPED)
}
#[inline]
const fn reading(p: u64, token: u64) -> u64 {
    word(p, true, token)
}

/// Orders a preceding `SeqCst` claim CAS before the following `SeqCst` load of a parked bitmap.
/// Real hardware needs nothing (the C++ model orders `SeqCst` operations totally, and the CAS is
/// a full barrier on x86-64 and AArch64); loom models `SeqCst` operations as `AcqRel`, so the
/// model gets the fence it needs to check the same handshake.
#[inline(always)]
fn rmw_load_barrier() {
    #[cfg(loom)]
    fence(SeqCst);
}

/// A claimer's own stamp store (publish or release): a plain `Release` store.
///
/// Under loom it is a `swap`: loom keeps modification order as a partial order, so a plain
/// store racing a CAS (a record, see the module doc) can be placed before a CAS that read the
/// value it replaced, and the storing thread then reads the CAS's older value back. C++ forbids
/// that execution (RMW atomicity plus read-your-own-write coherence); a `Release` swap orders
/// the write after every RMW it follows, which is what a store does on real hardware, and adds
/// no synchronisation (its read half is `Relaxed`).
#[inline(always)]
fn store_stamp(stamp: &AtomicU64, value: u64) {
    #[cfg(not(loom))]
    stamp.store(value, Release);
    #[cfg(loom)]
    stamp.swap(value, Release);
}

// ---------------------------------------------------------------------------------------------
// Shared layout
// ---------------------------------------------------------------------------------------------

/// The control block at the start of the body (see the module doc for who writes what).
#[repr(C)]
pub(crate) struct Control {
    /// Producer side: `pos | CLOSED | token of the last claimer`.
    tail: AtomicU64,
    #[cfg(not(loom))]
    _pad0: [AtomicU64; 15],
    /// Consumer side: `pos | 0 | token of the last claimer`.
    head: AtomicU64,
    #[cfg(not(loom))]
    _pad1: [AtomicU64; 15],
    /// One bit per participant slot with a receiver parked (or about to park).
    recv_parked: [AtomicU64; 2],
    /// One bit per participant slot with a sender parked (or about to park).
    send_parked: [AtomicU64; 2],
    /// 1 once `close` has set `CLOSED` in `tail`: lets a receiver that finds nothing ready
    /// notice a close without reading `tail` (a line producers write).
    closed: AtomicU64,
    #[cfg(not(loom))]
    _pad2: [AtomicU64; 11],
    /// Futex sequence receivers park on; bumped after a publish when `recv_parked != 0`.
    not_empty: AtomicU32,
    #[cfg(not(loom))]
    _pad3: [AtomicU32; 31],
    /// Futex sequence senders park on; bumped after a release when `send_parked != 0`.
    not_full: AtomicU32,
    #[cfg(not(loom))]
    _pad4: [AtomicU32; 31],
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<Control>() == CONTROL_LEN);
    assert!(CONTROL_LEN % 128 == 0);
    assert!(MAX_CAPACITY <= 1 << (POS_BITS - 2));
    assert!(MAX_BATCH <= 64, "skipped masks are u64");
};

// SAFETY: repr(C), atomics only (padding included), valid for every bit pattern, alignment 8.
unsafe impl Shared for Control {}

#[cfg(all(test, loom))]
impl Control {
    fn new() -> Control {
        Control {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            recv_parked: [AtomicU64::new(0), AtomicU64::new(0)],
            send_parked: [AtomicU64::new(0), AtomicU64::new(0)],
            closed: AtomicU64::new(0),
            not_empty: AtomicU32::new(0),
            not_full: AtomicU32::new(0),
        }
    }
}

/// Offset of the value in a slot, and the slot's size, for an element of this layout; `None`
/// for layouts the queue does not support. Never overflows (inputs are `u32`).
pub(crate) fn slot_geometry(elem_size: u64, elem_align: u64) -> Option<(u64, u64)> {
    if !elem_align.is_power_of_two() || elem_align > MAX_ALIGN || elem_size % elem_align != 0 {
        return None;
    }
    let unit = elem_align.max(8);
    let value_off = unit; // the stamp (8 bytes) first, then the value at its alignment
    let slot = (value_off + elem_size).div_ceil(unit) * unit;
    Some((value_off, slot))
}

/// Body bytes a queue spec needs, or `None` if out of range. Total on any input.
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    let cap = spec.capacity;
    if !(2..=MAX_CAPACITY).contains(&cap) || !cap.is_power_of_two() {
        return None;
    }
    let (_, slot) = slot_geometry(spec.elem_size as u64, spec.elem_align as u64)?;
    (CONTROL_LEN as u64).checked_add(cap.checked_mul(slot)?)
}

/// What `interproc inspect` shows of a queue. Only loads (the region may be a read-only
/// observer mapping).
#[cfg_attr(any(not(test), loom), allow(dead_code))] // called by the CLI's kind dispatch
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let ctl = region.body::<Control>(0);
    let cap = region.spec().capacity;
    let h = pos_of(ctl.head.load(Acquire));
    let tw = ctl.tail.load(Acquire);
    let depth = dist(h, pos_of(tw)).min(cap);
    let count = |bits: &[AtomicU64; 2]| {
        bits.iter()
            .map(|b| b.load(Relaxed).count_ones())
            .sum::<u32>()
    };
    vec![
        ("depth", depth.to_string()),
        ("closed", flag_of(tw).to_string()),
        ("parked receivers", count(&ctl.recv_parked).to_string()),
        ("parked senders", count(&ctl.send_parked).to_string()),
    ]
}

// ---------------------------------------------------------------------------------------------
// The algorithm, over any `Control` + slots + liveness oracle (region-backed or loom heap)
// ---------------------------------------------------------------------------------------------

/// Slot storage: stamps and values.
pub(crate) trait Slots<T> {
    /// The stamp of the slot of position `pos` (index `pos % cap`).
    fn stamp(&self, pos: u64) -> &AtomicU64;
    /// Runs `f` with a pointer to the value of position `pos`'s slot.
    ///
    /// # Safety
    /// The caller has claimed `pos` (producer side) and not yet published it: the protocol gives
    /// it the slot exclusively. The pointer is aligned and points to a valid `T`.
    unsafe fn with_mut<R>(&self, pos: u64, f: impl FnOnce(*mut T) -> R) -> R;
    /// Runs `f` with a pointer to the value of position `pos`'s slot.
    ///
    /// # Safety
    /// The caller has claimed `pos` (consumer side) and not yet released it.
    unsafe fn with<R>(&self, pos: u64, f: impl FnOnce(*const T) -> R) -> R;
}

/// Who is alive: the region's registry, or a model.
pub(crate) trait Peers {
    /// True while the participant of this raw token is attached.
    fn is_alive(&self, token: u32) -> bool;
    /// True while participant slot `slot` is held by anyone.
    fn slot_attached(&self, slot: u32) -> bool;
}

impl Peers for Region {
    fn is_alive(&self, token: u32) -> bool {
        Token::from_raw(token).is_some_and(|t| Region::is_alive(self, t))
    }
    fn slot_attached(&self, slot: u32) -> bool {
        Region::slot_attached(self, slot)
    }
}

/// How a blocking call spins and parks (the wait loop, or a model of it).
pub(crate) trait Blocker {
    /// A new wait episode begins: restore the spin budget, with a poll phase of `polls`
    /// (the deadline stays).
    fn rearm(&mut self, _polls: u32) {}
    /// Spin steps taken since the episode began (parks count as past the poll phase).
    fn spun(&self) -> u32 {
        0
    }
    /// One backoff step; `false` once the spin budget is spent.
    fn spin(&mut self) -> bool;
    /// Sleeps while `*word == expected`. `guaranteed`: the protocol guarantees a wake-up for
    /// this state (the other side will see our parked bit), so an unbounded sleep would be
    /// correct; otherwise the sleep must be bounded.
    fn park(&mut self, word: &AtomicU32, expected: u32, guaranteed: bool) -> Park;
}

/// The blocker of the region-backed handle's blocking calls: the crate's wait loop
/// ([`Waiter`]) with a poll phase first (its length set per wait episode, see
/// [`Ring::adapt_polls`]), built on first need, so a call whose first claim succeeds never
/// reads the clock. Every wait episode (every entry into [`Ring::acquire_slow`]; a batch may
/// wait several times) gets a fresh spin budget and what is left of the call's deadline.
pub(crate) struct Blocking {
    timeout: Option<Duration>,
    /// The absolute deadline, fixed at the first wait.
    deadline: Option<Duration>,
    waiter: Option<Waiter>,
    /// Polls of the current episode's poll phase.
    polls: u32,
    /// Spin steps taken in the current episode.
    spun: u32,
}

impl Blocking {
    fn new(timeout: Option<Duration>) -> Blocking {
        Blocking {
            timeout,
            deadline: None,
            waiter: None,
            polls: SPIN_POLLS,
            spun: 0,
        }
    }

    fn waiter(&mut self) -> &mut Waiter {
        let (timeout, deadline, polls) = (self.timeout, &mut self.deadline, self.polls);
        self.waiter.get_or_insert_with(|| {
            let left = timeout.map(|timeout| {
                let now = futex::now();
                let at = *deadline.get_or_insert_with(|| now.saturating_add(timeout));
                at.saturating_sub(now)
            });
            match polls {
                // `set_spin(false)`: sleep at once.
                0 => Waiter::without_spin(left),
                _ => Waiter::with_spin(left, polls),
            }
        })
    }
}

impl Blocker for Blocking {
    fn rearm(&mut self, polls: u32) {
        self.waiter = None;
        self.polls = polls;
        self.spun = 0;
    }
    fn spun(&self) -> u32 {
        self.spun
    }
    fn spin(&mut self) -> bool {
        self.spun = self.spun.saturating_add(1);
        self.waiter().spin()
    }
    fn park(&mut self, word: &AtomicU32, expected: u32, _guaranteed: bool) -> Park {
        // Counts as spinning past the poll phase (for `adapt_polls`).
        self.spun = self.spun.saturating_add(self.polls.saturating_add(1));
        // Always sliced: a slice bounds the cost of any missed wake-up and lets us re-check
        // claimers' liveness.
        self.waiter().park(word, expected)
    }
}

/// Process-local state of one handle (never in shared memory).
pub(crate) struct Local {
    /// Threads of this handle parked (or about to park) as receivers / senders. The shared bit
    /// of this handle's participant slot is set while the count is non-zero.
    recv_parkers: Mutex<u32>,
    send_parkers: Mutex<u32>,
    /// Wakes in a row that woke nobody.
    fruitless: AtomicU32,
    /// Length of the poll phase of the next blocking wait, per side ([`Ring::adapt_polls`]).
    send_polls: AtomicU32,
    recv_polls: AtomicU32,
    /// Consecutive light misses of `try_*` calls, per side.
    send_misses: AtomicU32,
    recv_misses: AtomicU32,
    /// 1 after `set_spin(false)`: blocking waits skip the poll phase and spin.
    no_spin: AtomicU32,
}

impl Local {
    fn new() -> Local {
        Local {
            recv_parkers: Mutex::new(0),
            send_parkers: Mutex::new(0),
            fruitless: AtomicU32::new(0),
            send_polls: AtomicU32::new(SPIN_POLLS),
            recv_polls: AtomicU32::new(SPIN_POLLS),
            send_misses: AtomicU32::new(0),
            recv_misses: AtomicU32::new(0),
            no_spin: AtomicU32::new(0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Send,
    Recv,
}

/// Positions claimed by one CAS.
#[derive(Debug, Clone, Copy)]
struct Claimed {
    /// The first position.
    pos: u64,
    /// How many (1..=MAX_BATCH).
    n: usize,
    /// The other side had a parked bit set right after the claim: wake it after finishing.
    wake: bool,
    /// Consumer side: bit i set if position `pos + i` is `skipped` (no message).
    skipped: u64,
}

/// A run of positions another participant claimed and has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stuck {
    first: u64,
    last: u64,
    claimer: u64,
}

/// What [`Ring::recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    /// The claimer lives: wait for it.
    Alive,
    /// The claimer is dead and its run was finished on its behalf.
    Done,
    /// The claimer is dead but its stamps had moved on (another helper): look again.
    Raced,
}

#[derive(Debug)]
enum Claim {
    Got(Claimed),
    /// Producer: full. Consumer: empty.
    NotReady,
    /// Waiting on another participant's unfinished claim.
    Pending(Stuck),
    /// Producer: closed. Consumer: closed and drained.
    Closed,
    /// A stamp no protocol step can produce.
    Corrupted,
    /// Gave up after MAX_TRIES rounds of contention or inconsistent reads.
    Contended,
}

enum Scan {
    Found(Stuck),
    /// The stamps moved on while we looked: retry.
    Changed,
    /// No claimer can be named (too long a run, no valid token).
    Invalid,
}

/// Why an acquire failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// Full / empty (try mode).
    NotReady,
    Timeout,
    Disconnected,
}

/// Rate-limits liveness checks of a stuck claimer: when first stuck at a position, then at most
/// once per [`SLICE`].
struct Watch {
    pos: Option<u64>,
    at: Duration,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            pos: None,
            at: Duration::ZERO,
        }
    }
    fn due(&mut self, pos: u64) -> bool {
        let now = futex::now();
        if self.pos != Some(pos) || now.saturating_sub(self.at) >= SLICE {
            self.pos = Some(pos);
            self.at = now;
            true
        } else {
            false
        }
    }
    fn force(&mut self) {
        self.pos = None;
    }
}

fn backoff(step: &mut u32) {
    for _ in 0..(1u32 << (*step).min(BACKOFF_LIMIT)) {
        hint::spin_loop();
    }
    *step += 1;
}

#[inline(always)]
fn any_parked(bits: &[AtomicU64; 2]) -> bool {
    (bits[0].load(SeqCst) | bits[1].load(SeqCst)) != 0
}

fn lock(m: &Mutex<u32>) -> std::sync::MutexGuard<'_, u32> {
    // The critical sections cannot panic; a poisoned count is still a count.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The queue algorithm over borrowed parts.
pub(crate) struct Ring<'a, T, S, P> {
    ctl: &'a Control,
    slots: &'a S,
    peers: &'a P,
    local: &'a Local,
    /// Validated capacity (power of two, 2..=MAX_CAPACITY).
    cap: u64,
    /// This handle's raw token (>= 128).
    me: u64,
    _t: PhantomData<fn() -> T>,
}

/// Clears this handle's parked bit when the last of its parking threads leaves.
struct ParkGuard<'a> {
    bits: &'a AtomicU64,
    bit: u64,
    count: &'a Mutex<u32>,
}

impl Drop for ParkGuard<'_> {
    fn drop(&mut self) {
        let mut c = lock(self.count);
        *c = c.saturating_sub(1);
        if *c == 0 {
            self.bits.fetch_and(!self.bit, SeqCst);
        }
    }
}

impl<'a, T: Pod, S: Slots<T>, P: Peers> Ring<'a, T, S, P> {
    // ---- claims --------------------------------------------------------------------------

    /// One attempt to claim up to `max` positions for writing. `light`: if the next slot is
    /// not free yet, report `NotReady` from the stamp alone, without reading `head` (the line
    /// consumers write); the caller makes a full check before it parks.
    ///
    /// The common case (the next slot is free and the CAS succeeds) is inlined; everything
    /// else is [`Ring::claim_send_slow`].
    #[inline(always)]
    fn claim_send(&self, max: usize, light: bool) -> Claim {
        let tw = self.ctl.tail.load(Acquire);
        let t = pos_of(tw);
        let s = self.slots.stamp(t).load(Acquire);
        if light && !flag_of(tw) && pos_of(s) == add(t, POS_MASK + 1 - self.cap) {
            // The previous lap is still in the slot: a light check answers "full" from the
            // stamp alone (module doc).
            return Claim::NotReady;
        }
        if !flag_of(tw) && s == free(t) {
            let max = (max.clamp(1, MAX_BATCH) as u64).min(self.cap);
            let mut n = 1;
            while n < max && self.slots.stamp(add(t, n)).load(Acquire) == free(add(t, n)) {
                n += 1;
            }
            self.record_previous(Side::Send, t, low_of(tw));
            let new = word(add(t, n), false, self.me);
            if self
                .ctl
                .tail
                .compare_exchange_weak(tw, new, SeqCst, Relaxed)
                .is_ok()
            {
                rmw_load_barrier();
                return Claim::Got(Claimed {
                    pos: t,
                    n: n as usize,
                    wake: any_parked(&self.ctl.recv_parked),
                    skipped: 0,
                });
            }
        }
        self.claim_send_slow(max, light)
    }

    /// [`Ring::claim_send`] past its fast path: retries, full/pending/closed classification.
    #[inline(never)]
    fn claim_send_slow(&self, max: usize, light: bool) -> Claim {
        let cap = self.cap;
        let max = (max.clamp(1, MAX_BATCH) as u64).min(cap);
        let mut step = 0;
        let mut tw = self.ctl.tail.load(Acquire);
        for _ in 0..MAX_TRIES {
            if flag_of(tw) {
                return Claim::Closed;
            }
            let t = pos_of(tw);
            let s = self.slots.stamp(t).load(Acquire);
            if s == free(t) {
                let mut n = 1;
                while n < max && self.slots.stamp(add(t, n)).load(Acquire) == free(add(t, n)) {
                    n += 1;
                }
                self.record_previous(Side::Send, t, low_of(tw));
                let new = word(add(t, n), false, self.me);
                match self
                    .ctl
                    .tail
                    .compare_exchange_weak(tw, new, SeqCst, Acquire)
                {
                    Ok(_) => {
                        rmw_load_barrier();
                        let wake = any_parked(&self.ctl.recv_parked);
                        return Claim::Got(Claimed {
                            pos: t,
                            n: n as usize,
                            wake,
                            skipped: 0,
                        });
                    }
                    Err(current) => {
                        tw = current;
                        backoff(&mut step);
                        continue;
                    }
                }
            }
            let prev = add(t, POS_MASK + 1 - cap); // t - cap
            if pos_of(s) == prev && light {
                return Claim::NotReady;
            }
            if pos_of(s) == prev {
                // The slot still belongs to the previous lap: full, unless the consumer of
                // `prev` has claimed it and not released it yet.
                // SeqCst: this is the re-check of the parking handshake (module doc).
                let hw = self.ctl.head.load(SeqCst);
                let d = dist(prev, pos_of(hw));
                if d == 0 {
                    return Claim::NotReady;
                }
                if flag_of(s) && d <= cap {
                    match self.find_claimer(Side::Recv, prev, hw) {
                        Scan::Found(stuck) => return Claim::Pending(stuck),
                        Scan::Changed | Scan::Invalid => {}
                    }
                }
            }
            // Our tail is stale, or what we saw does not add up: look again.
            let current = self.ctl.tail.load(Acquire);
            if current == tw
                && self.slots.stamp(t).load(Acquire) == s
                && !plausible_at_tail(s, t, cap)
            {
                return Claim::Corrupted;
            }
            tw = current;
            backoff(&mut step);
        }
        Claim::Contended
    }

    /// One attempt to claim up to `max` positions for reading. `light`: if nothing is ready,
    /// report `NotReady` from the stamp (and the `closed` word) alone, without reading `tail`
    /// (the line producers write); the caller makes a full check before it parks.
    ///
    /// The common case (the next message is published and the CAS succeeds) is inlined;
    /// everything else is [`Ring::claim_recv_slow`].
    #[inline(always)]
    fn claim_recv(&self, max: usize, light: bool) -> Claim {
        let hw = self.ctl.head.load(Acquire);
        let h = pos_of(hw);
        let s = self.slots.stamp(h).load(Acquire);
        if s == full(h) && max <= 1 {
            self.record_previous(Side::Recv, h, low_of(hw));
            let new = word(add(h, 1), false, self.me);
            if self
                .ctl
                .head
                .compare_exchange_weak(hw, new, SeqCst, Relaxed)
                .is_ok()
            {
                rmw_load_barrier();
                return Claim::Got(Claimed {
                    pos: h,
                    n: 1,
                    wake: any_parked(&self.ctl.send_parked),
                    skipped: 0,
                });
            }
        } else if light && pos_of(s) == h && !flag_of(s) && self.ctl.closed.load(Acquire) == 0 {
            // Not yet published: a light check answers from the stamp alone (module doc).
            return Claim::NotReady;
        }
        self.claim_recv_slow(max, light)
    }

    /// [`Ring::claim_recv`] past its fast path: batches, skipped slots, retries, and the
    /// empty/pending/closed classification.
    #[inline(never)]
    fn claim_recv_slow(&self, max: usize, light: bool) -> Claim {
        let cap = self.cap;
        let max = (max.clamp(1, MAX_BATCH) as u64).min(cap);
        let mut step = 0;
        let mut hw = self.ctl.head.load(Acquire);
        for _ in 0..MAX_TRIES {
            let h = pos_of(hw);
            let s = self.slots.stamp(h).load(Acquire);
            if s == full(h) || s == skipped(h) {
                let mut mask = (s == skipped(h)) as u64;
                let mut n = 1;
                while n < max {
                    let q = add(h, n);
                    let sq = self.slots.stamp(q).load(Acquire);
                    if sq == skipped(q) {
                        mask |= 1 << n;
                    } else if sq != full(q) {
                        break;
                    }
                    n += 1;
                }
                self.record_previous(Side::Recv, h, low_of(hw));
                let new = word(add(h, n), false, self.me);
                match self
                    .ctl
                    .head
                    .compare_exchange_weak(hw, new, SeqCst, Acquire)
                {
                    Ok(_) => {
                        rmw_load_barrier();
                        let wake = any_parked(&self.ctl.send_parked);
                        return Claim::Got(Claimed {
                            pos: h,
                            n: n as usize,
                            wake,
                            skipped: mask,
                        });
                    }
                    Err(current) => {
                        hw = current;
                        backoff(&mut step);
                        continue;
                    }
                }
            }
            let unpublished = pos_of(s) == h && !flag_of(s);
            let unreleased = pos_of(s) == add(h, POS_MASK + 1 - cap) && flag_of(s);
            if light && (unpublished || unreleased) && self.ctl.closed.load(Acquire) == 0 {
                return Claim::NotReady;
            }
            if unpublished || unreleased {
                // SeqCst: this is the re-check of the parking handshake (module doc).
                let tw = self.ctl.tail.load(SeqCst);
                let d = dist(h, pos_of(tw));
                if d == 0 {
                    return if flag_of(tw) {
                        Claim::Closed
                    } else {
                        Claim::NotReady
                    };
                }
                if unpublished && d <= cap {
                    match self.find_claimer(Side::Send, h, tw) {
                        Scan::Found(stuck) => return Claim::Pending(stuck),
                        Scan::Changed | Scan::Invalid => {}
                    }
                }
            }
            let current = self.ctl.head.load(Acquire);
            if current == hw
                && self.slots.stamp(h).load(Acquire) == s
                && !plausible_at_head(s, h, cap)
            {
                return Claim::Corrupted;
            }
            hw = current;
            backoff(&mut step);
        }
        Claim::Contended
    }

    /// Before overwriting the name of the last claimer (`token`, who claimed `at - 1`) in the
    /// position word, records it in that position's stamp if the position is unfinished.
    #[inline]
    fn record_previous(&self, side: Side, at: u64, token: u64) {
        if !is_token(token) {
            return;
        }
        let p = add(at, POS_MASK); // at - 1
        let stamp = self.slots.stamp(p);
        let s = stamp.load(Relaxed);
        let (unfinished, named) = match side {
            Side::Send => (s == free(p), writing(p, token)),
            Side::Recv => (s == full(p) || s == skipped(p), reading(p, token)),
        };
        if unfinished {
            // Release: whoever later sees the record (Acquire) also sees the position word we
            // loaded; failure means the claimer finished meanwhile (nothing to record).
            let _ = stamp.compare_exchange(s, named, Release, Relaxed);
        }
    }

    /// Names the claimer of the unfinished run starting at `first`. `Side::Send`: a producer's
    /// unpublished run, `pw` is the `tail` word; `Side::Recv`: a consumer's unreleased run, `pw`
    /// is the `head` word.
    fn find_claimer(&self, claimer_side: Side, first: u64, pw: u64) -> Scan {
        let d = dist(first, pos_of(pw));
        for i in 0..d.min(MAX_BATCH as u64) {
            let q = add(first, i);
            let s = self.slots.stamp(q).load(Acquire);
            let unnamed = match claimer_side {
                Side::Send => s == free(q),
                Side::Recv => s == full(q) || s == skipped(q),
            };
            let phase = claimer_side == Side::Recv;
            if unnamed {
                if i + 1 == d {
                    let token = low_of(pw);
                    return if is_token(token) {
                        Scan::Found(Stuck {
                            first,
                            last: q,
                            claimer: token,
                        })
                    } else {
                        Scan::Invalid
                    };
                }
                continue;
            }
            if pos_of(s) == q && flag_of(s) == phase && is_token(low_of(s)) {
                return Scan::Found(Stuck {
                    first,
                    last: q,
                    claimer: low_of(s),
                });
            }
            return Scan::Changed;
        }
        Scan::Invalid
    }

    /// If the claimer of `stuck` is dead, finishes its run on its behalf (a producer's run is
    /// skipped, a consumer's is released).
    fn recover(&self, stuck: &Stuck, claimer_side: Side) -> Recovery {
        if stuck.claimer == self.me || self.peers.is_alive(stuck.claimer as u32) {
            return Recovery::Alive;
        }
        let mut moved = 0;
        'run: for i in 0..=dist(stuck.first, stuck.last).min(MAX_BATCH as u64 - 1) {
            let q = add(stuck.first, i);
            let stamp = self.slots.stamp(q);
            let done = match claimer_side {
                Side::Send => skipped(q),
                Side::Recv => free(add(q, self.cap)),
            };
            let mut s = stamp.load(Acquire);
            // A dead claimer's stamp only changes by records and by other helpers: a few
            // rounds settle it.
            for _ in 0..4 {
                let ours = match claimer_side {
                    Side::Send => s == free(q) || s == writing(q, stuck.claimer),
                    Side::Recv => s == full(q) || s == skipped(q) || s == reading(q, stuck.claimer),
                };
                if s == done {
                    continue 'run; // another helper did it
                }
                if !ours {
                    break 'run;
                }
                match stamp.compare_exchange(s, done, AcqRel, Acquire) {
                    Ok(_) => {
                        moved += 1;
                        continue 'run;
                    }
                    Err(now) => s = now,
                }
            }
            break;
        }
        if moved == 0 {
            return Recovery::Raced;
        }
        if claimer_side == Side::Recv {
            // Released slots: parked senders may proceed.
            rmw_load_barrier();
            if any_parked(&self.ctl.send_parked) {
                self.wake(Side::Send, moved);
            }
        }
        Recovery::Done
    }

    // ---- finishing claims -------------------------------------------------------------------

    /// Publishes positions `c.pos .. c.pos + n` (ascending), `skipped` where `skip` says so, and
    /// wakes receivers if the claim saw any parked.
    fn publish(&self, c: &Claimed, n: usize, skip: bool) {
        if !skip {
            // Crash tests: claimed and written, not published.
            crate::failpoint::hit("queue.send.before_publish");
        }
        for i in 0..n as u64 {
            let q = add(c.pos, i);
            let s = if skip { skipped(q) } else { full(q) };
            store_stamp(self.slots.stamp(q), s);
        }
        if c.wake {
            self.wake(Side::Recv, n);
        }
    }

    /// Releases positions `from .. from + n` of claim `c` (ascending).
    fn release(&self, c: &Claimed, from: usize, n: usize) {
        // Crash tests: claimed and read (maybe returned), not released.
        crate::failpoint::hit("queue.recv.before_release");
        for i in from as u64..(from + n) as u64 {
            let q = add(c.pos, i);
            store_stamp(self.slots.stamp(q), free(add(q, self.cap)));
        }
    }

    /// Bumps the futex word of `side`'s waiters and wakes up to `n` of them.
    #[cold]
    #[inline(never)]
    fn wake(&self, side: Side, n: usize) {
        let word = match side {
            Side::Send => &self.ctl.not_full,
            Side::Recv => &self.ctl.not_empty,
        };
        word.fetch_add(1, Release);
        let woken = wait::wake(word, n.min(i32::MAX as usize) as u32);
        if woken == 0 {
            let f = self.local.fruitless.fetch_add(1, Relaxed) + 1;
            if f >= FRUITLESS_BEFORE_REPAIR {
                self.local.fruitless.store(0, Relaxed);
                self.repair_parked(side);
            }
        } else if self.local.fruitless.load(Relaxed) != 0 {
            self.local.fruitless.store(0, Relaxed);
        }
    }

    /// Clears the parked bits of participant slots nobody holds.
    fn repair_parked(&self, side: Side) {
        let bits = match side {
            Side::Send => &self.ctl.send_parked,
            Side::Recv => &self.ctl.recv_parked,
        };
        let mine = (self.me & 127) as u32;
        for (w, word) in bits.iter().enumerate() {
            let mut set = word.load(Relaxed);
            while set != 0 {
                let b = set.trailing_zeros();
                set &= set - 1;
                let slot = w as u32 * 64 + b;
                if slot != mine && !self.peers.slot_attached(slot) {
                    word.fetch_and(!(1u64 << b), SeqCst);
                }
            }
        }
    }

    /// Announces that a thread of this handle is about to park on `side`'s futex word.
    fn announce(&self, side: Side) -> ParkGuard<'a> {
        let (bits, count) = match side {
            Side::Send => (&self.ctl.send_parked, &self.local.send_parkers),
            Side::Recv => (&self.ctl.recv_parked, &self.local.recv_parkers),
        };
        let slot = (self.me & 127) as usize;
        let bit = 1u64 << (slot % 64);
        let word = &bits[slot / 64];
        {
            let mut c = lock(count);
            *c += 1;
            // Always set (not only on 0 -> 1): re-asserts a bit a repair cleared by mistake.
            word.fetch_or(bit, SeqCst);
        }
        // The store->load fence of the handshake: our bit before our re-check of the ring.
        fence(SeqCst);
        ParkGuard {
            bits: word,
            bit,
            count,
        }
    }

    // ---- the wait loop ----------------------------------------------------------------------

    /// The handle's poll-phase length for `side`.
    fn polls(&self, side: Side) -> &AtomicU32 {
        match side {
            Side::Send => &self.local.send_polls,
            Side::Recv => &self.local.recv_polls,
        }
    }

    /// Adapts the poll phase of the handle's next wait on `side` to how this one went: a wait
    /// that ended within its `polls` polls doubles it (up to [`SPIN_POLLS`]), one that needed
    /// more (yields, a park) halves it (down to [`MIN_POLLS`]). Polling pays while the other
    /// side runs on another CPU; when both share one (more processes than CPUs), every poll is
    /// time taken from the process we wait for.
    fn adapt_polls(&self, side: Side, polls: u32, spun: u32) {
        if polls == 0 {
            return; // `set_spin(false)`: nothing to adapt
        }
        let next = if spun <= polls {
            polls.saturating_mul(2).clamp(MIN_POLLS, SPIN_POLLS)
        } else {
            (polls / 2).max(MIN_POLLS)
        };
        if next != polls {
            self.polls(side).store(next, Relaxed);
        }
    }

    /// Claims up to `max` positions on `side`, waiting as `blocker` says (`None`: try once).
    ///
    /// Light checks first: while the slot is not ready, only its stamp is read, so a waiting
    /// side does not keep stealing the other side's position line (which would cost the other
    /// side a cross-core round trip on every claim). A blocking call makes the full check
    /// (position word, stuck-claimer identification and liveness) once its spin budget is
    /// spent, and before every park; a `try_*` call every [`LIGHT_MISSES`] consecutive misses
    /// of the handle, where it also spins briefly on a claimer that has not finished.
    #[inline(always)]
    fn acquire<B: Blocker>(
        &self,
        side: Side,
        max: usize,
        blocker: Option<&mut B>,
    ) -> std::result::Result<Claimed, Fail> {
        let first = match side {
            Side::Send => self.claim_send(max, true),
            Side::Recv => self.claim_recv(max, true),
        };
        match first {
            Claim::Got(c) => {
                self.hit(side);
                Ok(c)
            }
            first => self.acquire_slow(side, max, blocker, first),
        }
    }

    /// [`Ring::acquire`] after a first light claim did not succeed (`first`).
    #[inline(never)]
    fn acquire_slow<B: Blocker>(
        &self,
        side: Side,
        max: usize,
        mut blocker: Option<&mut B>,
        first: Claim,
    ) -> std::result::Result<Claimed, Fail> {
        let claim = |r: &Self, light: bool| match side {
            Side::Send => r.claim_send(max, light),
            Side::Recv => r.claim_recv(max, light),
        };
        // The side whose unfinished claim can block us.
        let other = match side {
            Side::Send => Side::Recv,
            Side::Recv => Side::Send,
        };
        let futex_word = match side {
            Side::Send => &self.ctl.not_full,
            Side::Recv => &self.ctl.not_empty,
        };
        let misses = match side {
            Side::Send => &self.local.send_misses,
            Side::Recv => &self.local.recv_misses,
        };
        let polls = if self.local.no_spin.load(Relaxed) != 0 {
            0
        } else {
            self.polls(side).load(Relaxed)
        };
        if let Some(b) = blocker.as_deref_mut() {
            b.rearm(polls);
        }
        let missed = misses.load(Relaxed);
        let mut light = blocker.is_some() || missed + 1 < LIGHT_MISSES;
        let mut watch = Watch::new();
        let mut spins = 0;
        let mut recoveries = 0;
        let mut yields = 0;
        // The first (light) attempt was made by the fast path; a try call due for a full check
        // makes it now.
        let mut first = Some(first).filter(|_| light);
        loop {
            let stuck = match first.take().unwrap_or_else(|| claim(self, light)) {
                Claim::Got(c) => {
                    if missed != 0 {
                        misses.store(0, Relaxed);
                    }
                    if let Some(b) = blocker.as_deref() {
                        self.adapt_polls(side, polls, b.spun());
                    }
                    return Ok(c);
                }
                Claim::Closed | Claim::Corrupted => return Err(Fail::Disconnected),
                Claim::NotReady | Claim::Contended => None,
                Claim::Pending(stuck) => Some(stuck),
            };
            let Some(b) = blocker.as_deref_mut() else {
                // Try mode.
                if light {
                    misses.store(missed + 1, Relaxed);
                    return Err(Fail::NotReady);
                }
                if missed != 0 {
                    misses.store(0, Relaxed);
                }
                let Some(stuck) = stuck else {
                    return Err(Fail::NotReady);
                };
                if spins < TRY_SPINS {
                    spins += 1;
                    hint::spin_loop();
                    continue;
                }
                if recoveries < TRY_RECOVERIES && self.recover(&stuck, other) != Recovery::Alive {
                    recoveries += 1;
                    spins = 0;
                    continue;
                }
                return Err(Fail::NotReady);
            };
            if light {
                if !b.spin() {
                    light = false; // spin budget spent: the full check next
                }
                continue;
            }
            if let Some(stuck) = &stuck {
                if watch.due(stuck.first) {
                    match self.recover(stuck, other) {
                        Recovery::Alive => {}
                        Recovery::Done => continue,
                        Recovery::Raced => {
                            watch.force();
                            continue;
                        }
                    }
                }
                if yields < PENDING_YIELDS {
                    yields += 1;
                    hint::yield_now();
                    continue;
                }
            }
            let seq = futex_word.load(Acquire);
            let guard = self.announce(side);
            let guaranteed = match claim(self, false) {
                Claim::Got(c) => {
                    self.adapt_polls(side, polls, b.spun());
                    return Ok(c);
                }
                Claim::Closed | Claim::Corrupted => return Err(Fail::Disconnected),
                Claim::NotReady => true,
                Claim::Contended | Claim::Pending(_) => false,
            };
            match b.park(futex_word, seq, guaranteed) {
                Park::Woken => {}
                Park::Slice => {
                    watch.force();
                    self.repair_parked(side);
                }
                Park::TimedOut => return Err(Fail::Timeout),
            }
            drop(guard);
        }
    }

    // ---- one-message fast paths -----------------------------------------------------------

    /// Claims the next position for one message if its slot is free right now and the queue
    /// is open: the common case of a send, with nothing to classify (no batch scan, no retry;
    /// anything else returns `None` and the caller takes [`Ring::acquire`], which starts over).
    /// Same steps as [`Ring::claim_send`] (stamp check, record of the previous claimer, claim
    /// CAS), except that the parked-receiver check is left to the caller, after its publish
    /// (module doc, "The one-message fast paths").
    #[inline(always)]
    fn claim_send_one(&self) -> Option<u64> {
        let tw = self.ctl.tail.load(Acquire);
        let t = pos_of(tw);
        if flag_of(tw) || self.slots.stamp(t).load(Acquire) != free(t) {
            return None;
        }
        self.record_previous(Side::Send, t, low_of(tw));
        let new = word(add(t, 1), false, self.me);
        if self
            .ctl
            .tail
            .compare_exchange_weak(tw, new, SeqCst, Relaxed)
            .is_err()
        {
            return None;
        }
        rmw_load_barrier();
        Some(t)
    }

    /// Claims the next message if it is published right now (not skipped): the common case of
    /// a receive; `None` sends the caller to [`Ring::acquire`]. Same steps as
    /// [`Ring::claim_recv`], the parked-sender check left to the caller (after its release).
    #[inline(always)]
    fn claim_recv_one(&self) -> Option<u64> {
        let hw = self.ctl.head.load(Acquire);
        let h = pos_of(hw);
        if self.slots.stamp(h).load(Acquire) != full(h) {
            return None;
        }
        self.record_previous(Side::Recv, h, low_of(hw));
        let new = word(add(h, 1), false, self.me);
        if self
            .ctl
            .head
            .compare_exchange_weak(hw, new, SeqCst, Relaxed)
            .is_err()
        {
            return None;
        }
        rmw_load_barrier();
        Some(h)
    }

    /// A claim succeeded: the handle's run of light `try_*` misses on `side` ends.
    #[inline(always)]
    fn hit(&self, side: Side) {
        let misses = match side {
            Side::Send => &self.local.send_misses,
            Side::Recv => &self.local.recv_misses,
        };
        if misses.load(Relaxed) != 0 {
            misses.store(0, Relaxed);
        }
    }

    /// Sends one message; `blocker()` makes the blocker that says how to wait (`None`: try
    /// once). The blocker is made on the slow path only: made up front, it would be written to the
    /// stack on every send (its address goes to the non-inlined slow path).
    #[inline(always)]
    fn send_one<B: Blocker>(
        &self,
        value: &T,
        blocker: impl FnOnce() -> Option<B>,
    ) -> std::result::Result<(), Fail> {
        let Some(t) = self.claim_send_one() else {
            return self.send_one_slow(value, blocker);
        };
        // Crash tests: position claimed, nothing written.
        crate::failpoint::hit("queue.send.after_claim");
        // SAFETY: position t is ours (claimed, unpublished).
        unsafe { self.slots.with_mut(t, |p| p.write(*value)) };
        // Crash tests: claimed and written, not published.
        crate::failpoint::hit("queue.send.before_publish");
        store_stamp(self.slots.stamp(t), full(t));
        // After the claim CAS: the handshake's load (module doc, "The one-message fast paths").
        if any_parked(&self.ctl.recv_parked) {
            self.wake(Side::Recv, 1);
        }
        self.hit(Side::Send);
        Ok(())
    }

    /// [`Ring::send_one`] past its fast path (takes the value by reference: `T` stays out of
    /// the non-inlined call).
    #[inline(never)]
    fn send_one_slow<B: Blocker>(
        &self,
        value: &T,
        blocker: impl FnOnce() -> Option<B>,
    ) -> std::result::Result<(), Fail> {
        self.send_slice(std::slice::from_ref(value), blocker().as_mut())
            .map(|_| ())
    }

    // ---- operations used by the handle ---------------------------------------------------

    /// Sends `values` (up to MAX_BATCH of them in one claim). Returns how many were sent.
    fn send_slice<B: Blocker>(
        &self,
        values: &[T],
        blocker: Option<&mut B>,
    ) -> std::result::Result<usize, Fail> {
        let c = self.acquire(Side::Send, values.len(), blocker)?;
        Ok(self.fill(&c, values))
    }

    /// Sends a prefix of `values` if slots are free right now: one claim attempt, no spinning,
    /// no liveness checks. Returns how many were sent (0 if none).
    fn send_ready(&self, values: &[T]) -> usize {
        match self.claim_send(values.len(), true) {
            Claim::Got(c) => self.fill(&c, values),
            _ => 0,
        }
    }

    /// Writes and publishes the positions of `c` from `values`.
    fn fill(&self, c: &Claimed, values: &[T]) -> usize {
        // Crash tests: positions claimed, nothing written.
        crate::failpoint::hit("queue.send.after_claim");
        for (i, v) in values[..c.n].iter().enumerate() {
            // SAFETY: positions c.pos .. c.pos + c.n are ours (claimed, unpublished).
            unsafe { self.slots.with_mut(add(c.pos, i as u64), |p| p.write(*v)) };
        }
        self.publish(c, c.n, false);
        c.n
    }

    /// Claims one position and lets `f` write it in place.
    fn send_with<B: Blocker, R>(
        &self,
        blocker: Option<&mut B>,
        f: impl FnOnce(&mut T) -> R,
    ) -> std::result::Result<R, Fail> {
        let c = self.acquire(Side::Send, 1, blocker)?;
        let guard = SkipOnUnwind {
            ring: self,
            claim: c,
        };
        // SAFETY: position c.pos is ours (claimed, unpublished); slot memory always holds some
        // bit pattern of a `T`, which is valid for `T: Pod`; no peer that follows the protocol
        // references it. (A scribbling peer can make a live claimer look dead and have its
        // slot skipped meanwhile: the trust model of the crate README, as for the locks' data.)
        let r = unsafe { self.slots.with_mut(c.pos, |p| f(&mut *p)) };
        std::mem::forget(guard);
        self.publish(&c, 1, false);
        Ok(r)
    }

    /// Receives into `out` (up to `max`, at least one message unless it fails). The first
    /// claim waits as `blocker` says; after a message arrived, only what is ready right now is
    /// taken (no spinning, no liveness checks). Skipped positions are consumed silently.
    fn recv_into<B: Blocker>(
        &self,
        out: &mut Vec<T>,
        max: usize,
        mut blocker: Option<&mut B>,
    ) -> std::result::Result<usize, Fail> {
        let mut got = 0;
        let mut rounds = 0u64;
        while got < max {
            // Skipped positions are progress; a try call still stops after a lap of them.
            let c = if got == 0 && (blocker.is_some() || rounds <= self.cap) {
                self.acquire(Side::Recv, max - got, blocker.as_deref_mut())?
            } else {
                match self.claim_recv(max - got, true) {
                    Claim::Got(c) => c,
                    _ if got == 0 => return Err(Fail::NotReady),
                    _ => break,
                }
            };
            rounds += 1;
            out.reserve(c.n);
            if c.skipped == 0 {
                // The common case, a run without skipped positions: copied straight into the
                // spare capacity (no per-message length update and capacity check).
                for (i, dst) in out.spare_capacity_mut()[..c.n].iter_mut().enumerate() {
                    // SAFETY: position c.pos + i is ours (claimed, unreleased) and its stamp
                    // was `full` when we claimed it (Acquire): the value is published.
                    dst.write(unsafe { self.slots.with(add(c.pos, i as u64), |p| p.read()) });
                }
                // SAFETY: the first `c.n` spare elements were initialised just above.
                unsafe { out.set_len(out.len() + c.n) };
                got += c.n;
            } else {
                for i in 0..c.n {
                    if c.skipped & (1 << i) == 0 {
                        // SAFETY: as above.
                        out.push(unsafe { self.slots.with(add(c.pos, i as u64), |p| p.read()) });
                        got += 1;
                    }
                }
            }
            self.release(&c, 0, c.n);
            if c.wake {
                self.wake(Side::Send, c.n);
            }
        }
        Ok(got)
    }

    /// Claims one message and lets `f` read it in place; `blocker()` makes the blocker that says
    /// how to wait (on the slow path only, see [`Ring::send_one`]).
    #[inline(always)]
    fn recv_with<B: Blocker, R>(
        &self,
        blocker: impl FnOnce() -> Option<B>,
        f: impl FnOnce(&T) -> R,
    ) -> std::result::Result<R, Fail> {
        let c = match self.claim_recv_one() {
            Some(h) => {
                self.hit(Side::Recv);
                // The parked-sender check follows the release (`ReleaseOnDrop` makes it).
                Claimed {
                    pos: h,
                    n: 1,
                    wake: false,
                    skipped: 0,
                }
            }
            None => self.claim_message(blocker)?,
        };
        let _release = ReleaseOnDrop {
            ring: self,
            claim: c,
        };
        // SAFETY: position c.pos is ours (claimed, unreleased) and was `full` when claimed
        // (Acquire): the value is published, aligned, a valid `T`, and no peer that follows the
        // protocol writes it until we release it (a scribbling one: see `send_with`).
        Ok(unsafe { self.slots.with(c.pos, |p| f(&*p)) })
    }

    /// [`Ring::recv_with`] past its fast path: claims one message (not a skipped position),
    /// waiting as the blocker that `blocker()` makes says. Skipped positions are consumed on
    /// the way.
    #[inline(never)]
    fn claim_message<B: Blocker>(
        &self,
        blocker: impl FnOnce() -> Option<B>,
    ) -> std::result::Result<Claimed, Fail> {
        let mut made = blocker();
        let mut blocker = made.as_mut();
        let mut skips = 0u64;
        loop {
            let c = self.acquire(Side::Recv, 1, blocker.as_deref_mut())?;
            if c.skipped & 1 == 0 {
                return Ok(c);
            }
            self.release(&c, 0, 1);
            if c.wake {
                self.wake(Side::Send, 1);
            }
            skips += 1;
            if blocker.is_none() && skips > self.cap {
                return Err(Fail::NotReady);
            }
        }
    }

    fn close(&self) {
        self.ctl.tail.fetch_or(FLAG_BIT, SeqCst);
        self.ctl.closed.store(1, SeqCst);
        for word in [&self.ctl.not_empty, &self.ctl.not_full] {
            word.fetch_add(1, Release);
            wait::wake(word, u32::MAX);
        }
    }
}

/// Publishes a claimed position as `skipped` if the `send_with` closure unwinds (forgotten on
/// success), so consumers never wait on a slot whose writer gave up.
struct SkipOnUnwind<'r, 'a, T: Pod, S: Slots<T>, P: Peers> {
    ring: &'r Ring<'a, T, S, P>,
    claim: Claimed,
}

impl<T: Pod, S: Slots<T>, P: Peers> Drop for SkipOnUnwind<'_, '_, T, S, P> {
    fn drop(&mut self) {
        self.ring.publish(&self.claim, 1, true);
    }
}

/// Releases a claimed message after the `recv_with` closure, also if it unwinds (the message
/// is consumed either way).
struct ReleaseOnDrop<'r, 'a, T: Pod, S: Slots<T>, P: Peers> {
    ring: &'r Ring<'a, T, S, P>,
    claim: Claimed,
}

impl<T: Pod, S: Slots<T>, P: Peers> Drop for ReleaseOnDrop<'_, '_, T, S, P> {
    fn drop(&mut self) {
        self.ring.release(&self.claim, 0, 1);
        // A fast-path claim did not look at the parked senders yet: it does now, after the
        // release and, like every claim, after its claim CAS (module doc, "The one-message
        // fast paths").
        if self.claim.wake || any_parked(&self.ring.ctl.send_parked) {
            self.ring.wake(Side::Send, 1);
        }
    }
}

/// True if stamp `s` can occur at the slot of position `t` while `tail` is at `t`.
fn plausible_at_tail(s: u64, t: u64, cap: u64) -> bool {
    let prev = add(t, POS_MASK + 1 - cap);
    let low = low_of(s);
    let named = is_token(low);
    s == free(t)
        || (pos_of(s) == prev && !flag_of(s) && (low == 0 || named))
        || (pos_of(s) == prev && flag_of(s) && (low <= CODE_SKIPPED || named))
}

/// True if stamp `s` can occur at the slot of position `h` while `head` is at `h`.
fn plausible_at_head(s: u64, h: u64, cap: u64) -> bool {
    let prev = add(h, POS_MASK + 1 - cap);
    let low = low_of(s);
    (pos_of(s) == h && !flag_of(s) && (low == 0 || is_token(low)))
        || s == full(h)
        || s == skipped(h)
        || (pos_of(s) == prev && flag_of(s) && (low <= CODE_SKIPPED || is_token(low)))
}

// ---------------------------------------------------------------------------------------------
// The region-backed handle
// ---------------------------------------------------------------------------------------------

/// The slots of a mapped region.
struct RegionSlots<T> {
    /// Start of slot 0 (128-byte aligned).
    base: NonNull<u8>,
    /// `cap - 1` (validated power of two).
    mask: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> RegionSlots<T> {
    /// The slot unit: the element's alignment, at least the stamp's 8 bytes.
    const UNIT: usize = if align_of::<T>() > 8 {
        align_of::<T>()
    } else {
        8
    };
    /// Offset of the value in a slot ([`slot_geometry`] for `T`, computed at compile time so
    /// the slot address is a shift, not a multiplication by a loaded size).
    const VALUE_OFF: usize = Self::UNIT;
    /// Bytes of a slot ([`slot_geometry`] for `T`).
    const SLOT_SIZE: usize = (Self::UNIT + size_of::<T>()).div_ceil(Self::UNIT) * Self::UNIT;

    #[inline]
    fn slot(&self, pos: u64) -> *mut u8 {
        let i = (pos & self.mask) as usize;
        // SAFETY: i <= mask < cap, and the layout function sized the body for `cap` slots of
        // `SLOT_SIZE` bytes (checked equal to the region's geometry at attach) after the
        // control block, so the offset stays inside the mapping.
        unsafe { self.base.as_ptr().add(i * Self::SLOT_SIZE) }
    }
}

impl<T: Pod> Slots<T> for RegionSlots<T> {
    #[inline]
    fn stamp(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: the slot start is inside the mapping (see `slot`), 8-aligned (base is 128-
        // aligned, slot_size a multiple of 8); an AtomicU64 is valid for every bit pattern and
        // every process only accesses it atomically. The mapping lives as long as the `Queue`
        // that owns both the region and these slots, which outlives `&self`.
        unsafe { &*(self.slot(pos) as *const AtomicU64) }
    }

    #[inline]
    unsafe fn with_mut<R>(&self, pos: u64, f: impl FnOnce(*mut T) -> R) -> R {
        // SAFETY: VALUE_OFF + size_of::<T>() <= SLOT_SIZE (slot_geometry), aligned for T.
        f(unsafe { self.slot(pos).add(Self::VALUE_OFF) } as *mut T)
    }

    #[inline]
    unsafe fn with<R>(&self, pos: u64, f: impl FnOnce(*const T) -> R) -> R {
        // SAFETY: as in `with_mut`.
        f(unsafe { self.slot(pos).add(Self::VALUE_OFF) } as *const T)
    }
}

/// A bounded multi-producer multi-consumer queue of `T` shared by name between processes:
/// `multiprocessing.Queue` for plain data, lock-free.
///
/// Any number of handles, in any number of processes, send and receive. Messages of one sender
/// arrive in the order sent; each message is received once. A process that dies while sending
/// or receiving never wedges the queue (see the module documentation of the protocol): its
/// half-written message is skipped, and a message it had taken is lost (at most once).
///
/// ```
/// use interproc::Queue;
/// let q = Queue::<u64>::create("doc-queue-intro", 8)?;
/// q.send(1).unwrap();
/// q.try_send(2).unwrap();
/// assert_eq!(q.len(), 2);
/// assert_eq!(q.recv(), Ok(1));
/// assert_eq!(q.try_recv(), Ok(2));
/// q.close();
/// assert!(q.recv().is_err());
/// # Ok::<(), interproc::Error>(())
/// ```
pub struct Queue<T: Pod> {
    region: Region,
    ctl: NonNull<Control>,
    slots: RegionSlots<T>,
    cap: u64,
    me: u64,
    local: Local,
}

// SAFETY: the handle is a region (Send + Sync) plus pointers into its mapping, which stays
// mapped as long as the handle; shared state is accessed through atomics, slot memory only
// under a protocol claim. Values of `T` move between threads, hence `T: Send`.
unsafe impl<T: Pod + Send> Send for Queue<T> {}
// SAFETY: as above; every method takes `&self` and is safe to call concurrently (that is the
// point of an MPMC queue); `Local` is a mutex-protected count and an atomic.
unsafe impl<T: Pod + Send> Sync for Queue<T> {}

impl<T: Pod> Queue<T> {
    fn elem() -> Result<(u32, u32)> {
        let size = u32::try_from(size_of::<T>())
            .map_err(|_| Error::InvalidArgument("element type too large".into()))?;
        let align = align_of::<T>() as u32;
        if align as u64 > MAX_ALIGN {
            return Err(Error::InvalidArgument(format!(
                "element alignment {align} exceeds {MAX_ALIGN}"
            )));
        }
        Ok((size, align))
    }

    fn spec(capacity: usize) -> Result<Spec> {
        let (elem_size, elem_align) = Self::elem()?;
        if capacity == 0 {
            return Err(Error::InvalidArgument(
                "a queue needs a capacity of at least 1".into(),
            ));
        }
        let cap = (capacity as u64)
            .max(2)
            .checked_next_power_of_two()
            .filter(|c| *c <= MAX_CAPACITY)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("capacity {capacity} exceeds {MAX_CAPACITY}"))
            })?;
        let mut spec = Spec {
            kind: Kind::Queue,
            elem_size,
            elem_align,
            capacity: cap,
            params: [0; 4],
            body_len: 0,
        };
        spec.body_len =
            layout(&spec).ok_or_else(|| Error::InvalidArgument("queue too large".into()))?;
        Ok(spec)
    }

    fn expect() -> Result<Expect<'static>> {
        let (elem_size, elem_align) = Self::elem()?;
        Ok(Expect {
            kind: Kind::Queue,
            elem_size,
            elem_align,
            body_len: &layout,
        })
    }

    /// Writes the initial stamps: slot `i` is free for position `i`. (The kernel zero-filled
    /// everything else: head = tail = 0, nobody parked, not closed.)
    fn init(region: &Region) -> Result<()> {
        let spec = region.spec();
        let (_, slot) = slot_geometry(spec.elem_size as u64, spec.elem_align as u64)
            .ok_or_else(|| Error::corrupted("unsupported element layout"))?;
        for i in 0..spec.capacity {
            let stamp = region.body::<AtomicU64>(CONTROL_LEN + (i * slot) as usize);
            stamp.store(free(i), Relaxed);
        }
        Ok(())
    }

    fn from_region(region: Region) -> Result<Queue<T>> {
        let spec = *region.spec();
        let geometry = slot_geometry(spec.elem_size as u64, spec.elem_align as u64);
        let expected = (
            RegionSlots::<T>::VALUE_OFF as u64,
            RegionSlots::<T>::SLOT_SIZE as u64,
        );
        if geometry != Some(expected) {
            // Cannot happen: `Expect` matched the header's element layout against `T`.
            return Err(Error::corrupted("unsupported element layout"));
        }
        let me = region
            .token()
            .ok_or_else(|| Error::corrupted("queue handle without a participant slot"))?
            .raw() as u64;
        let ctl = NonNull::from(region.body::<Control>(0));
        let base = NonNull::new(region.body_ptr(CONTROL_LEN))
            .ok_or_else(|| Error::corrupted("null mapping"))?;
        Ok(Queue {
            ctl,
            slots: RegionSlots {
                base,
                mask: spec.capacity - 1,
                _t: PhantomData,
            },
            cap: spec.capacity,
            me,
            local: Local::new(),
            region,
        })
    }

    /// Creates the queue `name` with room for `capacity` messages (rounded up to a power of
    /// two, at least 2).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a capacity of 0 or above 2^30, or an
    /// element type aligned to more than 128 bytes; [`Error::InvalidName`];
    /// [`Error::AlreadyExists`]; [`Error::Io`].
    ///
    /// # Examples
    /// ```
    /// let q = interproc::Queue::<[u8; 16]>::create("doc-queue-create", 100)?;
    /// assert_eq!(q.capacity(), 128);
    /// assert!(interproc::Queue::<u8>::create("doc-queue-zero", 0).is_err());
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        let spec = Self::spec(capacity)?;
        let region = Region::create(name, &spec, region::create_mode(), Self::init)?;
        Self::from_region(region)
    }

    /// Opens the existing queue `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Incompatible`] if `name` is another kind of object or a
    /// queue of elements of another size or alignment; [`Error::Corrupted`] if its region does
    /// not check out; [`Error::Busy`] if its participant table is full.
    pub fn open(name: &str) -> Result<Self> {
        let region = Region::open(name, &Self::expect()?, Attach::Participant)?;
        Self::from_region(region)
    }

    /// Opens `name`, creating it with `capacity` if it does not exist (race-free: exactly one
    /// racer creates). An existing queue keeps its own capacity.
    ///
    /// # Errors
    /// As [`Queue::open`] and [`Queue::create`].
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Self> {
        let spec = Self::spec(capacity)?;
        let region = Region::open_or_create(
            name,
            &spec,
            &Self::expect()?,
            region::create_mode(),
            Self::init,
        )?;
        Self::from_region(region)
    }

    #[inline]
    fn ring(&self) -> Ring<'_, T, RegionSlots<T>, Region> {
        Ring {
            // SAFETY: `ctl` points at the control block of `self.region`'s mapping (taken from
            // `Region::body`, bounds and alignment checked), which lives as long as `self`.
            ctl: unsafe { self.ctl.as_ref() },
            slots: &self.slots,
            peers: &self.region,
            local: &self.local,
            cap: self.cap,
            me: self.me,
            _t: PhantomData,
        }
    }

    /// Sends `value`, blocking while the queue is full.
    ///
    /// # Errors
    /// [`SendError`] (with the value) once the queue is closed, or if its shared state is
    /// corrupted.
    #[inline]
    pub fn send(&self, value: T) -> std::result::Result<(), SendError<T>> {
        match self.ring().send_one(&value, || Some(Blocking::new(None))) {
            Ok(()) => Ok(()),
            Err(_) => Err(SendError(value)),
        }
    }

    /// Sends `value` if there is room now.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if the queue is full (or its next slot is still held by a live
    /// receiver that has not finished reading it); [`TrySendError::Disconnected`] once closed
    /// or corrupted.
    #[inline]
    pub fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
        match self.ring().send_one(&value, || None::<Blocking>) {
            Ok(()) => Ok(()),
            Err(Fail::Disconnected) => Err(TrySendError::Disconnected(value)),
            Err(_) => Err(TrySendError::Full(value)),
        }
    }

    /// Sends `value`, blocking at most `timeout` while the queue is full.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if no room came in time; [`SendTimeoutError::Disconnected`]
    /// once closed or corrupted.
    #[inline]
    pub fn send_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> std::result::Result<(), SendTimeoutError<T>> {
        match self
            .ring()
            .send_one(&value, || Some(Blocking::new(Some(timeout))))
        {
            Ok(()) => Ok(()),
            Err(Fail::Disconnected) => Err(SendTimeoutError::Disconnected(value)),
            Err(_) => Err(SendTimeoutError::Timeout(value)),
        }
    }

    /// Receives the next message, blocking while the queue is empty.
    ///
    /// # Errors
    /// [`RecvError`] once the queue is closed and drained (or corrupted).
    #[inline]
    pub fn recv(&self) -> std::result::Result<T, RecvError> {
        self.ring()
            .recv_with(|| Some(Blocking::new(None)), |v| *v)
            .map_err(|_| RecvError)
    }

    /// Receives a message if one is ready now.
    ///
    /// A message whose sender has claimed its slot but not finished writing it (a few
    /// nanoseconds, unless the sender is descheduled or paused) holds back the messages behind
    /// it: then this reports `Empty` after a short spin.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`]; [`TryRecvError::Disconnected`] once closed and drained.
    #[inline]
    pub fn try_recv(&self) -> std::result::Result<T, TryRecvError> {
        self.ring()
            .recv_with(|| None::<Blocking>, |v| *v)
            .map_err(|e| match e {
                Fail::Disconnected => TryRecvError::Disconnected,
                _ => TryRecvError::Empty,
            })
    }

    /// Receives a message, blocking at most `timeout` while the queue is empty.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`]; [`RecvTimeoutError::Disconnected`] once closed and
    /// drained.
    #[inline]
    pub fn recv_timeout(&self, timeout: Duration) -> std::result::Result<T, RecvTimeoutError> {
        self.ring()
            .recv_with(|| Some(Blocking::new(Some(timeout))), |v| *v)
            .map_err(timeout_error)
    }

    // ---- zero-copy ------------------------------------------------------------------------

    /// Claims the next slot (blocking while full), lets `write` fill it in place, and
    /// publishes it: no copy of `T` is made. Returns what `write` returns.
    ///
    /// The slot holds some earlier bit pattern (valid for a `Pod` type): write every field.
    /// Receivers wait for this slot (and those behind it) while `write` runs, so keep it short.
    /// If `write` panics, the slot is published as empty and receivers step over it.
    ///
    /// # Errors
    /// [`SendError`] once the queue is closed (`write` is not called).
    ///
    /// # Examples
    /// ```
    /// let q = interproc::Queue::<[u32; 4]>::create("doc-queue-send-with", 4)?;
    /// q.send_with(|slot| *slot = [1, 2, 3, 4]).unwrap();
    /// assert_eq!(q.recv_with(|m| m.iter().sum::<u32>()), Ok(10));
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn send_with<R>(
        &self,
        write: impl FnOnce(&mut T) -> R,
    ) -> std::result::Result<R, SendError<()>> {
        let mut w = Blocking::new(None);
        self.ring()
            .send_with(Some(&mut w), write)
            .map_err(|_| SendError(()))
    }

    /// [`Queue::send_with`] if a slot is free now.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`] (`write` is not called).
    pub fn try_send_with<R>(
        &self,
        write: impl FnOnce(&mut T) -> R,
    ) -> std::result::Result<R, TrySendError<()>> {
        self.ring()
            .send_with(None::<&mut Blocking>, write)
            .map_err(|e| match e {
                Fail::Disconnected => TrySendError::Disconnected(()),
                _ => TrySendError::Full(()),
            })
    }

    /// [`Queue::send_with`], waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Disconnected`] (`write` is not
    /// called).
    pub fn send_timeout_with<R>(
        &self,
        timeout: Duration,
        write: impl FnOnce(&mut T) -> R,
    ) -> std::result::Result<R, SendTimeoutError<()>> {
        let mut w = Blocking::new(Some(timeout));
        self.ring()
            .send_with(Some(&mut w), write)
            .map_err(|e| match e {
                Fail::Disconnected => SendTimeoutError::Disconnected(()),
                _ => SendTimeoutError::Timeout(()),
            })
    }

    /// Receives the next message in place (blocking while empty): `read` sees it where it
    /// lies in shared memory, and the slot is released when `read` returns (also if it
    /// panics: the message counts as received).
    ///
    /// # Errors
    /// [`RecvError`] once the queue is closed and drained.
    pub fn recv_with<R>(&self, read: impl FnOnce(&T) -> R) -> std::result::Result<R, RecvError> {
        self.ring()
            .recv_with(|| Some(Blocking::new(None)), read)
            .map_err(|_| RecvError)
    }

    /// [`Queue::recv_with`] if a message is ready now.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] or [`TryRecvError::Disconnected`].
    pub fn try_recv_with<R>(
        &self,
        read: impl FnOnce(&T) -> R,
    ) -> std::result::Result<R, TryRecvError> {
        self.ring()
            .recv_with(|| None::<Blocking>, read)
            .map_err(|e| match e {
                Fail::Disconnected => TryRecvError::Disconnected,
                _ => TryRecvError::Empty,
            })
    }

    /// [`Queue::recv_with`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_timeout_with<R>(
        &self,
        timeout: Duration,
        read: impl FnOnce(&T) -> R,
    ) -> std::result::Result<R, RecvTimeoutError> {
        self.ring()
            .recv_with(|| Some(Blocking::new(Some(timeout))), read)
            .map_err(timeout_error)
    }

    // ---- batches --------------------------------------------------------------------------

    /// Sends all of `values` in order, blocking while the queue is full. Up to 64 messages
    /// are claimed with one atomic operation and published together.
    ///
    /// # Errors
    /// [`SendError`] holding how many were sent (a prefix of `values`) if the queue was closed
    /// part-way.
    ///
    /// # Examples
    /// ```
    /// let q = interproc::Queue::<u16>::create("doc-queue-batch", 64)?;
    /// assert_eq!(q.send_batch(&[1, 2, 3]), Ok(3));
    /// let mut got = Vec::new();
    /// assert_eq!(q.try_recv_batch(&mut got, 10), Ok(3));
    /// assert_eq!(got, [1, 2, 3]);
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn send_batch(&self, values: &[T]) -> std::result::Result<usize, SendError<usize>> {
        let mut w = Blocking::new(None);
        let mut sent = 0;
        while sent < values.len() {
            match self.ring().send_slice(&values[sent..], Some(&mut w)) {
                Ok(n) => sent += n,
                Err(_) => return Err(SendError(sent)),
            }
        }
        Ok(sent)
    }

    /// Sends as many of `values` (a prefix, in order) as fit now; returns how many (at least
    /// one, unless `values` is empty).
    ///
    /// # Errors
    /// [`TrySendError::Full`] if not even one fits; [`TrySendError::Disconnected`] once closed.
    pub fn try_send_batch(&self, values: &[T]) -> std::result::Result<usize, TrySendError<()>> {
        if values.is_empty() {
            return Ok(0);
        }
        let ring = self.ring();
        let mut sent = match ring.send_slice(values, None::<&mut Blocking>) {
            Ok(n) => n,
            Err(Fail::Disconnected) => return Err(TrySendError::Disconnected(())),
            Err(_) => return Err(TrySendError::Full(())),
        };
        while sent < values.len() {
            match ring.send_ready(&values[sent..]) {
                0 => break,
                n => sent += n,
            }
        }
        Ok(sent)
    }

    /// Sends all of `values` in order, waiting at most `timeout` in total for room.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] / [`SendTimeoutError::Disconnected`], each holding how
    /// many were sent.
    pub fn send_batch_timeout(
        &self,
        values: &[T],
        timeout: Duration,
    ) -> std::result::Result<usize, SendTimeoutError<usize>> {
        let mut w = Blocking::new(Some(timeout));
        let mut sent = 0;
        while sent < values.len() {
            match self.ring().send_slice(&values[sent..], Some(&mut w)) {
                Ok(n) => sent += n,
                Err(Fail::Disconnected) => return Err(SendTimeoutError::Disconnected(sent)),
                Err(_) => return Err(SendTimeoutError::Timeout(sent)),
            }
        }
        Ok(sent)
    }

    /// Blocks until at least one message is ready, then appends to `out` every message ready
    /// now, up to `max`; returns how many were appended.
    ///
    /// # Errors
    /// [`RecvError`] once the queue is closed and drained (nothing appended). `max == 0`
    /// returns `Ok(0)` at once.
    pub fn recv_batch(
        &self,
        out: &mut Vec<T>,
        max: usize,
    ) -> std::result::Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        let mut w = Blocking::new(None);
        self.ring()
            .recv_into(out, max, Some(&mut w))
            .map_err(|_| RecvError)
    }

    /// Appends to `out` the messages ready now, up to `max`; returns how many.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if none is ready; [`TryRecvError::Disconnected`] once closed and
    /// drained.
    pub fn try_recv_batch(
        &self,
        out: &mut Vec<T>,
        max: usize,
    ) -> std::result::Result<usize, TryRecvError> {
        if max == 0 {
            return Ok(0);
        }
        self.ring()
            .recv_into(out, max, None::<&mut Blocking>)
            .map_err(|e| match e {
                Fail::Disconnected => TryRecvError::Disconnected,
                _ => TryRecvError::Empty,
            })
    }

    /// [`Queue::recv_batch`], waiting at most `timeout` for the first message.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Disconnected`].
    pub fn recv_batch_timeout(
        &self,
        out: &mut Vec<T>,
        max: usize,
        timeout: Duration,
    ) -> std::result::Result<usize, RecvTimeoutError> {
        if max == 0 {
            return Ok(0);
        }
        let mut w = Blocking::new(Some(timeout));
        self.ring()
            .recv_into(out, max, Some(&mut w))
            .map_err(timeout_error)
    }

    // ---- state ----------------------------------------------------------------------------

    /// Closes the queue for every handle in every process: sends fail with `Disconnected`
    /// from now on, receivers drain what was sent before and then get `Disconnected`. Blocked
    /// senders and receivers wake up. Permanent.
    pub fn close(&self) {
        self.ring().close()
    }

    /// True once [`Queue::close`] was called (by anyone).
    pub fn is_closed(&self) -> bool {
        flag_of(self.ring().ctl.tail.load(Acquire))
    }

    /// Messages in the queue now (claimed by senders and not yet claimed by receivers; a
    /// snapshot that may be stale at once).
    pub fn len(&self) -> usize {
        let ctl = self.ring().ctl;
        let h = pos_of(ctl.head.load(Acquire));
        let t = pos_of(ctl.tail.load(Acquire));
        dist(h, t).min(self.cap) as usize
    }

    /// True if [`Queue::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this handle's blocked calls poll for a few microseconds before they sleep (the
    /// default, `true`) or sleep at once (`false`).
    ///
    /// Polling answers a peer that acts within microseconds in well under a microsecond instead
    /// of a futex wake-up (~3–20 µs); sleeping at once spends no CPU while waiting, which suits
    /// hosts with more busy processes than cores. Either way the fast paths are the same and a
    /// sleeper is woken by the other side.
    pub fn set_spin(&self, spin: bool) {
        self.ring().local.no_spin.store(u32::from(!spin), Relaxed);
    }

    /// How many messages the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.region.name()
    }

    /// Hands the name up: it outlives this handle (and its process).
    pub fn persist(&self) {
        self.region.persist()
    }
}

fn timeout_error(e: Fail) -> RecvTimeoutError {
    match e {
        Fail::Disconnected => RecvTimeoutError::Disconnected,
        _ => RecvTimeoutError::Timeout,
    }
}

impl<T: Pod> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::object::debug_struct(f, "Queue", &self.region)
            .field("capacity", &self.cap)
            .field("elem", &std::any::type_name::<T>())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashSet, VecDeque};
    use std::sync::Arc;
    use std::time::Instant;

    fn name(tag: &str) -> String {
        crate::test_names::unit("mpmc", tag)
    }

    #[test]
    fn encoding_round_trips() {
        for p in [0, 1, POS_MASK - 1, POS_MASK] {
            for low in [0, 1, MIN_TOKEN, LOW_MASK] {
                for flag in [false, true] {
                    let w = word(p, flag, low);
                    assert_eq!((pos_of(w), flag_of(w), low_of(w)), (p, flag, low));
                }
            }
        }
        assert_eq!(add(POS_MASK, 1), 0);
        assert_eq!(dist(POS_MASK, 1), 2);
        assert_ne!(free(3), full(3));
        assert_ne!(full(3), skipped(3));
        assert_ne!(reading(3, MIN_TOKEN), writing(3, MIN_TOKEN));
    }

    #[test]
    fn layout_is_total_and_checked() {
        let spec = |elem_size, elem_align, capacity| Spec {
            kind: Kind::Queue,
            elem_size,
            elem_align,
            capacity,
            params: [0; 4],
            body_len: 0,
        };
        assert_eq!(layout(&spec(8, 8, 2)), Some(640 + 2 * 16));
        assert_eq!(layout(&spec(0, 1, 4)), Some(640 + 4 * 8));
        assert_eq!(layout(&spec(3, 1, 4)), Some(640 + 4 * 16));
        assert_eq!(layout(&spec(32, 32, 2)), Some(640 + 2 * 64));
        for bad in [
            spec(8, 8, 0),
            spec(8, 8, 1),
            spec(8, 8, 3),
            spec(8, 8, MAX_CAPACITY * 2),
            spec(8, 3, 4),
            spec(8, 256, 4),
            spec(12, 8, 4),
            spec(8, 0, 4),
        ] {
            assert_eq!(layout(&bad), None, "{bad:?}");
        }
        // Hostile headers: never overflow or panic.
        for size in [0, 1, u32::MAX - 7, u32::MAX] {
            for align in [0, 1, 8, 128, 1 << 31, u32::MAX] {
                for cap in [0, 2, MAX_CAPACITY, u64::MAX, 1 << 63] {
                    let _ = layout(&spec(size, align, cap));
                }
            }
        }
    }

    #[test]
    fn capacity_rounds_up_and_zero_is_refused() {
        assert!(matches!(
            Queue::<u64>::create(&name("zero"), 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Queue::<u64>::create(&name("huge"), usize::MAX),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(Queue::<u64>::create(&name("one"), 1).unwrap().capacity(), 2);
        assert_eq!(
            Queue::<u64>::create(&name("three"), 3).unwrap().capacity(),
            4
        );
        assert_eq!(
            Queue::<u8>::create(&name("eight"), 8).unwrap().capacity(),
            8
        );
    }

    #[test]
    fn fifo_full_empty_and_len() {
        let q = Queue::<u32>::create(&name("fifo"), 4).unwrap();
        assert!(q.is_empty());
        assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
        for i in 0..4 {
            q.try_send(i).unwrap();
        }
        assert_eq!(q.len(), 4);
        assert_eq!(q.try_send(9), Err(TrySendError::Full(9)));
        assert_eq!(
            q.send_timeout(9, Duration::from_millis(20)),
            Err(SendTimeoutError::Timeout(9))
        );
        for round in 0..10u32 {
            assert_eq!(q.recv(), Ok(round));
            q.send(round + 4).unwrap();
        }
        assert_eq!(q.len(), 4);
        let other = Queue::<u32>::open(q.name()).unwrap();
        assert_eq!(other.capacity(), 4);
        assert_eq!(other.try_recv(), Ok(10));
        let dbg = format!("{q:?}");
        assert!(dbg.contains("queue") && dbg.contains(q.name()), "{dbg}");
    }

    #[test]
    fn close_drains_then_disconnects() {
        let q = Queue::<u64>::create(&name("close"), 8).unwrap();
        q.send(1).unwrap();
        q.send(2).unwrap();
        assert!(!q.is_closed());
        q.close();
        assert!(q.is_closed());
        assert_eq!(q.send(3), Err(SendError(3)));
        assert_eq!(q.try_send(3), Err(TrySendError::Disconnected(3)));
        assert_eq!(
            q.try_send_with(|v| *v = 3),
            Err(TrySendError::Disconnected(()))
        );
        assert_eq!(q.recv(), Ok(1));
        assert_eq!(q.recv_timeout(Duration::from_secs(1)), Ok(2));
        assert_eq!(q.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(q.recv(), Err(RecvError));
        assert_eq!(
            q.recv_timeout(Duration::from_secs(1)),
            Err(RecvTimeoutError::Disconnected)
        );
        assert_eq!(q.recv_batch(&mut Vec::new(), 4), Err(RecvError));
    }

    #[test]
    fn zero_copy_and_panicking_closures() {
        let q = Queue::<[u64; 3]>::create(&name("zc"), 4).unwrap();
        assert_eq!(
            q.send_with(|s| {
                *s = [1, 2, 3];
                7
            }),
            Ok(7)
        );
        // A writer that panics publishes nothing: receivers step over its slot.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.send_with(|s| {
                s[0] = 99;
                panic!("writer gives up");
            })
        }));
        assert!(r.is_err());
        q.send([4, 5, 6]).unwrap();
        assert_eq!(q.recv_with(|m| m.iter().sum::<u64>()), Ok(6));
        // A reader that panics consumes the message.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            q.recv_with(|_| panic!("reader gives up"))
        }));
        assert!(r.is_err());
        assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn batches() {
        let q = Queue::<u32>::create(&name("batch"), 128).unwrap();
        let values: Vec<u32> = (0..300).collect();
        // More than fits: the try variant sends a prefix.
        assert_eq!(q.try_send_batch(&values), Ok(128));
        assert_eq!(q.try_send_batch(&values), Err(TrySendError::Full(())));
        let mut out = Vec::new();
        assert_eq!(q.try_recv_batch(&mut out, 100), Ok(100));
        assert_eq!(q.recv_batch(&mut out, 1000), Ok(28));
        assert_eq!(out, values[..128]);
        assert_eq!(
            q.recv_batch_timeout(&mut out, 5, Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        );
        // The blocking variant sends everything once a receiver makes room.
        let q = Arc::new(q);
        let rx = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 300 {
                    q.recv_batch(&mut got, 50).unwrap();
                }
                got
            })
        };
        assert_eq!(q.send_batch(&values), Ok(300));
        assert_eq!(rx.join().unwrap(), values);
        q.close();
        assert_eq!(q.send_batch(&values), Err(SendError(0)));
        assert_eq!(
            q.send_batch_timeout(&values, Duration::from_millis(1)),
            Err(SendTimeoutError::Disconnected(0))
        );
    }

    #[test]
    fn threads_exactly_once() {
        const N: u64 = 20_000;
        let q = Arc::new(Queue::<u64>::create(&name("threads"), 4).unwrap());
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        q.send(p << 32 | i).unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut last = [None::<u64>; 2];
                    while let Ok(v) = q.recv() {
                        let p = (v >> 32) as usize;
                        assert!(last[p].is_none_or(|l| l < v), "per-producer order");
                        last[p] = Some(v);
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.close();
        let mut all = HashSet::new();
        for c in consumers {
            for v in c.join().unwrap() {
                assert!(all.insert(v), "duplicate {v:#x}");
            }
        }
        assert_eq!(all.len() as u64, 2 * N);
    }

    #[test]
    fn inspect_reports_depth() {
        let q = Queue::<u8>::create(&name("inspect"), 4).unwrap();
        q.send(1).unwrap();
        q.send(2).unwrap();
        let fields = inspect(&q.region);
        assert!(fields.contains(&("depth", "2".to_string())), "{fields:?}");
        assert!(
            fields.contains(&("closed", "false".to_string())),
            "{fields:?}"
        );
    }

    #[test]
    fn other_element_layouts_are_incompatible() {
        let q = Queue::<u64>::create(&name("incompat"), 4).unwrap();
        assert!(matches!(
            Queue::<u32>::open(q.name()),
            Err(Error::Incompatible { .. })
        ));
        assert!(matches!(
            crate::Value::<u64>::open(q.name()),
            Err(Error::Incompatible { .. })
        ));
        assert!(
            Queue::<i64>::open(q.name()).is_ok(),
            "same size and alignment"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send(u32),
        SendWith(u32),
        SendBatch(Vec<u32>),
        Recv,
        RecvWith,
        RecvBatch(usize),
        Close,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u32>().prop_map(Op::Send),
            2 => any::<u32>().prop_map(Op::SendWith),
            2 => proptest::collection::vec(any::<u32>(), 0..20).prop_map(Op::SendBatch),
            6 => Just(Op::Recv),
            2 => Just(Op::RecvWith),
            2 => (0usize..20).prop_map(Op::RecvBatch),
            1 => Just(Op::Close),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Random single-process operation sequences behave exactly like a bounded VecDeque.
        #[test]
        fn matches_a_vecdeque_model(capacity in 1usize..9, ops in proptest::collection::vec(op(), 1..150)) {
            let q = Queue::<u32>::create(&name("model"), capacity).unwrap();
            let cap = q.capacity();
            prop_assert_eq!(cap, capacity.max(2).next_power_of_two());
            let mut model = VecDeque::new();
            let mut closed = false;
            for op in ops {
                match op {
                    Op::Send(v) | Op::SendWith(v) => {
                        let r = if matches!(op, Op::Send(_)) {
                            q.try_send(v).map_err(|e| e.is_disconnected())
                        } else {
                            q.try_send_with(|s| *s = v).map_err(|e| e.is_disconnected())
                        };
                        if closed {
                            prop_assert_eq!(r, Err(true));
                        } else if model.len() == cap {
                            prop_assert_eq!(r, Err(false));
                        } else {
                            prop_assert_eq!(r, Ok(()));
                            model.push_back(v);
                        }
                    }
                    Op::SendBatch(vs) => {
                        let r = q.try_send_batch(&vs);
                        if vs.is_empty() {
                            prop_assert_eq!(r, Ok(0));
                        } else if closed {
                            prop_assert_eq!(r, Err(TrySendError::Disconnected(())));
                        } else if model.len() == cap {
                            prop_assert_eq!(r, Err(TrySendError::Full(())));
                        } else {
                            let n = vs.len().min(cap - model.len());
                            prop_assert_eq!(r, Ok(n));
                            model.extend(&vs[..n]);
                        }
                    }
                    Op::Recv | Op::RecvWith => {
                        let r = if matches!(op, Op::Recv) {
                            q.try_recv()
                        } else {
                            q.try_recv_with(|v| *v)
                        };
                        match model.pop_front() {
                            Some(v) => prop_assert_eq!(r, Ok(v)),
                            None if closed => prop_assert_eq!(r, Err(TryRecvError::Disconnected)),
                            None => prop_assert_eq!(r, Err(TryRecvError::Empty)),
                        }
                    }
                    Op::RecvBatch(max) => {
                        let mut out = Vec::new();
                        let r = q.try_recv_batch(&mut out, max);
                        if max == 0 {
                            prop_assert_eq!(r, Ok(0));
                        } else if model.is_empty() {
                            let e = if closed { TryRecvError::Disconnected } else { TryRecvError::Empty };
                            prop_assert_eq!(r, Err(e));
                        } else {
                            let n = max.min(model.len());
                            prop_assert_eq!(r, Ok(n));
                            let expected: Vec<u32> = model.drain(..n).collect();
                            prop_assert_eq!(out, expected);
                        }
                    }
                    Op::Close => {
                        q.close();
                        closed = true;
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.is_closed(), closed);
            }
        }

        /// Whatever a scribbling peer writes into the control words and stamps, every
        /// non-blocking and timed operation returns promptly, without panicking.
        #[test]
        fn scribbled_state_never_hangs_or_panics(
            writes in proptest::collection::vec((0usize..8, any::<u64>(), 0u8..4), 1..6),
            sends in 0usize..6,
        ) {
            let q = Queue::<u64>::create(&name("scribble"), 4).unwrap();
            for i in 0..sends as u64 {
                let _ = q.try_send(i);
            }
            let ring = q.ring();
            let t = pos_of(ring.ctl.tail.load(Relaxed));
            for (target, raw, shape) in writes {
                // Half random bits, half near-miss words (plausible positions, odd codes).
                let v = match shape {
                    0 | 1 => raw,
                    2 => word(add(t, raw % 9), raw & 1 == 0, raw >> 40),
                    _ => word(add(t, POS_MASK - (raw % 5)), raw & 2 == 0, raw % 200),
                };
                match target {
                    0 => ring.ctl.tail.store(v, Relaxed),
                    1 => ring.ctl.head.store(v, Relaxed),
                    2 => ring.ctl.recv_parked[(raw & 1) as usize].store(v, Relaxed),
                    3 => ring.ctl.send_parked[(raw & 1) as usize].store(v, Relaxed),
                    i => q.slots.stamp(i as u64 - 4).store(v, Relaxed),
                }
            }
            let start = Instant::now();
            let short = Duration::from_millis(5);
            let _ = q.try_send(1);
            let _ = q.try_recv();
            let _ = q.try_send_batch(&[1, 2, 3]);
            let _ = q.try_recv_batch(&mut Vec::new(), 8);
            let _ = q.send_timeout(2, short);
            let _ = q.recv_timeout(short);
            let _ = q.try_recv_with(|v| *v);
            let _ = q.len();
            let _ = inspect(&q.region);
            prop_assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Models of the protocol core on heap memory: claims, records, close, parking, and dead
    //! claimers (a thread that claims and returns without finishing, reported dead by the
    //! liveness oracle).
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct HeapSlots {
        stamps: Vec<AtomicU64>,
        values: Vec<UnsafeCell<u64>>,
        mask: u64,
    }

    impl Slots<u64> for HeapSlots {
        fn stamp(&self, pos: u64) -> &AtomicU64 {
            &self.stamps[(pos & self.mask) as usize]
        }
        unsafe fn with_mut<R>(&self, pos: u64, f: impl FnOnce(*mut u64) -> R) -> R {
            self.values[(pos & self.mask) as usize].with_mut(f)
        }
        unsafe fn with<R>(&self, pos: u64, f: impl FnOnce(*const u64) -> R) -> R {
            self.values[(pos & self.mask) as usize].with(f)
        }
    }

    /// Every participant is alive except `dead`.
    struct Oracle {
        dead: u64,
    }

    impl Peers for Oracle {
        fn is_alive(&self, token: u32) -> bool {
            token as u64 != self.dead
        }
        fn slot_attached(&self, _slot: u32) -> bool {
            true
        }
    }

    struct Model {
        ctl: Control,
        slots: HeapSlots,
        peers: Oracle,
        cap: u64,
    }

    fn model(cap: u64, dead: u64) -> Arc<Model> {
        Arc::new(Model {
            ctl: Control::new(),
            slots: HeapSlots {
                stamps: (0..cap).map(|i| AtomicU64::new(free(i))).collect(),
                values: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
                mask: cap - 1,
            },
            peers: Oracle { dead },
            cap,
        })
    }

    /// The token of participant slot `i`.
    fn token(i: u64) -> u64 {
        MIN_TOKEN | i
    }

    fn ring<'a>(m: &'a Model, local: &'a Local, me: u64) -> Ring<'a, u64, HeapSlots, Oracle> {
        Ring {
            ctl: &m.ctl,
            slots: &m.slots,
            peers: &m.peers,
            local,
            cap: m.cap,
            me,
            _t: PhantomData,
        }
    }

    /// Parks without a bound only where the protocol promises a wake-up; a lost wake-up is
    /// then a deadlock loom reports.
    struct ModelBlocker;

    impl Blocker for ModelBlocker {
        fn spin(&mut self) -> bool {
            false
        }
        fn park(&mut self, word: &AtomicU32, expected: u32, guaranteed: bool) -> Park {
            if guaranteed {
                futex::wait(word, expected, None);
            } else {
                thread::yield_now();
            }
            Park::Woken
        }
    }

    /// Never parks without a bound: for a waiter whose only peer may die (then no wake-up
    /// comes; real waiters sleep in slices).
    struct SpinBlocker;

    impl Blocker for SpinBlocker {
        fn spin(&mut self) -> bool {
            false
        }
        fn park(&mut self, _word: &AtomicU32, _expected: u32, _guaranteed: bool) -> Park {
            thread::yield_now();
            Park::Woken
        }
    }

    fn no_blocker() -> Option<ModelBlocker> {
        None
    }

    /// Runs a model; blocking calls park (no path growth), try loops yield.
    fn check(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.max_branches = b.max_branches.max(10_000);
        b.check(f);
    }

    type R<'a> = Ring<'a, u64, HeapSlots, Oracle>;

    fn send(r: &R<'_>, v: u64) -> std::result::Result<(), Fail> {
        r.send_one(&v, || Some(ModelBlocker))
    }

    fn recv(r: &R<'_>) -> std::result::Result<u64, Fail> {
        r.recv_with(|| Some(ModelBlocker), |v| *v)
    }

    fn try_send(r: &R<'_>, v: u64) -> std::result::Result<(), Fail> {
        r.send_one(&v, no_blocker)
    }

    fn try_recv(r: &R<'_>) -> std::result::Result<u64, Fail> {
        r.recv_with(no_blocker, |v| *v)
    }

    #[test]
    fn two_producers_one_consumer_exactly_once() {
        check(|| {
            let m = model(2, 0);
            let producers: Vec<_> = [(1u64, vec![1u64, 2]), (2, vec![3])]
                .into_iter()
                .map(|(slot, values)| {
                    let m = m.clone();
                    thread::spawn(move || {
                        let local = Local::new();
                        let r = ring(&m, &local, token(slot));
                        for v in values {
                            send(&r, v).unwrap();
                        }
                    })
                })
                .collect();
            let local = Local::new();
            let r = ring(&m, &local, token(3));
            let got: Vec<u64> = (0..3).map(|_| recv(&r).unwrap()).collect();
            for p in producers {
                p.join().unwrap();
            }
            let first = got.iter().position(|v| *v == 1).unwrap();
            let second = got.iter().position(|v| *v == 2).unwrap();
            assert!(first < second, "FIFO per producer: {got:?}");
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(sorted, [1, 2, 3], "exactly once: {got:?}");
        });
    }

    #[test]
    fn close_then_drain() {
        check(|| {
            let m = model(2, 0);
            let rx = {
                let m = m.clone();
                thread::spawn(move || {
                    let local = Local::new();
                    let r = ring(&m, &local, token(1));
                    let mut got = Vec::new();
                    while let Ok(v) = recv(&r) {
                        got.push(v);
                    }
                    got
                })
            };
            let local = Local::new();
            let r = ring(&m, &local, token(2));
            send(&r, 1).unwrap();
            send(&r, 2).unwrap();
            r.close();
            assert_eq!(try_send(&r, 3), Err(Fail::Disconnected));
            assert_eq!(
                rx.join().unwrap(),
                [1, 2],
                "drained in order before Disconnected"
            );
        });
    }

    /// Two consumers race for two published messages while the producer wraps around into
    /// the slots they release (head CAS races, `reading` records, release on wrap).
    /// (Two threads that both spin-wait on one in-flight publish exceed what loom can
    /// schedule; the 2x1 model above covers a consumer waiting on a publish.)
    #[test]
    fn one_producer_two_consumers_exactly_once() {
        check(|| {
            let m = model(2, 0);
            {
                let local = Local::new();
                let r = ring(&m, &local, token(3));
                try_send(&r, 1).unwrap();
                try_send(&r, 2).unwrap();
            }
            let consumers: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|slot| {
                    let m = m.clone();
                    thread::spawn(move || {
                        let local = Local::new();
                        try_recv(&ring(&m, &local, token(slot))).unwrap()
                    })
                })
                .collect();
            let local = Local::new();
            let r = ring(&m, &local, token(3));
            r.send_slice(&[3], Some(&mut SpinBlocker)).unwrap();
            let mut all: Vec<u64> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            all.sort();
            assert_eq!(all, [1, 2]);
            assert_eq!(try_recv(&r), Ok(3));
        });
    }

    #[test]
    fn parked_receiver_is_woken() {
        check(|| {
            let m = model(2, 0);
            let rx = {
                let m = m.clone();
                thread::spawn(move || {
                    let local = Local::new();
                    let r = ring(&m, &local, token(1));
                    (recv(&r).unwrap(), recv(&r).unwrap())
                })
            };
            let local = Local::new();
            let r = ring(&m, &local, token(2));
            try_send(&r, 5).unwrap();
            try_send(&r, 6).unwrap();
            assert_eq!(rx.join().unwrap(), (5, 6));
        });
    }

    #[test]
    fn parked_sender_is_woken() {
        check(|| {
            let m = model(2, 0);
            let tx = {
                let m = m.clone();
                thread::spawn(move || {
                    let local = Local::new();
                    let r = ring(&m, &local, token(1));
                    for v in 1..=3 {
                        send(&r, v).unwrap();
                    }
                })
            };
            let local = Local::new();
            let r = ring(&m, &local, token(2));
            let got: Vec<u64> = (0..3).map(|_| recv(&r).unwrap()).collect();
            tx.join().unwrap();
            assert_eq!(got, [1, 2, 3]);
        });
    }

    #[test]
    fn close_wakes_a_parked_receiver() {
        check(|| {
            let m = model(2, 0);
            let rx = {
                let m = m.clone();
                thread::spawn(move || {
                    let local = Local::new();
                    recv(&ring(&m, &local, token(1)))
                })
            };
            let local = Local::new();
            ring(&m, &local, token(2)).close();
            assert_eq!(rx.join().unwrap(), Err(Fail::Disconnected));
        });
    }

    #[test]
    fn dead_producer_is_skipped() {
        check(|| {
            let dead = token(1);
            let m = model(2, dead);
            let zombie = {
                let m = m.clone();
                thread::spawn(move || {
                    let local = Local::new();
                    // Claims a slot and "dies" before publishing it.
                    let claim = ring(&m, &local, dead).claim_send(1, false);
                    assert!(matches!(claim, Claim::Got(Claimed { n: 1, .. })));
                })
            };
            let tx = {
                let m = m.clone();
                thread::spawn(move || {
                    let local = Local::new();
                    send(&ring(&m, &local, token(2)), 7).unwrap();
                })
            };
            let local = Local::new();
            let r = ring(&m, &local, token(3));
            assert_eq!(recv(&r), Ok(7), "the dead claim is skipped, never read");
            zombie.join().unwrap();
            tx.join().unwrap();
            assert_eq!(try_recv(&r), Err(Fail::NotReady));
        });
    }

    #[test]
    fn dead_consumer_is_released() {
        check(|| {
            let dead = token(1);
            let m = model(2, dead);
            {
                let local = Local::new();
                let r = ring(&m, &local, token(2));
                try_send(&r, 1).unwrap();
                try_send(&r, 2).unwrap();
            }
            let zombie = {
                let m = m.clone();
                thread::spawn(move || {
                    let local = Local::new();
                    // Claims message 1 and "dies" before releasing its slot.
                    let claim = ring(&m, &local, dead).claim_recv(1, false);
                    assert!(matches!(claim, Claim::Got(_)));
                })
            };
            let local = Local::new();
            let r = ring(&m, &local, token(2));
            // Needs the dead consumer's slot: released on its behalf, never waits forever.
            r.send_slice(&[3], Some(&mut SpinBlocker)).unwrap();
            zombie.join().unwrap();
            assert_eq!(try_recv(&r), Ok(2));
            assert_eq!(try_recv(&r), Ok(3));
        });
    }
}
