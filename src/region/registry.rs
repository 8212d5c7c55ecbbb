//! The participant table: who is attached to a region, and whether they still live.
//!
//! Each handle that attaches to a region (every `create`/`open` of any object) takes one of
//! [`MAX_PARTICIPANTS`] slots. The *truth* of a slot is an OFD lock on the byte
//! `PARTICIPANT_LOCK_BASE + slot` of the region's file, held through the handle's own open file
//! description: the kernel drops it when the handle is dropped or its process dies (see
//! `sys::liveness`). Claiming a slot is therefore a `F_OFD_SETLK` that the kernel arbitrates;
//! no CAS in shared memory is involved, and a slot whose holder died is free again at once.
//!
//! The words in the slot are informational, written by the slot's holder after it took the
//! lock:
//!
//! ```text
//! Slot { pid: u32, generation: u32, start_time: u64 }     16 bytes, 128 slots = 2 KiB
//! ```
//!
//! `generation` counts claims of the slot (never 0 once claimed). A participant is named
//! elsewhere in the region (a mutex's owner field, say) by a [`Token`]: slot and generation.
//! A token is alive while its slot's lock is held *and* the slot's generation still matches,
//! so a slot reused by a new process does not keep a dead owner's token alive. While a new
//! holder is between taking the lock and bumping the generation, a dead token can read as
//! alive for a moment; never the other way round. Waiters re-check every slice, so that
//! window only delays recovery, it never causes a false "dead".

use crate::loom::atomic::{AtomicU32, AtomicU64};

/// How many handles can be attached to one region at once.
pub const MAX_PARTICIPANTS: usize = 128;
/// Bytes of one slot.
pub const SLOT_LEN: usize = 16;
/// Bytes of the whole table.
pub const REGISTRY_LEN: usize = MAX_PARTICIPANTS * SLOT_LEN;

/// File offset of the lock the creator holds while it owns the name (far beyond any length).
pub const OWNER_LOCK: u64 = 1 << 40;
/// File offset of participant slot 0's lock.
pub const PARTICIPANT_LOCK_BASE: u64 = OWNER_LOCK + 64;
/// File offset of role 0's lock (an spsc sender, a pipe end, ...).
pub const ROLE_LOCK_BASE: u64 = OWNER_LOCK + 1024;
/// How many roles a region may define.
pub const MAX_ROLES: u32 = 64;

/// Bits of a [`Token`] that hold the slot.
const SLOT_BITS: u32 = 7;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// Bits of a token that hold the generation: tokens fit in 29 bits, leaving 3 for lock flags.
pub const GENERATION_BITS: u32 = 22;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

#[cfg(not(loom))]
const _: () = assert!(MAX_PARTICIPANTS == 1 << SLOT_BITS);

/// One row of the table, in shared memory.
#[repr(C)]
pub struct Slot {
    /// The holder's pid (0: free or being claimed).
    pub pid: AtomicU32,
    /// Claims so far; the low [`GENERATION_BITS`] are part of the holder's [`Token`].
    pub generation: AtomicU32,
    /// The holder's start time (clock ticks since boot).
    pub start_time: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_LEN);

/// Names one attachment of one process for as long as it lasts: never 0, fits in 29 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u32);

impl Token {
    /// The token of `slot` at `generation`.
    pub fn new(slot: u32, generation: u32) -> Token {
        let g = generation & GENERATION_MASK;
        // Generation 0 never occurs after masking (claim skips it), so tokens are never 0.
        Token(((g.max(1)) << SLOT_BITS) | (slot & SLOT_MASK))
    }

    /// The raw 29-bit value stored in shared words.
    pub fn raw(self) -> u32 {
        self.0
    }

    /// A token read back from shared memory; `None` for 0 or for bits above 29.
    pub fn from_raw(raw: u32) -> Option<Token> {
        (raw != 0 && raw >> (SLOT_BITS + GENERATION_BITS) == 0 && raw >> SLOT_BITS != 0)
            .then_some(Token(raw))
    }

    /// The slot this token names.
    pub fn slot(self) -> u32 {
        self.0 & SLOT_MASK
    }

    /// The generation bits this token carries.
    pub fn generation(self) -> u32 {
        self.0 >> SLOT_BITS
    }

    /// True if a slot whose generation word reads `generation` is still this token's.
    pub fn matches_generation(self, generation: u32) -> bool {
        (generation & GENERATION_MASK).max(1) == self.generation()
    }
}

/// The next generation after `g`: skips values whose low bits are 0.
pub fn next_generation(g: u32) -> u32 {
    let mut n = g.wrapping_add(1);
    if n & GENERATION_MASK == 0 {
        n = n.wrapping_add(1);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_never_zero() {
        for slot in [0, 1, 127] {
            for gen in [0, 1, 2, GENERATION_MASK, GENERATION_MASK + 1, u32::MAX] {
                let t = Token::new(slot, gen);
                assert_ne!(t.raw(), 0);
                assert_eq!(t.slot(), slot);
                assert!(t.raw() < 1 << 29);
                assert_eq!(Token::from_raw(t.raw()), Some(t));
                assert!(t.matches_generation(gen));
            }
        }
        assert_eq!(Token::from_raw(0), None);
        assert_eq!(Token::from_raw(1 << 30), None);
        assert_eq!(
            Token::from_raw(5),
            None,
            "generation bits 0 never name a participant"
        );
    }

    #[test]
    fn generations_skip_zero() {
        assert_eq!(next_generation(0), 1);
        assert_eq!(next_generation(GENERATION_MASK) & GENERATION_MASK, 1);
        assert_ne!(next_generation(u32::MAX) & GENERATION_MASK, 0);
    }
}
