//! The only place that calls `futex(2)`.
//!
//! Every word lives in a `MAP_SHARED` mapping that other processes map too, so no call here
//! passes `FUTEX_PRIVATE_FLAG` (a private futex is keyed by the virtual address in one process
//! and would never meet a waiter in another). Waits take an *absolute* `CLOCK_MONOTONIC`
//! deadline (`FUTEX_WAIT_BITSET`), so spurious wake-ups and `EINTR` never stretch a timeout.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Why [`wait`] returned. Callers re-check their condition in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken, interrupted by a signal, or spuriously: the condition may or may not hold.
    Woken,
    /// The word did not hold `expected` when the kernel looked (`EAGAIN`).
    ValueChanged,
    /// The deadline passed.
    TimedOut,
}

/// The current time of `CLOCK_MONOTONIC`, the clock of futex deadlines.
pub fn now() -> Duration {
    // SAFETY: timespec is plain data; all-zero is valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `CLOCK_MONOTONIC_COARSE` in whole milliseconds: a vDSO read of a few nanoseconds (no
/// syscall) whose resolution is one scheduler tick (1–4 ms). For rate-limiting liveness checks
/// on hot paths, never for deadlines.
pub fn coarse_now_ms() -> u64 {
    // SAFETY: timespec is plain data; all-zero is valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC_COARSE exists since Linux 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Sleeps while `*word == expected`, until woken or until the monotonic time `deadline`
/// (as returned by [`now`]); `None` waits without a deadline.
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Duration>) -> WaitResult {
    let ts = deadline.map(|d| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned 4-byte atomic for the duration of the call; the
    // timespec (if any) outlives it. FUTEX_WAIT_BITSET reads `ts` as an absolute
    // CLOCK_MONOTONIC time. A shared futex may be in any mapping.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if r == 0 {
        return WaitResult::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => WaitResult::ValueChanged,
        Some(libc::ETIMEDOUT) => WaitResult::TimedOut,
        Some(libc::EINTR) => WaitResult::Woken,
        other => {
            debug_assert!(false, "unexpected futex wait error {other:?}");
            WaitResult::Woken
        }
    }
}

/// Wakes up to `n` waiters on `word`; returns how many were woken.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: `word` is a valid, aligned 4-byte atomic; FUTEX_WAKE only reads its address.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    r.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn wait_returns_at_once_when_value_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), WaitResult::ValueChanged);
    }

    #[test]
    fn wait_times_out_at_deadline() {
        let w = AtomicU32::new(0);
        let deadline = now() + Duration::from_millis(20);
        assert_eq!(wait(&w, 0, Some(deadline)), WaitResult::TimedOut);
        assert!(now() >= deadline);
    }

    #[test]
    fn wake_wakes_a_waiter() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, Some(now() + Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::Release);
        wake(&w, u32::MAX);
        t.join().unwrap();
    }
}
