//! `spsc_model`: a differential check of an spsc ring (one `Sender` and one `Receiver` in this
//! process, on a real region) against a `VecDeque` model of a bounded FIFO.
//!
//! # Input
//! ```text
//! u8     capacity: 1 << (b % 6)  (1 ..= 32)
//! u8     flags: bit 0 start at a given position; bits 1.. element type (u32, (), [u16; 3])
//! u64    (with bit 0) the position both indices start at, as if the ring had carried that
//!        many items (wrapping `u64` arithmetic included)
//! ...    the op script (up to 256 ops)
//! ```
//!
//! Every op is a non-blocking or zero-timeout call (`try_send`, `try_recv`, batches, write and
//! read chunks committing a fuzzed part, their `_timeout` forms, `len`/`is_disconnected`),
//! or drops / re-opens one endpoint. The result must be exactly what the model says, including
//! the disconnect rules: once the receiver dropped its handle sends fail with `Disconnected`;
//! once the sender dropped its handle the receiver drains what is queued, then reports
//! `Disconnected`; a re-opened endpoint continues from the shared positions.
//! (Proptest covers similar ground in the crate's unit tests; the fuzzer explores longer and
//! stranger sequences.)

use std::collections::VecDeque;
use std::fmt::Debug;
use std::time::Duration;

use bytemuck::Pod;

use super::input::{Input, Scratch, Scribbler};
use crate::error::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use crate::queue::spsc::{position_offsets, Receiver, Sender};
use crate::region::header::BODY_OFFSET;
use crate::region::Region;

/// Ops per input at most.
const MAX_OPS: usize = 256;

/// See the module docs for the input format.
pub fn spsc_model(data: &[u8]) {
    let mut input = Input::new(data);
    let cap = 1usize << (input.u8() % 6);
    let flags = input.u8();
    let start = if flags & 1 == 1 { input.u64() } else { 0 };
    match (flags >> 1) % 3 {
        0 => run::<u32>(cap, start, input, |x| x),
        1 => run::<()>(cap, start, input, |_| ()),
        _ => run::<[u16; 3]>(cap, start, input, |x| {
            [x as u16, (x >> 16) as u16, !(x as u16)]
        }),
    }
}

/// The model: the queued values and which endpoints are attached.
struct Model<T> {
    cap: usize,
    items: VecDeque<T>,
}

impl<T: Copy> Model<T> {
    fn room(&self) -> usize {
        self.cap - self.items.len()
    }
}

