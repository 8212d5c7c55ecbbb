//! The only module that calls into libc. Everything here is a thin, safe wrapper returning
//! `io::Result`; policy (what a missing lock or a short file *means*) lives in `region/` and above.
//!
//! - [`shm`]: POSIX shared-memory objects: open/create, size, map, unlink, identity.
//! - [`liveness`]: open-file-description (OFD) byte locks, the kernel-maintained liveness tokens
//!   every participant holds, and `/proc` reads of process start times.
//! - [`futex`]: shared (never `FUTEX_PRIVATE_FLAG`) futex wait and wake.
//! - [`cpu`]: pinning the calling thread to a core (benchmarks).
//! - [`process`]: `Process::spawn` plumbing: payload memfd, fd hand-over across exec, pidfd
//!   waits, signals, `dladdr`.
//! - [`membarrier`]: asymmetric process-wide memory barriers (the spsc ring's parking).

pub(crate) mod cpu;
pub(crate) mod futex;
pub(crate) mod liveness;
pub(crate) mod membarrier;
pub(crate) mod process;
pub(crate) mod shm;
pub(crate) mod signal;

use std::io;

/// Turns a `-1` return into the thread's `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
