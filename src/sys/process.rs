//! Process plumbing for `Process::spawn`: the payload memfd, handing its descriptor to a child
//! across fork + exec, adopting it in the child, waiting for a child with a timeout, signals,
//! and telling which loaded object a code address belongs to.
//!
//! Policy (what the payload holds, what a mismatch means) lives in `crate::process`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use super::cvt;

/// Creates an anonymous memory file (`memfd_create`) with `MFD_CLOEXEC`: no process spawned
/// by another thread inherits it by accident.
pub fn memfd(name: &CStr) -> io::Result<File> {
    // SAFETY: `name` is NUL-terminated and outlives the call; the flags are valid. The raw
    // syscall (not the glibc wrapper) keeps old glibc versions working.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_memfd_create,
            name.as_ptr(),
            libc::MFD_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd as RawFd) })
}

/// Makes the child that `cmd` will spawn inherit descriptor `fd` (which stays close-on-exec in
/// this process) and, between fork and exec, writes the child's own pid as a little-endian
/// `u64` at `pid_offset` of the file behind `fd`. The child can then tell that the payload is
/// meant for it and not for some later process that inherited it.
pub fn pass_to_child(cmd: &mut Command, fd: RawFd, pid_offset: u64) {
    let prepare = move || -> io::Result<()> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u64;
        let bytes = pid.to_le_bytes();
        // SAFETY: `bytes` is valid for 8 bytes; `fd` is open in the forked child (it was
        // open in the parent at fork, and only exec closes it).
        let n = unsafe {
            libc::pwrite(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                pid_offset as libc::off_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != bytes.len() {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        // SAFETY: fcntl on an open descriptor with valid commands.
        let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) })?;
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls are
    // allowed: it calls getpid, pwrite and fcntl, takes no lock and allocates nothing
    // (`io::Error` from an errno or from an `ErrorKind` does not allocate).
    unsafe {
        cmd.pre_exec(prepare);
    }
}

/// Takes ownership of descriptor `fd` inherited across exec if it is a memfd whose name starts
/// with `name` (`/proc/self/fd/<fd>` reads `/memfd:<name> (deleted)`), and marks it
/// close-on-exec. `Ok(None)` if the descriptor is something else; `Err` if it is not open.
pub fn adopt_memfd(fd: RawFd, name: &str) -> io::Result<Option<File>> {
    if fd < 0 {
        return Ok(None);
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    let expected = format!("/memfd:{name}");
    if !link.as_os_str().as_bytes().starts_with(expected.as_bytes()) {
        return Ok(None);
    }
    // SAFETY: fcntl on a descriptor with valid commands; an unopened one fails with EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    // SAFETY: `fd` is open (fcntl succeeded) and is the payload memfd the parent made this
    // process inherit; nothing else in this process owns it: the caller (`process::init`, run
    // once, before the program's own code) names it from the environment and adopts it once.
    Ok(Some(unsafe { File::from_raw_fd(fd) }))
}

/// True unless `dladdr` places `a` and `b` in two different loaded objects (the executable,
/// shared libraries). When `dladdr` cannot tell (a static executable), says true.
pub fn same_object(a: usize, b: usize) -> bool {
    fn base(addr: usize) -> Option<usize> {
        // SAFETY: Dl_info is a plain C struct for which all-zero is a valid value.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only looks the address up; `info` is valid for writes.
        let found = unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) };
        (found != 0 && !info.dli_fbase.is_null()).then_some(info.dli_fbase as usize)
    }
    match (base(a), base(b)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// True unless `dladdr` places `addr` in another loaded object than the main executable (the
/// file `/proc/self/exe` names, whose program headers the kernel passed as `AT_PHDR`). When it
/// cannot tell (a static executable), says true.
pub fn in_main_executable(addr: usize) -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; 0 means "no such entry".
    let phdr = unsafe { libc::getauxval(libc::AT_PHDR) } as usize;
    phdr == 0 || same_object(addr, phdr)
}

/// A pidfd for child `pid` (Linux 5.3+); `Err` with `ENOSYS` on older kernels. The caller must
/// not have reaped `pid` yet, so the number cannot have been reused.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits at most `timeout` (rounded up to a millisecond) for `fd` to become readable (for a
/// pidfd: the process has exited). `Ok(false)` on timeout or signal interruption.
pub fn wait_readable(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let mut ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    if ms == 0 && !timeout.is_zero() {
        ms = 1;
    }
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd that outlives the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINTR) => Ok(false),
            _ => Err(e),
        };
    }
    Ok(r > 0)
}

/// Sends `SIGTERM` to `pid`. The caller must not have reaped `pid` yet.
pub fn terminate(pid: u32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    cvt(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) })?;
    Ok(())
}

/// Blocks until child `pid` exits and reaps it (retrying on `EINTR`).
pub fn reap_blocking(pid: u32) -> io::Result<()> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is valid for writes; waitpid on a specific pid.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[inline(never)]
    fn here() {}

    #[test]
    fn code_of_this_binary_is_in_the_main_executable_and_libc_is_not() {
        let ours = here as fn() as usize;
        assert!(in_main_executable(ours));
        let libc_fn = libc::strlen as *const () as usize;
        // Only meaningful where libc is a shared object that dladdr can name (glibc builds).
        if !same_object(ours, libc_fn) {
            assert!(!in_main_executable(libc_fn));
        }
    }
}
