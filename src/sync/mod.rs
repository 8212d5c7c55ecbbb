//! Synchronisation primitives, and the wait loop they share.

pub(crate) mod barrier;
pub(crate) mod event;
pub(crate) mod semaphore;
pub(crate) mod wait;
