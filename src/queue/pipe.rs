//! `Pipe` / `Connection`: a duplex channel of variable-size byte messages between two
//! processes, like `multiprocessing.Pipe`.
//!
//! # Layout (the region body)
//! ```text
//! 0      EndsCtl        state[2]: u32 per end                         one 128-byte line
//! 128    RingCtl 0      ring A -> B: tail | head | parked flags       three lines
//! 512    RingCtl 1      ring B -> A                                    three lines
//! 1024   data 0         ring A -> B, `size` bytes
//! ...    (2 KiB gap: the two data areas never sit at the same offset modulo 4 KiB, so an
//!        echo that writes one while reading the other does not suffer 4K aliasing)
//!        data 1         ring B -> A, `size` bytes
//! ```
//! `size` is `capacity_bytes` rounded up to a power of two (at least 4096); the largest message
//! is `min(capacity_bytes, size / 2 - 8)`, so `1024 <= max_message_size() <= capacity_bytes`.
//! A record therefore never needs more than half the ring: an empty direction accepts any
//! message whatever the wrap position (padding plus record always fit), and a direction holds
//! at least two messages of the largest size.
//! Each direction is a [`ring`](super::ring) of length-prefixed records (see there for the
//! record format, the wrap rule, the orderings and the parking handshake). End A (the creator)
//! produces into ring 0 and consumes ring 1; end B the reverse.
//!
//! # Ends
//! Each end is a *role lock* of the region (`try_claim_role(0 | 1)`): an OFD lock the kernel
//! drops when the holder's handle closes or its process dies. `create` takes role 0 before the
//! region is published; `open` takes role 1, or role 0 if A's holder is gone; a third `open`
//! while both are held is [`Error::Busy`]. An end left by a dead process is simply free again:
//! the next `open` takes it over and continues from the shared ring positions (validated).
//!
//! `state[end]` (written only by the end's holder) says what the peer may assume:
//!
//! | value        | meaning                                    | written                      |
//! |--------------|--------------------------------------------|------------------------------|
//! | 0 `NEVER`    | no one has attached this end yet           | (kernel zero-fill)           |
//! | 1 `ATTACHED` | a holder attached (it may have died since) | `Release`, at attach         |
//! | 2 `DETACHED` | the holder dropped its handle              | `Release`, then fence + wake |
//!
//! The peer is *gone* when its state is `DETACHED`, or any other value but `NEVER` (normally
//! `ATTACHED`) while its role lock is not held (the holder died). `NEVER` is not gone: until B
//! first opens, A's sends fill the ring and then block or time out. A scribbled state word can
//! at worst make a call wait for its timeout (or report a live peer gone); it cannot make it
//! misbehave otherwise.
//!
//! # Disconnection
//! - `send` fails with [`Error::Disconnected`] once the peer is gone; nothing is sent.
//! - `recv` returns what the peer published, then [`Error::Disconnected`]. The peer's `Release`
//!   store of `DETACHED` follows all its publications, and we re-read the ring after our
//!   `Acquire` load of it, so nothing it sent is lost.
//! - A drop stores `DETACHED`, issues a `SeqCst` fence and wakes any waiter of both rings (the
//!   waiter announced, fenced and re-checks the state: Dekker again), so a blocked peer returns
//!   at once. A death wakes no one: blocked calls check the role lock at the end of each park
//!   slice (every 20 ms), so they return within about one slice.
//! - The fast paths make no syscall and read no clock: `send` with room loads the peer's
//!   state word (a line nobody writes), so a cleanly dropped peer is seen at once, but a peer
//!   that *died* is noticed only when the direction fills up. A blocked call checks the role
//!   lock at each park slice; `try_send` on a full ring and `try_recv` on an empty one ask the
//!   kernel (`F_OFD_GETLK`, ~0.3 µs) at most once per [`LIVENESS_TICKS`] (a TSC interval of
//!   roughly 20–100 µs). Once a check found the peer gone, every later call of this handle
//!   checks again, `send` included (so it keeps reporting the death, and notices a takeover
//!   of the end).
//!
//! # Threads
//! A `Connection` is `Send + Sync`. The ring algorithm needs one producer and one consumer, so
//! each end serialises its send side and its receive side with a process-local
//! [`BiasedLock`]: the first thread to use a side takes it with plain stores and a compiler
//! fence (no locked instruction, which would stall on the cache line the peer polls); a
//! second thread ever using that side revokes the bias once (one `membarrier`, a few µs) and
//! from then on the side costs what a futex mutex costs. Blocked calls park *without*
//! holding it, so `try_recv` from another thread never waits behind a blocked `recv`. The
//! closures of [`Connection::send_with`] and [`Connection::recv_with`] run while it is held:
//! they must not call back into the same side of the same end (that would deadlock).
//!
//! # Light ends
//! An end whose process registered for `membarrier` ([`asym`]) publishes and releases with a
//! compiler fence only while its peer rarely parks, and says so in the rings' light words
//! (written before its state word says `ATTACHED`); a peer about to park reads them and
//! issues the `membarrier` itself. So a message costs no full fence on either side while
//! nobody sleeps (see [`ring`](super::ring)).
//!
//! # Waiting
//! A blocked `send`/`recv` first polls for about 5 µs ([`QUEUE_SPIN_POLLS`], yielding the CPU
//! every few polls in case the peer shares it), then announces itself and parks on the
//! ring's futex flag in 20 ms slices (see [`ring`](super::ring) for the handshake).
//!
//! # Zero-copy
//! `send_with` hands the closure `&mut [u8]` and `recv_with` hands it `&[u8]`, both pointing
//! straight into the shared ring. The protocol makes those bytes ours alone while the closure
//! runs (the consumer is not past them / the producer will not reuse them until we release),
//! so the references are sound against a well-behaved peer. A peer that ignores the protocol
//! (a bug, or a scribbling process) could still write those bytes meanwhile; bytes have no
//! invalid values, so that garbles the message and nothing else. Do not rely on the contents
//! of a received message staying stable against such a peer: copy what must be validated.
//! Payloads are 8-byte aligned.

