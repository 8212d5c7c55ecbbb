//! Read-only inspection of every object, and the garbage-collection policy: the library side
//! of the `interproc` command-line tool.
//!
//! [`list`] and [`inspect`] return plain data ([`ObjectInfo`]); the binary only formats it.
//! Nothing here writes to a live region: a region whose header checks out is opened as an
//! *observer* (read-only mapping, no participant slot, so it never shows up among the attached
//! processes), and a file whose header does not check out is only *probed*: its length, a raw
//! copy of its header and the kernel's view of its lock bytes (`region::probe`). Such an
//! object is reported with `kind: None` (the CLI prints `?`) and the reason in
//! [`ObjectInfo::error`]; it never makes the listing fail.
//!
//! # Owner states
//! The creating handle holds the region's *owner lock* (an OFD lock the kernel drops when the
//! handle is closed or its process dies) and unlinks the name when dropped, unless it called
//! `persist`. Hence, for a file that still exists:
//!
//! | persisted flag | owner lock | header ready | [`OwnerState`]                                  |
//! |----------------|------------|--------------|-------------------------------------------------|
//! | set            | any        | yes          | `Persisted` (the name outlives its creator)     |
//! | clear          | held       | yes          | `Alive` (the creator holds the name)            |
//! | clear          | free       | yes          | `Orphaned` (the creator died without persisting)|
//! | -              | held       | no           | `Initialising`                                  |
//! | -              | free       | no           | `Orphaned` (the creator died while creating it) |
//! | unreadable     | held       | -            | `Alive`                                         |
//! | unreadable     | free       | -            | `Unknown`                                       |
//!
//! # Garbage collection
//! [`gc`] removes what crashed processes left behind, and nothing a live process may still
//! use. Following the unlink rule of the research notes ("only unlink when every participant
//! is proven dead"), a file is garbage only if *no* lock byte of the region is held: not the
//! owner lock, no participant slot, no role. The kernel drops those locks when their holders
//! die, so "free" is a proof, not a guess from a timeout or a pid. Then:
//!
//! | header                                  | decision                                        |
//! |-----------------------------------------|-------------------------------------------------|
//! | ready, persisted                        | keep                                            |
//! | ready, not persisted                    | remove (creator died without handing it up)     |
//! | never finished, younger than 3 s        | keep (a creator may be between `O_EXCL` and its owner lock) |
//! | never finished, older                   | remove (creator died while initialising)        |
//! | does not check out (bad magic, sizes, unknown kind or version, invalid name) | remove only with `force`, else report |
//!
//! The decision is taken twice: once from a side-effect-free probe, and again while `gc` holds
//! every lock byte of the region at once (`region::probe::Exclusive`, one OFD range lock). The
//! second look is authoritative: nobody can attach while it is held (a racing `open` gets
//! `Error::Busy`), and the name is unlinked only if it still refers to the locked file. A
//! process that had opened the file but not yet claimed a slot can still attach after the
//! unlink, exactly as with a racing [`remove`](crate::remove); it keeps a working, nameless
//! object.
//!
//! Ages come from the file's status-change time, which has whole-second resolution here; the
//! 3-second threshold therefore means "more than two seconds old".
//!
//! # Wiring the kinds
//! Which layout and inspect functions belong to which object kind is decided in exactly one
//! place, the match in `kind_ops`.

use std::time::Duration;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::region::header::{FORMAT_VERSION, MAGIC, STATE_READY};
use crate::region::name::PREFIX;
use crate::region::probe::{self, Exclusive, Probe};
use crate::region::{Kind, LayoutFn, Name, Region};
use crate::sys::shm;

