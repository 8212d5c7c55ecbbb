//! Signals the crate sends itself.

/// Stops the calling process (SIGSTOP) until someone sends SIGCONT or SIGKILL.
#[allow(dead_code)]
pub fn stop_self() {
    // SAFETY: raise has no memory-safety preconditions.
    unsafe { libc::raise(libc::SIGSTOP) };
}

/// Kills the calling process with SIGKILL: it dies at once, running nothing (no unwinding, no
/// destructors, no atexit handlers, no core dump), as if killed from outside.
#[allow(dead_code)]
pub fn kill_self() -> ! {
    // SAFETY: kill/getpid have no memory-safety preconditions.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    // SIGKILL cannot be caught or blocked; this is never reached in practice.
    std::process::abort()
}
