//! The on-disk header every region starts with, and its validation.
//!
//! ```text
//! offset  size  field           written by        meaning
//!      0     8  magic           creator, once     MAGIC ("IPROC\0\0\x01")
//!      8     4  version         creator, once     FORMAT_VERSION; any layout change bumps it
//!     12     4  state           creator, last     0 = initialising, READY once everything else is written
//!     16     4  kind            creator, once     Kind as u32
//!     20     4  elem_size       creator, once     size_of::<T>() of the element (0 if none)
//!     24     4  elem_align      creator, once     align_of::<T>() of the element (1 if none)
//!     28     4  flags           owner (persist)   FLAG_PERSISTED
//!     32     8  capacity        creator, once     slots / bytes / permits, per kind
//!     40     8  body_offset     creator, once     BODY_OFFSET
//!     48     8  body_len        creator, once     bytes of the kind-specific body
//!     56     8  total_len       creator, once     file length: page-rounded body_offset + body_len
//!     64     4  creator_pid     creator, once     for `interproc list`
//!     68     4  (reserved)
//!     72     8  creator_start   creator, once     creator's start time (clock ticks since boot)
//!     80    32  params[4]       creator, once     kind-specific sizes (e.g. a pipe's max message)
//!    112    16  (reserved)
//!    128  2048  registry        participants      see `registry.rs`
//!   2176     …  body            the object        see each object's module
//! ```
//!
//! The creator writes every field with `Relaxed` stores and then publishes `state = READY` with
//! a `Release` store; an opener loads `state` with `Acquire` before reading anything else. Every
//! field is an atomic, so a peer scribbling over the header is a race on atomics (defined
//! behaviour), never on plain memory. Openers copy the header out *once* ([`RawHeader`]),
//! validate the copy ([`validate`]) and from then on use only their validated copy.

use bytemuck::{Pod, Zeroable};

use super::registry;
use crate::error::{Error, Result};
use crate::loom::atomic::{AtomicU32, AtomicU64, Ordering};

/// Identifies an interproc region.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPROC\0\0\x01");
/// The format version this build reads and writes. Any layout change bumps it.
pub const FORMAT_VERSION: u32 = 2;
/// `state` once the creator has written everything.
pub const STATE_READY: u32 = 0x5245_4459; // "READ" as a tag, not 1, so zeroed memory never reads as ready
/// `flags` bit: the name outlives its creator (`persist`); `gc` never removes it.
pub const FLAG_PERSISTED: u32 = 1;

/// Size of the header proper.
pub const HEADER_LEN: usize = 128;
/// Where the kind-specific body starts: after the header and the participant registry,
/// rounded to a 128-byte line pair.
pub const BODY_OFFSET: usize = round_up(HEADER_LEN + registry::REGISTRY_LEN, 128);
/// The largest region interproc creates or opens (1 TiB): bounds every size computation.
pub const MAX_TOTAL_LEN: u64 = 1 << 40;

const PAGE: u64 = 4096;

/// Rounds `n` up to a multiple of `to` (a power of two).
pub const fn round_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

/// The kinds of object a region can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// MPMC `Queue<T>`.
    Queue = 1,
    /// `spsc::Sender`/`Receiver`.
    Spsc = 2,
    /// `Pipe`.
    Pipe = 3,
    /// `Mutex<T>` / `Lock`.
    Mutex = 4,
    /// `RwLock<T>`.
    RwLock = 5,
    /// `Condvar`.
    Condvar = 6,
    /// `Semaphore`.
    Semaphore = 7,
    /// `Barrier`.
    Barrier = 8,
    /// `Event`.
    Event = 9,
    /// `Value<T>`.
    Value = 10,
}

impl Kind {
    /// Every kind, in tag order.
    pub const ALL: [Kind; 10] = [
        Kind::Queue,
        Kind::Spsc,
        Kind::Pipe,
        Kind::Mutex,
        Kind::RwLock,
        Kind::Condvar,
        Kind::Semaphore,
        Kind::Barrier,
        Kind::Event,
        Kind::Value,
    ];

