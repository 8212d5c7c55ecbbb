//! Region header validation on arbitrary bytes: never a panic, whatever the header says.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    interproc::fuzz_api::header(data);
});
