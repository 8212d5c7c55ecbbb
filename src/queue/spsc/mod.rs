//! `spsc::Sender<T>` / `spsc::Receiver<T>`: a bounded single-producer single-consumer ring of
//! `T: Pod` slots, the fastest object in the crate.
//!
//! Exactly one [`Sender`] and one [`Receiver`] are attached at a time, across all processes.
//! Either side may create the ring; the other opens it. An endpoint left behind by a dead
//! process is taken over by the next `open`.
//!
//! ```no_run
//! // Process A
//! let tx = interproc::spsc::Sender::<u64>::create("ticks", 1024)?;
//! for i in 0..1_000_000 {
//!     tx.send(i).expect("receiver went away");
//! }
//! # Ok::<(), interproc::Error>(())
//! ```
//! ```no_run
//! // Process B, started separately
//! let rx = interproc::spsc::Receiver::<u64>::open("ticks")?;
//! while let Ok(tick) = rx.recv() {
//!     // ... until process A drops its sender (or dies) and the ring is drained
//! #   let _ = tick;
//! }
//! # Ok::<(), interproc::Error>(())
//! ```
//!
//! Besides the copying `send`/`recv` family there are batches (`send_batch`, `recv_batch`:
//! one index publication per run of slots) and in-place access ([`Sender::write_chunk`],
//! [`Receiver::read_chunk`], after rtrb's chunk API).
//!
//! Handles are `Send` but not `Sync` (one thread uses a handle at a time; the positions are
//! private state):
//! ```
//! fn send<T: Send>() {}
//! send::<interproc::spsc::Sender<u64>>();
//! send::<interproc::spsc::Receiver<u64>>();
//! ```
//! ```compile_fail
//! fn sync<T: Sync>() {}
//! sync::<interproc::spsc::Sender<u64>>();
//! ```
//! ```compile_fail
//! fn sync<T: Sync>() {}
//! sync::<interproc::spsc::Receiver<u64>>();
//! ```
//!
//! # Layout of the body
//! ```text
//! offset        line / word          written by                          read by
//! 0             ControlLine (128 B, read-mostly: written on attach/detach and around sleeps)
//!                 sender      u32    sender endpoint, attach/detach      receiver, when empty
//!                 receiver    u32    receiver endpoint, attach/detach    sender, every send (L1 hit)
//!                 sender_light u32   sender endpoint, attach/mode switch receiver, when parking
//!                 receiver_light u32 receiver endpt, attach/mode switch  sender, when parking
//!                 consumer_parked u32  consumer: PARKED; producer: 0     producer, after each commit (L1 hit)
//!                 producer_parked u32  producer: PARKED; consumer: 0     consumer, after each release (L1 hit)
//! 128 + 256 k   ConsumerLine (128 B)
//!                 head        u64    consumer, each release (Release)    producer, when its cache says full (Acquire)
//! 256 + 256 k   ProducerLine (128 B)
//!                 tail        u64    producer, each commit (Release)     consumer, when its cache says empty (Acquire)
//! 4096          slots, cap x size_of::<T>: written by the producer before it publishes them,
//!               read by the consumer after; copied with ptr::read/write
//! ```
//! Each hot line holds its position and nothing else, and no side loads anything from its
//! own hot line: the peer keeps pulling that line into its cache to read the position, so a
//! load from it right after the store that is still waiting for the line stalls. (Measured
//! with a raw 8-byte ring between two cores of a 2-core AMD EPYC VM: a flag load beside the
//! position after each store cut the throughput by 60% on the consumer side and by up to
//! 40% on the producer side; the same loads from the read-mostly control line cost 0-15%.)
//! `k = params[1]` is in `0..15`, derived from a hash of the name at creation. It staggers the
//! two hot lines of different rings within the 4 KiB control page: two rings used by one
//! process (a ping-pong pair) whose hot lines sat at the same offset modulo 4 KiB would
//! 4K-alias in the core's store/load buffers (RESEARCH 5b). Within one ring the head and tail
//! lines are 128 bytes apart (adjacent-line prefetch pairs lines), so they never alias.
//! `capacity` is a power of two (rounded up); `params[0,2,3]` are 0.
//!
//! # Positions
//! `head` and `tail` are free-running `u64` positions (`slot = pos & (cap - 1)`); the ring
//! holds `tail - head` items, full at `cap`, empty at 0 (no slot is sacrificed). Each side
//! keeps the only authoritative copy of its own position in private memory and a *cached*
//! copy of the other's (rtrb): the producer re-reads `head` only when its cache says "full",
//! the consumer re-reads `tail` only when its cache says "empty". In steady state a side
//! writes only its own hot line (and the slots), reads the read-mostly control line and, when
//! its cache runs out, the peer's hot line, and uses no read-modify-write instruction.
//!
//! # Orderings
//! | store                               | paired load                        | what it orders |
//! |-------------------------------------|------------------------------------|----------------|
//! | producer: `tail` `Release`          | consumer: `tail` `Acquire`         | slot writes before the consumer's reads |
//! | consumer: `head` `Release`          | producer: `head` `Acquire`         | slot reads before the producer's overwrites |
//! | endpoint: attach word `Release`     | peer: attach word `Acquire`        | last publication before the "detached" verdict |
//!
//! # Parking (the lost-wake-up handshake)
//! A side that finds the ring empty (consumer) or full (producer) spins (the crate's one wait
//! loop, here with a longer poll phase first: `SPIN_POLLS` polls a `spin_loop` hint apart,
//! about 5 µs, looking only at the ring and the peer's attach word; see
//! `Waiter::with_spin`), then *announces* by storing `PARKED` into its flag in the control
//! line, issues a store->load barrier, re-checks the ring (and the peer's attach word and
//! role lock), and only then `futex_wait`s on the flag (in 20 ms slices). The peer, after
//! every publication (`tail`/`head` store), issues its own barrier and loads the flag: if
//! `PARKED`, it stores 0 and `FUTEX_WAKE`s. This is Dekker's pattern: with a full barrier between each side's store
//! and load, at least one of them sees the other's store, so either the sleeper sees the new
//! position or the publisher sees the flag. The wake syscall runs only when the flag says
//! someone sleeps (a stale flag costs one spurious wake). The flags sit in the control line,
//! which stays in both caches while nobody parks, so reading one after each publication is
//! an L1 hit (see the layout).
//!
//! Which barrier (RESEARCH 5b): a `fence(SeqCst)` costs about 5 ns here (measured: a
//! single-thread send+recv pair takes 19 ns with two fences, 9 ns without), as much as a
//! whole raw-ring message. So the barrier is asymmetric when the kernel allows it (see
//! `sync::asym`): a *light* endpoint publishes with a compiler fence only and
//! says so in its `*_light` word in the control line; a side about to park reads the peer's
//! word and, if it says light, follows its own fence with `membarrier(GLOBAL_EXPEDITED)`,
//! which runs a full barrier on every running thread of every registered process. The mode
//! adapts (`asym::Mode`): an endpoint that has just woken its peer
//! publishes heavy (fenced) for the next 256 publications, so a peer that parks on every
//! message does not pay a `membarrier` (an inter-processor interrupt when the endpoint's CPU
//! is busy, ~3 µs in a VM) each time. An endpoint declares its first mode before its attach
//! word (see `core::attach` for why that makes the switch safe). Without `membarrier`
//! registration (old kernel, seccomp) both sides stay heavy: always correct. Loom models the
//! heavy mode (it cannot model membarrier).
//!
//! # Attach words and disconnects
//! Each side has an attach word in the control line: `0` never attached, `(g << 1) | 1`
//! attachment `g` live, `g << 1` attachment `g` detached. The role lock (an OFD lock the
//! kernel drops when the holder's process dies, see `Region::try_claim_role`) is the truth;
//! the word lets a clean detach be seen without a syscall and lets a peer remember a proven
//! death.
//!
//! | step | attach (open/create)                          | detach (drop)                               |
//! |------|-----------------------------------------------|---------------------------------------------|
//! | 1    | take the role lock (else `Error::Busy`)       | store word = detached (`Release`)           |
//! | 2    | load and check both positions; clear own flag | `fence(SeqCst)`; clear peer's flag, wake it |
//! | 3    | store light word; `fence(SeqCst)`             | release the role lock                       |
//! | 4    | store word = next attachment (`Release`)      |                                             |
//!
//! The receiver reports `Disconnected` once the ring is empty *and* the sender's word says
//! detached, or says attached while the sender role lock is free (a dead process). Before any
//! sender ever attached it blocks. The sender reports `Disconnected` once the receiver's word
//! says detached, or attached with a free role lock; a receiver that never attached makes
//! `send` block when full, not fail. A new endpoint that takes over writes a new attachment
//! number, so the channel is connected again.
//!
//! Liveness syscalls (`F_OFD_GETLK`) are rate-limited: a blocked side checks before it first
//! sleeps and at each 20 ms slice (its spin phase looks at the attach word only);
//! `try_recv` on an empty ring and `try_send` on a full ring check at most once per coarse
//! clock tick (`CLOCK_MONOTONIC_COARSE`, a vDSO read; one check per millisecond at most, per
//! tick of 1–4 ms in practice), and only while the peer's word says attached. A tight
//! polling loop does not even read the clock on every poll: while the reads keep landing in
//! the same millisecond, up to 15 polls in a row answer from the last one (see `LiveGate`),
//! so a poller that slows down from spinning to sparse polling may take up to 15 more polls
//! to notice a death. The fast paths make no syscall and read no clock: `send` loads the
//! receiver's attach word (in the read-mostly line it reads anyway), so a cleanly dropped
//! receiver is seen at once, but a receiver that *died* is noticed only when the ring fills
//! (and a sender blocked on a full ring notices within one slice).
//!
//! # What a dead peer leaves, and who repairs it
//! - A producer that died mid-`send` wrote a slot but not `tail`: nothing is visible; the next
//!   sender overwrites it. A consumer that died after reading slots but before storing `head`
//!   leaves them queued: the next receiver gets them again (at-least-once across a takeover).
//! - A dead side's parked flag may still say `PARKED`: the peer clears it at its next
//!   publication (one spurious wake); the next endpoint of that side clears it on attach.
//! - Its attach word still says attached: peers find its role lock free and report
//!   `Disconnected`; the next endpoint writes a new attachment.
//!
//! # Untrusted memory
//! A position is loaded once and checked: the consumer requires `tail - head <= cap` and that
//! `tail` did not move backwards from its cache; the producer requires `head` to lie between
//! its cached head and its tail. A violation marks the handle *broken*, which is sticky: every
//! later operation reports `Disconnected` (the channel error types have no "corrupted" case),
//! `is_disconnected()` says so, and attach refuses such a ring with [`Error::Corrupted`]. No
//! index read from shared memory is used without this check; slots are copied with
//! `ptr::read`/`ptr::write` (no references), except in the chunk API, whose aliasing contract
//! is spelled out in [`WriteChunk`]/[`ReadChunk`].

