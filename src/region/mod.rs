//! Regions: one named, mapped, validated shared-memory object each.
//!
//! This is the only module that turns addresses into typed pointers. Objects above it get a
//! `&S` view of their body (`S` made of atomics only, see [`Shared`]) and raw pointers to their
//! slot memory; they never compute offsets into the file themselves.
//!
//! # Create
//! 1. `shm_open(O_CREAT | O_EXCL | O_RDWR, mode)`: exactly one creator per name.
//! 2. Take the OFD *owner lock* (see [`registry`]): from now on `open` knows the creator is alive
//!    and waits for it, and `gc` leaves the object alone. Then check that the name still refers
//!    to this file: a creator stalled before this step may have lost its empty file to `gc` (or
//!    `remove`), and then fails with [`Error::NotFound`] instead of building a nameless object.
//! 3. `ftruncate` to the page-rounded length (the kernel zero-fills), map it, write the header,
//!    let the object initialise its body, claim a participant slot.
//! 4. Publish `state = READY` with `Release`. Any failure before this unlinks the name again.
//!
//! # Open
//! `fstat` first: a file shorter than the header is never mapped beyond its length. Map the
//! header, load `state` (`Relaxed` plus an `Acquire` fence: the header mapping is read-only);
//! while it is still 0 (initialising) and the owner lock is held by someone, wait (1 ms steps,
//! [`INIT_WAIT`] at most, then [`Error::Busy`]); if it is not ready, already sized and nobody
//! holds the owner lock, the creator died half-way: [`Error::Corrupted`]. An *empty* file that
//! nobody locks may be a live creator between `O_EXCL` and its owner lock: wait for it too,
//! and call it [`Error::Corrupted`] only once [`INIT_WAIT`] has passed. A state that is
//! neither 0 nor ready was scribbled: [`Error::Corrupted`] at once. Otherwise copy the
//! header out once, validate the copy against the caller's type and the file's real length,
//! and map exactly the validated length.
//!
//! # Lifetime
//! The creating handle owns the name: dropping it unlinks the name (if the name still refers to
//! the same inode, so a recreated object of the same name is never removed by mistake), unless
//! [`Region::persist`] handed the name up. Handles already attached keep their mapping.
//!
//! # Trust model
//! Peers of the same user may crash or scribble over the region at any time: every word they can
//! write is an atomic, validated copies are taken once, and nothing above this module trusts a
//! shared value without a bound check. A peer that *truncates* a live region makes other
//! mappers take `SIGBUS` on access; named shm objects cannot be sealed, so that is outside the
//! model (documented in the README). Opening an already-short region is refused.

pub mod header;
pub mod name;
pub mod probe;
pub mod registry;

use std::fs::File;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use memmap2::MmapRaw;

pub use header::{Expect, Kind, LayoutFn, RawHeader, Spec};
pub use name::Name;
pub use registry::Token;

use crate::error::{Error, Result};
use crate::loom::atomic::{fence, Ordering};
use crate::sys::{liveness, shm};
use header::{Header, BODY_OFFSET, FLAG_PERSISTED, HEADER_LEN, STATE_READY};
use registry::{Slot, MAX_PARTICIPANTS, OWNER_LOCK, PARTICIPANT_LOCK_BASE, ROLE_LOCK_BASE};

/// How long `open` waits for a live creator to finish initialising.
pub const INIT_WAIT: Duration = Duration::from_secs(2);
/// How long `open_or_create` keeps retrying when create and open keep racing.
pub const OPEN_OR_CREATE_WAIT: Duration = Duration::from_secs(5);
/// The permission bits of a new object unless the caller asks otherwise.
pub const DEFAULT_MODE: u32 = 0o600;

static CREATE_MODE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(DEFAULT_MODE);

/// The permission bits objects created from now on get (see [`set_create_mode`]).
pub fn create_mode() -> u32 {
    CREATE_MODE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets the permission bits (`0o600` by default) of the objects this process creates from now
/// on, e.g. `0o660` to share with a group. Applied exactly, whatever the umask. Like the umask it
/// is process-wide; objects already created keep their mode.
pub fn set_create_mode(mode: u32) {
    CREATE_MODE.store(mode & 0o777, std::sync::atomic::Ordering::Relaxed);
}

/// Types that may be viewed as `&Self` inside shared memory.
///
/// # Safety
/// The type must be `#[repr(C)]`, contain only atomics (or arrays / structs of them, padding
/// included as atomics), be valid for every bit pattern, and have an alignment of at most 128.
/// Then a `&Self` into memory that other processes write concurrently is sound: every access
/// goes through an atomic, and no value can be invalid.
pub unsafe trait Shared {}

/// How a handle attaches to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// A participant: takes a registry slot and maps read-write.
    Participant,
    /// An observer (the CLI): no slot, read-only mapping, never writes.
    Observer,
}

