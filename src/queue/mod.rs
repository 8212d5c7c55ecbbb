//! Queues: the MPMC [`Queue`](mpmc::Queue), and (elsewhere) spsc and pipes.

pub(crate) mod mpmc;