mod chunk;
pub(crate) mod core;

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use bytemuck::Pod;

pub use chunk::{ReadChunk, WriteChunk};

use self::core::{
    Broken, Consumer, ConsumerLine, ControlLine, Endpoint, Liveness, Producer, ProducerLine,
    WaitError, Words,
};
use crate::error::{
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::loom::atomic::Ordering::Relaxed;
use crate::region::{self, Attach, Expect, Kind, Region, Spec};
use crate::sync::asym::light_mode;
use crate::sync::wait::Waiter;

/// The role lock of the sender endpoint.
const ROLE_SENDER: u32 = 0;
/// The role lock of the receiver endpoint.
const ROLE_RECEIVER: u32 = 1;

/// Bytes of one cache-line pair unit (128: x86_64 prefetches lines in pairs).
const LINE: usize = 128;
/// Where the slots start: after the 4 KiB control page.
const SLOTS_OFFSET: usize = 4096;
/// How many positions the hot-line pair can take in the control page.
const STAGGER_STEPS: u64 = 15;
/// The largest capacity (slots) a ring may have.
pub const MAX_CAPACITY: usize = 1 << 32;
/// The largest element alignment the slot array supports.
const MAX_ALIGN: usize = 128;
/// Liveness checks on the non-blocking paths run at most once per this many milliseconds.
const LIVENESS_INTERVAL_MS: u64 = 1;
/// The most polls a tight polling loop goes between two clock reads (see [`LiveGate`]).
const MAX_CLOCK_SKIP: u32 = 15;
/// Polls a blocking call makes before the default backoff and the futex sleep.
const SPIN_POLLS: u32 = crate::sync::wait::QUEUE_SPIN_POLLS;

/// The stagger index of a ring's hot lines: FNV-1a of the name, modulo [`STAGGER_STEPS`].
/// (The fuzzer picks names by it, so that a given input always finds the lines at the same
/// offsets.)
pub(crate) fn stagger(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h % STAGGER_STEPS
}

fn consumer_offset(k: u64) -> usize {
    LINE + 2 * LINE * k as usize
}

fn producer_offset(k: u64) -> usize {
    consumer_offset(k) + LINE
}

/// Body offsets of the consumer's `head` and the producer's `tail` words (each the first word
/// of its line) in a ring of `spec`: for the fuzzer, which starts rings at arbitrary positions.
#[cfg_attr(loom, allow(dead_code))] // used by the fuzzer (not built under loom)
pub(crate) fn position_offsets(spec: &Spec) -> (usize, usize) {
    #[cfg(not(loom))]
    const _: () = assert!(
        std::mem::offset_of!(ConsumerLine, head) == 0
            && std::mem::offset_of!(ProducerLine, tail) == 0
    );
    let k = spec.params[1];
    (consumer_offset(k), producer_offset(k))
}

/// Body bytes an spsc spec needs; `None` for anything a creator of this version would not
/// write. Never overflows or panics (it runs on hostile headers).
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    let cap = spec.capacity;
    let align = spec.elem_align as u64;
    let ok = cap.is_power_of_two()
        && cap <= MAX_CAPACITY as u64
        && align.is_power_of_two()
        && align <= MAX_ALIGN as u64
        && (spec.elem_size as u64) % align == 0
        && spec.params[0] == 0
        && spec.params[1] < STAGGER_STEPS
        && spec.params[2] == 0
        && spec.params[3] == 0;
    if !ok {
        return None;
    }
    let slots = cap.checked_mul(spec.elem_size as u64)?;
    let body = (SLOTS_OFFSET as u64).checked_add(slots)?;
    (body <= region::header::MAX_TOTAL_LEN).then_some(body)
}

