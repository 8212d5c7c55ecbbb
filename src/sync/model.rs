//! What the loom models of the sync objects share: model cells read and written through loom
//! (so that a race fails the model), and model participants.

use loom::cell::UnsafeCell;

use crate::region::Token;

/// Reads a model cell. Loom checks that the access is ordered after every conflicting one
/// (a race fails the model), which is what the primitive under test must guarantee.
pub(crate) fn get<V: Copy>(c: &UnsafeCell<V>) -> V {
    // SAFETY: loom tracks every access to the cell and fails the model on a race.
    c.with(|p| unsafe { *p })
}

/// Writes a model cell (see [`get`]).
pub(crate) fn set<V>(c: &UnsafeCell<V>, v: V) {
    // SAFETY: loom tracks every access to the cell and fails the model on a race.
    c.with_mut(|p| unsafe { *p = v })
}

/// The token of the model participant in slot `slot` (generation 1).
pub(crate) fn token(slot: u32) -> Token {
    Token::new(slot, 1)
}

/// The liveness oracle of a model in which every participant lives.
pub(crate) fn all_alive(_: Token) -> bool {
    true
}