use std::fmt;
use std::time::{Duration, Instant};

use super::ring::{block, Consumer, OnGone, Peer, Producer, Ring, RingCtl, HEADER, RING_CTL_LEN};
use crate::error::{Error, Result};
use crate::loom::atomic::{
    AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use crate::region::{self, Attach, Expect, Kind, Region, Shared, Spec};
use crate::sync::asym;
use crate::sync::biased::{BiasedGuard, BiasedLock};
use crate::sync::wait::{Waiter, QUEUE_SPIN_POLLS};
use crate::sys::cpu::ticks;

/// The smallest `capacity_bytes` (and the smallest `max_message_size()`): 1 KiB.
pub const MIN_CAPACITY: usize = 1024;
/// The largest `capacity_bytes`: 1 GiB per direction.
pub const MAX_CAPACITY: usize = 1 << 30;
/// The smallest data area of a ring (one page; a 1024-byte message takes at most half).
const MIN_RING: u64 = 4096;

/// Element size recorded in the header: the elements of a pipe are bytes.
const ELEM_SIZE: u32 = 1;

/// `state[end]`: no holder ever attached.
const NEVER: u32 = 0;
/// `state[end]`: a holder attached (and may have died since: see its role lock).
const ATTACHED: u32 = 1;
/// `state[end]`: the holder dropped its handle.
const DETACHED: u32 = 2;

/// Minimum ticks ([`ticks`]) between two liveness syscalls on the non-blocking paths.
pub(crate) const LIVENESS_TICKS: u64 = 100_000;

const ENDS_OFFSET: usize = 0;
const RING_CTL_OFFSET: [usize; 2] = [128, 128 + RING_CTL_LEN];
const DATA_OFFSET: usize = 1024;
/// Extra distance between the two data areas (see the module docs: 4K aliasing).
const DATA_SKEW: usize = 2048;

#[cfg(not(loom))]
const _: () = {
    assert!(RING_CTL_OFFSET[1] + RING_CTL_LEN <= DATA_OFFSET);
    assert!(std::mem::size_of::<EndsCtl>() == 128);
};

/// The per-end words, in shared memory.
#[repr(C)]
struct EndsCtl {
    /// `NEVER` / `ATTACHED` / `DETACHED`, written by the end's holder only.
    state: [AtomicU32; 2],
    _reserved: [AtomicU32; 2],
    _pad: [AtomicU64; 14],
}

// SAFETY: repr(C), atomics only (padding as atomics), valid for every bit pattern, align 8.
unsafe impl Shared for EndsCtl {}

/// The data area of one ring for a (validated) capacity.
fn ring_size(capacity: u64) -> u64 {
    capacity.next_power_of_two().max(MIN_RING)
}

fn max_message(capacity: u64) -> u64 {
    capacity.min(ring_size(capacity) / 2 - HEADER)
}

fn data_offset(size: u64, ring: usize) -> usize {
    DATA_OFFSET + ring * (size as usize + DATA_SKEW)
}

/// Body bytes a pipe of `spec.capacity` bytes per direction needs; `None` out of range.
pub(crate) fn layout(spec: &Spec) -> Option<u64> {
    if spec.elem_size != ELEM_SIZE || spec.elem_align != 1 || spec.params != [0; 4] {
        return None;
    }
    let cap = spec.capacity;
    if !(MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&cap) {
        return None;
    }
    Some(data_offset(ring_size(cap), 2) as u64 - DATA_SKEW as u64)
}

fn expect() -> Expect<'static> {
    Expect {
        kind: Kind::Pipe,
        elem_size: ELEM_SIZE,
        elem_align: 1,
        body_len: &layout,
    }
}

fn ring_of(region: &Region, size: u64, max: u64, ring: usize) -> Ring<'_> {
    let ctl = region.body::<RingCtl>(RING_CTL_OFFSET[ring]);
    let data = region.body_ptr(data_offset(size, ring));
    // SAFETY: `layout` (validated against the file by `Region`) reserves `size` bytes at
    // `data_offset(size, ring)` of the body; the body starts 128-aligned in a page-aligned
    // mapping and the offset is a multiple of 128, so `data` is 8-aligned. `size` is a power of
    // two >= 4096 and `max + HEADER <= size / 2` (`max_message`). Only this protocol touches the
    // data area: the end's role lock makes the handle the one producer / consumer of its rings
    // across processes, and the handle's local mutexes within this one.
    unsafe { Ring::new(ctl, data, size, max) }
}

