//! Failpoints: named places in a protocol where a test can make this process die or stall.
//!
//! Active only in builds with debug assertions (the test builds); in release builds [`hit`] is
//! an empty inline function. A test sets `INTERPROC_FAILPOINTS` in a child process's environment
//! to a comma-separated list of `name=action` or `name=action@N`, where action is
//!
//! - `abort`: die at once (SIGABRT), as a crash at that instruction would;
//! - `kill`: die at once by SIGKILL (no unwinding, no destructors, no core dump): exactly what
//!   a `kill -9` landing at that instruction leaves behind;
//! - `sleep:MS`: stall for MS milliseconds (a slow but live process);
//! - `stop`: stop the process (SIGSTOP), to be killed or continued by the test.
//!
//! With `@N` the action runs only on the N-th time (counting from 1) this process reaches the
//! failpoint, so a test can pick a random point of a long loop; without it, every time.
//!
//! The names in use are listed where [`hit`] is called (`grep -rn 'failpoint::hit' src`).

/// Triggers the failpoint `name` if the environment asks for it.
#[cfg(debug_assertions)]
pub(crate) fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// One `name=action[@N]` entry and how often this process reached it.
    struct Entry {
        name: String,
        action: String,
        nth: Option<u64>,
        hits: AtomicU64,
    }

    static SPEC: OnceLock<Vec<Entry>> = OnceLock::new();
    let spec = SPEC.get_or_init(|| {
        std::env::var("INTERPROC_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                let (action, nth) = match v.trim().split_once('@') {
                    Some((a, n)) => (a, n.trim().parse().ok()),
                    None => (v.trim(), None),
                };
                Entry {
                    name: k.trim().to_owned(),
                    action: action.trim().to_owned(),
                    nth,
                    hits: AtomicU64::new(0),
                }
            })
            .collect()
    });
    for e in spec {
        if e.name != name {
            continue;
        }
        let n = e.hits.fetch_add(1, Ordering::Relaxed) + 1;
        if e.nth.is_some_and(|nth| nth != n) {
            continue;
        }
        let action = e.action.as_str();
        if action == "abort" {
            std::process::abort();
        } else if action == "kill" {
            crate::sys::signal::kill_self();
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
