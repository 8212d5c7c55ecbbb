//! Synchronisation primitives, and the wait loop they share.

pub(crate) mod condvar;
pub(crate) mod mutex;
pub(crate) mod rwlock;
pub(crate) mod wait;
