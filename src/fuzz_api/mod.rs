//! Entry points for the cargo-fuzz targets under `fuzz/`. Not part of the public API.
//!
//! The promise they check: a peer may write garbage into shared memory at any time, and still
//! no other process panics, hits undefined behaviour, or loops without bound. Each function
//! takes arbitrary bytes and must return without panicking, hanging or touching memory out of
//! bounds, whatever the bytes are; the differential targets also check results against a
//! model. Each target's input format is documented in its module.
//!
//! | target         | function           | what the bytes control                              |
//! |----------------|--------------------|-----------------------------------------------------|
//! | `header`       | `header()`         | a region header and a file length                   |
//! | `region_ops`   | `region_ops()`     | a region of any kind (patches) and an op script     |
//! | `pipe_records` | `pipe_records()`   | a heap byte ring's positions, data and op script    |
//! | `spsc_model`   | `spsc_model()`     | an spsc op script, checked against a `VecDeque`     |
//!
//! Objects the targets create are named `fuzz-<tag>-<pid>-<n>` and removed on every path out of
//! the function (a crash that aborts the process leaves them behind: `interproc gc`, or
//! `rm /dev/shm/interproc.fuzz-*`). [`write_seeds`] writes seed inputs taken from real objects.

mod input;
mod pipe_records;
mod region_ops;
mod seeds;
mod spsc_model;

pub use pipe_records::pipe_records;
pub use region_ops::region_ops;
pub use seeds::write_seeds;
pub use spsc_model::spsc_model;

use crate::region::header::{self, Expect, Kind, RawHeader};

/// Reads arbitrary bytes as a region header plus a file length and validates them against every
/// kind, as `open` and `open_observer` would.
pub fn header(data: &[u8]) {
    let mut raw = [0u8; header::HEADER_LEN + 8];
    let n = data.len().min(raw.len());
    raw[..n].copy_from_slice(&data[..n]);
    let h: RawHeader = bytemuck::pod_read_unaligned(&raw[..header::HEADER_LEN]);
    let file_len = u64::from_le_bytes(raw[header::HEADER_LEN..].try_into().unwrap_or([0; 8]));
    for kind in Kind::ALL {
        let expect = Expect {
            kind,
            elem_size: h.elem_size,
            elem_align: h.elem_align,
            body_len: crate::inspect::layout_of(kind),
        };
        if let Ok(spec) = header::validate(&h, file_len, &expect) {
            // Whatever validates must describe a mappable region.
            assert!(spec.total_len().is_some_and(|t| t == file_len));
            assert!(file_len <= header::MAX_TOTAL_LEN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed runs clean through its target (a quick regression run of the corpora).
    #[test]
    fn seeds_run_clean() {
        for (target, seed) in seeds::all() {
            match target {
                "region_ops" => region_ops(&seed),
                "pipe_records" => pipe_records(&seed),
                "spsc_model" => spsc_model(&seed),
                other => unreachable!("{other}"),
            }
        }
    }

    /// Short and degenerate inputs are valid inputs too.
    #[test]
    fn degenerate_inputs() {
        for input in [&[][..], &[0], &[0xFF; 3], &[7; 40], &[0xF0; 64]] {
            header(input);
            region_ops(input);
            pipe_records(input);
            spsc_model(input);
        }
        for kind in 0..region_ops::KINDS.len() as u8 {
            region_ops(&[
                kind, 0xFF, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
            ]);
        }
    }

    /// Writes the seed corpora into `fuzz/corpus/<target>/` (run by hand after a format change:
    /// `cargo test --lib write_seed_corpora -- --ignored`).
    #[test]
    #[ignore]
    fn write_seed_corpora() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let n = write_seeds(&dir).unwrap();
        assert!(n > 0);
    }
}