/// What `interproc inspect` shows of a ring (atomic loads only; the region may be a read-only
/// observer mapping).
#[allow(dead_code)] // called by the CLI's `list` / `inspect`
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let spec = region.spec();
    let k = spec.params[1];
    let control = region.body::<ControlLine>(0);
    let consumer = region.body::<ConsumerLine>(consumer_offset(k));
    let producer = region.body::<ProducerLine>(producer_offset(k));
    let head = consumer.head.load(Relaxed);
    let tail = producer.tail.load(Relaxed);
    let depth = tail.wrapping_sub(head);
    let depth = if depth <= spec.capacity {
        depth.to_string()
    } else {
        format!("? (corrupted: head {head}, tail {tail})")
    };
    let endpoint = |word: u32, role: u32| {
        match Endpoint::decode(word) {
            Endpoint::Never => "never attached",
            Endpoint::Detached => "detached",
            Endpoint::Attached if region.role_held_by_other(role) => "attached",
            Endpoint::Attached => "dead",
        }
        .to_string()
    };
    vec![
        ("depth", depth),
        (
            "sender",
            endpoint(control.sender.load(Relaxed), ROLE_SENDER),
        ),
        (
            "receiver",
            endpoint(control.receiver.load(Relaxed), ROLE_RECEIVER),
        ),
    ]
}

fn spec_of<T: Pod>(name: &str, capacity: usize) -> Result<Spec> {
    if capacity == 0 {
        return Err(Error::InvalidArgument(
            "spsc capacity must be at least 1".into(),
        ));
    }
    if capacity > MAX_CAPACITY {
        return Err(Error::InvalidArgument(format!(
            "spsc capacity {capacity} exceeds {MAX_CAPACITY}"
        )));
    }
    if std::mem::align_of::<T>() > MAX_ALIGN {
        return Err(Error::InvalidArgument(format!(
            "element alignment {} exceeds {MAX_ALIGN}",
            std::mem::align_of::<T>()
        )));
    }
    let mut spec = Spec {
        kind: Kind::Spsc,
        elem_size: std::mem::size_of::<T>() as u32,
        elem_align: std::mem::align_of::<T>() as u32,
        capacity: capacity.next_power_of_two() as u64,
        params: [0, stagger(name), 0, 0],
        body_len: 0,
    };
    spec.body_len = layout(&spec).ok_or_else(|| {
        Error::InvalidArgument(format!("spsc ring of {capacity} elements is too large"))
    })?;
    Ok(spec)
}

fn expect_of<T: Pod>() -> Expect<'static> {
    Expect {
        kind: Kind::Spsc,
        elem_size: std::mem::size_of::<T>() as u32,
        elem_align: std::mem::align_of::<T>() as u32,
        body_len: &layout,
    }
}

/// Writes the initial body and takes `role` before the region is published, so no opener can
/// take the creator's endpoint in between.
fn init(region: &Region, role: u32) -> Result<()> {
    let k = region.spec().params[1];
    region.body::<ControlLine>(0).init();
    region.body::<ConsumerLine>(consumer_offset(k)).init();
    region.body::<ProducerLine>(producer_offset(k)).init();
    if !region.try_claim_role(role)? {
        return Err(Error::corrupted("fresh ring's endpoint lock is held"));
    }
    Ok(())
}

/// The region and typed pointers into it, shared by both handle types.
struct Chan<T> {
    region: Region,
    control: NonNull<ControlLine>,
    producer: NonNull<ProducerLine>,
    consumer: NonNull<ConsumerLine>,
    slots: *mut T,
    capacity: u64,
    /// `capacity - 1`: position to slot index.
    mask: u64,
    /// One liveness check per [`LIVENESS_INTERVAL_MS`] on the non-blocking paths.
    gate: LiveGate,
    /// Blocking calls poll before they sleep (see `set_spin`).
    spin: Cell<bool>,
}

impl<T: Pod> Chan<T> {
    /// Takes `role` (idempotent if this region's creation took it) and maps the lines.
    fn new(region: Region, role: u32) -> Result<Chan<T>> {
        if !region.try_claim_role(role)? {
            return Err(Error::Busy);
        }
        let k = region.spec().params[1];
        let capacity = region.spec().capacity;
        let control = NonNull::from(region.body::<ControlLine>(0));
        let consumer = NonNull::from(region.body::<ConsumerLine>(consumer_offset(k)));
        let producer = NonNull::from(region.body::<ProducerLine>(producer_offset(k)));
        let slots = region.body_ptr(SLOTS_OFFSET) as *mut T;
        debug_assert!(slots as usize % std::mem::align_of::<T>() == 0);
        Ok(Chan {
            region,
            control,
            producer,
            consumer,
            slots,
            capacity,
            mask: capacity - 1,
            gate: LiveGate::default(),
            spin: Cell::new(true),
        })
    }

