//! `region_ops`: every object kind's `open` and operations on a region whose bytes come from
//! the fuzzer.
//!
//! # Input
//! ```text
//! u8        kind selector (see `KINDS`)
//! u8        variant: capacity / permits / parties / initial value
//! u8        number of patches (mod 33), then each patch:
//!             u16 offset into the file (reduced modulo its length), u8 length (mod 65), bytes
//! ...       the op script: up to `MAX_OPS` ops, each an op byte and its arguments; op bytes
//!           below 0xE8 are the kind's own ops, 0xE8.. the common ones (scribbles of the
//!           kind's hot words, of raw bytes, of exact words; `inspect`)
//! ```
//!
//! # What one input does
//! 1. Creates a valid object of the selected kind under a fresh name, `persist`s it and drops
//!    the creating handle: the region now holds what a well-behaved process left behind.
//! 2. Writes the patches into the file (as a scribbling peer would; only a zero header
//!    `state` is avoided, see [`Scribbler`]): the region is now whatever the fuzzer wants.
//! 3. Opens two handles (each open must give a handle or a typed error: `Corrupted`,
//!    `Incompatible` or `Busy`) and runs the script on them: the kind's non-blocking and
//!    timed operations (timeouts of 0 or 1 ms, see [`Budget`]), holding guards across ops,
//!    dropping and re-opening handles, plus the common ops: more scribbles *while attached*,
//!    and `inspect` (the CLI's view, which must not panic on any region either).
//! 4. Drops everything, opens the region once more and tries one operation.
//! 5. Removes the names ([`Scratch`]), on every path.
//!
//! A correct crate returns from every call with a value or a typed error, takes at most a few
//! milliseconds per call, and never touches memory out of bounds, whatever the region holds.
//! Liveness is the kernel's (OFD locks): a fuzzed owner token naming a slot nobody holds is a
//! dead owner, so taking over (and poisoning) is the expected outcome.

use std::hint::black_box;
use std::sync::TryLockError;

use bytemuck::Pod;

use super::input::{Budget, Input, Scratch, Scribbler};
use crate::error::{Error, Result};
use crate::{
    spsc, Barrier, Condvar, Event, Mutex, MutexGuard, Pipe, Queue, RwLock, RwLockReadGuard,
    RwLockWriteGuard, Semaphore, Value,
};

/// Ops per input at most.
const MAX_OPS: usize = 64;

/// The kinds (and element types) the selector picks from. Adding a kind is one entry here and
/// one arm in [`region_ops`].
pub(crate) const KINDS: [&str; 14] = [
    "spsc<u64>",
    "spsc<()>",
    "queue<u64>",
    "queue<[u8; 3]>",
    "pipe",
    "mutex<u64>",
    "lock",
    "rwlock<u32>",
    "condvar",
    "semaphore",
    "barrier",
    "event",
    "value<u64>",
    "value<bool>",
];

/// One scribble of the initial region: `(offset, bytes)`.
type Patch<'a> = (u64, &'a [u8]);

/// See the module docs for the input format.
pub fn region_ops(data: &[u8]) {
    let mut input = Input::new(data);
    let kind = input.u8() as usize % KINDS.len();
    let variant = input.u8();
    let patches: Vec<Patch<'_>> = (0..input.u8() % 33)
        .map(|_| {
            let offset = input.u16() as u64;
            let len = input.u8() as usize % 65;
            (offset, input.bytes(len))
        })
        .collect();
    let mut scratch = Scratch::default();
    // Deterministic layout for a given input (spsc's hot lines move with the name's hash).
    let name = scratch.name_with_stagger("ops", (variant >> 3) as u64);
    let mut run = Run {
        name: &name,
        script: input,
        budget: Budget::new(),
        scribbler: None,
        hot: hot_words(kind, variant, &name),
    };
    match kind {
        0 => run.spsc::<u64>(variant, &patches),
        1 => run.spsc::<()>(variant, &patches),
        2 => run.queue::<u64>(variant, &patches),
        3 => run.queue::<[u8; 3]>(variant, &patches),
        4 => run.pipe(variant, &patches),
        5 => run.mutex::<u64>(variant, &patches),
        6 => run.mutex::<()>(variant, &patches),
        7 => run.rwlock(variant, &patches),
        8 => {
            let companion = scratch.name("ops-m");
            run.condvar(&companion, &patches)
        }
        9 => run.semaphore(variant, &patches),
        10 => run.barrier(variant, &patches),
        11 => run.event(&patches),
        12 => run.value_u64(variant, &patches),
        _ => run.value_bool(variant, &patches),
    }
}