/// One mapped, validated region.
pub struct Region {
    name: Name,
    file: File,
    map: MmapRaw,
    spec: Spec,
    /// This handle unlinks the name on drop.
    owner: AtomicBool,
    /// The participant slot and generation this handle holds (`None` for observers).
    token: Option<Token>,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name)
            .field("kind", &self.spec.kind)
            .field("capacity", &self.spec.capacity)
            .field("len", &self.map.len())
            .finish()
    }
}

impl Region {
    /// Creates the object `name` holding `spec`, lets `init` write its body, then publishes it.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::AlreadyExists`], [`Error::InvalidArgument`] for a spec
    /// too large to map, [`Error::NotFound`] if the name was removed (by `remove` or `gc`)
    /// before this creator could take ownership of it, [`Error::Io`] for anything the kernel
    /// refuses.
    pub fn create(
        name: &str,
        spec: &Spec,
        mode: u32,
        init: impl FnOnce(&Region) -> Result<()>,
    ) -> Result<Region> {
        let name = Name::new(name)?;
        let raw = spec
            .to_raw(liveness::current_pid(), liveness::current_start_time())
            .ok_or_else(|| Error::InvalidArgument("object too large".into()))?;
        let total = raw.total_len as usize;
        let shm_name = name.shm_name();
        let file = shm::create_exclusive(&shm_name, mode).map_err(Error::from_io)?;
        let our_id = shm::stat(&file)?.id;
        // From here on a failure must unlink the name we created.
        let built = (|| {
            crate::failpoint::hit("region.create.before_owner_lock");
            if !liveness::try_lock(&file, OWNER_LOCK)? {
                return Err(Error::corrupted("fresh object's owner lock is held"));
            }
            // Until the owner lock is held, `gc` may take an empty file whose creator is stalled
            // past its grace period for a dead creator's leftover and unlink it. Now that gc
            // cannot lock the file any more, make sure the name is still ours: never hand out
            // a nameless object.
            if shm::identity_of_name(&shm_name).ok() != Some(our_id) {
                return Err(Error::NotFound);
            }
            shm::set_len(&file, total as u64)?;
            let map = shm::map(&file, total, true)?;
            let region = Region {
                name: name.clone(),
                file,
                map,
                spec: *spec,
                owner: AtomicBool::new(true),
                token: None,
            };
            region.header().write(&raw);
            init(&region)?;
            let mut region = region;
            region.token = Some(region.claim_slot()?);
            crate::failpoint::hit("region.create.before_ready");
            // Publish: everything written above happens-before any opener's Acquire of state.
            region.header().state.store(STATE_READY, Ordering::Release);
            Ok(region)
        })();
        if built.is_err() {
            // The failed region (if it got that far) has unlinked itself on drop; otherwise the
            // name still refers to the file we made: unlink it only if it does.
            if shm::identity_of_name(&shm_name).ok() == Some(our_id) {
                let _ = shm::unlink(&shm_name);
            }
        }
        built
    }