    #[inline]
    fn words(&self) -> Words<'_> {
        // SAFETY: the pointers come from `Region::body` (in bounds, aligned, `Shared` types of
        // atomics only) and stay valid while `self.region` keeps the mapping, i.e. for the
        // lifetime of `&self`.
        unsafe {
            Words {
                control: self.control.as_ref(),
                producer: self.producer.as_ref(),
                consumer: self.consumer.as_ref(),
            }
        }
    }

    /// The two runs of slots holding positions `start .. start + len` (`len <= capacity`):
    /// pointer and length of each; the second is empty unless the run wraps.
    #[inline]
    fn split(&self, start: u64, len: usize) -> ((*mut T, usize), (*mut T, usize)) {
        debug_assert!(len as u64 <= self.capacity);
        let cap = self.capacity as usize;
        let index = (start & self.mask) as usize;
        let first = len.min(cap - index);
        // SAFETY: `index < cap` and the slot array holds `cap` elements inside the mapping
        // (validated layout), so `slots + index` is in bounds.
        let head = unsafe { self.slots.add(index) };
        ((head, first), (self.slots, len - first))
    }

    /// Copies `values` into the slots at `start ..` (which the caller owns per protocol).
    #[inline]
    fn write_run(&self, start: u64, values: &[T]) {
        let ((a, an), (b, bn)) = self.split(start, values.len());
        // SAFETY: `split` gives in-bounds runs of `an + bn == values.len()` slots, free per
        // protocol (no other party reads or writes them until we publish); `values` is a
        // separate, caller-owned slice, so the ranges do not overlap. Raw copies, no
        // references into shared memory.
        unsafe {
            std::ptr::copy_nonoverlapping(values.as_ptr(), a, an);
            std::ptr::copy_nonoverlapping(values.as_ptr().add(an), b, bn);
        }
    }

    /// Copies the slots at `start ..` into `out` (which the caller owns per protocol).
    #[inline]
    fn read_run(&self, start: u64, out: &mut [T]) {
        let ((a, an), (b, bn)) = self.split(start, out.len());
        // SAFETY: in-bounds runs of `an + bn == out.len()` slots, published to us and not
        // writable by the producer until we release them; `out` is caller-owned memory
        // outside the slot array. Any bits are a valid `T: Pod`.
        unsafe {
            std::ptr::copy_nonoverlapping(a, out.as_mut_ptr(), an);
            std::ptr::copy_nonoverlapping(b, out.as_mut_ptr().add(an), bn);
        }
    }

    #[inline]
    fn write(&self, pos: u64, value: T) {
        let index = (pos & self.mask) as usize;
        // SAFETY: `index < capacity`, in bounds of the slot array; the slot is free per
        // protocol. `ptr::write` of a `Pod` value: no reference, nothing dropped.
        unsafe { self.slots.add(index).write(value) }
    }

    #[inline]
    fn read(&self, pos: u64) -> T {
        let index = (pos & self.mask) as usize;
        // SAFETY: `index < capacity`, in bounds; the slot was published to us (Acquire on
        // `tail`). `ptr::read` copies the bits out; every bit pattern is a valid `T: Pod`.
        unsafe { self.slots.add(index).read() }
    }

    /// Liveness of the endpoint holding `role`, rate-limited unless forced.
    fn live(&self, role: u32) -> RoleLive<'_, T> {
        RoleLive { chan: self, role }
    }
}

struct RoleLive<'a, T> {
    chan: &'a Chan<T>,
    role: u32,
}

impl<T> Liveness for RoleLive<'_, T> {
    fn peer_alive(&self, force: bool) -> bool {
        if !self.chan.gate.pass(force) {
            return true;
        }
        self.chan.region.role_held_by_other(self.role)
    }
}

/// Rate limit of the liveness syscall (`F_OFD_GETLK` on the peer's role lock) on the
/// non-blocking paths: at most one per [`LIVENESS_INTERVAL_MS`], timed with the coarse clock.
///
/// A caller polling `try_recv` on an empty ring in a tight loop would otherwise read the
/// clock on every poll (~8 ns here, a quarter of an empty poll, and it delays noticing the
/// next item by as much). So while consecutive clock reads land in the same millisecond, the
/// gate answers up to [`MAX_CLOCK_SKIP`] calls from the last read (the number doubles with
/// each read that finds no tick passed and drops to 0 at the first that does). A poller that
/// polls less than once per millisecond reads the clock every time, exactly as before; one
/// that slows down from spinning to sparse polling needs at most `MAX_CLOCK_SKIP` more calls
/// before the gate looks at the clock again.
#[derive(Default)]
struct LiveGate {
    /// Coarse time of the last liveness check.
    last_check: Cell<u64>,
    /// Coarse time of the last clock read.
    last_read: Cell<u64>,
    /// Calls to answer without a clock read after the last read, and calls still left.
    skip: Cell<u32>,
    left: Cell<u32>,
}

impl LiveGate {
    /// True if a polling call may answer "no news" without reading the clock (it consumes
    /// one of the skips granted by the last clock read).
    #[inline]
    fn skip(&self) -> bool {
        let left = self.left.get();
        if left == 0 {
            return false;
        }
        self.left.set(left - 1);
        true
    }

    /// True if a liveness check should run now (always if `force`). Reads the clock.
    fn pass(&self, force: bool) -> bool {
        let now = crate::sys::futex::coarse_now_ms();
        let skip = if now == self.last_read.get() {
            (self.skip.get() * 2 + 1).min(MAX_CLOCK_SKIP)
        } else {
            0
        };
        self.last_read.set(now);
        self.skip.set(skip);
        self.left.set(skip);
        if !force && now.wrapping_sub(self.last_check.get()) < LIVENESS_INTERVAL_MS {
            return false;
        }
        self.last_check.set(now);
        true
    }
}

/// Why a non-copying reservation failed.
enum Fail {
    /// Full (sender) or empty (receiver), and not allowed to wait.
    WouldBlock,
    Timeout,
    Disconnected,
}

impl From<WaitError> for Fail {
    fn from(e: WaitError) -> Fail {
        match e {
            WaitError::Timeout => Fail::Timeout,
            WaitError::Disconnected => Fail::Disconnected,
        }
    }
}

/// A blocking call's deadline, computed on first need (the fast paths never read the clock).
struct Deadline {
    timeout: Option<Duration>,
    at: Option<Duration>,
}

impl Deadline {
    fn new(timeout: Option<Duration>) -> Deadline {
        Deadline { timeout, at: None }
    }

    /// A fresh waiter (full spin budget, see [`SPIN_POLLS`], or none if `spin` is false)
    /// with whatever is left of the deadline.
    fn waiter(&mut self, spin: bool) -> Waiter {
        let left = self.timeout.map(|timeout| {
            let now = crate::loom::futex::now();
            let at = *self.at.get_or_insert_with(|| now.saturating_add(timeout));
            at.saturating_sub(now)
        });
        if spin {
            Waiter::with_spin(left, SPIN_POLLS)
        } else {
            Waiter::without_spin(left)
        }
    }
}

/// The sending half of an spsc ring: one per ring across all processes.
///
/// `Send` but not `Sync`: one thread uses it at a time (its position is private state).
/// Dropping it disconnects the receiver (once the ring is drained) and, if this handle created
/// the ring and did not [`persist`](Sender::persist) it, unlinks the name.
///
/// See the [module docs](self) for the protocol.
pub struct Sender<T: Pod> {
    chan: Chan<T>,
    core: Producer,
    /// Our attach word (see [`Endpoint`]).
    attached: u32,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the raw pointers point into the mapping owned by `chan.region` (which is Send) and
// move with it; the private positions are plain `Cell`s that only the owning thread touches
// (the handle is not Sync). Values cross as bytes of `T: Pod + Send`.
unsafe impl<T: Pod + Send> Send for Sender<T> {}

impl<T: Pod> Sender<T> {
    fn attach(region: Region) -> Result<Sender<T>> {
        let chan = Chan::new(region, ROLE_SENDER)?;
        let w = chan.words();
        let light = light_mode();
        let core = Producer::attach(w, chan.capacity, light).map_err(Error::corrupted)?;
        let attached = core::attach(&w.control.sender, &w.control.sender_light, light);
        Ok(Sender {
            chan,
            core,
            attached,
            _not_sync: PhantomData,
        })
    }

