//! POSIX shared-memory objects under `/dev/shm`.
//!
//! Objects are opened with `shm_open`, which sets `FD_CLOEXEC`, so a spawned process never
//! inherits a descriptor (and with it an OFD lock, see [`super::liveness`]) by accident.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;

use memmap2::{MmapOptions, MmapRaw};

/// The directory where Linux exposes POSIX shared-memory objects.
pub const SHM_DIR: &str = "/dev/shm";

fn c_name(shm_name: &str) -> io::Result<CString> {
    CString::new(format!("/{shm_name}")).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Creates a new object with `O_CREAT | O_EXCL`: fails with `EEXIST` if the name is taken.
/// The mode is applied exactly (`fchmod` after creation), whatever the process umask is.
pub fn create_exclusive(shm_name: &str, mode: u32) -> io::Result<File> {
    let name = c_name(shm_name)?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = super::cvt(unsafe {
        libc::shm_open(
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            mode as libc::mode_t,
        )
    })?;
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: `file` holds an open descriptor.
    super::cvt(unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(file)
}

/// Opens an existing object, read-write or read-only. Anything but a regular file under the
/// name (any user can put a FIFO or a socket into `/dev/shm`) is refused with
/// `ErrorKind::InvalidData`; `O_NONBLOCK` keeps the open itself from waiting for a FIFO's
/// writer (it changes nothing for a regular file, and stays on the descriptor harmlessly).
pub fn open(shm_name: &str, writable: bool) -> io::Result<File> {
    let name = c_name(shm_name)?;
    let flags = if writable {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    } | libc::O_NONBLOCK;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = super::cvt(unsafe { libc::shm_open(name.as_ptr(), flags, 0) })?;
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a shared-memory object (a FIFO, socket or device under its name)",
        ));
    }
    Ok(file)
}

/// Removes the name. Processes that have the object mapped keep using it.
pub fn unlink(shm_name: &str) -> io::Result<()> {
    let name = c_name(shm_name)?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    super::cvt(unsafe { libc::shm_unlink(name.as_ptr()) })?;
    Ok(())
}

/// Size, identity and mode of an open object (`fstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Length of the object in bytes.
    pub len: u64,
    /// Device and inode: equal for two descriptors of the same object.
    pub id: (u64, u64),
    /// Permission bits.
    pub mode: u32,
    /// The owning user.
    pub uid: u32,
    /// Last status change, seconds since the epoch.
    pub ctime: i64,
}

/// `fstat` of an open object.
pub fn stat(file: &File) -> io::Result<Stat> {
    let m = file.metadata()?;
    Ok(Stat {
        len: m.len(),
        id: (m.dev(), m.ino()),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        ctime: m.ctime(),
    })
}

/// Device and inode of the object a name currently refers to (`stat` of the path).
pub fn identity_of_name(shm_name: &str) -> io::Result<(u64, u64)> {
    let m = std::fs::metadata(format!("{SHM_DIR}/{shm_name}"))?;
    Ok((m.dev(), m.ino()))
}

/// Sets the length of a freshly created object (new bytes read as zero).
pub fn set_len(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

/// Maps `len` bytes of the object shared (`MAP_SHARED`), read-write or read-only.
pub fn map(file: &File, len: usize, writable: bool) -> io::Result<MmapRaw> {
    let mut opts = MmapOptions::new();
    opts.len(len);
    if writable {
        opts.map_raw(file)
    } else {
        opts.map_raw_read_only(file)
    }
}

/// Names of every entry in [`SHM_DIR`] (not only ours), sorted.
pub fn list_names() -> io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(SHM_DIR)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
