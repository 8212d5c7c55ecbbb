//! Synchronisation primitives, and the wait loop they share.

pub(crate) mod asym;
pub(crate) mod barrier;
pub(crate) mod biased;
pub(crate) mod condvar;
pub(crate) mod event;
#[cfg(all(test, loom))]
mod model;
pub(crate) mod mutex;
pub(crate) mod rwlock;
pub(crate) mod semaphore;
pub(crate) mod wait;