    /// Creates the ring `name` with room for `capacity` elements (rounded up to a power of
    /// two) and attaches as its sender. This handle owns the name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a capacity of 0, above [`MAX_CAPACITY`], or an element
    /// alignment above 128; [`Error::InvalidName`]; [`Error::AlreadyExists`]; [`Error::Io`].
    ///
    /// # Examples
    /// ```
    /// use interproc::spsc::{Receiver, Sender};
    /// let tx = Sender::<u64>::create("doc-spsc-sender-create", 100)?;
    /// assert_eq!(tx.capacity(), 128);
    /// let rx = Receiver::<u64>::open("doc-spsc-sender-create")?;
    /// tx.send(7).unwrap();
    /// assert_eq!(rx.recv(), Ok(7));
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn create(name: &str, capacity: usize) -> Result<Sender<T>> {
        let spec = spec_of::<T>(name, capacity)?;
        let region = Region::create(name, &spec, region::create_mode(), |r| init(r, ROLE_SENDER))?;
        Sender::attach(region)
    }

    /// Opens the existing ring `name` as its sender, taking over from a dead one.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Busy`] while a live sender is attached;
    /// [`Error::Incompatible`] for another kind of object or element layout;
    /// [`Error::Corrupted`] if the region or the ring's positions do not check out.
    pub fn open(name: &str) -> Result<Sender<T>> {
        Sender::attach(Region::open(name, &expect_of::<T>(), Attach::Participant)?)
    }

    /// Opens `name` as its sender, creating it with `capacity` if it does not exist
    /// (race-free). An existing ring keeps its own capacity.
    ///
    /// # Errors
    /// As [`Sender::open`] and [`Sender::create`].
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Sender<T>> {
        let spec = spec_of::<T>(name, capacity)?;
        let region =
            Region::open_or_create(name, &spec, &expect_of::<T>(), region::create_mode(), |r| {
                init(r, ROLE_SENDER)
            })?;
        Sender::attach(region)
    }

    /// Free slots (at least `want` if the cache shows that many, else a fresh look), or
    /// waits for one (`Some(deadline)`).
    #[inline]
    fn reserve(&self, want: u64, wait: Option<&mut Deadline>) -> std::result::Result<u64, Fail> {
        let w = self.chan.words();
        // One load of the read-mostly control line: a dropped receiver is seen at once.
        if self.core.peer.gone_by_word(&w.control.receiver) {
            return Err(Fail::Disconnected);
        }
        match self.core.free(w, want) {
            Ok(0) => {}
            Ok(n) => return Ok(n),
            Err(Broken) => return Err(Fail::Disconnected),
        }
        self.reserve_slow(wait)
    }

    #[inline(never)]
    fn reserve_slow(&self, wait: Option<&mut Deadline>) -> std::result::Result<u64, Fail> {
        let w = self.chan.words();
        let live = self.chan.live(ROLE_RECEIVER);
        match wait {
            None if self.core.peer.gone(&w.control.receiver, &live, false) => {
                Err(Fail::Disconnected)
            }
            None => Err(Fail::WouldBlock),
            Some(deadline) => {
                Ok(self
                    .core
                    .wait(w, &mut deadline.waiter(self.chan.spin.get()), &live)?)
            }
        }
    }

    /// The fast path's test: a free slot by the cache, and a receiver that has not left (one
    /// load of the read-mostly control line, which `commit` reads anyway). Anything else goes
    /// the slow way, which looks again properly.
    #[inline(always)]
    fn has_room(&self) -> bool {
        self.core.free_cached() > 0
            && !self
                .core
                .peer
                .gone_by_word(&self.chan.words().control.receiver)
    }

    #[inline(always)]
    fn push(&self, value: T) {
        // Everything the publication needs is read before the slot store, so nothing is
        // loaded again after it (the compiler must assume the store may alias them).
        let w = self.chan.words();
        let tail = self.core.tail();
        self.chan.write(tail, value);
        self.core.commit_at(w, tail, 1);
    }

    // `send`/`try_send`/`recv`/`try_recv` are `#[inline(always)]`: left to the inliner, a
    // caller in another crate may get an out-of-line `send`, and then a value it just patched
    // a byte of goes through memory with a failed store-to-load forwarding on every call
    // (measured: an 8-byte stream one by one at 100 M msg/s out of line, 290 M inlined).
    //
    // The slow paths below never take the value: a value passed to a non-inlined function
    // must sit in memory before the fast path's test, and a caller that just patched a byte
    // of it then pays a failed store-to-load forwarding on every send (measured: 64-byte
    // messages one by one ran at half the speed).

    /// [`Sender::try_send`] once the cache says full: room after a fresh look?
    #[inline(never)]
    fn try_room(&self) -> std::result::Result<(), Fail> {
        // A full ring (after a fresh look), the receiver attached by its word, and no clock
        // read due: a polling loop's usual case (see `Receiver::quietly_empty`).
        let w = self.chan.words();
        if !self.core.peer.gone_by_word(&w.control.receiver)
            && matches!(self.core.free(w, 1), Ok(0))
            && self.chan.gate.skip()
        {
            return Err(Fail::WouldBlock);
        }
        self.reserve(1, None).map(drop)
    }

    /// [`Sender::send`] once the cache says full: waits for room.
    #[inline(never)]
    fn wait_room(&self, timeout: Option<Duration>) -> std::result::Result<(), Fail> {
        let mut deadline = Deadline::new(timeout);
        self.reserve(1, Some(&mut deadline)).map(drop)
    }

    /// Sends `value` if there is room now.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when the ring is full; [`TrySendError::Disconnected`] once a
    /// receiver had attached and then dropped or died (or the ring is corrupted). The value
    /// is handed back.
    ///
    /// # Examples
    /// ```
    /// use interproc::{spsc::Sender, TrySendError};
    /// let tx = Sender::<u32>::create("doc-spsc-try-send", 1)?;
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// # Ok::<(), interproc::Error>(())
    /// ```
    #[inline(always)]
    pub fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
        if !self.has_room() {
            match self.try_room() {
                Ok(()) => {}
                Err(Fail::Disconnected) => return Err(TrySendError::Disconnected(value)),
                Err(_) => return Err(TrySendError::Full(value)),
            }
        }
        self.push(value);
        Ok(())
    }

    /// Sends `value`, blocking while the ring is full (brief spin, then a futex sleep).
    ///
    /// # Errors
    /// [`SendError`] once a receiver had attached and then dropped or died (noticed within
    /// one 20 ms slice while blocked). The value is handed back.
    #[inline(always)]
    pub fn send(&self, value: T) -> std::result::Result<(), SendError<T>> {
        if !self.has_room() && self.wait_room(None).is_err() {
            return Err(SendError(value));
        }
        self.push(value);
        Ok(())
    }

    /// Sends `value`, blocking at most `timeout` while the ring is full.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if no slot came free in time;
    /// [`SendTimeoutError::Disconnected`] as for [`Sender::send`]. The value is handed back.
    pub fn send_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> std::result::Result<(), SendTimeoutError<T>> {
        if !self.has_room() {
            match self.wait_room(Some(timeout)) {
                Ok(()) => {}
                Err(Fail::Disconnected) => return Err(SendTimeoutError::Disconnected(value)),
                Err(_) => return Err(SendTimeoutError::Timeout(value)),
            }
        }
        self.push(value);
        Ok(())
    }