/// A handle from `open`, or `None` for the typed errors a scribbled region may earn.
///
/// # Panics
/// On any other error: opening an existing, scribbled region must say `Corrupted`,
/// `Incompatible` or `Busy` (the latter for an endpoint or slot table held by a live handle).
fn opened<H>(r: Result<H>) -> Option<H> {
    match r {
        Ok(h) => Some(h),
        Err(Error::Corrupted { .. } | Error::Incompatible { .. } | Error::Busy) => None,
        Err(e) => panic!("open of a scribbled region failed with an unexpected error: {e:?}"),
    }
}

/// One input's state: the object's name, the rest of the script, the timeout budget.
struct Run<'a> {
    name: &'a str,
    script: Input<'a>,
    budget: Budget,
    scribbler: Option<Scribbler>,
    /// The words peers write in this kind's region, as `(file offset, width)`: the targets of
    /// the structured scribbles (op bytes `0xE8..=0xEF`).
    hot: Vec<(u64, usize)>,
}

/// The words a peer writes in a region of kind `kind` (an index into [`KINDS`]) created with
/// `variant` under `name`, as `(file offset, width in bytes)`: positions, lock and state
/// words, counters, per-participant records, and the registry's first slots. Scribbles aimed
/// at them reach the interesting states far sooner than blind offsets do; the layouts are the
/// ones documented in each object's module.
pub(crate) fn hot_words(kind: usize, variant: u8, name: &str) -> Vec<(u64, usize)> {
    use crate::region::header::{BODY_OFFSET, HEADER_LEN};
    let body = BODY_OFFSET as u64;
    let mut hot: Vec<(u64, usize)> = Vec::new();
    // Registry slots 0..4: pid and generation (what tokens are checked against).
    for i in 0..4u64 {
        hot.push((HEADER_LEN as u64 + 16 * i, 4));
        hot.push((HEADER_LEN as u64 + 16 * i + 4, 4));
    }
    let words = |hot: &mut Vec<(u64, usize)>, list: &[(u64, usize)]| {
        hot.extend(list.iter().map(|&(o, w)| (body + o, w)));
    };
    match kind {
        0 | 1 => {
            let spec = crate::region::Spec {
                kind: crate::region::Kind::Spsc,
                elem_size: 0,
                elem_align: 1,
                capacity: 1,
                params: [0, crate::queue::spsc::stagger(name), 0, 0],
                body_len: 0,
            };
            let (head, tail) = crate::queue::spsc::position_offsets(&spec);
            let (head, tail) = (head as u64, tail as u64);
            // Control line: attach words, light words, parked flags; then the positions.
            words(
                &mut hot,
                &[
                    (head, 8),
                    (tail, 8),
                    (0, 4),
                    (4, 4),
                    (8, 4),
                    (12, 4),
                    (16, 4),
                    (20, 4),
                ],
            );
            let (size, cap) = (if kind == 0 { 8 } else { 0 }, 1u64 << (variant % 5));
            for i in 0..cap.min(4) {
                words(&mut hot, &[(4096 + i * size, size.max(1) as usize)]);
            }
        }
        2 | 3 => {
            let cap = (1u64 << (variant % 5)).max(2);
            let (elem, align) = if kind == 2 { (8, 8) } else { (3, 1) };
            let (_, slot) = crate::queue::mpmc::slot_geometry(elem, align).unwrap_or((8, 16));
            words(
                &mut hot,
                &[
                    (0, 8),
                    (128, 8),
                    (256, 8),
                    (272, 8),
                    (288, 8),
                    (384, 4),
                    (512, 4),
                ],
            );
            for i in 0..cap.min(8) {
                words(
                    &mut hot,
                    &[(crate::queue::mpmc::CONTROL_LEN as u64 + i * slot, 8)],
                );
            }
        }
        4 => {
            // Ends' states, each ring's tail / head / parked flags, the first record headers.
            let size = (if variant & 1 == 0 { 1024u64 } else { 3000 })
                .next_power_of_two()
                .max(4096);
            words(
                &mut hot,
                &[
                    (0, 4),
                    (4, 4),
                    (128, 8),
                    (256, 8),
                    (384, 4),
                    (388, 4),
                    (512, 8),
                    (640, 8),
                    (768, 4),
                    (772, 4),
                    (1024, 8),
                    (1024 + 8, 8),
                    (1024 + size + 2048, 8),
                    (1024 + size - 8, 8),
                ],
            );
        }
        5 | 6 => words(&mut hot, &[(0, 4), (4, 4)]),
        7 => {
            words(&mut hot, &[(0, 4), (4, 4), (8, 4), (12, 4)]);
            for i in 0..4 {
                words(&mut hot, &[(128 + 128 * i, 8)]);
            }
        }
        8 => words(&mut hot, &[(0, 4), (4, 4)]),
        9 | 10 => {
            words(&mut hot, &[(0, 8), (8, 4)]);
            for i in 0..4 {
                words(&mut hot, &[(128 + 8 * i, 8)]);
            }
        }
        11 => words(&mut hot, &[(0, 4)]),
        12 => words(&mut hot, &[(0, 8)]),
        _ => words(&mut hot, &[(0, 1)]),
    }
    // The header's state and flags words (a later open must refuse a bad state at once; the
    // persisted flag decides who unlinks).
    hot.extend([(12, 4), (28, 4)]);
    hot
}