    /// The kind with this tag.
    pub fn from_u32(tag: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u32 == tag)
    }

    /// The lowercase word the CLI prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Queue => "queue",
            Kind::Spsc => "spsc",
            Kind::Pipe => "pipe",
            Kind::Mutex => "mutex",
            Kind::RwLock => "rwlock",
            Kind::Condvar => "condvar",
            Kind::Semaphore => "semaphore",
            Kind::Barrier => "barrier",
            Kind::Event => "event",
            Kind::Value => "value",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header as it lies in shared memory: atomics only.
#[repr(C)]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub state: AtomicU32,
    pub kind: AtomicU32,
    pub elem_size: AtomicU32,
    pub elem_align: AtomicU32,
    pub flags: AtomicU32,
    pub capacity: AtomicU64,
    pub body_offset: AtomicU64,
    pub body_len: AtomicU64,
    pub total_len: AtomicU64,
    pub creator_pid: AtomicU32,
    pub _reserved0: AtomicU32,
    pub creator_start: AtomicU64,
    pub params: [AtomicU64; 4],
    pub _reserved1: [AtomicU64; 2],
}

/// A private copy of a header, taken once; plain data, so the fuzzer can build it from bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct RawHeader {
    pub magic: u64,
    pub version: u32,
    pub state: u32,
    pub kind: u32,
    pub elem_size: u32,
    pub elem_align: u32,
    pub flags: u32,
    pub capacity: u64,
    pub body_offset: u64,
    pub body_len: u64,
    pub total_len: u64,
    pub creator_pid: u32,
    pub _reserved0: u32,
    pub creator_start: u64,
    pub params: [u64; 4],
    pub _reserved1: [u64; 2],
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Header>() == HEADER_LEN);
    assert!(std::mem::size_of::<RawHeader>() == HEADER_LEN);
    assert!(BODY_OFFSET % 128 == 0);
};

impl Header {
    /// Copies every field out with `Relaxed` loads, after the caller's `Acquire` of `state`.
    pub fn snapshot(&self) -> RawHeader {
        let r = Ordering::Relaxed;
        RawHeader {
            magic: self.magic.load(r),
            version: self.version.load(r),
            state: self.state.load(r),
            kind: self.kind.load(r),
            elem_size: self.elem_size.load(r),
            elem_align: self.elem_align.load(r),
            flags: self.flags.load(r),
            capacity: self.capacity.load(r),
            body_offset: self.body_offset.load(r),
            body_len: self.body_len.load(r),
            total_len: self.total_len.load(r),
            creator_pid: self.creator_pid.load(r),
            _reserved0: 0,
            creator_start: self.creator_start.load(r),
            params: [0, 1, 2, 3].map(|i| self.params[i].load(r)),
            _reserved1: [0; 2],
        }
    }

    /// Writes every creator-owned field (`Relaxed`; `state` is published separately).
    pub fn write(&self, h: &RawHeader) {
        let r = Ordering::Relaxed;
        self.magic.store(h.magic, r);
        self.version.store(h.version, r);
        self.kind.store(h.kind, r);
        self.elem_size.store(h.elem_size, r);
        self.elem_align.store(h.elem_align, r);
        self.flags.store(h.flags, r);
        self.capacity.store(h.capacity, r);
        self.body_offset.store(h.body_offset, r);
        self.body_len.store(h.body_len, r);
        self.total_len.store(h.total_len, r);
        self.creator_pid.store(h.creator_pid, r);
        self.creator_start.store(h.creator_start, r);
        for (slot, v) in self.params.iter().zip(h.params) {
            slot.store(v, r);
        }
    }
}

/// What a region holds, as the creator declares it and as an opener validated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The kind of object.
    pub kind: Kind,
    /// `size_of` of the element type (0 if the kind has none).
    pub elem_size: u32,
    /// `align_of` of the element type (1 if the kind has none).
    pub elem_align: u32,
    /// Slots, bytes or permits, as the kind defines.
    pub capacity: u64,
    /// Kind-specific sizes.
    pub params: [u64; 4],
    /// Bytes of the body; must equal what the kind's layout function computes.
    pub body_len: u64,
}

