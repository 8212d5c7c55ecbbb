//! Failpoints: named places in a protocol where a test can make this process die or stall.
//!
//! Active only in builds with debug assertions (the test builds); in release builds [`hit`] is
//! an empty inline function. A test sets `INTERPROC_FAILPOINTS` in a child process's environment
//! to a comma-separated list of `name=action`, where action is
//!
//! - `abort`: die at once (SIGABRT), as a crash at that instruction would;
//! - `sleep:MS`: stall for MS milliseconds (a slow but live process);
//! - `stop`: stop the process (SIGSTOP), to be killed or continued by the test.
//!
//! The names in use are listed where [`hit`] is called (`grep -rn 'failpoint::hit' src`).

/// Triggers the failpoint `name` if the environment asks for it.
#[cfg(debug_assertions)]
pub(crate) fn hit(name: &str) {
    use std::sync::OnceLock;
    static SPEC: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let spec = SPEC.get_or_init(|| {
        std::env::var("INTERPROC_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    });
    for (k, action) in spec {
        if k != name {
            continue;
        }
        if action == "abort" {
            std::process::abort();
        } else if action == "stop" {
            crate::sys::signal::stop_self();
        } else if let Some(ms) = action.strip_prefix("sleep:").and_then(|m| m.parse().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}

/// Triggers the failpoint `name` if the environment asks for it (never, in release builds).
#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn hit(_name: &str) {}
