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
//!
//! # Adaptive mode ([`Mode`])
//! A `membarrier` is cheap when the peer's CPU runs nothing registered (~0.1 µs here) but
//! costs an inter-processor interrupt when it does (~3 µs under this KVM guest), and a side
//! that parks on every message (request/response where both sides sleep) would pay it every
//! time, far more than the fences it saves. So a light side turns *heavy* when it wakes a
//! parked peer, and light again after [`HEAVY_RUN`] publications that found nobody parked
//! (which cost it ~5 ns each, about one cheap `membarrier` in all):
//!
//! - light -> heavy, right after waking the peer: store 0 into the light word, `fence(SeqCst)`,
//!   then load the peer's parked flag once more and wake it if set. A parker that reads the
//!   new 0 skips `membarrier`; every later publication is fenced (plain Dekker), and the
//!   earlier light ones precede our fence: if our fence comes first in the SeqCst order, the
//!   parker's re-check after its own fence sees them; if the parker's comes first, the flag
//!   load after our fence sees its announcement.
//! - heavy -> light: [`declare`] (store `LIGHT`, fence) and publish light from then on. A
//!   parker that read the old 0 fenced before our fence, so our later flag loads see it; one
//!   whose fence comes after ours reads `LIGHT` and issues `membarrier`.

use std::cell::Cell;

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

/// Publications without a parked peer after which a side that went heavy turns light again.
pub(crate) const HEAVY_RUN: u32 = 256;

/// A publishing side's barrier mode, adapted to how often its peer parks (module docs).
/// Owned by the side (not shared across threads).
#[derive(Debug)]
pub(crate) struct Mode {
    /// This process may be light at all ([`light_mode`]).
    can_be_light: bool,
    /// Publishing light now (mirrors what we last declared in our light word).
    light: Cell<bool>,
    /// Heavy publications left before turning light again.
    heavy_left: Cell<u32>,
}

impl Mode {
    /// The mode of a side attaching now: light if it may be. The caller declares the same
    /// (`can_be_light`) in its light word before it attaches.
    pub(crate) fn new(can_be_light: bool) -> Mode {
        Mode {
            can_be_light,
            light: Cell::new(can_be_light),
            heavy_left: Cell::new(0),
        }
    }

    /// The barrier after a publication (before loading the peer's parked flag).
    #[inline(always)]
    pub(crate) fn barrier(&self) {
        publish_barrier(self.light.get());
    }

    /// After a publication that found the peer's flag down.
    #[inline(always)]
    pub(crate) fn quiet(&self, light_word: &AtomicU32) {
        if !self.light.get() && self.can_be_light {
            self.count_down(light_word);
        }
    }

    #[cold]
    fn count_down(&self, light_word: &AtomicU32) {
        let left = self.heavy_left.get().saturating_sub(1);
        self.heavy_left.set(left);
        if left == 0 {
            declare(light_word, true);
            self.light.set(true);
        }
    }

    /// After waking the parked peer. Returns `true` if the side just turned heavy: the caller
    /// must then load the peer's flag once more and wake it if set (module docs).
    #[cold]
    pub(crate) fn woke(&self, light_word: &AtomicU32) -> bool {
        self.heavy_left.set(HEAVY_RUN);
        if !self.light.get() {
            return false;
        }
        self.light.set(false);
        declare(light_word, false);
        true
    }
}