/// What a shared state word says of an end, for `inspect`.
#[cfg_attr(any(not(test), loom), allow(dead_code))] // called by the CLI through `inspect`
fn end_state(region: &Region, end: u32) -> &'static str {
    let ends = region.body::<EndsCtl>(ENDS_OFFSET);
    match ends.state[end as usize].load(Relaxed) {
        NEVER => "never attached",
        ATTACHED if region.role_held_by_other(end) => "attached",
        ATTACHED => "dead (can be taken over)",
        DETACHED => "detached",
        _ => "corrupted",
    }
}

/// What `interproc inspect` shows of a pipe: bytes queued each way, the ends' states.
/// Loads only (the region may be a read-only observer mapping).
#[cfg_attr(any(not(test), loom), allow(dead_code))] // called by the CLI's `list` / `inspect`
pub(crate) fn inspect(region: &Region) -> Vec<(&'static str, String)> {
    let cap = region.spec().capacity;
    let size = ring_size(cap);
    let depth = |ring: usize| {
        region
            .body::<RingCtl>(RING_CTL_OFFSET[ring])
            .depth(size)
            .map_or_else(|| "corrupted".to_string(), |d| d.to_string())
    };
    let (a_to_b, b_to_a) = (depth(0), depth(1));
    vec![
        ("depth", format!("{a_to_b}/{b_to_a}")),
        ("bytes_a_to_b", a_to_b),
        ("bytes_b_to_a", b_to_a),
        ("ring_bytes", size.to_string()),
        ("max_message", max_message(cap).to_string()),
        ("end_a", end_state(region, 0).to_string()),
        ("end_b", end_state(region, 1).to_string()),
    ]
}

/// Creates and opens pipes: the constructors of [`Connection`]s.
///
/// ```
/// use interproc::Pipe;
/// # let name = &format!("doc-pipe-{}", std::process::id());
/// let a = Pipe::create(name, 4096)?;   // usually in one process...
/// let b = Pipe::open(name)?;           // ...and this in another
/// a.send(b"ping")?;
/// assert_eq!(b.recv()?, b"ping");
/// b.send(b"pong")?;
/// assert_eq!(a.recv()?, b"pong");
/// # Ok::<(), interproc::Error>(())
/// ```
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    fn spec(capacity_bytes: usize) -> Result<Spec> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity_bytes) {
            return Err(Error::InvalidArgument(format!(
                "pipe capacity of {capacity_bytes} bytes (must be {MIN_CAPACITY}..={MAX_CAPACITY})"
            )));
        }
        let mut spec = Spec {
            kind: Kind::Pipe,
            elem_size: ELEM_SIZE,
            elem_align: 1,
            capacity: capacity_bytes as u64,
            params: [0; 4],
            body_len: 0,
        };
        spec.body_len = layout(&spec).ok_or_else(|| {
            Error::InvalidArgument(format!("pipe capacity of {capacity_bytes} bytes"))
        })?;
        Ok(spec)
    }

    /// Creates the pipe `name` with `capacity_bytes` of buffer in each direction and returns
    /// its first end (A). The other end is taken with [`Pipe::open`].
    ///
    /// The largest message is [`Connection::max_message_size`]: at least 1024 bytes and at
    /// most `capacity_bytes`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `capacity_bytes` is below 1024 or above 1 GiB;
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::Io`].
    ///
    /// # Examples
    /// ```
    /// # let name = &format!("doc-pipe-create-{}", std::process::id());
    /// let a = interproc::Pipe::create(name, 1 << 16)?;
    /// assert!(a.max_message_size() >= 1024 && a.max_message_size() <= 1 << 16);
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn create(name: &str, capacity_bytes: usize) -> Result<Connection> {
        let spec = Self::spec(capacity_bytes)?;
        let region = Region::create(name, &spec, region::create_mode(), |r| {
            // Role 0 is ours before anyone can open the region.
            if r.try_claim_role(0)? {
                Ok(())
            } else {
                Err(Error::corrupted("a fresh pipe's first end is already held"))
            }
        })?;
        Connection::attach(region, 0)
    }

    /// Opens the existing pipe `name` and takes its free end: B, or A if A's holder dropped
    /// it or died.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Busy`] while both ends are held by live handles;
    /// [`Error::Incompatible`] if `name` is another kind of object; [`Error::Corrupted`] if its
    /// region or its ring positions do not check out.
    pub fn open(name: &str) -> Result<Connection> {
        let region = Region::open(name, &expect(), Attach::Participant)?;
        let end = if region.try_claim_role(1)? {
            1
        } else if region.try_claim_role(0)? {
            0
        } else {
            return Err(Error::Busy);
        };
        Connection::attach(region, end)
    }

    /// Opens `name` if it exists (taking its free end), else creates it (taking end A); safe
    /// when several processes race on it.
    ///
    /// # Errors
    /// As [`Pipe::open`] and [`Pipe::create`]; [`Error::Busy`] if the race has not settled
    /// within a few seconds.
    pub fn open_or_create(name: &str, capacity_bytes: usize) -> Result<Connection> {
        Self::spec(capacity_bytes)?;
        let started = Instant::now();
        loop {
            match Pipe::open(name) {
                Err(Error::NotFound) => {}
                other => return other,
            }
            match Pipe::create(name, capacity_bytes) {
                Err(Error::AlreadyExists) => {}
                other => return other,
            }
            if started.elapsed() >= region::OPEN_OR_CREATE_WAIT {
                return Err(Error::Busy);
            }
            std::thread::yield_now();
        }
    }
}

