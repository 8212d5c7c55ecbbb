//! Zero-copy access to the ring: a run of free slots to write in place ([`WriteChunk`]), a run
//! of queued items to read in place ([`ReadChunk`]), each published with one index store.
//!
//! # Aliasing
//! A chunk hands out `&mut [T]` / `&[T]` into shared memory. That is sound only while the
//! protocol makes those slots exclusively this handle's: the free run `[tail, tail + n)` is
//! written by nobody else until we publish it, and the ready run `[head, head + n)` is written
//! by nobody else until we release it. The `&mut self` borrow of the handle keeps every other
//! operation of this process away from them while the chunk lives. A *misbehaving* peer
//! process that writes slots it does not own anyway would race with these references, which
//! Rust counts as undefined behaviour (in practice: the reader sees some bits of `T`, every
//! pattern of which is a valid `T` since `T: Pod`). The copying operations (`send`,
//! `send_batch`, `recv`, `recv_batch`) never create references into the slots and stay sound
//! even then; prefer them when the peer is not trusted.

use std::fmt;

use bytemuck::Pod;

use super::{Receiver, Sender};

/// A run of free slots of a [`Sender`], writable in place; nothing is sent until
/// [`commit`](WriteChunk::commit).
///
/// The slots hold whatever bits they last held (some valid `T`, since `T: Pod`), not the
/// values the caller will send: write every element you commit. Dropping the chunk without
/// committing sends nothing.
pub struct WriteChunk<'a, T: Pod> {
    pub(super) sender: &'a Sender<T>,
    /// Position of the first slot (the sender's tail).
    pub(super) start: u64,
    pub(super) len: usize,
}

impl<T: Pod> WriteChunk<'_, T> {
    /// Number of slots in the chunk.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the chunk has no slots.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slots as two slices (the second is non-empty when the run wraps around the end of
    /// the ring). Element `i` of the chunk is sent `i`-th.
    pub fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        let (first, second) = self.sender.chan.split(self.start, self.len);
        // SAFETY: `split` returns two disjoint in-bounds runs of slots (the ring's slot array
        // lies inside the mapping, which the sender keeps alive for 'a); they are free per
        // protocol (the consumer released them, observed with Acquire) and unpublished, so no
        // other party touches them until `commit`; `&mut self` makes the slices unique in
        // this process. Every bit pattern is a valid `T: Pod`. See the module docs for a
        // peer that breaks the protocol.
        unsafe {
            (
                std::slice::from_raw_parts_mut(first.0, first.1),
                std::slice::from_raw_parts_mut(second.0, second.1),
            )
        }
    }

    /// Copies `values` into the first `values.len()` slots of the chunk.
    ///
    /// # Panics
    /// If `values` is longer than the chunk.
    pub fn copy_from_slice(&mut self, values: &[T]) {
        assert!(
            values.len() <= self.len,
            "more values than slots in the chunk"
        );
        self.sender.chan.write_run(self.start, values);
    }

    /// Sends the first `n` slots (one index publication) and wakes the receiver if it sleeps.
    ///
    /// # Panics
    /// If `n` exceeds the chunk's length.
    pub fn commit(self, n: usize) {
        assert!(
            n <= self.len,
            "commit({n}) of a chunk of {} slots",
            self.len
        );
        if n > 0 {
            self.sender.core.commit(self.sender.chan.words(), n as u64);
        }
    }

    /// Sends every slot of the chunk.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n)
    }
}

impl<T: Pod> fmt::Debug for WriteChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteChunk")
            .field("len", &self.len)
            .finish()
    }
}

/// A run of queued items of a [`Receiver`], readable in place; nothing is consumed until
/// [`commit`](ReadChunk::commit).
///
/// Dropping the chunk without committing leaves the items queued.
pub struct ReadChunk<'a, T: Pod> {
    pub(super) receiver: &'a Receiver<T>,
    /// Position of the first item (the receiver's head).
    pub(super) start: u64,
    pub(super) len: usize,
}

impl<T: Pod> ReadChunk<'_, T> {
    /// Number of items in the chunk.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the chunk has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The items as two slices, in order (the second is non-empty when the run wraps).
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let (first, second) = self.receiver.chan.split(self.start, self.len);
        // SAFETY: two disjoint in-bounds runs of slots inside the mapping the receiver keeps
        // alive; published by the producer (Release, observed with Acquire) and not
        // writable by it until we release them, which needs `commit` (consuming the chunk,
        // which borrows the slices). Every bit pattern is a valid `T: Pod`. See the module
        // docs for a peer that breaks the protocol.
        unsafe {
            (
                std::slice::from_raw_parts(first.0, first.1),
                std::slice::from_raw_parts(second.0, second.1),
            )
        }
    }

    /// Copies the first `out.len()` items of the chunk into `out`.
    ///
    /// # Panics
    /// If `out` is longer than the chunk.
    pub fn copy_to_slice(&self, out: &mut [T]) {
        assert!(out.len() <= self.len, "more room than items in the chunk");
        self.receiver.chan.read_run(self.start, out);
    }

    /// Consumes the first `n` items (one index publication), freeing their slots for the
    /// sender and waking it if it sleeps.
    ///
    /// # Panics
    /// If `n` exceeds the chunk's length.
    pub fn commit(self, n: usize) {
        assert!(
            n <= self.len,
            "commit({n}) of a chunk of {} items",
            self.len
        );
        if n > 0 {
            self.receiver
                .core
                .release(self.receiver.chan.words(), n as u64);
        }
    }

    /// Consumes every item of the chunk.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n)
    }
}

impl<T: Pod> fmt::Debug for ReadChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadChunk").field("len", &self.len).finish()
    }
}
