//! Two-process measurement harness: fork, pin, start together, collect.
//!
//! Every cross-process scenario runs its two sides in two processes made by `fork()` from this
//! (single-threaded) benchmark process. The child never returns into Rust's runtime: it runs its
//! side and leaves with `_exit`. Both sides share an anonymous `MAP_SHARED` page for the start
//! line and the child's result; spinning scenarios pin the sides to distinct CPUs.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// A page of memory shared by parent and forked child (anonymous, `MAP_SHARED`).
pub struct SharedPage {
    ptr: *mut u8,
    len: usize,
}

impl SharedPage {
    pub fn new(len: usize) -> SharedPage {
        let len = len.max(4096).next_multiple_of(4096);
        // SAFETY: an anonymous shared mapping with no address hint; checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "mmap of a shared page failed");
        SharedPage {
            ptr: ptr as *mut u8,
            len,
        }
    }

    /// The `i`-th 128-byte line as an atomic u64 (start flags, results).
    pub fn word(&self, line: usize) -> &AtomicU64 {
        assert!((line + 1) * 128 <= self.len);
        // SAFETY: in bounds (checked), 128-aligned within a page-aligned mapping, and only ever
        // accessed atomically; the reference lives no longer than the mapping.
        unsafe { &*(self.ptr.add(line * 128) as *const AtomicU64) }
    }

    /// A 32-bit futex word on line `line`.
    pub fn word32(&self, line: usize) -> &AtomicU32 {
        assert!((line + 1) * 128 <= self.len);
        // SAFETY: as in `word`; 4-byte alignment holds.
        unsafe { &*(self.ptr.add(line * 128) as *const AtomicU32) }
    }

    /// Raw bytes from `offset` (for rings); the caller keeps accesses within `len`.
    pub fn ptr(&self, offset: usize) -> *mut u8 {
        assert!(offset <= self.len);
        // SAFETY: offset within the mapping (checked).
        unsafe { self.ptr.add(offset) }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no references outlive `self`.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Lines of the control page.
const READY: usize = 0;
const GO: usize = 1;
const RESULT: usize = 2;

/// Runs `child` in a forked process (pinned to CPU 1 when `pin`) and `parent` here (CPU 0),
/// starting both at once. Returns the parent's result and the child's `u64` result.
///
/// The child's closure must not allocate locks shared with the parent's threads (there are none:
/// the benchmark is single-threaded when it forks).
pub fn two_processes<R>(
    pin: bool,
    child: impl FnOnce() -> u64,
    parent: impl FnOnce() -> R,
) -> (R, u64) {
    let ctl = SharedPage::new(4096);
    // A pin left by an earlier run would be inherited by the child and put both sides on one CPU.
    unpin();
    // SAFETY: the benchmark process is single-threaded here; the child only runs `child` and then
    // `_exit`s without unwinding into the parent's state.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if pin {
                let _ = interproc::pin_to_cpu(1);
            }
            ctl.word(READY).store(1, Ordering::Release);
            while ctl.word(GO).load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
            let r = child();
            ctl.word(RESULT).store(r, Ordering::Release);
        }));
        // SAFETY: leaves the forked child at once, without running the parent's destructors.
        unsafe { libc::_exit(if code.is_ok() { 0 } else { 101 }) };
    }
    if pin {
        let _ = interproc::pin_to_cpu(0);
    }
    while ctl.word(READY).load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    ctl.word(GO).store(1, Ordering::Release);
    let r = parent();
    unpin();
    let mut status = 0;
    // SAFETY: waits for the child made above; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "benchmark child failed (status {status:#x})"
    );
    (r, ctl.word(RESULT).load(Ordering::Acquire))
}

/// Runs `work(i)` for `i in 0..n` in `n` forked processes (unpinned: blocking scenarios), all
/// started at once; returns the nanoseconds from the start until the last one finished.
pub fn n_processes(n: usize, work: impl Fn(usize)) -> u64 {
    let ctl = SharedPage::new(4096);
    unpin();
    let mut pids = Vec::new();
    for i in 0..n {
        // SAFETY: the benchmark process is single-threaded here; the child only runs `work` and
        // then `_exit`s without unwinding into the parent's state.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ctl.word(READY).fetch_add(1, Ordering::AcqRel);
                while ctl.word(GO).load(Ordering::Acquire) == 0 {
                    std::thread::yield_now();
                }
                work(i);
            }))
            .is_ok();
            // SAFETY: leaves the forked child at once, without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 101 }) };
        }
        pids.push(pid);
    }
    while ctl.word(READY).load(Ordering::Acquire) < n as u64 {
        std::thread::yield_now();
    }
    let start = now_ns();
    ctl.word(GO).store(1, Ordering::Release);
    for pid in pids {
        let mut status = 0;
        // SAFETY: waits for a child made above; `status` is a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "benchmark child failed (status {status:#x})"
        );
    }
    now_ns() - start
}

/// Unpins the calling process (blocking scenarios must not spin, and need no pinning).
pub fn unpin() {
    let n = interproc_cpus();
    // SAFETY: cpu_set_t all-zero is the empty set; we add every online CPU.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in 0..n {
        // SAFETY: `c` is below the number of online CPUs, far below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 is this thread; `set` is valid for the call.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

/// CPUs online. Not `available_parallelism`, which answers from the calling thread's affinity
/// mask: after a pinned run that is one CPU, and `unpin` would then "unpin" to that one CPU.
fn interproc_cpus() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n)
        .unwrap_or(1)
        .clamp(1, libc::CPU_SETSIZE as usize)
}

/// Nanoseconds since an arbitrary start, from the monotonic clock (vDSO, ~20 ns).
#[inline]
pub fn now_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Sorted samples and their percentiles.
pub struct Percentiles(Vec<u64>);

impl Percentiles {
    pub fn new(mut samples: Vec<u64>) -> Percentiles {
        samples.sort_unstable();
        Percentiles(samples)
    }
    pub fn at(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let i = ((self.0.len() - 1) as f64 * p).round() as usize;
        self.0[i] as f64
    }
}

/// The median of a few repetition results.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    if xs.is_empty() {
        return f64::NAN;
    }
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// Messages per second from a count and an elapsed time in nanoseconds.
pub fn rate(count: u64, ns: u64) -> f64 {
    count as f64 * 1e9 / ns.max(1) as f64
}