    /// Opens the existing object `name` and checks it against `expect`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Incompatible`] for another kind, element layout or format
    /// version; [`Error::Corrupted`] for a region whose header or length does not check out, or
    /// whose creator died before finishing it; [`Error::Busy`] when a live creator has not
    /// finished within [`INIT_WAIT`] or the participant table is full.
    pub fn open(name: &str, expect: &Expect<'_>, attach: Attach) -> Result<Region> {
        let name = Name::new(name)?;
        let writable = attach == Attach::Participant;
        let file = shm::open(&name.shm_name(), writable).map_err(Error::from_io)?;
        let started = Instant::now();
        let raw = loop {
            match Self::read_header(&file)? {
                Some(raw) => break raw,
                None => {
                    // Length first, lock second: a creator takes its owner lock right after
                    // `O_EXCL` and sizes the file only then, so a file already sized when we
                    // looked and unlocked now has lost its creator for good, while an empty one
                    // may belong to a live creator that has not taken the lock yet.
                    let sized = shm::stat(&file)?.len != 0;
                    if !liveness::is_locked_by_other(&file, OWNER_LOCK)? {
                        if sized || started.elapsed() >= INIT_WAIT {
                            return Err(Error::corrupted(
                                "its creator died before finishing initialisation",
                            ));
                        }
                    } else if started.elapsed() >= INIT_WAIT {
                        return Err(Error::Busy);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        let stat = shm::stat(&file)?;
        check_owner(&stat)?;
        let file_len = stat.len;
        let spec = header::validate(&raw, file_len, expect)?;
        let total = raw.total_len as usize;
        let map = shm::map(&file, total, writable)?;
        let mut region = Region {
            name,
            file,
            map,
            spec,
            owner: AtomicBool::new(false),
            token: None,
        };
        // The file may have been replaced or resized between the two looks: check again now
        // that the final mapping exists (a short file would fault on access).
        if shm::stat(&region.file)?.len != total as u64 {
            return Err(Error::corrupted("region was resized while being opened"));
        }
        if writable {
            region.token = Some(region.claim_slot()?);
        }
        Ok(region)
    }

    /// Opens `name` read-only as an observer (no participant slot, never writes), whatever its
    /// kind and element type: `layout_of` gives the layout function of the kind found in the
    /// header, which is then validated as [`Region::open`] does. For `interproc list`/`inspect`.
    ///
    /// # Errors
    /// As [`Region::open`].
    pub fn open_observer(
        name: &str,
        layout_of: &dyn Fn(Kind) -> &'static LayoutFn,
    ) -> Result<Region> {
        let n = Name::new(name)?;
        let file = shm::open(&n.shm_name(), false).map_err(Error::from_io)?;
        let raw =
            Self::read_header(&file)?.ok_or_else(|| Error::corrupted("not (yet) initialised"))?;
        let kind = Kind::from_u32(raw.kind)
            .ok_or_else(|| Error::corrupted(format!("unknown object kind {}", raw.kind)))?;
        drop(file);
        let expect = Expect {
            kind,
            elem_size: raw.elem_size,
            elem_align: raw.elem_align,
            body_len: layout_of(kind),
        };
        Region::open(name, &expect, Attach::Observer)
    }

    /// Opens `name` if it exists, else creates it; correct when several processes race (one
    /// creates, the others open the published result).
    ///
    /// # Errors
    /// As [`Region::open`] and [`Region::create`]; [`Error::Busy`] if the race has not settled
    /// within [`OPEN_OR_CREATE_WAIT`].
    pub fn open_or_create(
        name: &str,
        spec: &Spec,
        expect: &Expect<'_>,
        mode: u32,
        init: impl Fn(&Region) -> Result<()>,
    ) -> Result<Region> {
        let started = Instant::now();
        loop {
            match Region::open(name, expect, Attach::Participant) {
                Err(Error::NotFound) => {}
                other => return other,
            }
            match Region::create(name, spec, mode, &init) {
                // NotFound: the name vanished while we were creating it (see `create`).
                Err(Error::AlreadyExists | Error::NotFound) => {}
                other => return other,
            }
            if started.elapsed() >= OPEN_OR_CREATE_WAIT {
                return Err(Error::Busy);
            }
            crate::loom::hint::yield_now();
        }
    }

    /// Copies the header out if the file is long enough and its state is ready; `None` when not
    /// (yet) initialised.
    ///
    /// # Errors
    /// [`Error::Corrupted`] for a state that is neither 0 (initialising: the kernel zero-fills
    /// and the creator writes nothing else before `READY`) nor `READY`: a scribbled word, not
    /// a creator worth waiting [`INIT_WAIT`] for.
    fn read_header(file: &File) -> Result<Option<RawHeader>> {
        let len = shm::stat(file)?.len;
        if len < BODY_OFFSET as u64 {
            return Ok(None);
        }
        let map = shm::map(file, HEADER_LEN, false)?;
        // SAFETY: the mapping is HEADER_LEN bytes, page-aligned, and the file is at least that
        // long (checked above), so every byte of `Header` is backed; `Header` is all atomics
        // and valid for every bit pattern (see `Shared`).
        let header = unsafe { &*(map.as_ptr() as *const Header) };
        // The mapping is read-only: Rust guarantees atomic loads there only when they are
        // small and `Relaxed`, so the Acquire comes from a fence after the `Relaxed` load
        // (it pairs with the creator's `Release` store of `state` all the same).
        match header.state.load(Ordering::Relaxed) {
            STATE_READY => {}
            0 => return Ok(None),
            other => {
                return Err(Error::corrupted(format!(
                    "header state {other:#x} is neither initialising nor ready"
                )))
            }
        }
        fence(Ordering::Acquire);
        Ok(Some(header.snapshot()))
    }

    fn header(&self) -> &Header {
        // SAFETY: every mapping is at least BODY_OFFSET > HEADER_LEN bytes, page-aligned and
        // backed by the file (length validated); `Header` is all atomics.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    fn slots(&self) -> &[Slot; MAX_PARTICIPANTS] {
        // SAFETY: the registry lies at HEADER_LEN..BODY_OFFSET of every mapping; `Slot` is all
        // atomics and 16-byte aligned there (HEADER_LEN is 128).
        unsafe { &*(self.map.as_ptr().add(HEADER_LEN) as *const [Slot; MAX_PARTICIPANTS]) }
    }

    /// Takes a free participant slot: the first whose OFD lock this handle can take.
    fn claim_slot(&self) -> Result<Token> {
        let slots = self.slots();
        // Two passes: slots that look free first (cheap hint), then every slot.
        for pass in 0..2 {
            for (i, slot) in slots.iter().enumerate() {
                if pass == 0 && slot.pid.load(Ordering::Relaxed) != 0 {
                    continue;
                }
                if liveness::try_lock(&self.file, PARTICIPANT_LOCK_BASE + i as u64)? {
                    let generation =
                        registry::next_generation(slot.generation.load(Ordering::Relaxed));
                    slot.generation.store(generation, Ordering::Relaxed);
                    slot.start_time
                        .store(liveness::current_start_time(), Ordering::Relaxed);
                    slot.pid.store(liveness::current_pid(), Ordering::Release);
                    return Ok(Token::new(i as u32, generation));
                }
            }
        }
        Err(Error::Busy)
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The validated spec (a private copy: never re-read from shared memory).
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// A typed view of the body at `offset`.
    ///
    /// # Panics
    /// If `S` does not fit at `offset` in the validated body or is misaligned there: that is a
    /// bug in the object's layout function, never a consequence of shared data.
    pub fn body<S: Shared>(&self, offset: usize) -> &S {
        let size = std::mem::size_of::<S>();
        assert!(
            offset
                .checked_add(size)
                .is_some_and(|end| end as u64 <= self.spec.body_len),
            "layout bug: {} bytes at {offset} exceed the body of {}",
            size,
            self.spec.body_len
        );
        let ptr = self.body_ptr(offset);
        assert!(
            ptr as usize % std::mem::align_of::<S>() == 0,
            "layout bug: misaligned"
        );
        // SAFETY: in bounds of the mapping (checked), aligned (checked), and `S: Shared` is all
        // atomics and valid for every bit pattern. The reference lives no longer than `self`,
        // which keeps the mapping alive.
        unsafe { &*(ptr as *const S) }
    }

    /// A raw pointer to the body at `offset` (for element slots, copied in and out with
    /// `ptr::read`/`write` or `copy_nonoverlapping`, never referenced).
    pub fn body_ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset as u64 <= self.spec.body_len);
        // SAFETY: BODY_OFFSET + offset <= BODY_OFFSET + body_len <= mapping length (validated).
        unsafe {
            self.map
                .as_mut_ptr()
                .add(BODY_OFFSET + offset.min(self.spec.body_len as usize))
        }
    }

    /// This handle's participant token (`None` for observers).
    pub fn token(&self) -> Option<Token> {
        self.token
    }

    /// True while the participant named by `token` is attached: its slot's lock is held and the
    /// slot has not been claimed again since. This handle's own token is always alive.
    pub fn is_alive(&self, token: Token) -> bool {
        if self.token == Some(token) {
            return true;
        }
        let slot = &self.slots()[token.slot() as usize];
        let held =
            liveness::is_locked_by_other(&self.file, PARTICIPANT_LOCK_BASE + token.slot() as u64)
                // If the kernel refuses to answer, assume alive: never take over on a guess.
                .unwrap_or(true);
        held && token.matches_generation(slot.generation.load(Ordering::Relaxed))
    }

    /// True while participant slot `slot` is held by a live handle (this one included), whatever
    /// its generation: for clearing per-slot flags (e.g. "parked" bits) a dead participant left
    /// set. A slot taken over by a new participant reads as attached. If the kernel refuses to
    /// answer, assume attached.
    pub fn slot_attached(&self, slot: u32) -> bool {
        if slot as usize >= MAX_PARTICIPANTS {
            return false;
        }
        if self.token.is_some_and(|t| t.slot() == slot) {
            return true;
        }
        liveness::is_locked_by_other(&self.file, PARTICIPANT_LOCK_BASE + slot as u64)
            .unwrap_or(true)
    }

    /// The pids of the participants attached now (for `list`): slot holders whose lock is held.
    pub fn participants(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for (i, slot) in self.slots().iter().enumerate() {
            let mine = self.token.is_some_and(|t| t.slot() as usize == i);
            let held = mine
                || liveness::is_locked_by_other(&self.file, PARTICIPANT_LOCK_BASE + i as u64)
                    .unwrap_or(false);
            if held {
                pids.push(slot.pid.load(Ordering::Relaxed));
            }
        }
        pids
    }

    /// True if the creator still holds the name (its owner lock is held by someone).
    pub fn owner_alive(&self) -> bool {
        self.owner.load(Ordering::Relaxed)
            || liveness::is_locked_by_other(&self.file, OWNER_LOCK).unwrap_or(true)
    }

    /// The creator's pid as recorded in the header.
    pub fn creator_pid(&self) -> u32 {
        self.header().creator_pid.load(Ordering::Relaxed)
    }

    /// True if the name was handed up with `persist`.
    pub fn is_persisted(&self) -> bool {
        self.header().flags.load(Ordering::Relaxed) & FLAG_PERSISTED != 0
    }

    /// Hands the name up: it outlives its creator, whichever attached handle says so (the flag is
    /// shared), and `gc` keeps it. Only `remove` unlinks it then.
    pub fn persist(&self) {
        if self.token.is_some() {
            self.header()
                .flags
                .fetch_or(FLAG_PERSISTED, Ordering::Relaxed);
        }
        self.owner.store(false, Ordering::Relaxed);
    }

    /// Tries to take role `role` (an exclusive endpoint): `Ok(false)` if a live handle holds it.
    /// A role left by a dead process is free. Released on drop of this handle.
    pub fn try_claim_role(&self, role: u32) -> Result<bool> {
        assert!(role < registry::MAX_ROLES);
        Ok(liveness::try_lock(
            &self.file,
            ROLE_LOCK_BASE + role as u64,
        )?)
    }

    /// Gives a role back before the handle is dropped.
    pub fn release_role(&self, role: u32) {
        let _ = liveness::unlock(&self.file, ROLE_LOCK_BASE + role as u64);
    }

    /// True if another handle (of any process) holds role `role` now.
    pub fn role_held_by_other(&self, role: u32) -> bool {
        liveness::is_locked_by_other(&self.file, ROLE_LOCK_BASE + role as u64).unwrap_or(true)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Some(t) = self.token {
            // Informational only: the lock (released when `file` closes) is the truth.
            self.slots()[t.slot() as usize]
                .pid
                .store(0, Ordering::Relaxed);
        }
        // `persist` by any handle (not only the creator's) hands the name up: check the shared
        // flag, not just this handle's ownership.
        if self.owner.load(Ordering::Relaxed) && !self.is_persisted() {
            let shm_name = self.name.shm_name();
            let ours = shm::stat(&self.file).map(|s| s.id).ok();
            if ours.is_some() && shm::identity_of_name(&shm_name).ok() == ours {
                let _ = shm::unlink(&shm_name);
            }
        }
    }
}

/// Refuses a region that another user could have planted: `/dev/shm` is world-writable, so
/// anyone can create `interproc.<name>` first. An object owned by another user is accepted only
/// if it is not writable by everyone (a group-shared object is a deliberate choice of its
/// creator and of the group's members); root, which owns nothing by accident, is not special.
fn check_owner(stat: &shm::Stat) -> Result<()> {
    let me = shm::effective_uid();
    if stat.uid != me && stat.mode & 0o002 != 0 {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "object owned by uid {} (not this user, {me}) and writable by everyone: refused",
                stat.uid
            ),
        )));
    }
    Ok(())
}

/// Unlinks the object `name`; processes attached to it keep using it.
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], or [`Error::Io`].
pub fn remove(name: &str) -> Result<()> {
    let name = Name::new(name)?;
    shm::unlink(&name.shm_name()).map_err(Error::from_io)
}

// SAFETY: a Region is a mapping plus a descriptor; all shared access goes through atomics or raw
// pointers whose synchronisation the object types above provide.
unsafe impl Send for Region {}
// SAFETY: as above; `&Region` hands out only `&S: Shared` (atomics) and raw pointers.
unsafe impl Sync for Region {}

// SAFETY: `Header` is repr(C), atomics only, 128 bytes, alignment 8.
unsafe impl Shared for Header {}
