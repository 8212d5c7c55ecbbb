//! A byte ring of length-prefixed records: one producer, one consumer, variable-size messages,
//! every payload contiguous (so it can be written and read in place).
//!
//! This is the algorithm under [`Pipe`](crate::Pipe) (one ring per direction). It is written
//! against a [`RingCtl`] of facade atomics plus a raw data pointer, so it runs unchanged on a
//! region (production) and on heap memory (unit tests, proptest, loom).
//!
//! # Shared words (one [`RingCtl`] per ring, each group on its own 128-byte line)
//!
//! | word            | written by                        | read by             |
//! |-----------------|-----------------------------------|---------------------|
//! | `tail: u64`     | producer (`Release`)              | consumer (`Acquire`) |
//! | `head: u64`     | consumer (`Release`)              | producer (`Acquire`) |
//! | `reader_parked` | consumer sets 1, producer clears  | both                |
//! | `writer_parked` | producer sets 1, consumer clears  | both                |
//! | `producer_light`| producer (attach, mode switch)    | parking consumer    |
//! | `consumer_light`| consumer (attach, mode switch)    | parking producer    |
//!
//! `tail` and `head` are byte positions that only grow (`u64`, wrapping arithmetic); the byte at
//! position `p` lives at `data[p & (size - 1)]`, `size` a power of two. The ring holds
//! `tail - head <= size` bytes. Each side keeps a private copy of the other's index
//! (`cached_head` in the producer, `cached_tail` in the consumer), which may be stale, and
//! re-reads the shared one only when the copy says "full" / "empty" (rtrb's scheme).
//!
//! # Records
//! ```text
//! | header: u64 = tag << 32 | len | payload: len bytes | zero..7 bytes to the next multiple of 8 |
//! ```
//! `tag` is [`TAG_MSG`] for a message or [`TAG_PAD`] for padding. Records start at multiples of
//! 8, so payloads are 8-byte aligned. A record never wraps: when the next record does not fit
//! between the tail and the end of the data area, the producer first writes a padding record
//! covering exactly that rest (its `len` is the rest minus the header) and *publishes it on its
//! own* (a publication like any other, with the wake-up check below), then places the record at
//! index 0. A record is at most `size` bytes (payload at most `size - 8`), so once the consumer
//! has skipped the padding there is always room eventually. Padding is never written at index 0.
//!
//! # Orderings
//! - Producer: write payload and header (plain, through raw pointers), then `tail.store(Release)`.
//!   Consumer: `tail.load(Acquire)`, then read header and payload. The pair makes every byte of
//!   a published record visible before the consumer looks at it.
//! - Consumer: read the payload, then `head.store(Release)`. Producer: `head.load(Acquire)`,
//!   then overwrite. The pair keeps the producer from overwriting bytes still being read.
//!
//! # Parking (the lost-wake-up handshake)
//! A side that finds the ring empty (consumer) or full (producer) spins briefly, then
//! *announces*: it stores 1 into its flag (`reader_parked` / `writer_parked`), issues a `SeqCst`
//! fence (plus `membarrier` if the other side is light, below), and tries again; only if that
//! attempt fails does it `futex_wait(flag, 1)`. The other side, after every publication (`tail`
//! or `head` store), issues a `SeqCst` fence (a compiler fence if it is light) and loads the
//! flag; if it reads 1 it swaps it to 0 and wakes every waiter on it. This is Dekker's pattern:
//! each side stores, fences, then loads what the other stored, so at least one of them sees the
//! other (the fences are totally ordered): either the announcer's retry sees the publication,
//! or the publisher sees the flag and wakes. A wake that lands between the retry and the futex
//! wait finds the flag already 0, so `futex_wait(flag, 1)` returns at once (the kernel compares
//! the word under its own lock). A side that announced but then succeeded leaves its flag at 1:
//! the other side clears it and makes one spurious wake syscall; never clearing it ourselves
//! keeps the protocol correct when several local threads wait on the same flag.
//!
//! The barrier on the publishing (hot) side is the price of this handshake. A side may be
//! *light* ([`Producer::light`], [`Consumer::light`]): it publishes with a compiler fence only
//! while its peer rarely parks, and the parking peer, which learns so from the side's light
//! word, follows its own fence with `membarrier` (see [`asym`] for the argument and the
//! adaptive switch). Parking is done in
//! slices (see [`crate::sync::wait`]), so even a wake that a scribbling peer suppresses costs
//! at most one slice.
//!
//! # Untrusted memory
//! Everything in the ring can be scribbled on by a misbehaving peer. Each shared index and each
//! record header is loaded once into a local and checked before use: positions are multiples of
//! 8, `tail - head <= size`, a re-read index lies between the cached copy and our own index, a
//! message's length is at most `max` (validated at attach, never re-read) and its record fits
//! both in what is published and before the end of the data area, padding only ever covers
//! exactly the rest of the data area and never starts at 0, and any other tag is refused. A
//! violation is [`Error::Corrupted`]; nothing here loops without bound, indexes out of range or
//! panics on shared data. Payload bytes have no invalid values, so a peer that rewrites a
//! payload while we copy it can garble the message but not break the reader.
//!
//! # Dead peers
//! A producer that dies mid-record never published it: the consumer never sees it. A consumer
//! that dies while reading had not moved `head`: whoever takes its end over reads that message
//! again (at-least-once for the one message in flight). A flag left at 1 by a dead waiter costs
//! the other side one spurious wake. Nothing needs repair; the pipe's end handover is in
//! `pipe.rs`.
//!
//! # Exclusive sides
//! The algorithm assumes one producer and one consumer at a time. [`Producer`] and [`Consumer`]
//! hold the private state and take `&mut self`; the pipe keeps each in a process-local lock and
//! the end's role lock makes it the only one across processes.