impl Spec {
    /// The file length this spec needs: the body end rounded up to a page.
    pub fn total_len(&self) -> Option<u64> {
        let end = (BODY_OFFSET as u64).checked_add(self.body_len)?;
        let total = end.checked_add(PAGE - 1)? & !(PAGE - 1);
        (total <= MAX_TOTAL_LEN).then_some(total)
    }

    /// The header a creator writes for this spec (`state` still 0).
    pub fn to_raw(self, creator_pid: u32, creator_start: u64) -> Option<RawHeader> {
        Some(RawHeader {
            magic: MAGIC,
            version: FORMAT_VERSION,
            state: 0,
            kind: self.kind as u32,
            elem_size: self.elem_size,
            elem_align: self.elem_align,
            flags: 0,
            capacity: self.capacity,
            body_offset: BODY_OFFSET as u64,
            body_len: self.body_len,
            total_len: self.total_len()?,
            creator_pid,
            _reserved0: 0,
            creator_start,
            params: self.params,
            _reserved1: [0; 2],
        })
    }
}

/// What an opener expects to find.
pub struct Expect<'a> {
    /// The kind the caller's type is.
    pub kind: Kind,
    /// `size_of` of the caller's element type.
    pub elem_size: u32,
    /// `align_of` of the caller's element type.
    pub elem_align: u32,
    /// The kind's layout function: the body length that the spec's element layout, capacity and
    /// params need (its `body_len` field is ignored), or `None` if they are out of the kind's
    /// range. Must not overflow or panic on any input.
    pub body_len: &'a LayoutFn,
}

/// A kind's layout function (see [`Expect::body_len`]).
pub type LayoutFn = dyn Fn(&Spec) -> Option<u64>;