/// How long a call may wait.
#[derive(Debug, Clone, Copy)]
enum Wait {
    Try,
    Block(Option<Duration>),
}

/// One end of a [`Pipe`]: sends to and receives from the other end.
///
/// Dropping it tells the other end ([`Error::Disconnected`] there once drained) and frees the
/// end for a later [`Pipe::open`]. If this end created the pipe, dropping it also removes the
/// name (unless [`persist`](Connection::persist)ed); the other end keeps working.
pub struct Connection {
    region: Region,
    /// The control words and data area of ring `end` (we produce) and ring `1 - end` (we
    /// consume), resolved once from the validated layout (see `ring_of`).
    rings: [(std::ptr::NonNull<RingCtl>, *mut u8); 2],
    /// The ends' state words, resolved once (`Region::body` checks bounds on every call).
    ends: std::ptr::NonNull<EndsCtl>,
    /// 0 = A, 1 = B. We produce into ring `end` and consume ring `1 - end`.
    end: u32,
    size: u64,
    max: usize,
    send: BiasedLock<Producer>,
    recv: BiasedLock<Consumer>,
    /// [`ticks`] of the last liveness syscall (process-local).
    last_check: AtomicU64,
    /// The last liveness syscall found the peer gone: check again on every call until it is
    /// back (taken over), so that once noticed, a death is reported by every call.
    seen_gone: AtomicU32,
    /// 1 (default): blocked calls poll before they sleep; 0: they sleep at once.
    spin: AtomicU32,
}

/// Copies a message into its place in the ring. Up to 16 bytes inline, with two overlapping
/// word moves (a `memcpy` call for a length known only at run time costs as much as the rest
/// of a small send), longer ones with `copy_from_slice`.
#[inline(always)]
fn copy_in(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if (8..=16).contains(&n) && dst.len() == n {
        let head = u64::from_ne_bytes(src[..8].try_into().expect("8 bytes"));
        let tail = u64::from_ne_bytes(src[n - 8..].try_into().expect("8 bytes"));
        dst[..8].copy_from_slice(&head.to_ne_bytes());
        dst[n - 8..].copy_from_slice(&tail.to_ne_bytes());
    } else {
        dst.copy_from_slice(src);
    }
}

/// Takes a side's local lock. A panic in a user closure releases it (the guard's drop) and
/// leaves the ring state consistent: nothing is published or released before the closure
/// returns.
#[inline]
fn lock<T>(m: &BiasedLock<T>) -> BiasedGuard<'_, T> {
    m.lock()
}

// SAFETY: the raw pointers in `rings` point into `region`'s mapping, which moves with the
// handle and lives as long as it; everything reached through them is atomics or ring bytes
// whose access the protocol and the side locks serialise (see `ring_of`). The other fields
// are Send + Sync.
unsafe impl Send for Connection {}
// SAFETY: as above; shared use from several threads goes through the side locks.
unsafe impl Sync for Connection {}

impl Connection {
    fn attach(region: Region, end: u32) -> Result<Connection> {
        let cap = region.spec().capacity;
        let size = ring_size(cap);
        let max = max_message(cap);
        // Light words are declared before our state word says attached and before any
        // publication (see `asym`).
        let light = asym::light_mode();
        let (send, recv) = (
            ring_of(&region, size, max, end as usize),
            ring_of(&region, size, max, 1 - end as usize),
        );
        let producer = Producer::attach(&send)?.light(&send, light);
        let consumer = Consumer::attach(&recv)?.light(&recv, light);
        let rings = [
            (std::ptr::NonNull::from(send.ctl()), send.data()),
            (std::ptr::NonNull::from(recv.ctl()), recv.data()),
        ];
        let ends = std::ptr::NonNull::from(region.body::<EndsCtl>(ENDS_OFFSET));
        let conn = Connection {
            region,
            rings,
            ends,
            end,
            size,
            max: max as usize,
            send: BiasedLock::new(producer),
            recv: BiasedLock::new(consumer),
            last_check: AtomicU64::new(0),
            seen_gone: AtomicU32::new(0),
            spin: AtomicU32::new(1),
        };
        conn.ends().state[end as usize].store(ATTACHED, Release);
        Ok(conn)
    }

    #[inline]
    fn ends(&self) -> &EndsCtl {
        // SAFETY: from `Region::body` on `self.region` (bounds and alignment checked there);
        // the mapping lives as long as `self`, and `EndsCtl` is atomics only.
        unsafe { self.ends.as_ref() }
    }

