//! Looking at a region file without trusting it (for `interproc list`, `inspect` and `gc`).
//!
//! [`Region::open_observer`](super::Region::open_observer) refuses a region whose header does
//! not check out, but the CLI still has to show such a file and `gc` still has to decide about
//! it. [`probe`] reports what can be known without validation: the file's length and age, a raw
//! copy of its header (if the file is long enough to hold one; never trusted, only shown and
//! classified), and the kernel's view of the region's lock bytes (see [`super::registry`]): the
//! owner lock, each participant slot's lock with the pid that slot records, and whether any role
//! lock is held. Nothing here writes to the region's memory.
//!
//! [`Exclusive`] is `gc`'s tool: one OFD write lock over the whole lock range (owner lock,
//! participant slots, roles), taken in a single `F_OFD_SETLK`. It is granted only if no other
//! open file description holds any of those bytes, which proves the creator and every
//! participant and role holder gone (the kernel drops their locks when they close the region or
//! die, see `sys::liveness`). While it is held nobody can attach: a slot claim fails, so an
//! `open` racing with `gc` gets [`Error::Busy`] instead of attaching to a region about to be
//! unlinked. `gc` re-reads the header under it, and [`Exclusive::unlink`] removes the name only
//! if it still refers to the file that was locked.

use std::fs::File;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::header::{Header, RawHeader, BODY_OFFSET, HEADER_LEN};
use super::registry::{
    Slot, MAX_PARTICIPANTS, MAX_ROLES, OWNER_LOCK, PARTICIPANT_LOCK_BASE, ROLE_LOCK_BASE,
};
use crate::error::{Error, Result};
use crate::loom::atomic::Ordering;
use crate::sys::{liveness, shm};

/// One past the last lock byte a region uses.
const LOCK_RANGE_END: u64 = ROLE_LOCK_BASE + MAX_ROLES as u64;

/// What a region file shows without validation.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The file's length in bytes (`fstat`).
    pub len: u64,
    /// Time since the file's last status change (creation, resize, chmod).
    pub age: Duration,
    /// A raw, unvalidated copy of the header; `None` if the file is shorter than a header.
    pub header: Option<RawHeader>,
    /// Another open file description holds the owner lock: the creating handle is alive.
    pub owner_held: bool,
    /// The pids recorded in the participant slots whose lock is held (0: not readable, or the
    /// holder has not written it yet).
    pub participants: Vec<u32>,
    /// Some role lock (an exclusive endpoint) is held.
    pub roles_held: bool,
}

/// Probes the shared-memory object `shm_name` (the full `interproc.<name>` entry, which need
/// not be a valid [`Name`](super::Name)), read-only.
///
/// # Errors
/// [`Error::NotFound`], or [`Error::Io`] if it cannot be opened or examined.
pub fn probe(shm_name: &str) -> Result<Probe> {
    let file = shm::open(shm_name, false).map_err(Error::from_io)?;
    probe_file(&file, true)
}

/// Probes an open file; with `locks` false the lock fields all report "free" (for a caller
/// that holds every lock byte itself, where `F_OFD_GETLK` would see nothing else anyway).
fn probe_file(file: &File, locks: bool) -> Result<Probe> {
    let stat = shm::stat(file)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = Duration::from_secs(now.saturating_sub(u64::try_from(stat.ctime).unwrap_or(0)));
    // Map only what the file backs: the header, and the registry when it is there too.
    let mapped = if stat.len >= BODY_OFFSET as u64 {
        BODY_OFFSET
    } else if stat.len >= HEADER_LEN as u64 {
        HEADER_LEN
    } else {
        0
    };
    let map = if mapped > 0 {
        Some(shm::map(file, mapped, false)?)
    } else {
        None
    };
    let header = map.as_ref().map(|m| {
        // SAFETY: the mapping is at least HEADER_LEN bytes, page-aligned, and backed by the
        // file (its length was checked above); `Header` is all atomics, valid for every bit
        // pattern, and only loaded from.
        let h = unsafe { &*(m.as_ptr() as *const Header) };
        h.snapshot()
    });
    let slots = map.as_ref().filter(|_| mapped == BODY_OFFSET).map(|m| {
        // SAFETY: the mapping covers the registry at HEADER_LEN..BODY_OFFSET (checked above);
        // `Slot` is all atomics and 16-byte aligned there (HEADER_LEN is 128).
        unsafe { &*(m.as_ptr().add(HEADER_LEN) as *const [Slot; MAX_PARTICIPANTS]) }
    });
    let mut probe = Probe {
        len: stat.len,
        age,
        header,
        owner_held: false,
        participants: Vec::new(),
        roles_held: false,
    };
    if locks {
        probe.owner_held = liveness::is_locked_by_other(file, OWNER_LOCK)?;
        for i in 0..MAX_PARTICIPANTS {
            if liveness::is_locked_by_other(file, PARTICIPANT_LOCK_BASE + i as u64)? {
                let pid = slots.map_or(0, |s| s[i].pid.load(Ordering::Relaxed));
                probe.participants.push(pid);
            }
        }
        for r in 0..MAX_ROLES {
            if liveness::is_locked_by_other(file, ROLE_LOCK_BASE + r as u64)? {
                probe.roles_held = true;
                break;
            }
        }
    }
    Ok(probe)
}

/// Every lock byte of one region, held by this handle: nobody else is attached, and nobody can
/// attach until it is dropped.
#[derive(Debug)]
pub struct Exclusive {
    file: File,
    shm_name: String,
    id: (u64, u64),
}

impl Exclusive {
    /// Takes every lock byte of `shm_name` at once; `Ok(None)` if someone holds any of them.
    ///
    /// # Errors
    /// [`Error::NotFound`], or [`Error::Io`] (for instance `EACCES`: write locks need a
    /// writable descriptor).
    pub fn lock(shm_name: &str) -> Result<Option<Exclusive>> {
        let file = shm::open(shm_name, true).map_err(Error::from_io)?;
        let id = shm::stat(&file)?.id;
        if !liveness::try_lock_range(&file, OWNER_LOCK, LOCK_RANGE_END - OWNER_LOCK)? {
            return Ok(None);
        }
        Ok(Some(Exclusive {
            file,
            shm_name: shm_name.to_owned(),
            id,
        }))
    }

    /// Probes the locked file (its lock fields all read "free": this handle holds them).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn probe(&self) -> Result<Probe> {
        probe_file(&self.file, false)
    }

    /// Unlinks the name if it still refers to the locked file; `Ok(false)` if it was removed or
    /// replaced meanwhile (then nothing is unlinked). The locks go when `self` is dropped.
    ///
    /// # Errors
    /// [`Error::Io`] if the kernel refuses the unlink.
    pub fn unlink(self) -> Result<bool> {
        if shm::identity_of_name(&self.shm_name).ok() != Some(self.id) {
            return Ok(false);
        }
        match shm::unlink(&self.shm_name).map_err(Error::from_io) {
            Ok(()) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
