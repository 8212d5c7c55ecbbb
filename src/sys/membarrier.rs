//! `membarrier(2)`: asymmetric memory barriers across processes.
//!
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED` makes every *running* thread of every process that
//! registered with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` execute a full memory barrier
//! (by IPI) before the call returns; threads that are not running pass through the scheduler's
//! barriers anyway. A rare side that issues it may pair with a hot side that uses only a
//! compiler fence (folly's `asymmetricHeavyBarrier`, liburcu's membarrier flavour).
//! Linux >= 4.16; seccomp or old kernels may refuse it (callers keep a fallback).

use std::io;

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

fn membarrier(cmd: libc::c_int) -> io::Result<libc::c_int> {
    // SAFETY: membarrier takes two integer arguments and touches no user memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    };
    super::cvt(r as libc::c_int)
}

/// Registers the calling process to receive [`global_expedited`] barriers (idempotent).
/// Fails if the kernel lacks the command or refuses it.
pub fn register_global_expedited() -> io::Result<()> {
    let supported = membarrier(MEMBARRIER_CMD_QUERY)?;
    let needed = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
    if supported & needed != needed {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED).map(drop)
}

/// A full memory barrier on every running thread of every registered process (a few µs).
#[cfg_attr(loom, allow(dead_code))] // loom models never run a light endpoint
pub fn global_expedited() -> io::Result<()> {
    membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED).map(drop)
}

/// Registers the calling process for [`private_expedited`] (idempotent). Fails if the kernel
/// lacks the command or refuses it.
pub fn register_private_expedited() -> io::Result<()> {
    let supported = membarrier(MEMBARRIER_CMD_QUERY)?;
    let needed = MEMBARRIER_CMD_PRIVATE_EXPEDITED | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;
    if supported & needed != needed {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED).map(drop)
}

/// A full memory barrier on every running thread of this process (by IPI to the CPUs that run
/// them; a few µs). Only after [`register_private_expedited`] succeeded.
#[cfg_attr(loom, allow(dead_code))] // loom models never run a biased lock's fast path
pub fn private_expedited() -> io::Result<()> {
    membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED).map(drop)
}

#[cfg(test)]
mod tests {
    #[test]
    fn registers_and_issues_barriers_or_refuses_cleanly() {
        match super::register_global_expedited() {
            Ok(()) => super::global_expedited().unwrap(),
            Err(e) => eprintln!("membarrier unavailable here: {e}"),
        }
        match super::register_private_expedited() {
            Ok(()) => super::private_expedited().unwrap(),
            Err(e) => eprintln!("private membarrier unavailable here: {e}"),
        }
    }
}
