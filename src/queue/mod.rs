//! Queues and pipes: the byte ring and the `Pipe` built on it.

pub(crate) mod pipe;
pub(crate) mod ring;
