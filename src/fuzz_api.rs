//! Entry points for the cargo-fuzz targets under `fuzz/`. Not part of the public API.
//!
//! Each function takes arbitrary bytes and must return without panicking, hanging or
//! touching memory out of bounds, whatever the bytes are.

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