use crate::error::{Error, Result};
use crate::loom::atomic::{
    fence, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use crate::region::Shared;
use crate::sync::asym;
use crate::sync::wait::{self, Park};

/// Bytes of a record header.
pub(crate) const HEADER: u64 = 8;
/// Records start at multiples of this.
pub(crate) const ALIGN: u64 = 8;
/// Header tag of a message record (`"MSG1"`).
pub(crate) const TAG_MSG: u64 = 0x4D53_4731;
/// Header tag of a padding record (`"PAD1"`).
pub(crate) const TAG_PAD: u64 = 0x5041_4431;

/// The smallest data area the ring works with (two minimal records).
pub(crate) const MIN_SIZE: u64 = 16;

/// A [`Error::Corrupted`] built out of line, so the hot paths that check shared words stay
/// small enough to inline.
#[cold]
#[inline(never)]
fn corrupt(msg: impl FnOnce() -> String) -> Error {
    Error::corrupted(msg())
}

/// Bytes a record of a `len`-byte payload takes: header plus payload rounded up to [`ALIGN`].
/// Exact for every `len` up to `u32::MAX` (all a header can name).
pub(crate) fn record_len(len: u64) -> u64 {
    HEADER + ((len + (ALIGN - 1)) & !(ALIGN - 1))
}

fn header(tag: u64, len: u64) -> u64 {
    debug_assert!(len <= u32::MAX as u64);
    (tag << 32) | len
}

/// The control words of one ring, as they lie in the region: three 128-byte lines.
#[repr(C)]
pub(crate) struct RingCtl {
    /// Producer-owned: bytes published so far.
    tail: AtomicU64,
    _pad_tail: [AtomicU64; 15],
    /// Consumer-owned: bytes consumed so far.
    head: AtomicU64,
    _pad_head: [AtomicU64; 15],
    /// 1 while the consumer is (about to be) parked waiting for data; the producer clears it.
    reader_parked: AtomicU32,
    /// 1 while the producer is (about to be) parked waiting for room; the consumer clears it.
    writer_parked: AtomicU32,
    /// [`asym::LIGHT`] while the producer publishes with a compiler fence only; written by
    /// the producer (at attach and when its [`asym::Mode`] switches), read by a parking
    /// consumer.
    producer_light: AtomicU32,
    /// The same for the consumer's releases, read by a parking producer.
    consumer_light: AtomicU32,
    _pad_flags: [AtomicU64; 14],
}

/// Bytes of a [`RingCtl`] in the region.
pub(crate) const RING_CTL_LEN: usize = 3 * 128;

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<RingCtl>() == RING_CTL_LEN);

// SAFETY: repr(C), atomics only (padding included, as atomics), valid for every bit pattern,
// alignment 8.
unsafe impl Shared for RingCtl {}

impl RingCtl {
    /// A zeroed control block on the heap (tests and the fuzzer; the region's is zero-filled
    /// by the kernel).
    pub(crate) fn new() -> RingCtl {
        RingCtl {
            tail: AtomicU64::new(0),
            _pad_tail: std::array::from_fn(|_| AtomicU64::new(0)),
            head: AtomicU64::new(0),
            _pad_head: std::array::from_fn(|_| AtomicU64::new(0)),
            reader_parked: AtomicU32::new(0),
            writer_parked: AtomicU32::new(0),
            producer_light: AtomicU32::new(0),
            consumer_light: AtomicU32::new(0),
            _pad_flags: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The flag the consumer parks on.
    pub(crate) fn reader_flag(&self) -> &AtomicU32 {
        &self.reader_parked
    }

    /// The flag the producer parks on.
    pub(crate) fn writer_flag(&self) -> &AtomicU32 {
        &self.writer_parked
    }

    /// The producer's light word (a parking consumer reads it).
    pub(crate) fn producer_light(&self) -> &AtomicU32 {
        &self.producer_light
    }

    /// The consumer's light word (a parking producer reads it).
    pub(crate) fn consumer_light(&self) -> &AtomicU32 {
        &self.consumer_light
    }

    /// Wakes whoever is parked on either flag (a peer detaching: its waiters must re-check the
    /// peer's state). The caller stored that state before; the `SeqCst` fence pairs with the
    /// waiter's fence after its announcement, as in the module docs.
    pub(crate) fn wake_all(&self) {
        fence(SeqCst);
        for flag in [&self.reader_parked, &self.writer_parked] {
            if flag.swap(0, Relaxed) != 0 {
                wait::wake(flag, u32::MAX);
            }
        }
    }

    /// `(head, tail)` as they are now (relaxed loads; tests and the fuzzer's model check).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn positions(&self) -> (u64, u64) {
        (self.head.load(Relaxed), self.tail.load(Relaxed))
    }

    /// Overwrites both positions, as a scribbling peer (or a test setting up a ring that has
    /// wrapped many times) would.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn store_positions(&self, head: u64, tail: u64) {
        self.head.store(head, Release);
        self.tail.store(tail, Release);
    }

    /// Bytes queued now, for `inspect` (relaxed loads; `None` if the indices do not check out).
    #[cfg_attr(any(not(test), loom), allow(dead_code))] // called by the CLI through `pipe::inspect`
    pub(crate) fn depth(&self, size: u64) -> Option<u64> {
        let tail = self.tail.load(Relaxed);
        let head = self.head.load(Relaxed);
        let depth = tail.wrapping_sub(head);
        (depth <= size && depth % ALIGN == 0).then_some(depth)
    }
}

/// Loom shadow of the data area: one cell per 8-byte word, touched on every access, so loom
/// checks that every read of a word happens-after its write and every overwrite after the read.
#[cfg(loom)]
pub(crate) struct Shadow(Vec<loom::cell::UnsafeCell<()>>);

#[cfg(loom)]
impl Shadow {
    pub(crate) fn new(size: u64) -> Shadow {
        Shadow(
            (0..size / ALIGN)
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
        )
    }
}

/// One ring: its control words and its data area. Cheap to copy; built on demand.
#[derive(Clone, Copy)]
pub(crate) struct Ring<'a> {
    ctl: &'a RingCtl,
    data: *mut u8,
    size: u64,
    max: u64,
    #[cfg(loom)]
    shadow: Option<&'a Shadow>,
}

impl std::fmt::Debug for Ring<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("size", &self.size)
            .field("max", &self.max)
            .finish()
    }
}

