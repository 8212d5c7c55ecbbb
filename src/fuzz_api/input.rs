//! A byte cursor over fuzzer input, and the scratch objects the targets create.
//!
//! The cursor never fails: past the end of the input every read returns zeros (an empty
//! slice for [`Input::bytes`]), so any prefix of an input is itself a valid input and the
//! fuzzer's mutations never hit a parse error.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Reads numbers and byte runs off the front of fuzzer input.
#[derive(Debug, Clone)]
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let b = self.bytes(N);
        out[..b.len()].copy_from_slice(b);
        out
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A number in `0..n` (`n >= 1`) from one byte (two if `n > 256`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n >= 1);
        if n <= 256 {
            self.u8() as usize % n
        } else {
            self.u16() as usize % n
        }
    }

    /// A `Pod` value from the next `size_of::<T>()` bytes (zero-padded).
    pub(crate) fn pod<T: bytemuck::Pod>(&mut self) -> T {
        let mut v = T::zeroed();
        let dst = bytemuck::bytes_of_mut(&mut v);
        let src = self.bytes(dst.len());
        dst[..src.len()].copy_from_slice(src);
        v
    }
}

/// How long the timed operations of one input may wait in total: a handful of 1 ms waits,
/// everything else is a zero timeout (which still runs the spin, announce and re-check path).
#[derive(Debug)]
pub(crate) struct Budget {
    timed_left: u32,
}

impl Budget {
    /// Nonzero waits allowed per input.
    pub(crate) const TIMED_WAITS: u32 = 6;

    pub(crate) fn new() -> Budget {
        Budget {
            timed_left: Self::TIMED_WAITS,
        }
    }

    /// A timeout chosen by the input: 0, or 1 ms while the budget lasts.
    pub(crate) fn timeout(&mut self, input: &mut Input<'_>) -> Duration {
        if input.u8() & 1 == 1 && self.timed_left > 0 {
            self.timed_left -= 1;
            Duration::from_millis(1)
        } else {
            Duration::ZERO
        }
    }
}

/// A name no other input, process or test uses: `fuzz-<tag>-<pid>-<n>`.
pub(crate) fn fresh_name(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "fuzz-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the names it holds when dropped, on every path out of a fuzz function (early
/// returns and unwinding included).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    names: Vec<String>,
}

impl Scratch {
    /// A fresh name that is removed when the scratch is dropped.
    pub(crate) fn name(&mut self, tag: &str) -> String {
        let n = fresh_name(tag);
        self.names.push(n.clone());
        n
    }

    /// A fresh name whose spsc stagger index (which places the ring's hot lines, see
    /// `queue::spsc`) is `k % 15`: names carry the pid and a counter, so without this the same
    /// input would find the positions at different offsets from one run to the next.
    pub(crate) fn name_with_stagger(&mut self, tag: &str, k: u64) -> String {
        // About 15 tries on average; the bound only keeps the loop finite.
        let mut n = fresh_name(tag);
        for _ in 0..10_000 {
            if crate::queue::spsc::stagger(&n) == k % 15 {
                break;
            }
            n = fresh_name(tag);
        }
        self.names.push(n.clone());
        n
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = crate::remove(n);
        }
    }
}

/// Offset of the header's `state` word. Scribbles may write it, but never leave it 0: a zero
/// state while the creator's owner lock is held means "being initialised", and `open` waits
/// for it (up to `INIT_WAIT`, 2 s) by design, which would only slow the fuzzer down. Any other
/// value that is not `READY` must be refused at once (`Corrupted`). The `header` target covers
/// validation of every state.
const STATE_WORD: std::ops::Range<u64> = 12..16;

/// Writes bytes into an object's file the way a scribbling peer would: through the kernel
/// (`pwrite` on the shm object), never extending or shrinking it (truncation is outside the
/// trust model). Writes land in the page cache every mapping shares, so attached handles see
/// them at once.
#[derive(Debug)]
pub(crate) struct Scribbler {
    file: File,
    len: u64,
}

impl Scribbler {
    /// Opens the file of object `name` for writing (never creates it).
    pub(crate) fn open(name: &str) -> Option<Scribbler> {
        let path = format!("/dev/shm/interproc.{name}");
        let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
        let len = file.metadata().ok()?.len();
        (len > 0).then_some(Scribbler { file, len })
    }

    /// The file's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Writes `bytes` at `offset` (reduced modulo the file length, cut at its end). A header
    /// `state` left 0 by the write is set to 1 instead (see [`STATE_WORD`]).
    pub(crate) fn write(&self, offset: u64, bytes: &[u8]) {
        let start = offset % self.len;
        let end = (start + bytes.len() as u64).min(self.len);
        let _ = self.file.write_at(&bytes[..(end - start) as usize], start);
        if start < STATE_WORD.end && end > STATE_WORD.start {
            let mut state = [0u8; 4];
            let _ = self.file.read_exact_at(&mut state, STATE_WORD.start);
            if state == [0; 4] {
                let _ = self.file.write_at(&1u32.to_le_bytes(), STATE_WORD.start);
            }
        }
    }

    /// Reads the little-endian word of `width` (1..=8) bytes at `offset` (0 out of range).
    pub(crate) fn read_word(&self, offset: u64, width: usize) -> u64 {
        let mut b = [0u8; 8];
        let _ = self.file.read_at(&mut b[..width.min(8)], offset);
        u64::from_le_bytes(b)
    }

    /// Writes the low `width` (1..=8) bytes of `value` at `offset` (the state word and
    /// anything past the end excepted, as for [`Scribbler::write`]).
    pub(crate) fn write_word(&self, offset: u64, width: usize, value: u64) {
        if offset < self.len {
            self.write(offset, &value.to_le_bytes()[..width.min(8)]);
        }
    }

    /// Writes a little-endian `u64` at an exact offset (ignored out of range).
    pub(crate) fn write_u64(&self, offset: u64, value: u64) {
        if offset + 8 <= self.len {
            self.write(offset, &value.to_le_bytes());
        }
    }
}
