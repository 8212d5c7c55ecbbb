//! spsc Sender/Receiver operations against a VecDeque model of a bounded FIFO.
//! Input format: the docs of `interproc::fuzz_api::spsc_model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    interproc::fuzz_api::spsc_model(data);
});