    #[inline]
    fn ring(&self, which: usize) -> Ring<'_> {
        let (ctl, data) = self.rings[which];
        // SAFETY: both pointers come from `ring_of` on `self.region`, whose mapping lives as
        // long as `self`; `ring_of`'s conditions (a validated layout, `size` and `max` as
        // computed there, one producer and one consumer through this protocol) still hold.
        unsafe { Ring::new(ctl.as_ref(), data, self.size, self.max as u64) }
    }

    /// The ring we produce into.
    #[inline]
    fn send_ring(&self) -> Ring<'_> {
        self.ring(0)
    }

    /// The ring we consume.
    #[inline]
    fn recv_ring(&self) -> Ring<'_> {
        self.ring(1)
    }

    fn peer_end(&self) -> u32 {
        1 - self.end
    }

    fn waiter(&self, timeout: Option<Duration>) -> Waiter {
        if self.spin.load(Relaxed) != 0 {
            Waiter::with_spin(timeout, QUEUE_SPIN_POLLS)
        } else {
            Waiter::without_spin(timeout)
        }
    }

    /// The cheap check on every call, the liveness syscall at most once per [`LIVENESS_TICKS`].
    fn peer_gone_rate_limited(&self) -> bool {
        if self.detached() {
            return true;
        }
        let now = ticks();
        if now.wrapping_sub(self.last_check.load(Relaxed)) < LIVENESS_TICKS
            && self.seen_gone.load(Relaxed) == 0
        {
            return false;
        }
        self.gone()
    }

    fn send_inner<R>(
        &self,
        len: usize,
        wait: Wait,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<Option<R>> {
        if len > self.max {
            return Err(Error::MessageTooLarge {
                size: len,
                max: self.max,
            });
        }
        // The fast path looks only at the state word and at what this handle already knows;
        // a death not yet seen is noticed once the ring is full (a blocked send checks at
        // every slice, `try_send` at most once per liveness interval).
        if self.detached() || (self.seen_gone.load(Relaxed) != 0 && self.gone()) {
            return Err(Error::Disconnected);
        }
        let ring = self.send_ring();
        // The fast path, whatever the wait: room now (no closure, no waiter).
        {
            let mut p = lock(&self.send);
            if p.try_reserve(&ring, len)? {
                let r = p.fill(&ring, len, f);
                p.commit(&ring, len);
                return Ok(Some(r));
            }
        }
        self.send_slow(&ring, len, wait, f)
    }

    /// [`send_inner`](Self::send_inner) once the ring was full.
    #[inline(never)]
    fn send_slow<R>(
        &self,
        ring: &Ring<'_>,
        len: usize,
        wait: Wait,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<Option<R>> {
        let mut f = Some(f);
        let attempt = || -> Result<Option<R>> {
            let mut p = lock(&self.send);
            if !p.try_reserve(ring, len)? {
                return Ok(None);
            }
            let f = f.take().expect("an attempt that succeeds is the last one");
            let r = p.fill(ring, len, f);
            p.commit(ring, len);
            Ok(Some(r))
        };
        match wait {
            Wait::Try if self.peer_gone_rate_limited() => Err(Error::Disconnected),
            Wait::Try => Ok(None),
            Wait::Block(timeout) => {
                let mut waiter = self.waiter(timeout);
                // The fast path has just looked: pause before looking again (each look at an
                // empty ring pulls the line the other side is about to write).
                waiter.spin();
                block(
                    ring.ctl().writer_flag(),
                    ring.ctl().consumer_light(),
                    &mut waiter,
                    self,
                    OnGone::Fail,
                    attempt,
                )
                .map(Some)
            }
        }
    }

    fn recv_inner<R>(&self, wait: Wait, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        let ring = self.recv_ring();
        // The fast path, whatever the wait: a message is there (no closure, no waiter).
        let pause = {
            let mut c = lock(&self.recv);
            if let Some(len) = c.try_peek(&ring)? {
                let r = c.read(&ring, len, f);
                c.release(&ring, len);
                return Ok(Some(r));
            }
            // A blocking receive that polls waits a little longer while the sender streams
            // (see `Consumer::pause_when_empty`); a `try_*` call or one that sleeps at once
            // (`set_spin(false)`) never pauses.
            match wait {
                Wait::Block(_) if self.spin.load(Relaxed) != 0 => c.pause_when_empty(),
                _ => 0,
            }
        };
        self.recv_slow(&ring, wait, pause, f)
    }

    /// [`recv_inner`](Self::recv_inner) once the ring was empty.
    #[inline(never)]
    fn recv_slow<R>(
        &self,
        ring: &Ring<'_>,
        wait: Wait,
        pause: u32,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        let mut f = Some(f);
        let mut attempt = || -> Result<Option<R>> {
            let mut c = lock(&self.recv);
            let Some(len) = c.try_peek(ring)? else {
                return Ok(None);
            };
            let f = f.take().expect("an attempt that succeeds is the last one");
            let r = c.read(ring, len, f);
            c.release(ring, len);
            Ok(Some(r))
        };
        match wait {
            // Drain what a gone peer left before reporting it.
            Wait::Try if self.peer_gone_rate_limited() => {
                attempt()?.map(Some).ok_or(Error::Disconnected)
            }
            Wait::Try => Ok(None),
            Wait::Block(timeout) => {
                let mut waiter = self.waiter(timeout);
                // The fast path has just looked: pause before looking again (each look at an
                // empty ring pulls the line the other side is about to write), longer while
                // the sender streams (`pause`).
                waiter.spin();
                for _ in 0..pause {
                    crate::loom::hint::spin_loop();
                }
                block(
                    ring.ctl().reader_flag(),
                    ring.ctl().producer_light(),
                    &mut waiter,
                    self,
                    OnGone::Drain,
                    attempt,
                )
                .map(Some)
            }
        }
    }

    /// Sends `msg` to the other end, blocking while its direction is full.
    ///
    /// Before the other end ever attached, messages queue up (and `send` blocks once the ring
    /// is full).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if `msg` is longer than
    /// [`max_message_size`](Self::max_message_size) (nothing is sent);
    /// [`Error::Disconnected`] once the other end was dropped or its process died;
    /// [`Error::Corrupted`] if the shared ring positions stop checking out.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_inner(msg.len(), Wait::Block(None), |buf| copy_in(buf, msg))
            .map(drop)
    }

    /// [`send`](Self::send), giving up after `timeout` with [`Error::Timeout`] (nothing sent).
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`Error::Timeout`].
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_inner(msg.len(), Wait::Block(Some(timeout)), |buf| {
            copy_in(buf, msg)
        })
        .map(drop)
    }

    /// Sends `msg` if there is room now: `Ok(true)` if sent, `Ok(false)` if the direction is
    /// too full (nothing sent). Never blocks (beyond another local thread's send in progress).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn try_send(&self, msg: &[u8]) -> Result<bool> {
        self.send_inner(msg.len(), Wait::Try, |buf| copy_in(buf, msg))
            .map(|sent| sent.is_some())
    }

    /// Zero-copy send: reserves `len` bytes in the ring (blocking while full), lets `fill`
    /// write the message in place, then publishes it. Returns what `fill` returns.
    ///
    /// The slice points into shared memory (8-byte aligned) and holds stale bytes: `fill`
    /// should write all of it. If `fill` panics, nothing is sent. `fill` runs under this end's
    /// local send lock: it must not send on this end itself (that panics, or deadlocks once
    /// another thread has sent on this end). See the module docs for the aliasing caveat
    /// against a misbehaving peer.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// # let name = &format!("doc-pipe-send-with-{}", std::process::id());
    /// let a = interproc::Pipe::create(name, 4096)?;
    /// let b = interproc::Pipe::open(name)?;
    /// a.send_with(8, |buf| buf.copy_from_slice(&42u64.to_le_bytes()))?;
    /// let n = b.recv_with(|msg| u64::from_le_bytes(msg.try_into().unwrap()))?;
    /// assert_eq!(n, 42);
    /// # Ok::<(), interproc::Error>(())
    /// ```
    pub fn send_with<R>(&self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> Result<R> {
        self.send_inner(len, Wait::Block(None), fill)
            .map(|r| r.expect("a blocking send returns a value"))
    }

    /// [`send_with`](Self::send_with) that gives up after `timeout` ([`Error::Timeout`],
    /// `fill` not called).
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn send_with_timeout<R>(
        &self,
        len: usize,
        timeout: Duration,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        self.send_inner(len, Wait::Block(Some(timeout)), fill)
            .map(|r| r.expect("a blocking send returns a value"))
    }

    /// [`send_with`](Self::send_with) if there is room now: `Ok(None)` (and `fill` not called)
    /// if the direction is too full.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn try_send_with<R>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<Option<R>> {
        self.send_inner(len, Wait::Try, fill)
    }

    /// Receives the next message, blocking while there is none.
    ///
    /// # Errors
    /// [`Error::Disconnected`] once every message the other end sent has been received and it
    /// dropped its end or its process died; [`Error::Corrupted`] if the shared ring does not
    /// check out (a scribbling process).
    pub fn recv(&self) -> Result<Vec<u8>> {
        self.recv_inner(Wait::Block(None), <[u8]>::to_vec)
            .map(|m| m.expect("a blocking recv returns a value"))
    }

    /// [`recv`](Self::recv), giving up after `timeout` with [`Error::Timeout`].
    ///
    /// # Errors
    /// As [`recv`](Self::recv), and [`Error::Timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_inner(Wait::Block(Some(timeout)), <[u8]>::to_vec)
            .map(|m| m.expect("a blocking recv returns a value"))
    }

    /// The next message if there is one now (`Ok(None)` if not). Never blocks (beyond another
    /// local thread's receive in progress).
    ///
    /// A dead peer is noticed without a syscall on every call: the kernel is asked at most once
    /// per liveness interval (tens of microseconds), see the module docs.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Option<Vec<u8>>> {
        self.recv_inner(Wait::Try, <[u8]>::to_vec)
    }

    /// Zero-copy receive: blocks for the next message, lets `read` look at it in place, then
    /// frees its space. Returns what `read` returns.
    ///
    /// If `read` panics, the message stays queued (the next receive sees it again). `read`
    /// runs under this end's local receive lock: it must not receive on this end itself (that
    /// panics, or deadlocks once another thread has received on this end). See the module docs
    /// for the aliasing caveat against a misbehaving peer.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_with<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.recv_inner(Wait::Block(None), read)
            .map(|r| r.expect("a blocking recv returns a value"))
    }

    /// [`recv_with`](Self::recv_with) that gives up after `timeout` ([`Error::Timeout`]).
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_with_timeout<R>(
        &self,
        timeout: Duration,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.recv_inner(Wait::Block(Some(timeout)), read)
            .map(|r| r.expect("a blocking recv returns a value"))
    }

    /// [`recv_with`](Self::recv_with) if a message is there now (`Ok(None)` if not).
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_with<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.recv_inner(Wait::Try, read)
    }

    /// The largest message this pipe carries: `1024 <= max_message_size() <= capacity`.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// Whether blocked calls of this end poll for a few microseconds before they sleep (the
    /// default, `true`) or sleep at once (`false`).
    ///
    /// Polling answers a peer that replies within microseconds in a few hundred nanoseconds
    /// instead of a futex wake-up (~3–20 µs); sleeping at once spends no CPU while waiting,
    /// which suits hosts with more busy processes than cores. Either way the fast paths are
    /// the same and a sleeper is woken by the peer.
    pub fn set_spin(&self, spin: bool) {
        self.spin.store(u32::from(spin), Relaxed);
    }

    /// The `capacity_bytes` the pipe was created with (per direction). The ring itself may be
    /// larger (rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.region.spec().capacity as usize
    }

    /// True while the other end is attached (it attached, and has neither dropped its end nor
    /// died). Makes a syscall.
    pub fn is_peer_attached(&self) -> bool {
        self.ends().state[self.peer_end() as usize].load(Acquire) == ATTACHED && !self.gone()
    }

    /// The pipe's name.
    pub fn name(&self) -> &str {
        self.region.name()
    }

    /// Hands the name up: it outlives this handle (only the creating end owns the name).
    pub fn persist(&self) {
        self.region.persist()
    }
}

