//! Liveness tokens: open-file-description (OFD) byte locks, and process start times.
//!
//! An OFD lock (`F_OFD_SETLK`) belongs to an open file description, not to a process: the
//! kernel drops it when the last descriptor of that description is closed, which happens when
//! the process exits or is killed, before it becomes a zombie. It is unaffected by pid reuse
//! and pid namespaces, and other descriptors of the same file in the same process do not
//! release it (unlike classic `F_SETLK` record locks). Lock offsets need not lie inside the
//! file, so the regions reserve a range far beyond any real length for them.
//!
//! `F_OFD_GETLK` reports only *conflicting* locks: a lock held through the caller's own open
//! file description never shows. Callers must know which bytes they hold themselves.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

fn flock(kind: libc::c_short, offset: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required for OFD locks
    fl
}

/// Tries to take an exclusive OFD lock on the byte at `offset`. `Ok(false)`: another open
/// file description holds it.
pub fn try_lock(file: &File, offset: u64) -> io::Result<bool> {
    try_lock_range(file, offset, 1)
}

/// Tries to take an exclusive OFD lock on the `len` bytes from `offset` in one step:
/// `Ok(false)` if another open file description holds a lock on any of them. The kernel
/// arbitrates the whole range at once, so holding it proves no other holder of any byte in it.
pub fn try_lock_range(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, offset);
    fl.l_len = len as libc::off_t;
    // SAFETY: `fl` is a valid flock that outlives the call; the descriptor is open.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Releases an OFD lock taken with [`try_lock`] through the same file.
pub fn unlock(file: &File, offset: u64) -> io::Result<()> {
    let fl = flock(libc::F_UNLCK as libc::c_short, offset);
    // SAFETY: `fl` is a valid flock that outlives the call; the descriptor is open.
    super::cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) })?;
    Ok(())
}

/// True if an open file description *other than `file`'s* holds a lock on the byte.
pub fn is_locked_by_other(file: &File, offset: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, offset);
    // SAFETY: `fl` is a valid flock the kernel may overwrite; the descriptor is open.
    super::cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// The pid of the calling process.
pub fn current_pid() -> u32 {
    std::process::id()
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/<pid>/stat`), or
/// `None` if there is no such process. Together with the pid it names one process for good.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); field 22 is the 20th from here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The calling process's start time, read once.
pub fn current_start_time() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| process_start_time(current_pid()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_known_and_stable() {
        let t = current_start_time();
        assert!(t > 0);
        assert_eq!(process_start_time(current_pid()), Some(t));
        assert_eq!(process_start_time(u32::MAX), None);
    }

    #[test]
    fn ofd_locks_conflict_between_descriptions_not_within() {
        let dir = std::env::temp_dir().join(format!("interproc-ofd-{}", current_pid()));
        let a = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&dir)
            .unwrap();
        let b = File::options().read(true).write(true).open(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        let off = 1 << 40;
        assert!(try_lock(&a, off).unwrap());
        assert!(
            try_lock(&a, off).unwrap(),
            "re-locking through the same description succeeds"
        );
        assert!(!try_lock(&b, off).unwrap());
        assert!(is_locked_by_other(&b, off).unwrap());
        assert!(
            !is_locked_by_other(&a, off).unwrap(),
            "own locks never show"
        );
        drop(a);
        assert!(
            !is_locked_by_other(&b, off).unwrap(),
            "closing the description drops the lock"
        );
        assert!(try_lock(&b, off).unwrap());
    }

    #[test]
    fn range_locks_conflict_with_any_byte_inside() {
        let path = std::env::temp_dir().join(format!("interproc-ofd-range-{}", current_pid()));
        let open = || {
            File::options()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let (a, b) = (open(), open());
        std::fs::remove_file(&path).unwrap();
        let base = 1 << 40;
        assert!(try_lock(&a, base + 5).unwrap());
        assert!(
            !try_lock_range(&b, base, 10).unwrap(),
            "byte 5 is held by a"
        );
        assert!(
            try_lock_range(&b, base + 6, 10).unwrap(),
            "bytes 6.. are free"
        );
        drop(a);
        assert!(try_lock_range(&b, base, 10).unwrap());
    }
}
