//! The one place that picks between std and loom.
//!
//! Code never names `std::sync::atomic` directly (except `sys/`, which talks to the kernel):
//! it imports `crate::loom::atomic::*`, `crate::loom::futex` and `crate::loom::hint`. Under
//! `--cfg loom` these become loom's model-checked types, and the futex becomes a model:
//!
//! - `futex::wait(word, expected, None)` checks `word == expected` under one global loom
//!   `Mutex` and joins a wait queue; `futex::wake(word, n)` picks the `n` oldest waiters on that
//!   word under the same `Mutex`. As with the kernel's futex, a wake between the check and the
//!   sleep is impossible, and a wake reaches at most `n` waiters: a *protocol* that forgets to
//!   wake, or wakes too few, leaves loom a deadlock to report.
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

    /// The model's wait queue: who sleeps on which word, oldest first.
    #[derive(Default)]
    struct Queue {
        next_id: u64,
        /// (address of the word, waiter id), oldest first.
        sleeping: Vec<(usize, u64)>,
        /// Waiters picked by a `wake` that have not noticed yet.
        woken: Vec<u64>,
    }

    loom::lazy_static! {
        static ref FUTEX: (loom::sync::Mutex<Queue>, loom::sync::Condvar) =
            (loom::sync::Mutex::new(Queue::default()), loom::sync::Condvar::new());
    }

    pub(crate) fn now() -> Duration {
        Duration::from_secs(1)
    }

    /// Untimed: sleeps while `*word == expected` until a `wake` on the same word picks this
    /// waiter, exactly like the kernel (so a protocol that wakes the wrong waiter, or too few,
    /// leaves one asleep and loom reports the deadlock). Timed: returns at once (a spurious
    /// wake-up), since the model clock never reaches a deadline.
    pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Duration>) -> WaitResult {
        let mut q = FUTEX.0.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return WaitResult::ValueChanged;
        }
        if deadline.is_some() {
            drop(q);
            loom::thread::yield_now();
            return WaitResult::Woken;
        }
        let id = q.next_id;
        q.next_id += 1;
        q.sleeping.push((word as *const AtomicU32 as usize, id));
        loop {
            q = FUTEX.1.wait(q).unwrap();
            if let Some(i) = q.woken.iter().position(|&w| w == id) {
                q.woken.swap_remove(i);
                return WaitResult::Woken;
            }
        }
    }

    /// Wakes the `n` oldest waiters on `word`; returns how many.
    pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
        let addr = word as *const AtomicU32 as usize;
        let mut q = FUTEX.0.lock().unwrap();
        let mut left = n;
        let mut picked = Vec::new();
        q.sleeping.retain(|&(a, id)| {
            if a == addr && left > 0 {
                left -= 1;
                picked.push(id);
                false
            } else {
                true
            }
        });
        let woken = picked.len();
        if woken > 0 {
            q.woken.extend(picked);
            FUTEX.1.notify_all();
        }
        woken
    }
}