fn run<T: Pod + PartialEq + Debug>(
    cap: usize,
    start: u64,
    mut input: Input<'_>,
    make: fn(u32) -> T,
) {
    let mut scratch = Scratch::default();
    let name = scratch.name("spsc");
    Sender::<T>::create(&name, cap)
        .expect("creating a fresh ring")
        .persist();
    if start != 0 {
        // Nobody is attached now: set both positions, as a ring that has carried `start` items
        // and is empty would have them.
        let layout = crate::inspect::layout_of;
        let spec = *Region::open_observer(&name, &layout)
            .expect("observing a fresh ring")
            .spec();
        let (head, tail) = position_offsets(&spec);
        let s = Scribbler::open(&name).expect("the ring's file");
        s.write_u64((BODY_OFFSET + head) as u64, start);
        s.write_u64((BODY_OFFSET + tail) as u64, start);
    }
    let open_tx = || Sender::<T>::open(&name).expect("opening the sender");
    let open_rx = || Receiver::<T>::open(&name).expect("opening the receiver");
    let mut tx = Some(open_tx());
    let mut rx = Some(open_rx());
    let mut m = Model {
        cap,
        items: VecDeque::new(),
    };
    let mut counter = 0u32;
    let mut next = || {
        counter = counter.wrapping_add(1);
        make(counter)
    };
    let zero = Duration::ZERO;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = match input.u8() % 14 {
            // Timed chunks: 104 writes, 105 reads.
            13 => 104 + (input.u8() & 1),
            op => op,
        };
        match op {
            0 | 6 => {
                let Some(s) = &tx else { continue };
                let v = next();
                let want_ok = rx.is_some() && m.room() > 0;
                if op == 0 {
                    let want = if rx.is_none() {
                        Err(TrySendError::Disconnected(v))
                    } else if m.room() == 0 {
                        Err(TrySendError::Full(v))
                    } else {
                        Ok(())
                    };
                    assert_eq!(s.try_send(v), want, "try_send");
                } else {
                    let want = if rx.is_none() {
                        Err(SendTimeoutError::Disconnected(v))
                    } else if m.room() == 0 {
                        Err(SendTimeoutError::Timeout(v))
                    } else {
                        Ok(())
                    };
                    assert_eq!(s.send_timeout(v, zero), want, "send_timeout");
                }
                if want_ok {
                    m.items.push_back(v);
                }
            }
            1 | 7 => {
                let Some(r) = &rx else { continue };
                let front = m.items.pop_front();
                if op == 1 {
                    let want = match front {
                        Some(v) => Ok(v),
                        None if tx.is_none() => Err(TryRecvError::Disconnected),
                        None => Err(TryRecvError::Empty),
                    };
                    assert_eq!(r.try_recv(), want, "try_recv");
                } else {
                    let want = match front {
                        Some(v) => Ok(v),
                        None if tx.is_none() => Err(RecvTimeoutError::Disconnected),
                        None => Err(RecvTimeoutError::Timeout),
                    };
                    assert_eq!(r.recv_timeout(zero), want, "recv_timeout");
                }
            }
            2 | 11 => {
                let Some(s) = &tx else { continue };
                let k = input.below(2 * cap + 2);
                let vals: Vec<T> = (0..k).map(|_| next()).collect();
                let fit = k.min(m.room());
                if op == 2 {
                    let want = if k == 0 {
                        Ok(0)
                    } else if rx.is_none() {
                        Err(TrySendError::Disconnected(()))
                    } else if fit == 0 {
                        Err(TrySendError::Full(()))
                    } else {
                        Ok(fit)
                    };
                    let got = s.try_send_batch(&vals);
                    assert_eq!(got, want, "try_send_batch of {k}");
                    if let Ok(n) = got {
                        m.items.extend(&vals[..n]);
                    }
                } else {
                    let want = if k == 0 {
                        Ok(())
                    } else if rx.is_none() {
                        Err(SendTimeoutError::Disconnected(0))
                    } else if fit < k {
                        Err(SendTimeoutError::Timeout(fit))
                    } else {
                        Ok(())
                    };
                    assert_eq!(
                        s.send_batch_timeout(&vals, zero),
                        want,
                        "send_batch_timeout"
                    );
                    if rx.is_some() {
                        m.items.extend(&vals[..fit]);
                    }
                }
            }
            3 | 12 => {
                let Some(r) = &rx else { continue };
                let k = input.below(2 * cap + 2);
                let mut out = vec![T::zeroed(); k];
                let n = k.min(m.items.len());
                let got = if op == 3 {
                    r.try_recv_batch(&mut out)
                        .map_err(|e| e == TryRecvError::Disconnected)
                } else {
                    r.recv_batch_timeout(&mut out, zero)
                        .map_err(|e| e == RecvTimeoutError::Disconnected)
                };
                let want = if k == 0 || n > 0 {
                    Ok(n)
                } else {
                    Err(tx.is_none())
                };
                assert_eq!(got, want, "recv batch of {k} (true: disconnected)");
                for (i, v) in m.items.drain(..n).enumerate() {
                    assert_eq!(out[i], v, "batch item {i}");
                }
            }
            4 | 104 => {
                let Some(s) = tx.as_mut() else { continue };
                let max = input.below(2 * cap + 2);
                let commit = input.u8() as usize;
                let timed = op == 104;
                let max_c = max.min(cap);
                // Ok(len) or Err(true: disconnected / false: full or timed out).
                let want: Result<usize, bool> = if max_c == 0 {
                    Ok(0)
                } else if rx.is_none() {
                    Err(true)
                } else if m.room() == 0 {
                    Err(false)
                } else {
                    Ok(max_c.min(m.room()))
                };
                let chunk = if timed {
                    s.write_chunk_timeout(max, zero)
                        .map_err(|e| matches!(e, SendTimeoutError::Disconnected(())))
                } else {
                    s.try_write_chunk(max)
                        .map_err(|e| matches!(e, TrySendError::Disconnected(())))
                };
                match (chunk, want) {
                    (Ok(mut c), Ok(len)) => {
                        assert_eq!(c.len(), len, "write chunk of {max}");
                        let vals: Vec<T> = (0..len).map(|_| next()).collect();
                        let (a, b) = c.as_mut_slices();
                        assert_eq!(a.len() + b.len(), len);
                        for (slot, v) in a.iter_mut().chain(b.iter_mut()).zip(&vals) {
                            *slot = *v;
                        }
                        let n = commit % (len + 1);
                        c.commit(n);
                        m.items.extend(&vals[..n]);
                    }
                    (Err(got), Err(want)) => assert_eq!(got, want, "write chunk error"),
                    (got, want) => panic!(
                        "write chunk of {max}: got {:?}, want {want:?}",
                        got.map(|c| c.len())
                    ),
                }
            }
            5 | 105 => {
                let Some(r) = rx.as_mut() else { continue };
                let max = input.below(2 * cap + 2);
                let commit = input.u8() as usize;
                let timed = op == 105;
                let max_c = max.min(cap);
                let want: Result<usize, bool> = if max_c == 0 {
                    Ok(0)
                } else if !m.items.is_empty() {
                    Ok(max_c.min(m.items.len()))
                } else {
                    Err(tx.is_none())
                };
                let chunk = if timed {
                    r.read_chunk_timeout(max, zero)
                        .map_err(|e| e == RecvTimeoutError::Disconnected)
                } else {
                    r.try_read_chunk(max)
                        .map_err(|e| e == TryRecvError::Disconnected)
                };
                match (chunk, want) {
                    (Ok(c), Ok(len)) => {
                        assert_eq!(c.len(), len, "read chunk of {max}");
                        let (a, b) = c.as_slices();
                        assert_eq!(a.len() + b.len(), len);
                        for (i, (got, want)) in a.iter().chain(b).zip(&m.items).enumerate() {
                            assert_eq!(got, want, "read chunk item {i}");
                        }
                        let n = commit % (len + 1);
                        c.commit(n);
                        m.items.drain(..n);
                    }
                    (Err(got), Err(want)) => assert_eq!(got, want, "read chunk error"),
                    (got, want) => panic!(
                        "read chunk of {max}: got {:?}, want {want:?}",
                        got.map(|c| c.len())
                    ),
                }
            }
            8 => {
                if let Some(s) = &tx {
                    assert_eq!(s.len(), m.items.len(), "sender's len");
                    assert_eq!(s.is_empty(), m.items.is_empty());
                    assert_eq!(s.capacity(), cap);
                    assert_eq!(
                        s.is_disconnected(),
                        rx.is_none(),
                        "sender's is_disconnected"
                    );
                }
                if let Some(r) = &rx {
                    assert_eq!(r.len(), m.items.len(), "receiver's len");
                    assert_eq!(r.is_empty(), m.items.is_empty());
                    assert_eq!(r.capacity(), cap);
                    assert_eq!(
                        r.is_disconnected(),
                        tx.is_none(),
                        "receiver's is_disconnected"
                    );
                }
            }
            9 => tx = if tx.is_some() { None } else { Some(open_tx()) },
            _ => rx = if rx.is_some() { None } else { Some(open_rx()) },
        }
    }
    // Drain what is left through a (re-opened) receiver, with the sender gone.
    drop(tx);
    let r = rx.unwrap_or_else(open_rx);
    while let Some(v) = m.items.pop_front() {
        assert_eq!(r.try_recv(), Ok(v), "drain");
    }
    assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected), "drained");
}