impl<'a> Ring<'a> {
    /// A ring over `ctl` and the `size` bytes at `data`, carrying payloads of at most `max`.
    ///
    /// # Safety
    /// `data` is valid for reads and writes of `size` bytes for `'a` and 8-byte aligned; `size`
    /// is a power of two of at least [`MIN_SIZE`]; `max + HEADER <= size`; and that memory is
    /// accessed only through this protocol by this process (one producer and one consumer at a
    /// time, across all processes).
    pub(crate) unsafe fn new(ctl: &'a RingCtl, data: *mut u8, size: u64, max: u64) -> Ring<'a> {
        debug_assert!(size.is_power_of_two() && size >= MIN_SIZE);
        debug_assert!(max + HEADER <= size);
        debug_assert!(data as usize % ALIGN as usize == 0);
        Ring {
            ctl,
            data,
            size,
            max,
            #[cfg(loom)]
            shadow: None,
        }
    }

    /// The same ring, with loom checking every data access against `shadow`.
    #[cfg(loom)]
    pub(crate) fn with_shadow(self, shadow: &'a Shadow) -> Ring<'a> {
        Ring {
            shadow: Some(shadow),
            ..self
        }
    }

    /// The control words.
    pub(crate) fn ctl(&self) -> &'a RingCtl {
        self.ctl
    }

    /// The data area's base.
    pub(crate) fn data(&self) -> *mut u8 {
        self.data
    }

    #[inline]
    fn index(&self, pos: u64) -> u64 {
        pos & (self.size - 1)
    }

    #[inline]
    fn track(&self, idx: u64, len: u64, write: bool) {
        #[cfg(loom)]
        if let Some(shadow) = self.shadow {
            for w in idx / ALIGN..(idx + len).div_ceil(ALIGN) {
                if write {
                    shadow.0[w as usize].with_mut(|_| ());
                } else {
                    shadow.0[w as usize].with(|_| ());
                }
            }
        }
        #[cfg(not(loom))]
        let _ = (idx, len, write);
    }

    #[inline]
    fn read_header(&self, idx: u64) -> u64 {
        debug_assert!(idx % ALIGN == 0 && idx + HEADER <= self.size);
        self.track(idx, HEADER, false);
        // SAFETY: `idx` is a multiple of 8 below `size` (an index), so the 8 bytes lie inside the
        // data area and are aligned (the base is 8-aligned, see `new`). Volatile: the word is
        // read exactly once, whatever a peer writes meanwhile (no double fetch).
        unsafe { std::ptr::read_volatile(self.data.add(idx as usize) as *const u64) }
    }

    #[inline]
    fn write_header(&self, idx: u64, value: u64) {
        debug_assert!(idx % ALIGN == 0 && idx + HEADER <= self.size);
        self.track(idx, HEADER, true);
        // SAFETY: as in `read_header`; the producer owns these bytes until it publishes them.
        unsafe { std::ptr::write_volatile(self.data.add(idx as usize) as *mut u64, value) }
    }

    /// Checks a pair of positions as loaded at attach.
    pub(crate) fn check_positions(&self, head: u64, tail: u64) -> Result<()> {
        if head % ALIGN != 0 || tail % ALIGN != 0 || tail.wrapping_sub(head) > self.size {
            return Err(corrupt(|| {
                format!(
                    "ring positions head {head} / tail {tail} do not fit a ring of {} bytes",
                    self.size
                )
            }));
        }
        Ok(())
    }
}

/// After publishing: wake the other side if it announced that it parks on `flag`. The
/// barrier is a full fence, or a compiler fence for a light side; `light_word` is ours (see
/// [`asym::Mode`]).
#[inline]
fn wake_if_parked(flag: &AtomicU32, mode: &asym::Mode, light_word: &AtomicU32) {
    mode.barrier();
    // Plain load first: the line stays shared in both caches while nobody parks.
    if flag.load(Relaxed) != 0 {
        wake_parked(flag, mode, light_word);
    } else {
        mode.quiet(light_word);
    }
}

#[cold]
#[inline(never)]
fn wake_parked(flag: &AtomicU32, mode: &asym::Mode, light_word: &AtomicU32) {
    if flag.swap(0, Relaxed) != 0 {
        wait::wake(flag, u32::MAX);
    }
    // Turned heavy: look once more after the switch's fence (see `asym`).
    if mode.woke(light_word) && flag.load(Relaxed) != 0 && flag.swap(0, Relaxed) != 0 {
        wait::wake(flag, u32::MAX);
    }
}

/// The producer's private state. `tail` is always in sync with the shared word (only we write
/// it); `cached_head` may be stale (behind the shared head).
#[derive(Debug)]
pub(crate) struct Producer {
    tail: u64,
    cached_head: u64,
    /// Light or heavy publication (see [`Producer::light`]).
    mode: asym::Mode,
    /// The payload length `try_reserve` made room for at the tail (`fill`/`commit` check it).
    reserved: Option<u64>,
}

impl Producer {
    /// Takes over the producer side where the shared words say it is.
    pub(crate) fn attach(ring: &Ring<'_>) -> Result<Producer> {
        let tail = ring.ctl.tail.load(Acquire);
        let head = ring.ctl.head.load(Acquire);
        ring.check_positions(head, tail)?;
        Ok(Producer {
            tail,
            cached_head: head,
            mode: asym::Mode::new(false),
            reserved: None,
        })
    }

    /// Lets this producer publish with a compiler fence only while the consumer rarely parks
    /// ([`asym::Mode`]); declares it in the ring's `producer_light` word, which a parking
    /// consumer reads. Call it right after `attach`, before any publication.
    pub(crate) fn light(self, ring: &Ring<'_>, light: bool) -> Producer {
        asym::declare(&ring.ctl.producer_light, light);
        Producer {
            mode: asym::Mode::new(light),
            ..self
        }
    }

    /// True if `n` more bytes fit; re-reads the shared head only when the cached one says no.
    #[inline]
    fn room(&mut self, ring: &Ring<'_>, n: u64) -> Result<bool> {
        if ring.size - self.tail.wrapping_sub(self.cached_head) >= n {
            return Ok(true);
        }
        let head = ring.ctl.head.load(Acquire);
        // The consumer's head only moves forward, and never past what we published.
        if head % ALIGN != 0
            || head.wrapping_sub(self.cached_head) > self.tail.wrapping_sub(self.cached_head)
        {
            return Err(corrupt(|| {
                format!(
                    "ring head {head} outside {}..={}",
                    self.cached_head, self.tail
                )
            }));
        }
        self.cached_head = head;
        Ok(ring.size - self.tail.wrapping_sub(head) >= n)
    }

    #[inline]
    fn publish(&mut self, ring: &Ring<'_>, tail: u64) {
        self.tail = tail;
        ring.ctl.tail.store(tail, Release);
        wake_if_parked(
            &ring.ctl.reader_parked,
            &self.mode,
            &ring.ctl.producer_light,
        );
    }

    /// Makes room for a record of a `len`-byte payload at the tail: `Ok(true)` when the payload
    /// area is ours to [`fill`](Self::fill), `Ok(false)` when the ring is too full now.
    /// Writes (and publishes) a padding record first when the record would not fit before the
    /// end of the data area.
    #[inline]
    pub(crate) fn try_reserve(&mut self, ring: &Ring<'_>, len: usize) -> Result<bool> {
        debug_assert!(len as u64 <= ring.max);
        let rec = record_len(len as u64);
        let rest = ring.size - ring.index(self.tail);
        // The common case, decided from private state alone: the record fits before the end
        // of the data area and the cached head leaves room.
        if rec <= rest && ring.size - self.tail.wrapping_sub(self.cached_head) >= rec {
            self.reserved = Some(len as u64);
            return Ok(true);
        }
        self.reserve_slow(ring, len)
    }

    /// [`try_reserve`](Self::try_reserve) past the common case: padding at the wrap, a fresh
    /// look at the head.
    #[inline(never)]
    fn reserve_slow(&mut self, ring: &Ring<'_>, len: usize) -> Result<bool> {
        let rec = record_len(len as u64);
        let idx = ring.index(self.tail);
        let rest = ring.size - idx;
        if rec > rest {
            if !self.room(ring, rest)? {
                return Ok(false);
            }
            ring.write_header(idx, header(TAG_PAD, rest - HEADER));
            self.publish(ring, self.tail.wrapping_add(rest));
            // Crash tests: the padding is published, the record is not written yet.
            crate::failpoint::hit("ring.push.after_padding");
        }
        let ok = self.room(ring, rec)?;
        self.reserved = ok.then_some(len as u64);
        Ok(ok)
    }

