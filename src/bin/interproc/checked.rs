//! Self-checking payloads and a small PRNG for crash testing: what a killed peer leaves half
//! written must be recognisable as torn.
//!
//! Shared by the crash soak (`soak.rs`) and the crash campaigns of the test suite
//! (`tests/common`, which includes this file by path); each uses a part of it.
#![allow(dead_code)]

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// A 64-bit finaliser (MurmurHash3's): every input bit affects every output bit.
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A queue element whose fields check each other: a torn copy fails [`Msg::whole`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Msg {
    pub epoch: u64,
    pub seq: u64,
    pub check: u64,
    pub hash: u64,
}

impl Msg {
    pub fn new(epoch: u64, seq: u64) -> Msg {
        Msg {
            epoch,
            seq,
            check: seq ^ epoch.rotate_left(32) ^ K,
            hash: mix(epoch.wrapping_mul(K) ^ seq),
        }
    }

    pub fn whole(&self) -> bool {
        *self == Msg::new(self.epoch, self.seq)
    }
}

/// Lock-protected data: `a == b` and `holder == 0` outside a critical section. A holder that
/// dies half-way leaves `a == b + 1` and/or its id in `holder`.
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Guarded {
    pub a: u64,
    pub b: u64,
    pub holder: u64,
    pub total: u64,
}

/// `epoch` and `seq` (below 2^40) in one word, for acknowledgement `Value`s.
pub fn pack(epoch: u64, seq: u64) -> u64 {
    epoch << 40 | seq
}

/// The inverse of [`pack`].
pub fn unpack(w: u64) -> (u64, u64) {
    (w >> 40, w & ((1 << 40) - 1))
}

/// The seq of `word` if it belongs to `epoch`, else 0.
pub fn seq_in(word: u64, epoch: u64) -> u64 {
    match unpack(word) {
        (e, seq) if e == epoch => seq,
        _ => 0,
    }
}

/// A pipe payload of `len` bytes (at least 24): epoch, seq, filler derived from both, and a
/// trailing FNV-1a checksum.
pub fn pipe_msg(epoch: u64, seq: u64, len: usize) -> Vec<u8> {
    let len = len.max(24);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&epoch.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    let salt = mix(epoch ^ seq.rotate_left(17));
    m.extend((0..len - 24).map(|i| (salt >> (8 * (i % 8))) as u8 ^ i as u8));
    let sum = fnv(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

/// FNV-1a over `bytes`.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `(epoch, seq)` of a whole pipe payload; `None` if it is torn.
pub fn pipe_check(m: &[u8]) -> Option<(u64, u64)> {
    if m.len() < 24 {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(m[at..at + 8].try_into().unwrap());
    let (epoch, seq) = (word(0), word(8));
    (pipe_msg(epoch, seq, m.len()) == m).then_some((epoch, seq))
}

/// xorshift64*: reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
