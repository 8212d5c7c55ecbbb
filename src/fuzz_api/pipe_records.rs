//! `pipe_records`: the byte ring under [`Pipe`](crate::Pipe) (record decoding, padding, the
//! wrap rule, position checks) on heap memory whose state comes from the fuzzer.
//!
//! # Input
//! ```text
//! u8     ring size: 16 << (b % 7) bytes (16 ..= 1024)
//! u16    largest payload: reduced into 0 ..= size - 8
//! u8     mode: bit 0 hostile
//! u64    well-formed: the starting position of both indices (rounded down to 8), so the
//!        ring starts as if it had carried that many bytes (wrapping `u64` arithmetic included)
//!        hostile: the head; then u64 the tail, both taken as they are
//! u8     n, then n * 8 bytes written over the data area from its start (stale bytes where
//!        nothing is published, or records a peer left, in hostile mode)
//! ...    the op script (up to 128 ops)
//! ```
//!
//! # Well-formed mode: a differential check
//! No op scribbles. The ring must behave exactly like a model written from the module docs of
//! `queue::ring`: a FIFO of records where a message of `len` bytes takes
//! `record_len(len)` bytes, never wraps (a padding record covers the rest of the data area
//! first, and is published on its own), and is refused only when it does not fit. After every
//! op the shared positions must equal the model's, every received message must equal the
//! model's front, and `depth` must report the model's byte count. Stale bytes in the
//! unpublished part of the data area must never be read as records.
//!
//! # Hostile mode
//! Positions and data come from the input, and ops scribble data words, positions and parked
//! flags between the ring operations. Every call must return (a message, `None`, or
//! `Error::Corrupted`), every message must be at most the largest payload, and no access may
//! leave the data area (the fuzz build runs under AddressSanitizer, which watches the heap
//! allocation that backs it).

use std::collections::VecDeque;
use std::hint::black_box;

use super::input::Input;
use crate::error::Error;
use crate::queue::ring::{record_len, Consumer, HeapRing, Producer, ALIGN, HEADER};

/// Ops per input at most.
const MAX_OPS: usize = 128;

/// A payload of `len` bytes derived from `seed` (so a misplaced byte shows).
fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)))
        .collect()
}

/// See the module docs for the input format.
pub fn pipe_records(data: &[u8]) {
    let mut input = Input::new(data);
    let size = 16u64 << (input.u8() % 7);
    let max = input.u16() as u64 % (size - HEADER + 1);
    let hostile = input.u8() & 1 == 1;
    let h = HeapRing::new(size, max);
    let (head, tail) = if hostile {
        (input.u64(), input.u64())
    } else {
        let p = input.u64() & !(ALIGN - 1);
        (p, p)
    };
    let words = input.u8() as usize;
    for w in 0..words.min((size / 8) as usize) {
        h.scribble(w, input.u64());
    }
    h.ring().ctl().store_positions(head, tail);
    if hostile {
        run_hostile(&h, size, max, input);
    } else {
        run_model(&h, size, max, head, input);
    }
}

/// What the model expects the shared positions and the FIFO to be.
struct Model {
    size: u64,
    head: u64,
    tail: u64,
    /// Records published and not consumed: `None` for padding of the given length.
    records: VecDeque<(u64, Option<Vec<u8>>)>,
}

impl Model {
    fn free(&self) -> u64 {
        self.size - self.tail.wrapping_sub(self.head)
    }

    /// The producer's rule for a `len`-byte payload: returns whether it is accepted (room for
    /// the record at the tail), publishing padding first when the record would not fit before
    /// the end of the data area and the padding itself fits.
    fn reserve(&mut self, len: u64) -> bool {
        let rec = record_len(len);
        let rest = self.size - self.tail % self.size;
        if rec > rest {
            if self.free() < rest {
                return false;
            }
            self.records.push_back((rest, None));
            self.tail = self.tail.wrapping_add(rest);
        }
        self.free() >= rec
    }

    fn push(&mut self, msg: Vec<u8>) {
        let rec = record_len(msg.len() as u64);
        self.records.push_back((rec, Some(msg)));
        self.tail = self.tail.wrapping_add(rec);
    }

    /// The consumer's view: skips (consumes) padding at the front, then the next message.
    fn front(&mut self) -> Option<&Vec<u8>> {
        while let Some((len, None)) = self.records.front() {
            self.head = self.head.wrapping_add(*len);
            self.records.pop_front();
        }
        self.records.front().and_then(|(_, m)| m.as_ref())
    }

    fn pop(&mut self) -> Option<Vec<u8>> {
        self.front()?;
        let (len, m) = self.records.pop_front()?;
        self.head = self.head.wrapping_add(len);
        m
    }

    fn depth(&self) -> u64 {
        self.tail.wrapping_sub(self.head)
    }
}