    /// Runs `f` on the reserved payload area of `len` bytes (after a successful
    /// [`try_reserve`](Self::try_reserve) of the same `len`; panics otherwise: a bug here,
    /// never a consequence of shared data).
    ///
    /// The slice points into shared memory that the protocol makes ours alone until
    /// [`commit`](Self::commit); a peer that ignores the protocol could still write it
    /// concurrently (bytes have no invalid values, so that garbles the message, nothing more).
    #[inline]
    pub(crate) fn fill<R>(
        &mut self,
        ring: &Ring<'_>,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        assert_eq!(
            self.reserved,
            Some(len as u64),
            "fill without a reservation"
        );
        let at = ring.index(self.tail) + HEADER;
        debug_assert!(at + len as u64 <= ring.size);
        ring.track(at, len as u64, true);
        // SAFETY: `try_reserve(len)` (checked above) made [at, at + len) lie inside the data
        // area (the record fits before its end) and free (the consumer is past it): no peer that
        // follows the protocol touches these bytes until we publish them, and `&mut self` keeps
        // this producer from handing out two. (A peer that scribbles on them anyway races with
        // the slice: the aliasing caveat of the `Pipe` module docs; bytes have no invalid
        // values, so it garbles the message.)
        let buf = unsafe { std::slice::from_raw_parts_mut(ring.data.add(at as usize), len) };
        f(buf)
    }

    /// Publishes the record of a `len`-byte payload filled in place (after a successful
    /// [`try_reserve`](Self::try_reserve) of the same `len`; panics otherwise).
    #[inline]
    pub(crate) fn commit(&mut self, ring: &Ring<'_>, len: usize) {
        assert_eq!(
            self.reserved.take(),
            Some(len as u64),
            "commit without a reservation"
        );
        let idx = ring.index(self.tail);
        ring.write_header(idx, header(TAG_MSG, len as u64));
        // Crash tests: the whole record is written, the tail does not cover it yet.
        crate::failpoint::hit("ring.push.before_publish");
        self.publish(ring, self.tail.wrapping_add(record_len(len as u64)));
    }

    /// Reserve, copy `msg`, commit: `Ok(false)` if it does not fit now.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn try_push(&mut self, ring: &Ring<'_>, msg: &[u8]) -> Result<bool> {
        if !self.try_reserve(ring, msg.len())? {
            return Ok(false);
        }
        self.fill(ring, msg.len(), |buf| buf.copy_from_slice(msg));
        self.commit(ring, msg.len());
        Ok(true)
    }
}

/// The consumer's private state. `head` is always in sync with the shared word (only we write
/// it); `cached_tail` may be stale (behind the shared tail).
#[derive(Debug)]
pub(crate) struct Consumer {
    head: u64,
    cached_tail: u64,
    /// Light or heavy release (see [`Consumer::light`]).
    mode: asym::Mode,
    /// The payload length `try_peek` found at the head (`read`/`release` check it).
    peeked: Option<u64>,
    /// Messages released since the shared tail was last loaded.
    since_look: u32,
    /// The most messages one load of the tail brought in, since a blocking receive last
    /// found the ring empty (see [`Consumer::pause_when_empty`]).
    burst: u32,
    /// `spin_loop` hints a blocking receive makes before it looks at an empty ring again.
    pause: u32,
}

/// One load of the tail that brings in at least this many messages marks a stream.
const STREAM_BURST: u32 = 2;
/// The longest pause (`spin_loop` hints, ~1.3 µs on the EPYC VM) a streaming receiver makes
/// before it looks at an empty ring again.
const MAX_STREAM_PAUSE: u32 = 32;

impl Consumer {
    /// Takes over the consumer side where the shared words say it is.
    pub(crate) fn attach(ring: &Ring<'_>) -> Result<Consumer> {
        let head = ring.ctl.head.load(Acquire);
        let tail = ring.ctl.tail.load(Acquire);
        ring.check_positions(head, tail)?;
        Ok(Consumer {
            head,
            cached_tail: tail,
            mode: asym::Mode::new(false),
            peeked: None,
            since_look: 0,
            burst: 0,
            pause: 0,
        })
    }

    /// Lets this consumer release with a compiler fence only (as [`Producer::light`], with
    /// the `consumer_light` word).
    pub(crate) fn light(self, ring: &Ring<'_>, light: bool) -> Consumer {
        asym::declare(&ring.ctl.consumer_light, light);
        Consumer {
            mode: asym::Mode::new(light),
            ..self
        }
    }

    /// Bytes published and not yet consumed; re-reads the shared tail only when the cached one
    /// says "empty".
    #[inline]
    fn available(&mut self, ring: &Ring<'_>) -> Result<u64> {
        let avail = self.cached_tail.wrapping_sub(self.head);
        if avail != 0 {
            return Ok(avail);
        }
        let tail = ring.ctl.tail.load(Acquire);
        // What the previous look brought in has been taken: note its size for the pacing.
        self.burst = self.burst.max(std::mem::replace(&mut self.since_look, 0));
        let avail = tail.wrapping_sub(self.head);
        // The producer's tail only moves forward (we are at the old one), at most a ring ahead.
        if tail % ALIGN != 0 || avail > ring.size {
            return Err(corrupt(|| {
                format!(
                    "ring tail {tail} outside {}..={}",
                    self.head,
                    self.head.wrapping_add(ring.size)
                )
            }));
        }
        self.cached_tail = tail;
        Ok(avail)
    }

    #[inline]
    fn advance(&mut self, ring: &Ring<'_>, by: u64) {
        self.head = self.head.wrapping_add(by);
        ring.ctl.head.store(self.head, Release);
        wake_if_parked(
            &ring.ctl.writer_parked,
            &self.mode,
            &ring.ctl.consumer_light,
        );
    }