impl Peer for Connection {
    fn detached(&self) -> bool {
        self.ends().state[self.peer_end() as usize].load(Acquire) == DETACHED
    }

    fn gone(&self) -> bool {
        self.last_check.store(ticks(), Relaxed);
        let gone = match self.ends().state[self.peer_end() as usize].load(Acquire) {
            DETACHED => true,
            // Never attached: not gone; sends queue up and wait for it.
            NEVER => false,
            // Attached (or a scribbled word): the kernel's role lock decides.
            _ => !self.region.role_held_by_other(self.peer_end()),
        };
        self.seen_gone.store(gone as u32, Relaxed);
        gone
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.ends().state[self.end as usize].store(DETACHED, Release);
        // Fence, then wake the peer wherever it waits: as a reader of our send ring or as a
        // writer into our receive ring. It re-checks our state after waking.
        self.send_ring().ctl().wake_all();
        self.recv_ring().ctl().wake_all();
        self.region.release_role(self.end);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::object::debug_struct(f, "Connection", &self.region)
            .field("end", &if self.end == 0 { "a" } else { "b" })
            .field("capacity", &self.capacity())
            .field("max_message_size", &self.max)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn name(tag: &str) -> String {
        crate::test_names::unit("pipe", tag)
    }

    #[test]
    fn copy_in_copies_every_length_exactly() {
        for n in 0..=40usize {
            let src: Vec<u8> = (0..n as u8)
                .map(|b| b.wrapping_mul(37).wrapping_add(1))
                .collect();
            let mut dst = vec![0xAAu8; n];
            copy_in(&mut dst, &src);
            assert_eq!(dst, src, "length {n}");
        }
    }

    #[test]
    fn layout_ranges_and_sizes() {
        let spec = |cap: u64| Spec {
            kind: Kind::Pipe,
            elem_size: 1,
            elem_align: 1,
            capacity: cap,
            params: [0; 4],
            body_len: 0,
        };
        for bad in [0, 1, 1023, (1 << 30) + 1, u64::MAX] {
            assert_eq!(layout(&spec(bad)), None, "{bad}");
        }
        assert_eq!(ring_size(1024), 4096);
        assert_eq!(max_message(1024), 1024);
        assert_eq!(max_message(2048), 2040);
        assert_eq!(max_message(3000), 2040);
        assert_eq!(ring_size(3000), 4096);
        assert_eq!(ring_size(5000), 8192);
        assert_eq!(max_message(5000), 4088);
        assert_eq!(layout(&spec(4096)), Some(1024 + 4096 + 2048 + 4096));
        assert!(layout(&spec(1 << 30)).is_some());
        let mut odd = spec(4096);
        odd.params[1] = 3;
        assert_eq!(layout(&odd), None);
        assert!(matches!(
            Pipe::create(&name("small"), 1000),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Pipe::create(&name("zero"), 0),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn two_ends_one_process_and_busy_third() {
        let n = name("ends");
        let a = Pipe::create(&n, 4096).unwrap();
        assert_eq!(a.max_message_size(), 2040);
        assert!(!a.is_peer_attached());
        let b = Pipe::open(&n).unwrap();
        assert!(a.is_peer_attached() && b.is_peer_attached());
        assert!(matches!(Pipe::open(&n), Err(Error::Busy)));
        a.send(b"to b").unwrap();
        b.send(b"to a").unwrap();
        assert_eq!(b.recv().unwrap(), b"to b");
        assert_eq!(a.recv().unwrap(), b"to a");
        assert_eq!(a.try_recv().unwrap(), None);
        let dbg = format!("{a:?}");
        assert!(dbg.contains(&n) && dbg.contains("pipe"), "{dbg}");
        // What the CLI sees through a read-only observer mapping.
        let observer = Region::open(&n, &expect(), Attach::Observer).unwrap();
        let shown = inspect(&observer);
        assert_eq!(shown[0], ("depth", "0/0".to_string()));
        b.send(&[1; 100]).unwrap();
        let shown = inspect(&observer);
        assert_eq!(shown[0], ("depth", "0/112".to_string()));
        assert_eq!(shown[5], ("end_a", "attached".to_string()));
        assert_eq!(shown[6], ("end_b", "attached".to_string()));
        // B leaves: A drains, then sees Disconnected; sends fail.
        drop(b);
        assert!(matches!(a.send(b"x"), Err(Error::Disconnected)));
        assert_eq!(a.recv().unwrap(), vec![1; 100]);
        assert!(matches!(a.recv(), Err(Error::Disconnected)));
        assert!(matches!(a.try_recv(), Err(Error::Disconnected)));
        // A new B takes the free end and the pipe works again.
        let b = Pipe::open(&n).unwrap();
        a.send(b"again").unwrap();
        assert_eq!(b.recv().unwrap(), b"again");
        assert_eq!(inspect(&observer)[6].1, "attached");
        drop(b);
        assert_eq!(inspect(&observer)[6].1, "detached");
    }

    #[test]
    fn sends_before_the_peer_attaches_queue_then_time_out() {
        let n = name("early");
        let a = Pipe::create(&n, 1024).unwrap();
        let mut sent = 0;
        while a.try_send(&[9; 100]).unwrap() {
            sent += 1;
        }
        assert_eq!(sent, 4096 / 112);
        let t = Instant::now();
        assert!(matches!(
            a.send_timeout(&[9; 100], Duration::from_millis(50)),
            Err(Error::Timeout)
        ));
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(matches!(
            a.send(&[0; 1025]),
            Err(Error::MessageTooLarge {
                size: 1025,
                max: 1024
            })
        ));
        let b = Pipe::open(&n).unwrap();
        for _ in 0..sent {
            assert_eq!(b.recv().unwrap(), vec![9; 100]);
        }
        assert!(matches!(
            b.recv_timeout(Duration::from_millis(30)),
            Err(Error::Timeout)
        ));
    }

    #[test]
    fn blocked_receiver_wakes_on_detach_and_on_data() {
        let n = name("wake");
        let a = Pipe::create(&n, 4096).unwrap();
        let b = Pipe::open(&n).unwrap();
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                let first = b.recv().unwrap();
                let second = b.recv();
                (first, second)
            });
            std::thread::sleep(Duration::from_millis(50));
            a.send(b"wake up").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(a);
            let (first, second) = t.join().unwrap();
            assert_eq!(first, b"wake up");
            assert!(matches!(second, Err(Error::Disconnected)));
        });
    }

