//! Asymmetric store->load barriers between processes: the hot side (a queue publishing a
//! message) pays a compiler fence, the cold side (a waiter about to sleep) pays a
//! `membarrier(2)`.
//!
//! Every parking handshake in the queues is Dekker's pattern: the publisher stores its new
//! position then loads the peer's "I park" flag; the parker stores the flag then re-loads the
//! position. Each side needs a store->load barrier between its two accesses, and a
//! `fence(SeqCst)` costs about as much as a whole small message (~5 ns here, RESEARCH 5b).
//! So a side that publishes often may go *light*:
//!
//! | who                          | after each publication | after announcing "I park"         |
//! |------------------------------|------------------------|-----------------------------------|
//! | light publisher (registered) | compiler fence only    |                                   |
//! | heavy publisher              | `fence(SeqCst)`        |                                   |
//! | parker, peer heavy           |                        | `fence(SeqCst)`                   |
//! | parker, peer light           |                        | `fence(SeqCst)` + `membarrier`    |
//!
//! A process may be light once it registered for global expedited membarriers
//! ([`light_mode`], once per process). `MEMBARRIER_CMD_GLOBAL_EXPEDITED` runs a full barrier on
//! every running thread of every registered process before it returns (threads not running
//! pass the scheduler's barriers anyway), so the light peer's publication either precedes
//! that barrier (the parker's re-check sees it) or follows it (the peer's flag load sees the
//! announcement). It costs about 1 µs, paid only on the way to a futex sleep, which costs ~20
//! µs to wake from on this machine anyway. Without registration (old kernel, seccomp) both
//! sides stay heavy: always correct.
//!
//! A side says whether it is light in a *light word* of the shared layout, written by
//! [`declare`] before it attaches and publishes anything; a parker reads the peer's word in
//! [`park_barrier`]. Loom cannot model `membarrier`: under `cfg(loom)` every side is heavy.

use crate::loom::atomic::{fence, AtomicU32, Ordering::Relaxed, Ordering::SeqCst};

/// Value of a light word while its side publishes with a compiler fence only.
pub(crate) const LIGHT: u32 = 1;

/// True if this process may publish with a compiler fence only: it registered (once) to
/// receive `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` barriers from parking peers.
#[cfg(not(loom))]
pub(crate) fn light_mode() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| crate::sys::membarrier::register_global_expedited().is_ok())
}

/// Loom models run every side heavy (loom cannot model `membarrier`).
#[cfg(loom)]
pub(crate) fn light_mode() -> bool {
    false
}

/// Declares in `light_word` whether this side will publish with a compiler fence only.
/// Call it before the side attaches (before any publication).
///
/// The `fence(SeqCst)` after the store makes the switch safe: a peer that announces parking
/// and then reads the *old* light word has its fence ordered before ours in the SeqCst order,
/// so every flag load we make after ours sees its announcement; a peer that reads the new word
/// issues `membarrier`.
pub(crate) fn declare(light_word: &AtomicU32, light: bool) {
    light_word.store(if light { LIGHT } else { 0 }, Relaxed);
    fence(SeqCst);
}

/// The barrier after a publication, before loading the peer's parked flag: a full fence, or,
/// for a light side, a compiler fence (the parking peer supplies the hardware barrier with
/// `membarrier`, see [`park_barrier`]).
#[inline(always)]
pub(crate) fn publish_barrier(light: bool) {
    #[cfg(not(loom))]
    if light {
        crate::loom::atomic::compiler_fence(SeqCst);
        return;
    }
    #[cfg(loom)]
    let _ = light;
    fence(SeqCst);
}

/// The barrier after announcing "I park", before re-checking the ring and the peer's
/// state: a full fence, plus `membarrier(GLOBAL_EXPEDITED)` if the peer's light word says
/// [`LIGHT`].
///
/// If the kernel refuses the call here although it accepted the peer's registration (a seccomp
/// filter on this process only), a wake-up may be lost: the sleep then ends at the slice
/// ([`SLICE`](super::wait::SLICE)), never later.
pub(crate) fn park_barrier(peer_light: &AtomicU32) {
    fence(SeqCst);
    #[cfg(not(loom))]
    if peer_light.load(Relaxed) == LIGHT {
        let _ = crate::sys::membarrier::global_expedited();
    }
    #[cfg(loom)]
    let _ = peer_light;
}