/// Everything `interproc list` / `inspect` show about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectInfo {
    /// The object's name (the part of `/dev/shm/interproc.<name>` after the prefix).
    pub name: String,
    /// The kind as a lowercase word (`queue`, `value`, ...); `None` if the header does not
    /// check out (see [`ObjectInfo::error`]).
    pub kind: Option<String>,
    /// The file's length in bytes; `None` if it could not be examined.
    pub size: Option<u64>,
    /// Slots, bytes or permits, as the kind defines; `None` if the header does not check out.
    pub capacity: Option<u64>,
    /// Messages queued now, for queue-like kinds.
    pub depth: Option<u64>,
    /// Pids of the processes attached now (one entry per attached handle; 0 if a slot's pid
    /// cannot be read).
    pub participants: Vec<u32>,
    /// Who holds the name.
    pub owner: OwnerState,
    /// The name was handed up with `persist` (it outlives its creator; `gc` keeps it).
    pub persisted: bool,
    /// The creating handle is still open (its owner lock is held).
    pub creator_alive: bool,
    /// The header's fields: validated if `error` is `None`, else a raw, untrusted copy (if the
    /// file is long enough to hold a header).
    pub header: Option<HeaderInfo>,
    /// Kind-specific fields, in the kind's order (e.g. `("value", "7")`).
    #[serde(serialize_with = "fields_as_map")]
    pub fields: Vec<(String, String)>,
    /// Why the object could not be validated, if it could not.
    pub error: Option<String>,
}

/// The header fields of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HeaderInfo {
    /// The on-disk format version.
    pub format_version: u32,
    /// The kind as its numeric tag.
    pub kind_tag: u32,
    /// `size_of` of the element type (0 if the kind has none).
    pub elem_size: u32,
    /// `align_of` of the element type.
    pub elem_align: u32,
    /// Slots, bytes or permits, as the kind defines.
    pub capacity: u64,
    /// Kind-specific parameters.
    pub params: [u64; 4],
    /// Bytes of the kind-specific body.
    pub body_len: u64,
    /// The file length the layout needs.
    pub total_len: u64,
    /// The creator's pid.
    pub creator_pid: u32,
    /// The creator finished initialising it.
    pub ready: bool,
}

/// Who holds an object's name (see the module documentation for the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerState {
    /// The creating handle is alive and will unlink the name when dropped.
    Alive,
    /// The name was handed up with `persist`: it stays until removed.
    Persisted,
    /// The creator died without handing the name up (or while creating it).
    Orphaned,
    /// A live creator has not finished initialising it yet.
    Initialising,
    /// The header does not check out and no creator holds the name.
    Unknown,
}