    #[test]
    fn zero_copy_and_threads_sharing_one_end() {
        let n = name("zc");
        let a = Pipe::create(&n, 1 << 14).unwrap();
        let b = Pipe::open(&n).unwrap();
        const PER: u32 = 2000;
        std::thread::scope(|s| {
            for t in 0..2u32 {
                let a = &a;
                s.spawn(move || {
                    for i in 0..PER {
                        a.send_with(8, |buf| {
                            buf[..4].copy_from_slice(&t.to_le_bytes());
                            buf[4..].copy_from_slice(&i.to_le_bytes());
                        })
                        .unwrap();
                    }
                });
            }
            let mut next = [0u32; 2];
            for _ in 0..2 * PER {
                let (t, i) = b
                    .recv_with(|m| {
                        (
                            u32::from_le_bytes(m[..4].try_into().unwrap()),
                            u32::from_le_bytes(m[4..].try_into().unwrap()),
                        )
                    })
                    .unwrap();
                assert_eq!(i, next[t as usize], "per-thread order is kept");
                next[t as usize] += 1;
            }
        });
        assert_eq!(b.try_recv_with(|m| m.len()).unwrap(), None);
        // A panicking reader leaves the message queued.
        a.send(b"keep").unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            b.recv_with(|_| panic!("reader fails")).unwrap()
        }));
        assert!(r.is_err());
        assert_eq!(b.recv().unwrap(), b"keep");
        // A panicking writer sends nothing.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.send_with(3, |_| panic!("writer fails")).unwrap()
        }));
        assert!(r.is_err());
        assert_eq!(b.try_recv().unwrap(), None);
        a.send(b"after").unwrap();
        assert_eq!(b.recv().unwrap(), b"after");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send(bool, usize),
        Recv(bool),
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random sends and receives in both directions of a real region against two deques.
        #[test]
        fn matches_a_deque_model(
            ops in prop::collection::vec(prop_oneof![
                (any::<bool>(), 0usize..=1100).prop_map(|(d, n)| Op::Send(d, n)),
                any::<bool>().prop_map(Op::Recv),
            ], 1..200),
        ) {
            let n = name("prop");
            let a = Pipe::create(&n, 1024).unwrap();
            let b = Pipe::open(&n).unwrap();
            let ends = [&a, &b];
            let mut model = [VecDeque::new(), VecDeque::new()];
            let mut seq = 0u8;
            for op in ops {
                match op {
                    Op::Send(dir, len) => {
                        seq = seq.wrapping_add(1);
                        let m: Vec<u8> = (0..len).map(|i| seq.wrapping_add(i as u8)).collect();
                        match ends[dir as usize].try_send(&m) {
                            Ok(true) => model[dir as usize].push_back(m),
                            Ok(false) => prop_assert!(!model[dir as usize].is_empty()),
                            Err(Error::MessageTooLarge { size, max }) => {
                                prop_assert!(size > max && max == 1024)
                            }
                            Err(e) => prop_assert!(false, "{e}"),
                        }
                    }
                    Op::Recv(dir) => {
                        let got = ends[1 - dir as usize].try_recv().unwrap();
                        prop_assert_eq!(got, model[dir as usize].pop_front());
                    }
                }
            }
        }
    }
}
