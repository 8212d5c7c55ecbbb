//! Every object kind's open and operations on a region whose bytes come from the fuzzer.
//! Input format: the docs of `interproc::fuzz_api::region_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    interproc::fuzz_api::region_ops(data);
});