/// Checks a header copy against the caller's expectations and the file's real length.
///
/// Version, kind and element layout mismatches are [`Error::Incompatible`]; everything that
/// cannot be the work of a well-behaved creator is [`Error::Corrupted`]. Never panics, for any
/// input (fuzzed).
pub fn validate(h: &RawHeader, file_len: u64, expect: &Expect<'_>) -> Result<Spec> {
    if h.magic != MAGIC {
        return Err(Error::corrupted(format!(
            "bad magic {:#018x} (not an interproc region)",
            h.magic
        )));
    }
    if h.version != FORMAT_VERSION {
        return Err(Error::Incompatible {
            expected: format!("format version {FORMAT_VERSION}"),
            found: format!("format version {}", h.version),
        });
    }
    if h.state != STATE_READY {
        return Err(Error::corrupted("region was never fully initialised"));
    }
    let kind = Kind::from_u32(h.kind)
        .ok_or_else(|| Error::corrupted(format!("unknown object kind {}", h.kind)))?;
    if kind != expect.kind {
        return Err(Error::Incompatible {
            expected: expect.kind.to_string(),
            found: kind.to_string(),
        });
    }
    if (h.elem_size, h.elem_align) != (expect.elem_size, expect.elem_align) {
        return Err(Error::Incompatible {
            expected: format!(
                "elements of size {} and alignment {}",
                expect.elem_size, expect.elem_align
            ),
            found: format!(
                "elements of size {} and alignment {}",
                h.elem_size, h.elem_align
            ),
        });
    }
    if h.body_offset != BODY_OFFSET as u64 {
        return Err(Error::corrupted(format!("body offset {}", h.body_offset)));
    }
    let mut spec = Spec {
        kind,
        elem_size: h.elem_size,
        elem_align: h.elem_align,
        capacity: h.capacity,
        params: h.params,
        body_len: h.body_len,
    };
    let needed = (expect.body_len)(&spec).ok_or_else(|| {
        Error::corrupted(format!(
            "capacity {} / parameters {:?} out of range",
            h.capacity, h.params
        ))
    })?;
    if needed != h.body_len {
        return Err(Error::corrupted(format!(
            "body length {} where capacity {} needs {}",
            h.body_len, h.capacity, needed
        )));
    }
    spec.body_len = needed;
    let total = spec
        .total_len()
        .ok_or_else(|| Error::corrupted("body too large"))?;
    if h.total_len != total {
        return Err(Error::corrupted(format!(
            "recorded length {} where the layout needs {}",
            h.total_len, total
        )));
    }
    if file_len != total {
        return Err(Error::corrupted(format!(
            "file is {file_len} bytes where the layout needs {total} (truncated or resized)"
        )));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(spec: &Spec) -> Option<u64> {
        let cap = spec.capacity;
        (1..=1 << 20).contains(&cap).then(|| cap * 8)
    }

    fn expect() -> Expect<'static> {
        Expect {
            kind: Kind::Queue,
            elem_size: 8,
            elem_align: 8,
            body_len: &layout,
        }
    }

    fn good() -> (RawHeader, u64) {
        let spec = Spec {
            kind: Kind::Queue,
            elem_size: 8,
            elem_align: 8,
            capacity: 16,
            params: [0; 4],
            body_len: 128,
        };
        let mut h = spec.to_raw(1, 2).unwrap();
        h.state = STATE_READY;
        (h, spec.total_len().unwrap())
    }

    #[test]
    fn accepts_a_well_formed_header() {
        let (h, len) = good();
        let spec = validate(&h, len, &expect()).unwrap();
        assert_eq!(spec.capacity, 16);
        assert_eq!(len % 4096, 0);
        assert!(len >= BODY_OFFSET as u64 + 128);
    }

    #[test]
    fn refuses_each_broken_field() {
        let (h, len) = good();
        let cases: Vec<(RawHeader, u64, &str)> = vec![
            (RawHeader { magic: 0, ..h }, len, "corrupted"),
            (RawHeader { version: 99, ..h }, len, "incompatible"),
            (RawHeader { state: 0, ..h }, len, "corrupted"),
            (RawHeader { kind: 999, ..h }, len, "corrupted"),
            (
                RawHeader {
                    kind: Kind::Mutex as u32,
                    ..h
                },
                len,
                "incompatible",
            ),
            (RawHeader { elem_size: 4, ..h }, len, "incompatible"),
            (RawHeader { elem_align: 4, ..h }, len, "incompatible"),
            (
                RawHeader {
                    body_offset: 0,
                    ..h
                },
                len,
                "corrupted",
            ),
            (RawHeader { capacity: 0, ..h }, len, "corrupted"),
            (
                RawHeader {
                    capacity: u64::MAX,
                    ..h
                },
                len,
                "corrupted",
            ),
            (RawHeader { body_len: 8, ..h }, len, "corrupted"),
            (
                RawHeader {
                    total_len: len * 2,
                    ..h
                },
                len,
                "corrupted",
            ),
            (h, len - 4096, "corrupted"),
            (h, len + 4096, "corrupted"),
            (h, 0, "corrupted"),
        ];
        for (i, (bad, file_len, want)) in cases.into_iter().enumerate() {
            let err = validate(&bad, file_len, &expect()).unwrap_err();
            let got = match err {
                Error::Corrupted { .. } => "corrupted",
                Error::Incompatible { .. } => "incompatible",
                _ => "other",
            };
            assert_eq!(got, want, "case {i}: {err}");
        }
    }

    #[test]
    fn huge_bodies_are_refused_not_overflowed() {
        let spec = Spec {
            kind: Kind::Queue,
            elem_size: 8,
            elem_align: 8,
            capacity: 1,
            params: [0; 4],
            body_len: u64::MAX - 10,
        };
        assert!(spec.total_len().is_none());
        assert!(spec.to_raw(0, 0).is_none());
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_u32(k as u32), Some(k));
        }
        assert_eq!(Kind::from_u32(0), None);
    }
}