fn run_model(h: &HeapRing, size: u64, max: u64, start: u64, mut input: Input<'_>) {
    let ring = h.ring();
    let mut p = Producer::attach(&ring).expect("a well-formed ring attaches");
    let mut c = Consumer::attach(&ring).expect("a well-formed ring attaches");
    let mut model = Model {
        size,
        head: start,
        tail: start,
        records: VecDeque::new(),
    };
    let mut seed = 0u8;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 7 {
            op @ (0 | 1) => {
                // Push (0), or reserve and abandon (1): the padding stays published.
                let len = input.u16() as u64 % (max + 1);
                seed = seed.wrapping_add(1);
                let msg = payload(seed, len as usize);
                let expected = model.reserve(len);
                let got = if op == 0 {
                    p.try_push(&ring, &msg)
                } else {
                    p.try_reserve(&ring, len as usize)
                };
                assert_eq!(
                    got.ok(),
                    Some(expected),
                    "reserve({len}) in {model_state}",
                    model_state = state(&model)
                );
                if expected && op == 0 {
                    model.push(msg);
                }
            }
            2 => {
                let got = c
                    .try_pop(&ring)
                    .expect("a well-formed ring never reads as corrupted");
                assert_eq!(got, model.pop(), "pop in {}", state(&model));
            }
            3 => {
                // Peek and read in place; release only if the input says so.
                let got = c
                    .try_peek(&ring)
                    .expect("a well-formed ring never reads as corrupted");
                let want = model.front().cloned();
                assert_eq!(
                    got,
                    want.as_ref().map(Vec::len),
                    "peek in {}",
                    state(&model)
                );
                if let Some(len) = got {
                    let read = c.read(&ring, len, <[u8]>::to_vec);
                    assert_eq!(Some(read), want);
                    if input.u8() & 1 == 1 {
                        c.release(&ring, len);
                        model.pop();
                    }
                }
            }
            4 => {
                assert_eq!(ring.ctl().depth(size), Some(model.depth()));
            }
            5 => {
                // A new producer takes over where the shared words say (no reservation open).
                p = Producer::attach(&ring).expect("a well-formed ring attaches");
            }
            _ => {
                // A new consumer takes over: an unreleased peek is read again.
                c = Consumer::attach(&ring).expect("a well-formed ring attaches");
            }
        }
        assert_eq!(
            ring.ctl().positions(),
            (model.head, model.tail),
            "positions after an op"
        );
    }
    // Drain: everything the model holds comes out, in order, then nothing.
    while let Some(m) = model.pop() {
        assert_eq!(c.try_pop(&ring).ok(), Some(Some(m)));
    }
    assert_eq!(c.try_pop(&ring).ok(), Some(None));
    assert_eq!(ring.ctl().positions(), (model.head, model.tail));
}

fn state(m: &Model) -> String {
    format!(
        "ring of {} (head {}, tail {}, {} records)",
        m.size,
        m.head,
        m.tail,
        m.records.len()
    )
}

fn run_hostile(h: &HeapRing, size: u64, max: u64, mut input: Input<'_>) {
    let ring = h.ring();
    let mut p = Producer::attach(&ring).ok();
    let mut c = Consumer::attach(&ring).ok();
    let mut seed = 0u8;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match input.u8() % 9 {
            0 => {
                let len = input.u16() as u64 % (max + 1);
                seed = seed.wrapping_add(1);
                if let Some(p) = p.as_mut() {
                    let _ = check(p.try_push(&ring, &payload(seed, len as usize)));
                }
            }
            1 => {
                if let Some(c) = c.as_mut() {
                    if let Ok(Some(m)) = check(c.try_pop(&ring)) {
                        assert!(m.len() as u64 <= max, "{} > {max}", m.len());
                    }
                }
            }
            2 => {
                if let Some(c) = c.as_mut() {
                    if let Ok(Some(len)) = check(c.try_peek(&ring)) {
                        assert!(len as u64 <= max);
                        black_box(c.read(&ring, len, |b| b.iter().map(|&x| x as u64).sum::<u64>()));
                        if input.u8() & 1 == 1 {
                            c.release(&ring, len);
                        }
                    }
                }
            }
            3 => {
                let (w, v) = (input.u8() as usize, input.u64());
                h.scribble(w, v);
            }
            4 => {
                let (head, tail) = ring.ctl().positions();
                let v = input.u64();
                match input.u8() % 4 {
                    0 => ring.ctl().store_positions(v, tail),
                    1 => ring.ctl().store_positions(head, v),
                    // Small moves: the checks must catch a position nudged by a few bytes.
                    2 => ring.ctl().store_positions(head.wrapping_add(v % 64), tail),
                    _ => ring.ctl().store_positions(head, tail.wrapping_add(v % 64)),
                }
            }
            5 => {
                // Parked flags: a scribbled flag costs a wake syscall, nothing more.
                let v = input.u32();
                ring.ctl()
                    .reader_flag()
                    .store(v, crate::loom::atomic::Ordering::Relaxed);
                ring.ctl()
                    .writer_flag()
                    .store(v >> 16, crate::loom::atomic::Ordering::Relaxed);
            }
            6 => p = Producer::attach(&ring).ok(),
            7 => c = Consumer::attach(&ring).ok(),
            _ => {
                black_box(ring.ctl().depth(size));
            }
        }
    }
}

/// A ring call on hostile state: a value or `Corrupted`, nothing else.
fn check<T: std::fmt::Debug>(r: crate::Result<T>) -> crate::Result<T> {
    if let Err(e) = &r {
        assert!(
            matches!(e, Error::Corrupted { .. }),
            "unexpected error {e:?}"
        );
    }
    r
}