    /// Sends as many of `values` as fit now, in order, with one index publication; returns
    /// how many were sent (0 only for an empty `values`).
    ///
    /// # Errors
    /// [`TrySendError::Full`] if not even one fits; [`TrySendError::Disconnected`] as for
    /// [`Sender::try_send`]. Nothing was sent in either case.
    pub fn try_send_batch(&self, values: &[T]) -> std::result::Result<usize, TrySendError<()>> {
        if values.is_empty() {
            return Ok(0);
        }
        match self.reserve(values.len() as u64, None) {
            Ok(free) => {
                let n = values.len().min(free as usize);
                self.chan.write_run(self.core.tail(), &values[..n]);
                self.core.commit(self.chan.words(), n as u64);
                Ok(n)
            }
            Err(Fail::Disconnected) => Err(TrySendError::Disconnected(())),
            Err(_) => Err(TrySendError::Full(())),
        }
    }

    fn send_batch_until(
        &self,
        values: &[T],
        timeout: Option<Duration>,
    ) -> std::result::Result<(), (Fail, usize)> {
        let mut deadline = Deadline::new(timeout);
        let mut sent = 0;
        while sent < values.len() {
            let rest = &values[sent..];
            let free = self
                .reserve(rest.len() as u64, Some(&mut deadline))
                .map_err(|e| (e, sent))?;
            let n = rest.len().min(free as usize);
            self.chan.write_run(self.core.tail(), &rest[..n]);
            self.core.commit(self.chan.words(), n as u64);
            sent += n;
        }
        Ok(())
    }

    /// Sends all of `values` in order, blocking while the ring is full; each run of free
    /// slots is filled and published with one index store (one wake-up check).
    ///
    /// # Errors
    /// `SendError(k)`: the receiver went away after the first `k` values were sent.
    ///
    /// # Examples
    /// ```
    /// use interproc::spsc::{Receiver, Sender};
    /// let tx = Sender::<u16>::create("doc-spsc-batch", 8)?;
    /// let rx = Receiver::<u16>::open("doc-spsc-batch")?;
    /// tx.send_batch(&[1, 2, 3]).unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(rx.recv_batch(&mut buf), Ok(3));
    /// assert_eq!(&buf[..3], &[1, 2, 3]);
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn send_batch(&self, values: &[T]) -> std::result::Result<(), SendError<usize>> {
        self.send_batch_until(values, None)
            .map_err(|(_, sent)| SendError(sent))
    }

    /// Sends all of `values`, blocking at most `timeout` in total.
    ///
    /// # Errors
    /// `Timeout(k)` / `Disconnected(k)`: only the first `k` values were sent.
    pub fn send_batch_timeout(
        &self,
        values: &[T],
        timeout: Duration,
    ) -> std::result::Result<(), SendTimeoutError<usize>> {
        self.send_batch_until(values, Some(timeout))
            .map_err(|(e, sent)| match e {
                Fail::Disconnected => SendTimeoutError::Disconnected(sent),
                _ => SendTimeoutError::Timeout(sent),
            })
    }

    fn chunk(
        &mut self,
        max: usize,
        wait: Option<&mut Deadline>,
    ) -> std::result::Result<WriteChunk<'_, T>, Fail> {
        let max = max.min(self.chan.capacity as usize);
        if max == 0 {
            return Ok(WriteChunk {
                start: self.core.tail(),
                sender: self,
                len: 0,
            });
        }
        let free = self.reserve(max as u64, wait)?;
        Ok(WriteChunk {
            start: self.core.tail(),
            len: max.min(free as usize),
            sender: self,
        })
    }

    /// Up to `max` free slots to write in place, if at least one is free now; publish them
    /// with [`WriteChunk::commit`]. See [`WriteChunk`] for the aliasing contract.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if no slot is free; [`TrySendError::Disconnected`] as for
    /// [`Sender::try_send`].
    ///
    /// # Examples
    /// ```
    /// use interproc::spsc::{Receiver, Sender};
    /// let mut tx = Sender::<[u8; 64]>::create("doc-spsc-write-chunk", 4)?;
    /// let rx = Receiver::<[u8; 64]>::open("doc-spsc-write-chunk")?;
    /// let mut chunk = tx.try_write_chunk(1).unwrap();
    /// chunk.as_mut_slices().0[0] = [9; 64]; // written in place, no copy
    /// chunk.commit_all();
    /// assert_eq!(rx.recv().unwrap(), [9; 64]);
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn try_write_chunk(
        &mut self,
        max: usize,
    ) -> std::result::Result<WriteChunk<'_, T>, TrySendError<()>> {
        self.chunk(max, None).map_err(|e| match e {
            Fail::Disconnected => TrySendError::Disconnected(()),
            _ => TrySendError::Full(()),
        })
    }

    /// Up to `max` free slots to write in place, blocking until at least one is free
    /// (`max == 0` returns an empty chunk at once).
    ///
    /// # Errors
    /// [`SendError`] once the receiver is gone.
    pub fn write_chunk(
        &mut self,
        max: usize,
    ) -> std::result::Result<WriteChunk<'_, T>, SendError<()>> {
        let mut deadline = Deadline::new(None);
        self.chunk(max, Some(&mut deadline))
            .map_err(|_| SendError(()))
    }

    /// As [`Sender::write_chunk`], blocking at most `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Disconnected`].
    pub fn write_chunk_timeout(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> std::result::Result<WriteChunk<'_, T>, SendTimeoutError<()>> {
        let mut deadline = Deadline::new(Some(timeout));
        self.chunk(max, Some(&mut deadline)).map_err(|e| match e {
            Fail::Disconnected => SendTimeoutError::Disconnected(()),
            _ => SendTimeoutError::Timeout(()),
        })
    }

    /// True once a receiver had attached and then dropped or died, or the ring is corrupted.
    /// (A death is looked up at most once per millisecond.)
    pub fn is_disconnected(&self) -> bool {
        let w = self.chan.words();
        self.core.is_broken()
            || self
                .core
                .peer
                .gone(&w.control.receiver, &self.chan.live(ROLE_RECEIVER), false)
    }

    /// Items queued and not yet consumed (as the receiver last published).
    pub fn len(&self) -> usize {
        self.core.len(self.chan.words()) as usize
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the ring (the requested capacity rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.chan.capacity as usize
    }

    /// Whether a blocked `send` polls for a few microseconds before it sleeps (the default,
    /// `true`) or sleeps at once (`false`).
    ///
    /// Polling answers a receiver that replies within microseconds in a few hundred
    /// nanoseconds instead of a futex wake-up (~3–20 µs); sleeping at once spends no CPU
    /// while waiting, which suits hosts with more busy processes than cores. Either way the
    /// fast paths are the same and a sleep is woken by the receiver.
    pub fn set_spin(&self, spin: bool) {
        self.chan.spin.set(spin);
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        self.chan.region.name()
    }

    /// Hands the name up: it outlives this handle.
    pub fn persist(&self) {
        self.chan.region.persist()
    }
}

