//! # interproc
//!
//! Lock-free shared-memory IPC for Linux: Python `multiprocessing`'s toolkit (`Process`,
//! `Pipe`, `Queue`, `Lock`, `Value`) at the speed of the hardware. Every object lives in its own
//! named, mmap'd region `/dev/shm/interproc.<name>`; separately started processes (other
//! binaries too) attach to it by name.
//!
//! ```no_run
//! // Process A
//! let hits = interproc::Value::<u64>::create("hits", 0)?;
//! hits.persist(); // the name outlives this process
//! # Ok::<(), interproc::Error>(())
//! ```
//! ```no_run
//! // Process B, started separately
//! let hits = interproc::Value::<u64>::open("hits")?;
//! hits.fetch_add(1);
//! # Ok::<(), interproc::Error>(())
//! ```
//!
//! ## Layers
//! - `sys`: the only module with syscalls (shm, OFD locks, futex).
//! - `region`: naming, the on-disk header, validation, participants, ownership.
//! - `sync::wait`: the one spin-then-park loop.
//! - `object`: what every object type's constructors share (header spec, create/open).
//! - the objects, each in its own module, built on the layers above.
#![deny(missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod error;
mod failpoint;
pub mod inspect;
mod loom;
mod object;
pub mod process;
mod queue;
pub(crate) mod region;
mod sync;
mod sys;
#[cfg(all(test, not(loom)))]
mod test_names;
mod value;

#[doc(hidden)]
#[cfg(not(loom))]
pub mod fuzz_api;

pub use bytemuck::Pod;
pub use error::{
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
pub use process::Process;
pub use queue::mpmc::Queue;
pub use queue::pipe::{Connection, Pipe};
pub use queue::spsc;
pub use region::{create_mode, remove, set_create_mode};
pub use sync::barrier::{Barrier, BarrierWaitResult};
pub use sync::condvar::{Condvar, WaitTimeoutResult};
pub use sync::event::Event;
pub use sync::mutex::{Lock, Mutex, MutexGuard};
pub use sync::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use sync::semaphore::Semaphore;
pub use value::{AtomicPrimitive, Value};

/// Pins the calling thread to a CPU (for benchmarks whose sides spin).
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    sys::cpu::pin_current_thread(cpu)
}
