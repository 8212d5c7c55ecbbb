//! The Pipe's byte ring (records, padding, positions) on fuzzed heap state, differential when well-formed.
//! Input format: the docs of `interproc::fuzz_api::pipe_records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    interproc::fuzz_api::pipe_records(data);
});