impl<T: Pod> Drop for Sender<T> {
    fn drop(&mut self) {
        let w = self.chan.words();
        core::detach(&w.control.sender, self.attached, &w.control.consumer_parked);
        self.chan.region.release_role(ROLE_SENDER);
    }
}

impl<T: Pod> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::object::debug_struct(f, "Sender", &self.chan.region)
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// The receiving half of an spsc ring: one per ring across all processes.
///
/// `Send` but not `Sync`. Dropping it disconnects the sender and, if this handle created the
/// ring and did not [`persist`](Receiver::persist) it, unlinks the name.
///
/// See the [module docs](self) for the protocol.
pub struct Receiver<T: Pod> {
    chan: Chan<T>,
    core: Consumer,
    /// Our attach word (see [`Endpoint`]).
    attached: u32,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: as for `Sender`.
unsafe impl<T: Pod + Send> Send for Receiver<T> {}

impl<T: Pod> Receiver<T> {
    fn attach(region: Region) -> Result<Receiver<T>> {
        let chan = Chan::new(region, ROLE_RECEIVER)?;
        let w = chan.words();
        let light = light_mode();
        let core = Consumer::attach(w, chan.capacity, light).map_err(Error::corrupted)?;
        let attached = core::attach(&w.control.receiver, &w.control.receiver_light, light);
        Ok(Receiver {
            chan,
            core,
            attached,
            _not_sync: PhantomData,
        })
    }

    /// Creates the ring `name` with room for `capacity` elements (rounded up to a power of
    /// two) and attaches as its receiver. This handle owns the name.
    ///
    /// # Errors
    /// As [`Sender::create`].
    ///
    /// # Examples
    /// ```
    /// use interproc::spsc::{Receiver, Sender};
    /// let rx = Receiver::<i32>::create("doc-spsc-receiver-create", 16)?;
    /// let tx = Sender::<i32>::open("doc-spsc-receiver-create")?;
    /// tx.send(-1).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Ok(-1));
    /// assert!(rx.recv().is_err(), "drained and the sender is gone");
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn create(name: &str, capacity: usize) -> Result<Receiver<T>> {
        let spec = spec_of::<T>(name, capacity)?;
        let region = Region::create(name, &spec, region::create_mode(), |r| {
            init(r, ROLE_RECEIVER)
        })?;
        Receiver::attach(region)
    }

    /// Opens the existing ring `name` as its receiver, taking over from a dead one.
    ///
    /// # Errors
    /// As [`Sender::open`].
    pub fn open(name: &str) -> Result<Receiver<T>> {
        Receiver::attach(Region::open(name, &expect_of::<T>(), Attach::Participant)?)
    }

    /// Opens `name` as its receiver, creating it with `capacity` if it does not exist
    /// (race-free). An existing ring keeps its own capacity.
    ///
    /// # Errors
    /// As [`Sender::open`] and [`Sender::create`].
    pub fn open_or_create(name: &str, capacity: usize) -> Result<Receiver<T>> {
        let spec = spec_of::<T>(name, capacity)?;
        let region =
            Region::open_or_create(name, &spec, &expect_of::<T>(), region::create_mode(), |r| {
                init(r, ROLE_RECEIVER)
            })?;
        Receiver::attach(region)
    }

    /// Items ready (at least `want` if the cache shows that many, else a fresh look), or
    /// waits for one.
    #[inline]
    fn ready(&self, want: u64, wait: Option<&mut Deadline>) -> std::result::Result<u64, Fail> {
        match self.core.available(self.chan.words(), want) {
            Ok(0) => self.ready_slow(wait),
            Ok(n) => Ok(n),
            Err(Broken) => Err(Fail::Disconnected),
        }
    }

    #[inline(never)]
    fn ready_slow(&self, wait: Option<&mut Deadline>) -> std::result::Result<u64, Fail> {
        let w = self.chan.words();
        let live = self.chan.live(ROLE_SENDER);
        match wait {
            None if self.core.sender_gone(w, &live, false) => {
                // Publications before the detach are visible now: look once more.
                match self.core.available(w, 1) {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(Fail::Disconnected),
                }
            }
            None => Err(Fail::WouldBlock),
            Some(deadline) => {
                Ok(self
                    .core
                    .wait(w, &mut deadline.waiter(self.chan.spin.get()), &live)?)
            }
        }
    }

    #[inline(always)]
    fn pop(&self) -> T {
        let w = self.chan.words();
        let head = self.core.head();
        let v = self.chan.read(head);
        self.core.release_at(w, head, 1);
        v
    }

    /// On an empty ring: true if the poll may answer `Empty` without further ado, because
    /// the sender's word says attached (or never attached) and the gate grants a poll
    /// without a clock read (see [`LiveGate`]). A polling loop's usual case: inlined, so an
    /// empty poll costs little more than its look at `tail`.
    #[inline(always)]
    fn quietly_empty(&self) -> bool {
        !self
            .core
            .peer
            .gone_by_word(&self.chan.words().control.sender)
            && self.chan.gate.skip()
    }

    /// [`Receiver::recv`] once the ring looked empty: waits for an item (the item itself is
    /// taken inline, so no `T` passes through a non-inlined function).
    #[inline(never)]
    fn wait_item(&self, timeout: Option<Duration>) -> std::result::Result<u64, Fail> {
        let mut deadline = Deadline::new(timeout);
        self.ready_slow(Some(&mut deadline))
    }

    /// Receives an item if one is queued.
    ///
    /// On an empty ring this also tells whether the sender is gone; the liveness syscall that
    /// notices a *dead* sender runs at most once per millisecond, so a polling loop stays
    /// syscall-free almost always.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`]; [`TryRecvError::Disconnected`] once the ring is empty and the
    /// sender dropped its handle or died (or the ring is corrupted).
    #[inline(always)]
    pub fn try_recv(&self) -> std::result::Result<T, TryRecvError> {
        match self.core.available(self.chan.words(), 1) {
            Ok(n) if n > 0 => Ok(self.pop()),
            // Empty (not broken: that is an `Err`).
            Ok(_) if self.quietly_empty() => Err(TryRecvError::Empty),
            _ => match self.ready_slow(None) {
                Ok(_) => Ok(self.pop()),
                Err(Fail::Disconnected) => Err(TryRecvError::Disconnected),
                Err(_) => Err(TryRecvError::Empty),
            },
        }
    }

