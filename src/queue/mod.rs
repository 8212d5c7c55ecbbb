//! Queues and pipes.
//!
//! - [`spsc`]: the single-producer single-consumer ring of plain-data slots.
//! - `mpmc`: the multi-producer multi-consumer [`Queue`](mpmc::Queue).
//! - `ring` + `pipe`: the byte ring of length-prefixed records and the duplex `Pipe` built on it.

pub(crate) mod mpmc;
pub(crate) mod pipe;
pub(crate) mod ring;
pub mod spsc;
