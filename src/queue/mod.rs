//! Queues: the spsc ring (and, beside it, the MPMC queue and the pipe's byte rings).

pub mod spsc;
