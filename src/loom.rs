//! The one place that picks between std and loom.
//!
//! Code never names `std::sync::atomic` directly (except `sys/`, which talks to the kernel):
//! it imports `crate::loom::atomic::*`, `crate::loom::futex` and `crate::loom::hint`. Under
//! `--cfg loom` these become loom's model-checked types, and the futex becomes a model:
//!
//! - `futex::wait(word, expected, None)` blocks on one global loom `Condvar` after checking
//!   `word == expected` under its `Mutex`, and `futex::wake` notifies under the same `Mutex`.
//!   A wake that happens between the check and the sleep is therefore impossible, exactly as
//!   with the kernel's futex; a *protocol* that forgets to wake leaves loom a deadlock to report.
//! - Timed waits return at once (as `Woken`: spurious wake-ups are legal), so a timed loop in
//!   a model behaves like a spin loop; loom explores it as long as the loop yields.
//! - `futex::now()` is a fixed value: deadlines never pass inside a model.

#[cfg(not(loom))]
pub(crate) mod atomic {
    #[allow(unused_imports)]
    pub(crate) use std::sync::atomic::{
        compiler_fence, fence, AtomicBool, AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize,
        AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}

#[cfg(loom)]
pub(crate) mod atomic {
    #[allow(unused_imports)]
    pub(crate) use loom::sync::atomic::{
        fence, AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32,
        AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}

/// Spinning hints: `spin_loop` on real hardware; a scheduling point under loom.
pub(crate) mod hint {
    /// One step of a spin loop.
    #[inline]
    pub(crate) fn spin_loop() {
        #[cfg(not(loom))]
        std::hint::spin_loop();
        #[cfg(loom)]
        loom::thread::yield_now();
    }

    /// Give the core away (a slower backoff step).
    #[inline]
    pub(crate) fn yield_now() {
        #[cfg(not(loom))]
        std::thread::yield_now();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}

#[cfg(not(loom))]
pub(crate) mod futex {
    pub(crate) use crate::sys::futex::{now, wait, wake, WaitResult};
}

#[cfg(loom)]
pub(crate) mod futex {
    use super::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    pub(crate) use crate::sys::futex::WaitResult;

    loom::lazy_static! {
        static ref PARK: (loom::sync::Mutex<()>, loom::sync::Condvar) =
            (loom::sync::Mutex::new(()), loom::sync::Condvar::new());
    }

    pub(crate) fn now() -> Duration {
        Duration::from_secs(1)
    }

    pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Duration>) -> WaitResult {
        let guard = PARK.0.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return WaitResult::ValueChanged;
        }
        if deadline.is_some() {
            drop(guard);
            loom::thread::yield_now();
            return WaitResult::Woken;
        }
        drop(PARK.1.wait(guard).unwrap());
        WaitResult::Woken
    }

    pub(crate) fn wake(_word: &AtomicU32, _n: u32) -> usize {
        let _guard = PARK.0.lock().unwrap();
        PARK.1.notify_all();
        1
    }
}
