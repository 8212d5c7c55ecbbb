//! Pinning threads to cores, for benchmarks whose two sides spin.

use std::io;

/// Pins the calling thread to `cpu` (modulo the number of online CPUs).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    // SAFETY: cpu_set_t is a plain bitmask for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t and the index is below CPU_SETSIZE for any n we see.
    unsafe { libc::CPU_SET(cpu % n, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` outlives the call and its size is passed.
    super::cvt(unsafe {
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    })?;
    Ok(())
}

/// A cheap, monotonic-enough tick counter for rate limits (not for measuring time): the TSC on
/// x86_64 (about 15 ns here, against about 45 ns for `clock_gettime` in this VM), elsewhere
/// `CLOCK_MONOTONIC` nanoseconds. Ticks are roughly nanoseconds to a factor of a few; a value
/// that goes backwards (a thread migrating between unsynchronised TSCs) only makes a
/// wrapping-difference look huge, which rate limiters treat as "due".
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no memory effects and exists on every x86_64 CPU.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        super::futex::now().as_nanos() as u64
    }
}