impl OwnerState {
    /// The lowercase word the CLI prints.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerState::Alive => "alive",
            OwnerState::Persisted => "persisted",
            OwnerState::Orphaned => "orphaned",
            OwnerState::Initialising => "initialising",
            OwnerState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for OwnerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn fields_as_map<S: Serializer>(
    fields: &[(String, String)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(fields.len()))?;
    for (k, v) in fields {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// Describes every object under `/dev/shm/interproc.*`, sorted by name. Objects that vanish
/// while being listed are left out; objects that do not check out are included with
/// [`ObjectInfo::error`] set.
///
/// # Errors
/// [`Error::Io`] if `/dev/shm` cannot be read.
pub fn list() -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for name in object_names()? {
        match describe(&name) {
            Ok(info) => out.push(info),
            Err(Error::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Describes the object `name`: what [`list`] shows, the header and the kind-specific fields.
/// An object whose header does not check out is described as far as possible, with
/// [`ObjectInfo::error`] set.
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`].
pub fn inspect(name: &str) -> Result<ObjectInfo> {
    Name::new(name)?;
    describe(name)
}

/// What [`gc`] should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcOptions {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Also remove files whose header does not check out (when nobody holds a lock on them).
    pub force: bool,
    /// Only consider objects whose name starts with this.
    pub prefix: Option<String>,
}

/// One thing [`gc`] did (or would do, or would not do without `force`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcAction {
    /// The object's name.
    pub name: String,
    /// What happened.
    pub outcome: GcOutcome,
    /// Why (the garbage criterion met, or the error).
    pub reason: String,
}

/// The outcome of a [`GcAction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GcOutcome {
    /// The name was unlinked.
    Removed,
    /// The name would be unlinked (dry run).
    WouldRemove,
    /// The file does not check out and nobody holds it; only removed with `force`.
    NeedsForce,
    /// Examining or removing it failed (the reason says how).
    Failed,
}

/// Removes the leftovers of crashed processes (see the module documentation for the exact
/// policy) and returns one [`GcAction`] per object removed, to be removed, needing `force`, or
/// failed. Live and persisted objects are never touched and not reported, nor are objects this
/// user may not open (another user's).
///
/// # Errors
/// [`Error::Io`] if `/dev/shm` cannot be read; a failure on one object is reported as a
/// [`GcOutcome::Failed`] action and the others are still examined.
pub fn gc(options: &GcOptions) -> Result<Vec<GcAction>> {
    let mut actions = Vec::new();
    let prefix = options.prefix.as_deref().unwrap_or("");
    for name in object_names()?
        .into_iter()
        .filter(|n| n.starts_with(prefix))
    {
        let action = |outcome, reason: String| GcAction {
            name: name.clone(),
            outcome,
            reason,
        };
        let facts = match gc_facts(&name) {
            Ok(facts) => facts,
            Err(Error::NotFound) => continue,
            // Another user's object (mode 0600): not ours to judge or collect.
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => continue,
            Err(e) => {
                actions.push(action(GcOutcome::Failed, e.to_string()));
                continue;
            }
        };
        match decide(&facts, options.force) {
            GcDecision::Keep => {}
            GcDecision::NeedsForce(reason) => actions.push(action(GcOutcome::NeedsForce, reason)),
            GcDecision::Remove(reason) if options.dry_run => {
                actions.push(action(GcOutcome::WouldRemove, reason))
            }
            GcDecision::Remove(_) => match remove_if_garbage(&name, options.force) {
                Ok(Some(reason)) => actions.push(action(GcOutcome::Removed, reason)),
                Ok(None) | Err(Error::NotFound) => {}
                Err(e) => actions.push(action(GcOutcome::Failed, e.to_string())),
            },
        }
    }
    Ok(actions)
}

// ---------------------------------------------------------------------------------------------
// Kind dispatch: the ONE place that knows each kind's layout and inspect functions.

/// A kind's functions for validation and display.
struct KindOps {
    layout: &'static LayoutFn,
    inspect: InspectFn,
}

/// A kind's inspect function.
type InspectFn = fn(&Region) -> Vec<(&'static str, String)>;

/// The functions of `kind`.
fn kind_ops(kind: Kind) -> KindOps {
    let (layout, inspect): (&'static LayoutFn, InspectFn) = match kind {
        Kind::Value => (&crate::value::layout, crate::value::inspect),
        Kind::Semaphore => (
            &crate::sync::semaphore::layout,
            crate::sync::semaphore::inspect,
        ),
        Kind::Barrier => (&crate::sync::barrier::layout, crate::sync::barrier::inspect),
        Kind::Event => (&crate::sync::event::layout, crate::sync::event::inspect),
        Kind::Mutex => (&crate::sync::mutex::layout, crate::sync::mutex::inspect),
        Kind::RwLock => (&crate::sync::rwlock::layout, crate::sync::rwlock::inspect),
        Kind::Condvar => (&crate::sync::condvar::layout, crate::sync::condvar::inspect),
        Kind::Spsc => (&crate::queue::spsc::layout, crate::queue::spsc::inspect),
        Kind::Pipe => (&crate::queue::pipe::layout, crate::queue::pipe::inspect),
        Kind::Queue => (&crate::queue::mpmc::layout, crate::queue::mpmc::inspect),
    };
    KindOps { layout, inspect }
}

/// The layout function of `kind`, for [`Region::open_observer`].
pub(crate) fn layout_of(kind: Kind) -> &'static LayoutFn {
    kind_ops(kind).layout
}

/// The kind-specific fields of a validated region of `kind` (only atomic loads).
pub(crate) fn kind_fields(kind: Kind, region: &Region) -> Vec<(&'static str, String)> {
    (kind_ops(kind).inspect)(region)
}

// ---------------------------------------------------------------------------------------------
// Describing one object.

/// Every entry of `/dev/shm` that starts with the interproc prefix, prefix stripped (valid
/// object names or not).
fn object_names() -> Result<Vec<String>> {
    Ok(shm::list_names()?
        .into_iter()
        .filter_map(|e| e.strip_prefix(PREFIX).map(str::to_owned))
        .collect())
}

/// Describes the entry `interproc.<name>`; `Err(NotFound)` if it does not exist (any other
/// failure is reported inside the description).
fn describe(name: &str) -> Result<ObjectInfo> {
    if Name::new(name).is_err() {
        return describe_unreadable(name, "not a valid object name".into());
    }
    match Region::open_observer(name, &layout_of) {
        Ok(region) => Ok(describe_valid(name, &region)),
        Err(Error::NotFound) => Err(Error::NotFound),
        Err(e) => describe_unreadable(name, e.to_string()),
    }
}

fn describe_valid(name: &str, region: &Region) -> ObjectInfo {
    let spec = *region.spec();
    let fields: Vec<(String, String)> = kind_fields(spec.kind, region)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let depth = fields
        .iter()
        .find(|(k, _)| k == "depth")
        .and_then(|(_, v)| v.parse().ok());
    let persisted = region.is_persisted();
    let creator_alive = region.owner_alive();
    ObjectInfo {
        name: name.to_owned(),
        kind: Some(spec.kind.as_str().to_owned()),
        size: spec.total_len(),
        capacity: Some(spec.capacity),
        depth,
        participants: region.participants(),
        owner: owner_state(HeaderState::Ready, persisted, creator_alive),
        persisted,
        creator_alive,
        header: Some(HeaderInfo {
            format_version: FORMAT_VERSION,
            kind_tag: spec.kind as u32,
            elem_size: spec.elem_size,
            elem_align: spec.elem_align,
            capacity: spec.capacity,
            params: spec.params,
            body_len: spec.body_len,
            total_len: spec.total_len().unwrap_or(0),
            creator_pid: region.creator_pid(),
            ready: true,
        }),
        fields,
        error: None,
    }
}

fn describe_unreadable(name: &str, reason: String) -> Result<ObjectInfo> {
    let mut info = ObjectInfo {
        name: name.to_owned(),
        kind: None,
        size: None,
        capacity: None,
        depth: None,
        participants: Vec::new(),
        owner: OwnerState::Unknown,
        persisted: false,
        creator_alive: false,
        header: None,
        fields: Vec::new(),
        error: Some(reason.clone()),
    };
    let probe = match probe::probe(&format!("{PREFIX}{name}")) {
        Ok(p) => p,
        Err(Error::NotFound) => return Err(Error::NotFound),
        Err(e) => {
            info.error = Some(format!("{reason}; cannot be examined: {e}"));
            return Ok(info);
        }
    };
    let state = if Name::new(name).is_ok() {
        classify(&probe, reason)
    } else {
        HeaderState::Unreadable(reason)
    };
    info.size = Some(probe.len);
    info.participants.clone_from(&probe.participants);
    info.creator_alive = probe.owner_held;
    info.owner = owner_state(state.clone(), false, probe.owner_held);
    info.header = probe.header.map(|h| HeaderInfo {
        format_version: h.version,
        kind_tag: h.kind,
        elem_size: h.elem_size,
        elem_align: h.elem_align,
        capacity: h.capacity,
        params: h.params,
        body_len: h.body_len,
        total_len: h.total_len,
        creator_pid: h.creator_pid,
        ready: h.state == STATE_READY,
    });
    info.error = Some(match &state {
        HeaderState::NotReady if probe.owner_held => "being initialised by its creator".into(),
        HeaderState::NotReady => "its creator died before finishing initialisation".into(),
        HeaderState::Unreadable(why) => why.clone(),
        HeaderState::Ready => String::new(), // not reached: validation failed
    });
    Ok(info)
}

/// A clearer reason than the validation error where the raw header tells more.
fn refine_reason(probe: &Probe, reason: String) -> String {
    let Some(h) = probe.header.as_ref() else {
        return reason;
    };
    if h.magic != MAGIC {
        return format!("bad magic {:#018x} (not an interproc region)", h.magic);
    }
    reason
}

// ---------------------------------------------------------------------------------------------
// The gc policy: pure decisions over facts, then the locked second look.

/// What the header of a region file says about its life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HeaderState {
    /// Published and valid.
    Ready,
    /// Never published: the file is empty (the creator died before sizing it) or carries our
    /// magic (or none yet) without the ready mark.
    NotReady,
    /// Anything else: it does not check out, for the reason given.
    Unreadable(String),
}

/// Classifies a validly named file that failed validation with `reason`.
fn classify(probe: &Probe, reason: String) -> HeaderState {
    let not_ready = match &probe.header {
        None => probe.len == 0,
        Some(h) => {
            h.state != STATE_READY
                && (h.magic == 0 || h.magic == MAGIC)
                && probe.len >= crate::region::header::BODY_OFFSET as u64
        }
    };
    if not_ready {
        HeaderState::NotReady
    } else {
        HeaderState::Unreadable(refine_reason(probe, reason))
    }
}

fn owner_state(state: HeaderState, persisted: bool, owner_held: bool) -> OwnerState {
    match (state, persisted, owner_held) {
        (HeaderState::Ready, true, _) => OwnerState::Persisted,
        (HeaderState::Ready, false, true) => OwnerState::Alive,
        (HeaderState::Ready, false, false) => OwnerState::Orphaned,
        (HeaderState::NotReady, _, true) => OwnerState::Initialising,
        (HeaderState::NotReady, _, false) => OwnerState::Orphaned,
        (HeaderState::Unreadable(_), _, true) => OwnerState::Alive,
        (HeaderState::Unreadable(_), _, false) => OwnerState::Unknown,
    }
}

/// How young a never-initialised file must be to be left alone: its creator may be alive
/// between creating the file and taking its owner lock.
const INIT_GRACE: Duration = Duration::from_secs(3);

/// The facts `gc` decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GcFacts {
    state: HeaderState,
    /// The persisted flag of a ready header.
    persisted: bool,
    /// The owner lock is held.
    owner_alive: bool,
    /// Some participant slot or role lock is held.
    participants_alive: bool,
    /// Time since the file's last status change.
    age: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GcDecision {
    Keep,
    Remove(String),
    NeedsForce(String),
}

/// The gc policy, a pure function of the facts (see the module documentation).
fn decide(facts: &GcFacts, force: bool) -> GcDecision {
    if facts.owner_alive || facts.participants_alive {
        return GcDecision::Keep;
    }
    match &facts.state {
        HeaderState::Ready if facts.persisted => GcDecision::Keep,
        HeaderState::Ready => GcDecision::Remove(
            "its creator died without persisting it and no live process is attached".into(),
        ),
        HeaderState::NotReady if facts.age < INIT_GRACE => GcDecision::Keep,
        HeaderState::NotReady => GcDecision::Remove(
            "its creator died before finishing initialisation and no live process holds it".into(),
        ),
        HeaderState::Unreadable(why) if force => GcDecision::Remove(format!(
            "it does not check out ({why}) and no live process holds it (--force)"
        )),
        HeaderState::Unreadable(why) => GcDecision::NeedsForce(format!(
            "it does not check out ({why}) and no live process holds it; remove it with --force"
        )),
    }
}

/// The header state and persisted flag of `interproc.<name>`, given a probe of it.
fn header_facts(name: &str, probe: &Probe) -> Result<(HeaderState, bool)> {
    if Name::new(name).is_err() {
        return Ok((
            HeaderState::Unreadable("not a valid object name".into()),
            false,
        ));
    }
    match Region::open_observer(name, &layout_of) {
        Ok(region) => Ok((HeaderState::Ready, region.is_persisted())),
        Err(Error::NotFound) => Err(Error::NotFound),
        Err(e) => Ok((classify(probe, e.to_string()), false)),
    }
}

fn gc_facts(name: &str) -> Result<GcFacts> {
    let probe = probe::probe(&format!("{PREFIX}{name}"))?;
    let (state, persisted) = header_facts(name, &probe)?;
    Ok(GcFacts {
        state,
        persisted,
        owner_alive: probe.owner_held,
        participants_alive: !probe.participants.is_empty() || probe.roles_held,
        age: probe.age,
    })
}

/// The authoritative second look: with every lock byte held, decide again and unlink.
/// `Ok(Some(reason))` if removed, `Ok(None)` if it turned out to be live or no longer garbage.
fn remove_if_garbage(name: &str, force: bool) -> Result<Option<String>> {
    let shm_name = format!("{PREFIX}{name}");
    let Some(exclusive) = Exclusive::lock(&shm_name)? else {
        return Ok(None); // someone holds a lock now: alive
    };
    let probe = exclusive.probe()?;
    let (state, persisted) = header_facts(name, &probe)?;
    let facts = GcFacts {
        state,
        persisted,
        // Proven by the lock just taken: no other description holds any lock byte.
        owner_alive: false,
        participants_alive: false,
        age: probe.age,
    };
    match decide(&facts, force) {
        GcDecision::Remove(reason) => Ok(exclusive.unlink()?.then_some(reason)),
        GcDecision::Keep | GcDecision::NeedsForce(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{RawHeader, Spec};

    fn facts(state: HeaderState) -> GcFacts {
        GcFacts {
            state,
            persisted: false,
            owner_alive: false,
            participants_alive: false,
            age: Duration::from_secs(60),
        }
    }

    fn unreadable() -> HeaderState {
        HeaderState::Unreadable("bad magic".into())
    }

    #[test]
    fn gc_removes_only_what_dead_creators_left_unpersisted() {
        let ready = facts(HeaderState::Ready);
        assert!(matches!(decide(&ready, false), GcDecision::Remove(_)));
        let persisted = GcFacts {
            persisted: true,
            ..ready.clone()
        };
        assert_eq!(decide(&persisted, false), GcDecision::Keep);
        assert_eq!(
            decide(&persisted, true),
            GcDecision::Keep,
            "force never drops persisted"
        );
    }

    #[test]
    fn gc_never_removes_anything_a_live_process_holds() {
        for state in [HeaderState::Ready, HeaderState::NotReady, unreadable()] {
            for (owner, participants) in [(true, false), (false, true), (true, true)] {
                let f = GcFacts {
                    owner_alive: owner,
                    participants_alive: participants,
                    ..facts(state.clone())
                };
                for force in [false, true] {
                    assert_eq!(decide(&f, force), GcDecision::Keep, "{f:?} force={force}");
                }
            }
        }
    }

    #[test]
    fn gc_waits_for_young_uninitialised_files() {
        let young = GcFacts {
            age: Duration::from_secs(1),
            ..facts(HeaderState::NotReady)
        };
        assert_eq!(decide(&young, true), GcDecision::Keep);
        let at_threshold = GcFacts {
            age: INIT_GRACE,
            ..young.clone()
        };
        assert!(matches!(
            decide(&at_threshold, false),
            GcDecision::Remove(_)
        ));
    }

    #[test]
    fn gc_removes_unreadable_files_only_with_force() {
        let f = facts(unreadable());
        match decide(&f, false) {
            GcDecision::NeedsForce(why) => {
                assert!(why.contains("bad magic") && why.contains("--force"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(decide(&f, true), GcDecision::Remove(_)));
    }

    fn probe_of(len: u64, header: Option<RawHeader>) -> Probe {
        Probe {
            len,
            age: Duration::ZERO,
            header,
            owner_held: false,
            participants: Vec::new(),
            roles_held: false,
        }
    }

    #[test]
    fn classifies_crashed_creations_apart_from_garbage() {
        use bytemuck::Zeroable;
        let body = crate::region::header::BODY_OFFSET as u64;
        let zero = RawHeader::zeroed();
        let ours = RawHeader {
            magic: MAGIC,
            ..zero
        };
        let r = || "why".to_string();
        // Died before ftruncate: empty file.
        assert_eq!(classify(&probe_of(0, None), r()), HeaderState::NotReady);
        // Died after sizing, before / while writing the header.
        assert_eq!(
            classify(&probe_of(8192, Some(zero)), r()),
            HeaderState::NotReady
        );
        assert_eq!(
            classify(&probe_of(8192, Some(ours)), r()),
            HeaderState::NotReady
        );
        // Not something a creator produces.
        assert_eq!(
            classify(&probe_of(100, None), r()),
            HeaderState::Unreadable(r())
        );
        assert!(matches!(
            classify(&probe_of(body - 1, Some(ours)), r()),
            HeaderState::Unreadable(why) if why == "why"
        ));
        let foreign = RawHeader { magic: 42, ..zero };
        assert!(matches!(
            classify(&probe_of(8192, Some(foreign)), r()),
            HeaderState::Unreadable(why) if why.starts_with("bad magic 0x000000000000002a")
        ));
        let future = RawHeader {
            version: FORMAT_VERSION + 1,
            state: STATE_READY,
            ..ours
        };
        assert_eq!(
            classify(&probe_of(8192, Some(future)), r()),
            HeaderState::Unreadable(r()),
            "the validation error (incompatible version) is kept"
        );
        let ready_but_invalid = RawHeader {
            state: STATE_READY,
            ..ours
        };
        assert_eq!(
            classify(&probe_of(8192, Some(ready_but_invalid)), r()),
            HeaderState::Unreadable(r())
        );
    }

    #[test]
    fn owner_states_follow_the_table() {
        use HeaderState::*;
        assert_eq!(owner_state(Ready, true, true), OwnerState::Persisted);
        assert_eq!(owner_state(Ready, true, false), OwnerState::Persisted);
        assert_eq!(owner_state(Ready, false, true), OwnerState::Alive);
        assert_eq!(owner_state(Ready, false, false), OwnerState::Orphaned);
        assert_eq!(owner_state(NotReady, false, true), OwnerState::Initialising);
        assert_eq!(owner_state(NotReady, false, false), OwnerState::Orphaned);
        assert_eq!(owner_state(unreadable(), false, true), OwnerState::Alive);
        assert_eq!(owner_state(unreadable(), false, false), OwnerState::Unknown);
    }

    #[test]
    fn every_kind_has_a_layout() {
        let spec = Spec {
            kind: Kind::Queue,
            elem_size: 8,
            elem_align: 8,
            capacity: 1,
            params: [0; 4],
            body_len: 0,
        };
        // Layouts run on hostile headers: none may panic or overflow on extreme inputs.
        for kind in Kind::ALL {
            for capacity in [0, 1, 3, u32::MAX as u64, u64::MAX] {
                for (elem_size, elem_align) in [(0, 1), (8, 8), (3, 2), (u32::MAX, 1 << 31)] {
                    let body = layout_of(kind)(&Spec {
                        kind,
                        capacity,
                        elem_size,
                        elem_align,
                        params: [u64::MAX; 4],
                        ..spec
                    });
                    assert!(body.is_none_or(|b| b < 1 << 41), "{kind}: {body:?}");
                }
            }
        }
        assert_eq!(
            layout_of(Kind::Value)(&Spec {
                kind: Kind::Value,
                ..spec
            }),
            Some(8)
        );
    }

    #[test]
    fn json_shows_fields_as_an_ordered_object() {
        let info = ObjectInfo {
            name: "n".into(),
            kind: Some("value".into()),
            size: Some(4096),
            capacity: Some(1),
            depth: None,
            participants: vec![7],
            owner: OwnerState::Alive,
            persisted: false,
            creator_alive: true,
            header: None,
            fields: vec![("type".into(), "u8".into()), ("value".into(), "3".into())],
            error: None,
        };
        let json = serde_json::to_string(&info).unwrap();
        assert!(
            json.contains(r#""fields":{"type":"u8","value":"3"}"#),
            "{json}"
        );
        assert!(json.contains(r#""owner":"alive""#), "{json}");
    }
}

#[cfg(all(test, not(loom)))]
mod region_tests {
    use super::*;

    fn name(tag: &str) -> String {
        crate::test_names::unit("inspect", tag)
    }

    #[test]
    fn inspects_a_live_value_and_its_persisted_state() {
        let v = crate::Value::<u64>::create(&name("value"), 41).unwrap();
        v.fetch_add(1);
        let info = inspect(v.name()).unwrap();
        assert_eq!(info.kind.as_deref(), Some("value"));
        assert_eq!(info.error, None);
        assert_eq!(info.capacity, Some(1));
        assert_eq!(info.owner, OwnerState::Alive);
        assert!(info.creator_alive && !info.persisted);
        assert_eq!(info.participants, vec![std::process::id()]);
        assert!(info
            .fields
            .contains(&("value".to_string(), "42".to_string())));
        let header = info.header.unwrap();
        assert_eq!(
            (header.elem_size, header.creator_pid),
            (8, std::process::id())
        );
        assert_eq!(info.size, Some(header.total_len));
        v.persist();
        assert_eq!(inspect(v.name()).unwrap().owner, OwnerState::Persisted);
        crate::remove(v.name()).unwrap();
        assert!(matches!(inspect(v.name()), Err(Error::NotFound)));
        assert!(matches!(inspect("../x"), Err(Error::InvalidName)));
    }

    #[test]
    fn the_locked_second_look_never_removes_held_or_persisted_objects() {
        let v = crate::Value::<u8>::create(&name("second-look"), 1).unwrap();
        // The creator's owner and slot locks make the exclusive lock fail.
        assert_eq!(remove_if_garbage(v.name(), true).unwrap(), None);
        assert!(inspect(v.name()).is_ok());
        v.persist();
        let n = v.name().to_owned();
        drop(v);
        // Nobody holds it now, but it is persisted: locked, re-checked, kept.
        assert_eq!(remove_if_garbage(&n, true).unwrap(), None);
        assert_eq!(inspect(&n).unwrap().owner, OwnerState::Persisted);
        crate::remove(&n).unwrap();
    }

    #[test]
    fn a_garbage_file_is_described_not_fatal() {
        let n = name("junk");
        let path = format!("/dev/shm/{PREFIX}{n}");
        std::fs::write(&path, vec![0xAB; 5000]).unwrap();
        let info = inspect(&n);
        let _ = std::fs::remove_file(&path);
        let info = info.unwrap();
        assert_eq!(info.kind, None);
        assert_eq!(info.size, Some(5000));
        assert!(info.error.unwrap().contains("magic"));
        assert_eq!(info.owner, OwnerState::Unknown);
        assert!(info.header.is_some_and(|h| !h.ready));
    }
}