    /// The length of the next message, `None` if there is none now. Skips (and releases) a
    /// padding record. The payload stays in the ring until [`release`](Self::release).
    #[inline]
    pub(crate) fn try_peek(&mut self, ring: &Ring<'_>) -> Result<Option<usize>> {
        self.peeked = None;
        // At most a padding record, then a message: a second padding in a row is refused.
        for _ in 0..2 {
            let avail = self.available(ring)?;
            if avail == 0 {
                return Ok(None);
            }
            let idx = ring.index(self.head);
            let rest = ring.size - idx;
            let h = ring.read_header(idx);
            let (tag, len) = (h >> 32, h & 0xFFFF_FFFF);
            match tag {
                TAG_MSG => {
                    let rec = record_len(len);
                    if len > ring.max || rec > rest || rec > avail {
                        return Err(corrupt(|| {
                            format!(
                                "message record of {len} bytes at {idx} with {avail} bytes \
                             published, {rest} to the end, at most {} allowed",
                                ring.max
                            )
                        }));
                    }
                    self.peeked = Some(len);
                    return Ok(Some(len as usize));
                }
                TAG_PAD => {
                    if idx == 0 || len != rest - HEADER || rest > avail {
                        return Err(corrupt(|| {
                            format!(
                                "padding record of {len} bytes at {idx} with {avail} bytes \
                             published, {rest} to the end"
                            )
                        }));
                    }
                    self.advance(ring, rest);
                }
                _ => {
                    return Err(corrupt(|| {
                        format!("record header {h:#018x} at {idx} has an unknown tag")
                    }))
                }
            }
        }
        Err(Error::corrupted("two padding records in a row"))
    }

    /// Runs `f` on the payload of the message [`try_peek`](Self::try_peek) returned `len` for
    /// (panics otherwise: a bug here, never a consequence of shared data).
    ///
    /// The slice points into shared memory that the protocol keeps stable until
    /// [`release`](Self::release); a peer that ignores the protocol could still write it
    /// concurrently (bytes have no invalid values, so that garbles the message, nothing more).
    #[inline]
    pub(crate) fn read<R>(&self, ring: &Ring<'_>, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        assert_eq!(self.peeked, Some(len as u64), "read without a peek");
        let at = ring.index(self.head) + HEADER;
        debug_assert!(at + len as u64 <= ring.size);
        ring.track(at, len as u64, false);
        // SAFETY: `try_peek` (checked above) found this record inside the data area and inside
        // what the producer published (Acquire of its tail): the bytes are initialised, and a
        // producer that follows the protocol will not touch them until our `release` moves the
        // head past them (one that does not: the aliasing caveat of the `Pipe` module docs).
        let buf = unsafe { std::slice::from_raw_parts(ring.data.add(at as usize), len) };
        f(buf)
    }

    /// Gives the message of `len` bytes back to the producer (after `try_peek` returned `len`;
    /// panics otherwise).
    #[inline]
    pub(crate) fn release(&mut self, ring: &Ring<'_>, len: usize) {
        assert_eq!(
            self.peeked.take(),
            Some(len as u64),
            "release without a peek"
        );
        // Crash tests: the message was read (and maybe returned), the head still holds it.
        crate::failpoint::hit("ring.pop.before_release");
        self.advance(ring, record_len(len as u64));
        self.since_look = self.since_look.saturating_add(1);
    }

    /// For a blocking receive that just found the ring empty: how many `spin_loop` hints to
    /// make before looking again.
    ///
    /// A receiver that keeps up with a streaming sender empties the ring every message or two,
    /// and each look at the empty ring pulls the tail line, and then the half-written data
    /// line, away from the sender, which must take both back for its next message: the two
    /// sides end up trading lines message by message. Pausing a little before the next look
    /// lets the sender run ahead, so that the receiver then reads whole lines the sender has
    /// finished with (a 16-byte stream went from ~36 to ~50 M msg/s on the 2-vCPU EPYC VM).
    /// A request/response exchange must not be slowed, and it brings in one message per look
    /// at the tail (the reply), whether the reply was already there or had to be waited for.
    /// So the pause doubles (up to [`MAX_STREAM_PAUSE`]) only when, since the ring was last
    /// found empty, one look brought in at least [`STREAM_BURST`] messages (the sender got
    /// ahead), and drops to none otherwise. A stream that stops costs the first receive after
    /// it at most one pause (~1.3 µs); so do occasional bursts (two requests pipelined) at
    /// first, and a pause of one hint after that.
    pub(crate) fn pause_when_empty(&mut self) -> u32 {
        let burst = std::mem::replace(&mut self.burst, 0);
        self.pause = if burst >= STREAM_BURST {
            (self.pause * 2).clamp(1, MAX_STREAM_PAUSE)
        } else {
            0
        };
        self.pause
    }

    /// Peek, copy out, release.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn try_pop(&mut self, ring: &Ring<'_>) -> Result<Option<Vec<u8>>> {
        let Some(len) = self.try_peek(ring)? else {
            return Ok(None);
        };
        let msg = self.read(ring, len, |buf| buf.to_vec());
        self.release(ring, len);
        Ok(Some(msg))
    }
}

/// How a blocked call waits: the crate's [`Wait`](crate::sync::wait::Wait) ([`Waiter`](crate::sync::wait::Waiter) in real
/// use; loom models bring their own).
pub(crate) use crate::sync::wait::Wait as Parker;

/// What one side knows of the other end.
pub(crate) trait Peer {
    /// The peer detached cleanly: one load of a shared word (`Acquire`, pairing with the
    /// detaching side's `Release`, so everything it published before is visible after).
    fn detached(&self) -> bool;
    /// The peer is gone: detached, or its process died (may cost a syscall).
    fn gone(&self) -> bool;
}

/// What a blocked call does once the peer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnGone {
    /// Receive: one more attempt drains what the peer left; empty is `Disconnected`.
    Drain,
    /// Send: `Disconnected` at once (nothing is sent to a peer that is gone).
    Fail,
}

/// The one blocking loop of both directions: attempt, spin, announce on `flag`, attempt again,
/// park; the peer's cheap state each round and its liveness at each slice end.
///
/// `attempt` does the non-blocking operation (taking the side's local lock inside);
/// `peer_light` is the other side's light word, read by the parking barrier.
pub(crate) fn block<R>(
    flag: &AtomicU32,
    peer_light: &AtomicU32,
    parker: &mut impl Parker,
    peer: &impl Peer,
    on_gone: OnGone,
    mut attempt: impl FnMut() -> Result<Option<R>>,
) -> Result<R> {
    let gone = |attempt: &mut dyn FnMut() -> Result<Option<R>>| match on_gone {
        OnGone::Drain => attempt()?.ok_or(Error::Disconnected),
        OnGone::Fail => Err(Error::Disconnected),
    };
    loop {
        if let Some(r) = attempt()? {
            return Ok(r);
        }
        if peer.detached() {
            return gone(&mut attempt);
        }
        if parker.spin() {
            continue;
        }
        // Announce, then look again (store -> fence -> load; see the module docs).
        flag.store(1, Relaxed);
        asym::park_barrier(peer_light);
        if let Some(r) = attempt()? {
            return Ok(r);
        }
        if peer.detached() {
            return gone(&mut attempt);
        }
        match parker.park(flag, 1) {
            Park::Woken => {}
            Park::Slice => {
                if peer.gone() {
                    return gone(&mut attempt);
                }
            }
            Park::TimedOut => return attempt()?.ok_or(Error::Timeout),
        }
    }
}

