//! Signals the crate sends itself.

/// Stops the calling process (SIGSTOP) until someone sends SIGCONT or SIGKILL.
#[allow(dead_code)]
pub fn stop_self() {
    // SAFETY: raise has no memory-safety preconditions.
    unsafe { libc::raise(libc::SIGSTOP) };
}