    /// Receives an item, blocking while the ring is empty (brief spin, then a futex sleep).
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender dropped its handle (noticed at
    /// once) or its process died (noticed within one 20 ms slice). Before any sender ever
    /// attached, this blocks.
    #[inline(always)]
    pub fn recv(&self) -> std::result::Result<T, RecvError> {
        match self.core.available(self.chan.words(), 1) {
            Ok(n) if n > 0 => Ok(self.pop()),
            _ => match self.wait_item(None) {
                Ok(_) => Ok(self.pop()),
                Err(_) => Err(RecvError),
            },
        }
    }

    /// Receives an item, blocking at most `timeout` while the ring is empty.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`]; [`RecvTimeoutError::Disconnected`] as for
    /// [`Receiver::recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> std::result::Result<T, RecvTimeoutError> {
        match self.core.available(self.chan.words(), 1) {
            Ok(n) if n > 0 => Ok(self.pop()),
            _ => match self.wait_item(Some(timeout)) {
                Ok(_) => Ok(self.pop()),
                Err(Fail::Disconnected) => Err(RecvTimeoutError::Disconnected),
                Err(_) => Err(RecvTimeoutError::Timeout),
            },
        }
    }

    fn take_into(&self, out: &mut [T], ready: u64) -> usize {
        let n = out.len().min(ready as usize);
        self.chan.read_run(self.core.head(), &mut out[..n]);
        self.core.release(self.chan.words(), n as u64);
        n
    }

    /// Receives as many queued items as fit in `out` (one index publication); returns how
    /// many (0 only for an empty `out`).
    ///
    /// # Errors
    /// As [`Receiver::try_recv`].
    pub fn try_recv_batch(&self, out: &mut [T]) -> std::result::Result<usize, TryRecvError> {
        if out.is_empty() {
            return Ok(0);
        }
        match self.ready(out.len() as u64, None) {
            Ok(ready) => Ok(self.take_into(out, ready)),
            Err(Fail::Disconnected) => Err(TryRecvError::Disconnected),
            Err(_) => Err(TryRecvError::Empty),
        }
    }

    /// Blocks until at least one item is queued, then receives as many as fit in `out` (one
    /// index publication); returns how many (0 only for an empty `out`).
    ///
    /// # Errors
    /// As [`Receiver::recv`].
    pub fn recv_batch(&self, out: &mut [T]) -> std::result::Result<usize, RecvError> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut deadline = Deadline::new(None);
        match self.ready(out.len() as u64, Some(&mut deadline)) {
            Ok(ready) => Ok(self.take_into(out, ready)),
            Err(_) => Err(RecvError),
        }
    }

    /// As [`Receiver::recv_batch`], blocking at most `timeout`.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`].
    pub fn recv_batch_timeout(
        &self,
        out: &mut [T],
        timeout: Duration,
    ) -> std::result::Result<usize, RecvTimeoutError> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut deadline = Deadline::new(Some(timeout));
        match self.ready(out.len() as u64, Some(&mut deadline)) {
            Ok(ready) => Ok(self.take_into(out, ready)),
            Err(Fail::Disconnected) => Err(RecvTimeoutError::Disconnected),
            Err(_) => Err(RecvTimeoutError::Timeout),
        }
    }

    fn chunk(
        &mut self,
        max: usize,
        wait: Option<&mut Deadline>,
    ) -> std::result::Result<ReadChunk<'_, T>, Fail> {
        let max = max.min(self.chan.capacity as usize);
        if max == 0 {
            return Ok(ReadChunk {
                start: self.core.head(),
                receiver: self,
                len: 0,
            });
        }
        let ready = self.ready(max as u64, wait)?;
        Ok(ReadChunk {
            start: self.core.head(),
            len: max.min(ready as usize),
            receiver: self,
        })
    }

    /// Up to `max` queued items to read in place, if at least one is queued; consume them with
    /// [`ReadChunk::commit`]. See [`ReadChunk`] for the aliasing contract.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`].
    ///
    /// # Examples
    /// ```
    /// use interproc::spsc::{Receiver, Sender};
    /// let tx = Sender::<u64>::create("doc-spsc-read-chunk", 4)?;
    /// let mut rx = Receiver::<u64>::open("doc-spsc-read-chunk")?;
    /// tx.send_batch(&[1, 2, 3]).unwrap();
    /// let chunk = rx.try_read_chunk(8).unwrap();
    /// let (a, b) = chunk.as_slices();
    /// assert_eq!(a.iter().chain(b).sum::<u64>(), 6); // read in place, no copy
    /// chunk.commit_all();
    /// assert!(rx.try_recv().is_err());
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn try_read_chunk(
        &mut self,
        max: usize,
    ) -> std::result::Result<ReadChunk<'_, T>, TryRecvError> {
        self.chunk(max, None).map_err(|e| match e {
            Fail::Disconnected => TryRecvError::Disconnected,
            _ => TryRecvError::Empty,
        })
    }

    /// Up to `max` queued items to read in place, blocking until at least one is queued
    /// (`max == 0` returns an empty chunk at once).
    ///
    /// # Errors
    /// As [`Receiver::recv`].
    pub fn read_chunk(&mut self, max: usize) -> std::result::Result<ReadChunk<'_, T>, RecvError> {
        let mut deadline = Deadline::new(None);
        self.chunk(max, Some(&mut deadline)).map_err(|_| RecvError)
    }

    /// As [`Receiver::read_chunk`], blocking at most `timeout`.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`].
    pub fn read_chunk_timeout(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> std::result::Result<ReadChunk<'_, T>, RecvTimeoutError> {
        let mut deadline = Deadline::new(Some(timeout));
        self.chunk(max, Some(&mut deadline)).map_err(|e| match e {
            Fail::Disconnected => RecvTimeoutError::Disconnected,
            _ => RecvTimeoutError::Timeout,
        })
    }

    /// True once the sender dropped its handle or died (or the ring is corrupted), whether or
    /// not items are still queued. (A death is looked up at most once per millisecond.)
    pub fn is_disconnected(&self) -> bool {
        self.core
            .sender_gone(self.chan.words(), &self.chan.live(ROLE_SENDER), false)
    }

    /// Items queued (as the sender last published).
    pub fn len(&self) -> usize {
        self.core.len(self.chan.words()) as usize
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the ring (the requested capacity rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.chan.capacity as usize
    }

    /// Whether a blocked `recv` polls for a few microseconds before it sleeps (the default,
    /// `true`) or sleeps at once (`false`).
    ///
    /// Polling answers a sender that replies within microseconds in a few hundred
    /// nanoseconds instead of a futex wake-up (~3–20 µs); sleeping at once spends no CPU
    /// while waiting, which suits hosts with more busy processes than cores. Either way the
    /// fast paths are the same and a sleep is woken by the sender.
    pub fn set_spin(&self, spin: bool) {
        self.chan.spin.set(spin);
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        self.chan.region.name()
    }

    /// Hands the name up: it outlives this handle.
    pub fn persist(&self) {
        self.chan.region.persist()
    }
}

impl<T: Pod> Drop for Receiver<T> {
    fn drop(&mut self) {
        let w = self.chan.words();
        core::detach(
            &w.control.receiver,
            self.attached,
            &w.control.producer_parked,
        );
        self.chan.region.release_role(ROLE_RECEIVER);
    }
}

impl<T: Pod> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::object::debug_struct(f, "Receiver", &self.chan.region)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