impl Run<'_> {
    /// Step 1 and 2 of the module docs: `create` (a closure that creates, persists and drops),
    /// then the patches. False if the object could not be created (a bug: the arguments are
    /// always valid).
    fn prepare(&mut self, create: impl FnOnce(&str) -> Result<()>, patches: &[Patch<'_>]) -> bool {
        if let Err(e) = create(self.name) {
            panic!("creating a fresh object failed: {e:?}");
        }
        self.scribbler = Scribbler::open(self.name);
        let Some(s) = &self.scribbler else {
            return false;
        };
        for (offset, bytes) in patches {
            s.write(*offset, bytes);
        }
        true
    }

    /// The next op byte of a kind with `n` ops, after running any common ops (scribbles while
    /// attached, `inspect`) that come first. `None` at the end of the script.
    fn next_op(&mut self, n: u8, done: &mut usize) -> Option<u8> {
        while *done < MAX_OPS && !self.script.is_empty() {
            *done += 1;
            let b = self.script.u8();
            if b < 0xE8 {
                return Some(b % n);
            }
            self.common(b);
        }
        None
    }

    /// The ops every kind shares (op bytes `0xE8..`).
    fn common(&mut self, b: u8) {
        match b {
            0xE8..=0xEF => {
                // A structured scribble of one of the kind's hot words.
                let (i, mode) = (self.script.below(self.hot.len()), self.script.u8());
                let (offset, width) = self.hot[i];
                let Some(s) = &self.scribbler else { return };
                let cur = s.read_word(offset, width);
                let new = match mode % 5 {
                    0 => self.script.u64(),
                    // Nudged by a small amount either way (positions a few steps off).
                    1 => cur.wrapping_add(self.script.u8() as i8 as i64 as u64),
                    2 => cur ^ (1 << (self.script.u8() as usize % (8 * width))),
                    // Another hot word's value (a head copied into a tail, a token moved).
                    3 => {
                        let (o, w) = self.hot[self.script.below(self.hot.len())];
                        s.read_word(o, w)
                    }
                    _ => cur ^ self.script.u64(),
                };
                s.write_word(offset, width, new);
            }
            0xF0..=0xF7 => {
                let offset = self.script.u16() as u64;
                let len = self.script.u8() as usize % 17;
                let bytes = self.script.bytes(len);
                if let Some(s) = &self.scribbler {
                    s.write(offset, bytes);
                }
            }
            0xF8..=0xFB => {
                // The CLI's read-only view of the object: must not panic on any region.
                let _ = black_box(crate::inspect::inspect(self.name));
            }
            _ => {
                // An exact 8-byte word anywhere in the region.
                let word = self.script.u16() as u64;
                let value = self.script.u64();
                if let Some(s) = &self.scribbler {
                    s.write_u64((word * 8) % s.len(), value);
                }
            }
        }
    }

    fn timeout(&mut self) -> std::time::Duration {
        self.budget.timeout(&mut self.script)
    }

    fn index(&mut self) -> usize {
        (self.script.u8() & 1) as usize
    }

    // -----------------------------------------------------------------------------------------
    // Queues

    fn spsc<T: Pod>(&mut self, variant: u8, patches: &[Patch<'_>]) {
        let cap = 1usize << (variant % 5);
        if !self.prepare(
            |n| spsc::Sender::<T>::create(n, cap).map(|h| h.persist()),
            patches,
        ) {
            return;
        }
        let mut tx = opened(spsc::Sender::<T>::open(self.name));
        let mut rx = opened(spsc::Receiver::<T>::open(self.name));
        let mut done = 0;
        while let Some(op) = self.next_op(15, &mut done) {
            match op {
                0 => {
                    let v = self.script.pod::<T>();
                    if let Some(tx) = &tx {
                        let _ = tx.try_send(v);
                    }
                }
                1 => {
                    if let Some(rx) = &rx {
                        let _ = black_box(rx.try_recv());
                    }
                }
                2 => {
                    let k = self.script.below(9);
                    let vals: Vec<T> = (0..k).map(|_| self.script.pod()).collect();
                    if let Some(tx) = &tx {
                        if let Ok(n) = tx.try_send_batch(&vals) {
                            assert!(n <= vals.len());
                        }
                    }
                }
                3 => {
                    let mut out = vec![T::zeroed(); self.script.below(9)];
                    if let Some(rx) = &rx {
                        if let Ok(n) = rx.try_recv_batch(&mut out) {
                            assert!(n <= out.len());
                        }
                    }
                }
                4 => {
                    let (v, t) = (self.script.pod::<T>(), self.timeout());
                    if let Some(tx) = &tx {
                        let _ = tx.send_timeout(v, t);
                    }
                }
                5 => {
                    let t = self.timeout();
                    if let Some(rx) = &rx {
                        let _ = black_box(rx.recv_timeout(t));
                    }
                }
                6 | 8 => {
                    let max = self.script.below(2 * cap + 2);
                    let commit = self.script.u8() as usize;
                    let fill = self.script.pod::<T>();
                    let t = if op == 8 { Some(self.timeout()) } else { None };
                    if let Some(tx) = tx.as_mut() {
                        let chunk = match t {
                            None => tx.try_write_chunk(max).ok(),
                            Some(t) => tx.write_chunk_timeout(max, t).ok(),
                        };
                        if let Some(mut c) = chunk {
                            let len = c.len();
                            assert!(len <= max);
                            let (a, b) = c.as_mut_slices();
                            assert_eq!(a.len() + b.len(), len);
                            a.iter_mut().chain(b.iter_mut()).for_each(|s| *s = fill);
                            let n = commit % (c.len() + 1);
                            c.commit(n);
                        }
                    }
                }
                7 | 9 => {
                    let max = self.script.below(2 * cap + 2);
                    let commit = self.script.u8() as usize;
                    let t = if op == 9 { Some(self.timeout()) } else { None };
                    if let Some(rx) = rx.as_mut() {
                        let chunk = match t {
                            None => rx.try_read_chunk(max).ok(),
                            Some(t) => rx.read_chunk_timeout(max, t).ok(),
                        };
                        if let Some(c) = chunk {
                            assert!(c.len() <= max);
                            let (a, b) = c.as_slices();
                            assert_eq!(a.len() + b.len(), c.len());
                            for v in a.iter().chain(b) {
                                black_box(bytemuck::bytes_of(v));
                            }
                            let n = commit % (c.len() + 1);
                            c.commit(n);
                        }
                    }
                }
                10 => {
                    let k = self.script.below(9);
                    let vals: Vec<T> = (0..k).map(|_| self.script.pod()).collect();
                    let t = self.timeout();
                    if let Some(tx) = &tx {
                        let _ = tx.send_batch_timeout(&vals, t);
                    }
                }
                11 => {
                    let mut out = vec![T::zeroed(); self.script.below(9)];
                    let t = self.timeout();
                    if let Some(rx) = &rx {
                        if let Ok(n) = rx.recv_batch_timeout(&mut out, t) {
                            assert!(n <= out.len());
                        }
                    }
                }
                12 => {
                    if let Some(tx) = &tx {
                        assert!(tx.len() <= tx.capacity());
                        black_box((tx.is_empty(), tx.is_disconnected()));
                    }
                    if let Some(rx) = &rx {
                        assert!(rx.len() <= rx.capacity());
                        black_box((rx.is_empty(), rx.is_disconnected()));
                    }
                }
                13 => {
                    tx = match tx.take() {
                        Some(_) => None,
                        None => opened(spsc::Sender::<T>::open(self.name)),
                    }
                }
                _ => {
                    rx = match rx.take() {
                        Some(_) => None,
                        None => opened(spsc::Receiver::<T>::open(self.name)),
                    }
                }
            }
        }
        drop((tx, rx));
        if let Some(tx) = opened(spsc::Sender::<T>::open(self.name)) {
            let _ = tx.try_send(T::zeroed());
        }
        if let Some(rx) = opened(spsc::Receiver::<T>::open(self.name)) {
            let _ = black_box(rx.try_recv());
        }
    }

    fn queue<T: Pod>(&mut self, variant: u8, patches: &[Patch<'_>]) {
        let cap = (1usize << (variant % 5)).max(2);
        if !self.prepare(|n| Queue::<T>::create(n, cap).map(|h| h.persist()), patches) {
            return;
        }
        let mut q = [
            opened(Queue::<T>::open(self.name)),
            opened(Queue::<T>::open(self.name)),
        ];
        let mut done = 0;
        while let Some(op) = self.next_op(14, &mut done) {
            let i = self.index();
            match op {
                0 => {
                    let v = self.script.pod::<T>();
                    if let Some(q) = &q[i] {
                        let _ = q.try_send(v);
                    }
                }
                1 => {
                    if let Some(q) = &q[i] {
                        let _ = black_box(q.try_recv());
                    }
                }
                2 => {
                    let (v, t) = (self.script.pod::<T>(), self.timeout());
                    if let Some(q) = &q[i] {
                        let _ = q.send_timeout(v, t);
                    }
                }
                3 => {
                    let t = self.timeout();
                    if let Some(q) = &q[i] {
                        let _ = black_box(q.recv_timeout(t));
                    }
                }
                4 => {
                    let v = self.script.pod::<T>();
                    if let Some(q) = &q[i] {
                        let _ = q.try_send_with(|slot| *slot = v);
                    }
                }
                5 => {
                    if let Some(q) = &q[i] {
                        let _ = q.try_recv_with(|v| black_box(bytemuck::bytes_of(v).len()));
                    }
                }
                6 | 8 => {
                    let k = self.script.below(2 * cap + 2);
                    let vals: Vec<T> = (0..k).map(|_| self.script.pod()).collect();
                    let t = if op == 8 { Some(self.timeout()) } else { None };
                    if let Some(q) = &q[i] {
                        let sent = match t {
                            None => q.try_send_batch(&vals).ok(),
                            Some(t) => q.send_batch_timeout(&vals, t).ok(),
                        };
                        assert!(sent.is_none_or(|n| n <= vals.len()));
                    }
                }
                7 | 9 => {
                    let max = self.script.below(2 * cap + 2);
                    let t = if op == 9 { Some(self.timeout()) } else { None };
                    if let Some(q) = &q[i] {
                        let mut out = Vec::new();
                        let got = match t {
                            None => q.try_recv_batch(&mut out, max).ok(),
                            Some(t) => q.recv_batch_timeout(&mut out, max, t).ok(),
                        };
                        if let Some(n) = got {
                            assert!(n <= max && n == out.len(), "{n} of {max}, {}", out.len());
                        }
                    }
                }
                10 => {
                    // Closing is permanent: only on a specific argument, so most inputs keep
                    // an open queue.
                    if self.script.u8() == 0xC1 {
                        if let Some(q) = &q[i] {
                            q.close();
                            assert!(q.is_closed());
                        }
                    }
                }
                11 => {
                    if let Some(q) = &q[i] {
                        assert!(q.len() <= q.capacity());
                        black_box((q.is_empty(), q.is_closed()));
                    }
                }
                12 => {
                    q[i] = match q[i].take() {
                        Some(_) => None,
                        None => opened(Queue::<T>::open(self.name)),
                    }
                }
                _ => {
                    let (v, t) = (self.script.pod::<T>(), self.timeout());
                    if let Some(q) = &q[i] {
                        if self.script.u8() & 1 == 0 {
                            let _ = q.send_timeout_with(t, |slot| *slot = v);
                        } else {
                            let _ = q.recv_timeout_with(t, |v| black_box(*v));
                        }
                    }
                }
            }
        }
        drop(q);
        if let Some(q) = opened(Queue::<T>::open(self.name)) {
            let _ = q.try_send(T::zeroed());
            let _ = black_box(q.try_recv());
        }
    }

    fn pipe(&mut self, variant: u8, patches: &[Patch<'_>]) {
        let capacity = if variant & 1 == 0 { 1024 } else { 3000 };
        if !self.prepare(|n| Pipe::create(n, capacity).map(|h| h.persist()), patches) {
            return;
        }
        let mut ends = [opened(Pipe::open(self.name)), opened(Pipe::open(self.name))];
        let mut done = 0;
        while let Some(op) = self.next_op(10, &mut done) {
            let i = self.index();
            let Some(end) = ends[i].as_ref() else {
                if op == 9 {
                    ends[i] = opened(Pipe::open(self.name));
                }
                continue;
            };
            let max = end.max_message_size();
            match op {
                0 | 2 | 4 | 7 => {
                    // Lengths up to max + 1: one past the limit must be MessageTooLarge.
                    let len = self.script.u16() as usize % (max + 2);
                    let fill = self.script.u8();
                    let msg = vec![fill; len];
                    let r = match op {
                        0 => end.try_send(&msg).map(drop),
                        2 => {
                            let t = self.timeout();
                            end.send_timeout(&msg, t)
                        }
                        4 => end.try_send_with(len, |buf| buf.fill(fill)).map(drop),
                        _ => {
                            let t = self.timeout();
                            end.send_with_timeout(len, t, |buf| buf.fill(fill))
                        }
                    };
                    if len > max {
                        assert!(matches!(r, Err(Error::MessageTooLarge { .. })), "{r:?}");
                    }
                }
                1 => {
                    if let Ok(Some(m)) = end.try_recv() {
                        assert!(m.len() <= max);
                    }
                }
                3 => {
                    let t = self.timeout();
                    if let Ok(m) = end.recv_timeout(t) {
                        assert!(m.len() <= max);
                    }
                }
                5 => {
                    if let Ok(Some(n)) = end.try_recv_with(|m| black_box(m).len()) {
                        assert!(n <= max);
                    }
                }
                6 => {
                    let t = self.timeout();
                    if let Ok(n) = end.recv_with_timeout(t, |m| black_box(m).len()) {
                        assert!(n <= max);
                    }
                }
                8 => {
                    assert!((1024..=end.capacity()).contains(&max));
                    black_box(end.is_peer_attached());
                }
                _ => ends[i] = None,
            }
        }
        drop(ends);
        if let Some(end) = opened(Pipe::open(self.name)) {
            let _ = end.try_send(b"x");
            let _ = black_box(end.try_recv());
        }
    }

    // -----------------------------------------------------------------------------------------
    // Locks

    fn mutex<T: Pod>(&mut self, variant: u8, patches: &[Patch<'_>]) {
        let init = Input::new(&[variant; 16]).pod::<T>();
        if !self.prepare(
            |n| Mutex::<T>::create(n, init).map(|h| h.persist()),
            patches,
        ) {
            return;
        }
        let m = [
            opened(Mutex::<T>::open(self.name)),
            opened(Mutex::<T>::open(self.name)),
        ];
        let mut guards: [Option<MutexGuard<'_, T>>; 2] = [None, None];
        let mut done = 0;
        while let Some(op) = self.next_op(7, &mut done) {
            let i = self.index();
            match op {
                0 | 1 => {
                    let t = if op == 1 { Some(self.timeout()) } else { None };
                    if let Some(m) = &m[i] {
                        let r = match t {
                            None => m.try_lock(),
                            Some(t) => m.lock_timeout(t),
                        };
                        match r {
                            Ok(g) => guards[i] = Some(g),
                            Err(TryLockError::Poisoned(p)) => guards[i] = Some(p.into_inner()),
                            Err(TryLockError::WouldBlock) => {}
                        }
                    }
                }
                2 => guards[i] = None,
                3 => {
                    let v = self.script.pod::<T>();
                    if let Some(g) = guards[i].as_mut() {
                        black_box(bytemuck::bytes_of(&**g));
                        **g = v;
                    }
                }
                4 => {
                    if let Some(m) = &m[i] {
                        if m.is_poisoned() && self.script.u8() & 1 == 1 {
                            m.clear_poison();
                        }
                    }
                }
                5 => {
                    // A third handle comes and goes.
                    if let Some(m) = opened(Mutex::<T>::open(self.name)) {
                        let _ = black_box(m.try_lock().is_ok());
                    }
                }
                _ => {
                    // A panic that unwinds through a guard poisons, as in std.
                    if let Some(g) = guards[i].take() {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let _g = g;
                            std::panic::resume_unwind(Box::new("poison"));
                        }));
                    }
                }
            }
        }
        drop(guards);
        drop(m);
        if let Some(m) = opened(Mutex::<T>::open(self.name)) {
            let _ = black_box(m.try_lock().is_ok());
        }
    }

    fn rwlock(&mut self, variant: u8, patches: &[Patch<'_>]) {
        if !self.prepare(
            |n| RwLock::<u32>::create(n, variant as u32).map(|h| h.persist()),
            patches,
        ) {
            return;
        }
        let r = [
            opened(RwLock::<u32>::open(self.name)),
            opened(RwLock::<u32>::open(self.name)),
        ];
        let mut readers: [Vec<RwLockReadGuard<'_, u32>>; 2] = [Vec::new(), Vec::new()];
        let mut writers: [Option<RwLockWriteGuard<'_, u32>>; 2] = [None, None];
        let mut done = 0;
        while let Some(op) = self.next_op(9, &mut done) {
            let i = self.index();
            match op {
                0 | 1 => {
                    let t = if op == 1 { Some(self.timeout()) } else { None };
                    if let (Some(r), true) = (&r[i], readers[i].len() < 4) {
                        let g = match t {
                            None => r.try_read(),
                            Some(t) => r.read_timeout(t),
                        };
                        match g {
                            Ok(g) => readers[i].push(g),
                            Err(TryLockError::Poisoned(p)) => readers[i].push(p.into_inner()),
                            Err(TryLockError::WouldBlock) => {}
                        }
                    }
                }
                2 | 3 => {
                    let t = if op == 3 { Some(self.timeout()) } else { None };
                    if let Some(r) = &r[i] {
                        let g = match t {
                            None => r.try_write(),
                            Some(t) => r.write_timeout(t),
                        };
                        match g {
                            Ok(g) => writers[i] = Some(g),
                            Err(TryLockError::Poisoned(p)) => writers[i] = Some(p.into_inner()),
                            Err(TryLockError::WouldBlock) => {}
                        }
                    }
                }
                4 => {
                    if let Some(g) = readers[i].pop() {
                        black_box(*g);
                    }
                }
                5 => writers[i] = None,
                6 => {
                    let v = self.script.u32();
                    if let Some(g) = writers[i].as_mut() {
                        **g = v;
                    }
                }
                7 => {
                    if let Some(r) = &r[i] {
                        if r.is_poisoned() && self.script.u8() & 1 == 1 {
                            r.clear_poison();
                        }
                    }
                }
                _ => {
                    if let Some(r) = opened(RwLock::<u32>::open(self.name)) {
                        let _ = black_box(r.try_read().is_ok());
                        let _ = black_box(r.try_write().is_ok());
                    }
                }
            }
        }
        drop((readers, writers));
        drop(r);
        if let Some(r) = opened(RwLock::<u32>::open(self.name)) {
            let _ = black_box(r.try_write().is_ok());
            let _ = black_box(r.try_read().is_ok());
        }
    }

    /// The condvar's region is fuzzed; its companion mutex (`companion`) is a clean one.
    fn condvar(&mut self, companion: &str, patches: &[Patch<'_>]) {
        if !self.prepare(|n| Condvar::create(n).map(|h| h.persist()), patches) {
            return;
        }
        let Ok(mx) = Mutex::<u32>::create(companion, 0) else {
            panic!("creating the companion mutex failed");
        };
        let cv = [
            opened(Condvar::open(self.name)),
            opened(Condvar::open(self.name)),
        ];
        let mut done = 0;
        while let Some(op) = self.next_op(5, &mut done) {
            let i = self.index();
            match op {
                0 | 1 => {
                    let t = self.timeout();
                    if let (Some(cv), Ok(g)) = (&cv[i], mx.try_lock()) {
                        if op == 0 {
                            let _ = black_box(cv.wait_timeout(g, t).map(|(_, r)| r.timed_out()));
                        } else {
                            let _ = cv.wait_timeout_while(g, t, |v| *v == 0);
                        }
                    }
                }
                2 => {
                    if let Some(cv) = &cv[i] {
                        cv.notify_one();
                    }
                }
                3 => {
                    if let Some(cv) = &cv[i] {
                        cv.notify_all();
                    }
                }
                _ => {
                    if let Some(cv) = opened(Condvar::open(self.name)) {
                        cv.notify_all();
                    }
                }
            }
        }
        drop(cv);
        if let Some(cv) = opened(Condvar::open(self.name)) {
            cv.notify_one();
        }
    }

    fn semaphore(&mut self, variant: u8, patches: &[Patch<'_>]) {
        let permits = (variant % 4) as u32;
        if !self.prepare(
            |n| Semaphore::create(n, permits).map(|h| h.persist()),
            patches,
        ) {
            return;
        }
        let mut s = [
            opened(Semaphore::open(self.name)),
            opened(Semaphore::open(self.name)),
        ];
        let mut done = 0;
        while let Some(op) = self.next_op(7, &mut done) {
            let i = self.index();
            if op == 6 {
                s[i] = match s[i].take() {
                    Some(_) => None,
                    None => opened(Semaphore::open(self.name)),
                };
                continue;
            }
            let t = self.timeout();
            let Some(s) = &s[i] else { continue };
            match op {
                0 => black_box(s.try_acquire()),
                1 => black_box(s.acquire_timeout(t)),
                2 => {
                    s.release();
                    true
                }
                3 => black_box((s.available(), s.held()).0 > 0),
                4 => black_box(s.forget()),
                _ => black_box(s.recover() > 0),
            };
        }
        drop(s);
        if let Some(s) = opened(Semaphore::open(self.name)) {
            if s.try_acquire() {
                s.release();
            }
        }
    }

    fn barrier(&mut self, variant: u8, patches: &[Patch<'_>]) {
        let n = 1 + (variant % 3) as u32;
        if !self.prepare(
            |name| Barrier::create(name, n).map(|h| h.persist()),
            patches,
        ) {
            return;
        }
        let mut b = [
            opened(Barrier::open(self.name)),
            opened(Barrier::open(self.name)),
        ];
        let mut done = 0;
        while let Some(op) = self.next_op(3, &mut done) {
            let i = self.index();
            match op {
                0 => {
                    let t = self.timeout();
                    if let Some(b) = &b[i] {
                        let _ = black_box(b.wait_timeout(t));
                    }
                }
                1 => {
                    if let Some(b) = &b[i] {
                        // The validated header's count (a scribbled header may say another).
                        assert!(b.parties() >= 1);
                        black_box(b.waiting());
                    }
                }
                _ => {
                    b[i] = match b[i].take() {
                        Some(_) => None,
                        None => opened(Barrier::open(self.name)),
                    }
                }
            }
        }
        drop(b);
        if let Some(b) = opened(Barrier::open(self.name)) {
            let _ = black_box(b.wait_timeout(std::time::Duration::ZERO));
        }
    }

    fn event(&mut self, patches: &[Patch<'_>]) {
        if !self.prepare(|n| Event::create(n).map(|h| h.persist()), patches) {
            return;
        }
        let e = [
            opened(Event::open(self.name)),
            opened(Event::open(self.name)),
        ];
        let mut done = 0;
        while let Some(op) = self.next_op(4, &mut done) {
            let i = self.index();
            let t = self.timeout();
            let Some(e) = &e[i] else { continue };
            match op {
                0 => e.set(),
                1 => e.clear(),
                2 => {
                    black_box(e.is_set());
                }
                _ => {
                    black_box(e.wait_timeout(t));
                }
            }
        }
        drop(e);
        if let Some(e) = opened(Event::open(self.name)) {
            black_box(e.wait_timeout(std::time::Duration::ZERO));
        }
    }

    fn value_u64(&mut self, variant: u8, patches: &[Patch<'_>]) {
        if !self.prepare(
            |n| Value::<u64>::create(n, variant as u64).map(|h| h.persist()),
            patches,
        ) {
            return;
        }
        let Some(v) = opened(Value::<u64>::open(self.name)) else {
            return;
        };
        let mut done = 0;
        while let Some(op) = self.next_op(6, &mut done) {
            let x = self.script.u64();
            match op {
                0 => {
                    black_box(v.load());
                }
                1 => v.store(x),
                2 => {
                    black_box(v.swap(x));
                }
                3 => {
                    let _ = black_box(v.compare_exchange(x, !x));
                }
                4 => {
                    black_box(v.fetch_add(x));
                }
                _ => {
                    black_box(v.fetch_sub(x));
                }
            }
        }
    }

    fn value_bool(&mut self, variant: u8, patches: &[Patch<'_>]) {
        if !self.prepare(
            |n| Value::<bool>::create(n, variant & 1 == 1).map(|h| h.persist()),
            patches,
        ) {
            return;
        }
        let Some(v) = opened(Value::<bool>::open(self.name)) else {
            return;
        };
        let mut done = 0;
        while let Some(op) = self.next_op(4, &mut done) {
            let x = self.script.u8() & 1 == 1;
            match op {
                0 => {
                    // Whatever byte a scribbler left, the value reads as a valid bool.
                    let b = v.load();
                    assert!(b as u8 <= 1);
                }
                1 => v.store(x),
                2 => {
                    black_box(v.swap(x));
                }
                _ => {
                    let _ = black_box(v.compare_exchange(x, !x));
                }
            }
        }
    }
}