/// A ring on the heap, for tests and the fuzzer (`fuzz_api::pipe_records`).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct HeapRing {
    ctl: RingCtl,
    data: Vec<std::cell::UnsafeCell<u64>>,
    size: u64,
    max: u64,
    #[cfg(loom)]
    shadow: Shadow,
}

// SAFETY: the data cells are only accessed through `Ring`, whose protocol keeps the producer's
// and the consumer's bytes apart (that is what the tests check).
unsafe impl Sync for HeapRing {}

#[cfg_attr(loom, allow(dead_code))]
impl HeapRing {
    pub(crate) fn new(size: u64, max: u64) -> HeapRing {
        assert!(size.is_power_of_two() && size >= MIN_SIZE && max + HEADER <= size);
        HeapRing {
            ctl: RingCtl::new(),
            data: (0..size / 8)
                .map(|_| std::cell::UnsafeCell::new(0))
                .collect(),
            size,
            max,
            #[cfg(loom)]
            shadow: Shadow::new(size),
        }
    }

    pub(crate) fn ring(&self) -> Ring<'_> {
        // SAFETY: `data` holds `size` bytes of 8-aligned cells (interior mutability), alive as
        // long as `self`; the sizes were checked in `new`.
        let ring = unsafe {
            Ring::new(
                &self.ctl,
                std::cell::UnsafeCell::raw_get(self.data.as_ptr()) as *mut u8,
                self.size,
                self.max,
            )
        };
        #[cfg(loom)]
        let ring = ring.with_shadow(&self.shadow);
        ring
    }

    /// Raw access for corruption tests.
    #[cfg(not(loom))]
    pub(crate) fn scribble(&self, word: usize, value: u64) {
        // SAFETY: in bounds (`word` is reduced modulo the word count); tests call this while
        // no other thread touches the ring.
        unsafe { *self.data[word % self.data.len()].get() = value }
    }

    /// Raw read of a data word (modulo the word count), for the fuzzer's seed images.
    #[cfg(not(loom))]
    pub(crate) fn word(&self, word: usize) -> u64 {
        // SAFETY: in bounds, as in `scribble`; callers hold no ring operation in progress.
        unsafe { *self.data[word % self.data.len()].get() }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::wait::Waiter;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn msg(seed: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8)
            .collect()
    }

    #[test]
    fn record_lengths() {
        assert_eq!(record_len(0), 8);
        assert_eq!(record_len(1), 16);
        assert_eq!(record_len(8), 16);
        assert_eq!(record_len(9), 24);
        assert_eq!(record_len(u32::MAX as u64), 8 + (1 << 32));
    }

    #[test]
    fn wraps_with_a_padding_record() {
        let h = HeapRing::new(64, 56);
        let ring = h.ring();
        let mut p = Producer::attach(&ring).unwrap();
        let mut c = Consumer::attach(&ring).unwrap();
        assert!(p.try_push(&ring, &msg(1, 20)).unwrap()); // 0..32
        assert!(p.try_push(&ring, &msg(2, 9)).unwrap()); // 32..56
        assert!(
            !p.try_push(&ring, &msg(3, 30)).unwrap(),
            "needs 40 at 0 after padding"
        );
        assert_eq!(
            ring.ctl.tail.load(Relaxed),
            64,
            "the padding was published on its own"
        );
        assert_eq!(c.try_pop(&ring).unwrap(), Some(msg(1, 20)));
        assert!(
            !p.try_push(&ring, &msg(3, 30)).unwrap(),
            "only 32 free at 0"
        );
        assert_eq!(c.try_pop(&ring).unwrap(), Some(msg(2, 9)));
        assert!(p.try_push(&ring, &msg(3, 30)).unwrap());
        assert_eq!(c.try_pop(&ring).unwrap(), Some(msg(3, 30)));
        assert_eq!(c.try_pop(&ring).unwrap(), None);
        // The largest message fills the whole ring: behind a padding record it waits until
        // the consumer has skipped the padding, even though no message is queued.
        assert!(!p.try_push(&ring, &msg(4, 56)).unwrap());
        assert_eq!(c.try_pop(&ring).unwrap(), None);
        assert!(p.try_push(&ring, &msg(4, 56)).unwrap());
        assert!(!p.try_push(&ring, &[]).unwrap());
        assert_eq!(c.try_pop(&ring).unwrap(), Some(msg(4, 56)));
        assert!(p.try_push(&ring, &[]).unwrap());
        assert_eq!(c.try_pop(&ring).unwrap(), Some(vec![]));
    }

    #[test]
    fn a_receiver_pauses_only_while_the_sender_streams() {
        let h = HeapRing::new(1024, 64);
        let ring = h.ring();
        let mut p = Producer::attach(&ring).unwrap();
        let mut c = Consumer::attach(&ring).unwrap();
        let mut seed = 0;
        // `bursts`: how many messages the sender gets ahead each time before the receiver
        // looks (and takes them all); then the receiver finds the ring empty.
        let mut wait = |c: &mut Consumer, bursts: &[usize]| {
            for &n in bursts {
                for _ in 0..n {
                    seed += 1;
                    assert!(p.try_push(&ring, &msg(seed, 8)).unwrap());
                }
                for _ in 0..n {
                    assert!(c.try_pop(&ring).unwrap().is_some());
                }
            }
            assert!(c.try_pop(&ring).unwrap().is_none());
            c.pause_when_empty()
        };
        // Request/response: one reply per look, whether or not the receiver had to wait for
        // it (a reply already there is a look that finds one message, then an empty one).
        for _ in 0..5 {
            assert_eq!(wait(&mut c, &[1]), 0);
            assert_eq!(wait(&mut c, &[1, 1, 1]), 0);
        }
        // A stream, the sender ahead by a few messages at each look: the pause doubles up to
        // its bound...
        let pauses: Vec<u32> = (0..8).map(|_| wait(&mut c, &[3, 1])).collect();
        let mut expect = vec![MAX_STREAM_PAUSE; 8];
        for (i, e) in expect.iter_mut().enumerate().take(6) {
            *e = (1 << i).min(MAX_STREAM_PAUSE);
        }
        assert_eq!(pauses, expect);
        // ...and one exchange without a burst ends it at once.
        assert_eq!(wait(&mut c, &[1]), 0);
        assert_eq!(wait(&mut c, &[STREAM_BURST as usize]), 1);
        assert_eq!(
            wait(&mut c, &[]),
            0,
            "empty again without a message: no stream"
        );
    }

    #[test]
    fn in_place_paths() {
        let h = HeapRing::new(128, 120);
        let ring = h.ring();
        let mut p = Producer::attach(&ring).unwrap();
        let mut c = Consumer::attach(&ring).unwrap();
        assert!(p.try_reserve(&ring, 5).unwrap());
        p.fill(&ring, 5, |b| b.copy_from_slice(b"hello"));
        assert_eq!(
            c.try_peek(&ring).unwrap(),
            None,
            "not visible before commit"
        );
        p.commit(&ring, 5);
        let len = c.try_peek(&ring).unwrap().unwrap();
        assert_eq!(c.read(&ring, len, |b| b.to_vec()), b"hello");
        assert_eq!(c.try_peek(&ring).unwrap(), Some(5), "peek does not consume");
        c.release(&ring, len);
        assert_eq!(c.try_peek(&ring).unwrap(), None);
    }

    fn corrupted<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(Error::Corrupted { .. }))
    }

    #[test]
    fn hostile_headers_and_positions_are_refused() {
        // A length beyond max.
        let h = HeapRing::new(64, 40);
        let ring = h.ring();
        let mut c = Consumer::attach(&ring).unwrap();
        h.scribble(0, header(TAG_MSG, 48));
        ring.ctl.tail.store(64, Release);
        assert!(corrupted(c.try_pop(&ring)));
        // A length beyond what is published.
        h.scribble(0, header(TAG_MSG, 30));
        ring.ctl.tail.store(16, Release);
        let mut c = Consumer::attach(&ring).unwrap();
        assert!(corrupted(c.try_pop(&ring)));
        // An unknown tag, zeroed memory included.
        h.scribble(0, 0);
        assert!(corrupted(c.try_pop(&ring)));
        // Padding at 0, padding of the wrong length.
        h.scribble(0, header(TAG_PAD, 56));
        assert!(corrupted(c.try_pop(&ring)));
        // A tail more than a ring ahead, or misaligned, or behind the head.
        for bad in [72, 13, u64::MAX - 7] {
            let h = HeapRing::new(64, 40);
            let ring = h.ring();
            let mut c = Consumer::attach(&ring).unwrap();
            ring.ctl.tail.store(bad, Release);
            assert!(corrupted(c.try_pop(&ring)), "tail {bad}");
            assert!(corrupted(Producer::attach(&ring)), "tail {bad}");
        }
        // A head that runs past the tail or backwards.
        let h = HeapRing::new(64, 40);
        let ring = h.ring();
        let mut p = Producer::attach(&ring).unwrap();
        for _ in 0..4 {
            assert!(p.try_push(&ring, &[1; 8]).unwrap());
        }
        ring.ctl.head.store(72, Release);
        assert!(corrupted(p.try_push(&ring, &[1; 8])));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send(usize),
        Recv,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![(0usize..=120).prop_map(Op::Send), Just(Op::Recv)],
            1..300,
        )
    }

    proptest! {
        #[test]
        fn behaves_like_a_bounded_deque(ops in ops(), size_shift in 4u32..9) {
            let size = 1u64 << size_shift;
            let max = (size - HEADER).min(120);
            let h = HeapRing::new(size, max);
            let ring = h.ring();
            let mut p = Producer::attach(&ring).unwrap();
            let mut c = Consumer::attach(&ring).unwrap();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut seq = 0u64;
            for op in ops {
                match op {
                    Op::Send(len) => {
                        let len = len.min(max as usize);
                        seq += 1;
                        let m = msg(seq, len);
                        if p.try_push(&ring, &m).unwrap() {
                            model.push_back(m);
                        } else {
                            // Refused only if it does not fit now (after any padding, which
                            // may have been published and so moved the tail to 0).
                            let free = size - p.tail.wrapping_sub(ring.ctl.head.load(Relaxed));
                            let rest = size - (p.tail & (size - 1));
                            let rec = record_len(len as u64);
                            let fits = if rec > rest { free >= rest } else { free >= rec };
                            prop_assert!(!fits, "refused with {} free for {} ({} to the end)", free, rec, rest);
                        }
                    }
                    Op::Recv => {
                        prop_assert_eq!(c.try_pop(&ring).unwrap(), model.pop_front());
                    }
                }
            }
            while let Some(m) = model.pop_front() {
                prop_assert_eq!(c.try_pop(&ring).unwrap(), Some(m));
            }
            prop_assert_eq!(c.try_pop(&ring).unwrap(), None);
        }

        #[test]
        fn scribbles_never_panic_or_hang(
            writes in prop::collection::vec((0usize..64, any::<u64>()), 0..8),
            tail in any::<u64>(),
            head in any::<u64>(),
        ) {
            let h = HeapRing::new(512, 256);
            let ring = h.ring();
            let mut p = Producer::attach(&ring).unwrap();
            let mut c = Consumer::attach(&ring).unwrap();
            for i in 0..10 {
                let _ = p.try_push(&ring, &msg(i, 40));
            }
            for (w, v) in writes {
                h.scribble(w, v);
            }
            ring.ctl.tail.store(tail, Release);
            ring.ctl.head.store(head, Release);
            for _ in 0..100 {
                match c.try_pop(&ring) {
                    Ok(Some(m)) => prop_assert!(m.len() <= 256),
                    Ok(None) | Err(_) => break,
                }
            }
            for _ in 0..100 {
                if !matches!(p.try_push(&ring, &[7; 100]), Ok(true)) {
                    break;
                }
            }
            let _ = Producer::attach(&ring);
            let _ = Consumer::attach(&ring);
        }
    }

    struct NeverGone;
    impl Peer for NeverGone {
        fn detached(&self) -> bool {
            false
        }
        fn gone(&self) -> bool {
            false
        }
    }

    #[test]
    fn blocking_across_threads_with_real_futexes() {
        let h = std::sync::Arc::new(HeapRing::new(256, 200));
        let h2 = h.clone();
        const N: u64 = 20_000;
        let t = std::thread::spawn(move || {
            let ring = h2.ring();
            let mut p = Producer::attach(&ring).unwrap();
            for i in 0..N {
                let m = msg(i, (i % 201) as usize);
                let mut w = Waiter::new(None);
                block(
                    ring.ctl.writer_flag(),
                    ring.ctl.consumer_light(),
                    &mut w,
                    &NeverGone,
                    OnGone::Fail,
                    || Ok(p.try_push(&ring, &m)?.then_some(())),
                )
                .unwrap();
            }
        });
        let ring = h.ring();
        let mut c = Consumer::attach(&ring).unwrap();
        for i in 0..N {
            let mut w = Waiter::new(Some(std::time::Duration::from_secs(30)));
            let got = block(
                ring.ctl.reader_flag(),
                ring.ctl.producer_light(),
                &mut w,
                &NeverGone,
                OnGone::Drain,
                || c.try_pop(&ring),
            )
            .unwrap();
            assert_eq!(got, msg(i, (i % 201) as usize));
        }
        t.join().unwrap();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::futex;
    use loom::sync::Arc;
    use loom::thread;

    fn msg(seed: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (seed as u8).wrapping_add(i as u8))
            .collect()
    }

    /// Parks without a deadline: a lost wake-up is a deadlock loom reports.
    struct Untimed;
    impl Parker for Untimed {
        fn spin(&mut self) -> bool {
            false
        }
        fn park(&mut self, word: &AtomicU32, expected: u32) -> Park {
            futex::wait(word, expected, None);
            Park::Woken
        }
    }

    /// A peer whose detachment is one word, as in the pipe (death is not modelled).
    struct Flagged(Arc<AtomicU32>);
    impl Peer for Flagged {
        fn detached(&self) -> bool {
            self.0.load(Acquire) != 0
        }
        fn gone(&self) -> bool {
            self.detached()
        }
    }

    fn spin_push(p: &mut Producer, ring: &Ring<'_>, m: &[u8]) {
        while !p.try_push(ring, m).unwrap() {
            thread::yield_now();
        }
    }

    fn spin_pop(c: &mut Consumer, ring: &Ring<'_>) -> Vec<u8> {
        loop {
            if let Some(m) = c.try_pop(ring).unwrap() {
                return m;
            }
            thread::yield_now();
        }
    }

    /// Variable sizes around the end of a 64-byte ring: a padding record, then a record at 0
    /// that must wait for the consumer; loom checks every data word's accesses are ordered.
    #[test]
    fn wrap_around_with_padding() {
        loom::model(|| {
            let h = Arc::new(HeapRing::new(64, 56));
            let h2 = h.clone();
            let sizes = [20usize, 9, 30];
            let t = thread::spawn(move || {
                let ring = h2.ring();
                let mut p = Producer::attach(&ring).unwrap();
                for (i, &len) in sizes.iter().enumerate() {
                    spin_push(&mut p, &ring, &msg(i as u64, len));
                }
            });
            let ring = h.ring();
            let mut c = Consumer::attach(&ring).unwrap();
            for (i, &len) in sizes.iter().enumerate() {
                assert_eq!(spin_pop(&mut c, &ring), msg(i as u64, len));
            }
            t.join().unwrap();
        });
    }

    /// The reader parks (untimed) on an empty ring; the writer's publications, the padding
    /// record included, must wake it.
    #[test]
    fn parked_reader_is_woken() {
        loom::model(|| {
            let h = Arc::new(HeapRing::new(32, 24));
            let h2 = h.clone();
            let gone = Arc::new(AtomicU32::new(0));
            let t = thread::spawn(move || {
                let ring = h2.ring();
                let mut p = Producer::attach(&ring).unwrap();
                // 16 bytes at 0; then 16 of padding at 16 and 24 at 0, once the reader freed it.
                spin_push(&mut p, &ring, &msg(1, 8));
                spin_push(&mut p, &ring, &msg(2, 12));
            });
            let ring = h.ring();
            let mut c = Consumer::attach(&ring).unwrap();
            for (i, len) in [(1, 8), (2, 12)] {
                let got = block(
                    ring.ctl.reader_flag(),
                    ring.ctl.producer_light(),
                    &mut Untimed,
                    &Flagged(gone.clone()),
                    OnGone::Drain,
                    || c.try_pop(&ring),
                )
                .unwrap();
                assert_eq!(got, msg(i, len));
            }
            t.join().unwrap();
        });
    }

    /// The writer parks (untimed) on a full ring; the reader's releases must wake it.
    #[test]
    fn parked_writer_is_woken() {
        loom::model(|| {
            let h = Arc::new(HeapRing::new(32, 24));
            let h2 = h.clone();
            let gone = Arc::new(AtomicU32::new(0));
            let gone2 = gone.clone();
            let t = thread::spawn(move || {
                let ring = h2.ring();
                let mut p = Producer::attach(&ring).unwrap();
                for i in 0..3u64 {
                    let m = msg(i, 8);
                    block(
                        ring.ctl.writer_flag(),
                        ring.ctl.consumer_light(),
                        &mut Untimed,
                        &Flagged(gone2.clone()),
                        OnGone::Fail,
                        || Ok(p.try_push(&ring, &m)?.then_some(())),
                    )
                    .unwrap();
                }
            });
            let ring = h.ring();
            let mut c = Consumer::attach(&ring).unwrap();
            for i in 0..3u64 {
                assert_eq!(spin_pop(&mut c, &ring), msg(i, 8));
            }
            t.join().unwrap();
        });
    }

    /// Both sides block (untimed) across a wrap with padding: every publication on either side
    /// (record, padding, release) must wake the other whenever it parked.
    #[test]
    fn both_sides_park_across_a_wrap() {
        loom::model(|| {
            let h = Arc::new(HeapRing::new(32, 24));
            let h2 = h.clone();
            let gone = Arc::new(AtomicU32::new(0));
            let gone2 = gone.clone();
            let sizes = [8usize, 12, 16];
            let t = thread::spawn(move || {
                let ring = h2.ring();
                let mut p = Producer::attach(&ring).unwrap();
                for (i, &len) in sizes.iter().enumerate() {
                    let m = msg(i as u64, len);
                    block(
                        ring.ctl.writer_flag(),
                        ring.ctl.consumer_light(),
                        &mut Untimed,
                        &Flagged(gone2.clone()),
                        OnGone::Fail,
                        || Ok(p.try_push(&ring, &m)?.then_some(())),
                    )
                    .unwrap();
                }
            });
            let ring = h.ring();
            let mut c = Consumer::attach(&ring).unwrap();
            for (i, &len) in sizes.iter().enumerate() {
                let got = block(
                    ring.ctl.reader_flag(),
                    ring.ctl.producer_light(),
                    &mut Untimed,
                    &Flagged(gone.clone()),
                    OnGone::Drain,
                    || c.try_pop(&ring),
                )
                .unwrap();
                assert_eq!(got, msg(i as u64, len));
            }
            t.join().unwrap();
        });
    }

    /// A writer that sends once and detaches: the parked reader gets the message, then
    /// `Disconnected`, never a hang.
    #[test]
    fn detach_wakes_the_parked_reader() {
        loom::model(|| {
            let h = Arc::new(HeapRing::new(32, 24));
            let h2 = h.clone();
            let gone = Arc::new(AtomicU32::new(0));
            let gone2 = gone.clone();
            let t = thread::spawn(move || {
                let ring = h2.ring();
                let mut p = Producer::attach(&ring).unwrap();
                spin_push(&mut p, &ring, &msg(5, 3));
                gone2.store(1, Release);
                ring.ctl.wake_all();
            });
            let ring = h.ring();
            let mut c = Consumer::attach(&ring).unwrap();
            let peer = Flagged(gone);
            let mut recv = || {
                block(
                    ring.ctl.reader_flag(),
                    ring.ctl.producer_light(),
                    &mut Untimed,
                    &peer,
                    OnGone::Drain,
                    || c.try_pop(&ring),
                )
            };
            assert_eq!(recv().unwrap(), msg(5, 3));
            assert!(matches!(recv(), Err(Error::Disconnected)));
            t.join().unwrap();
        });
    }
}
