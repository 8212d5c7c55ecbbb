//! Synchronisation primitives, and the wait loop they share.

pub(crate) mod wait;
