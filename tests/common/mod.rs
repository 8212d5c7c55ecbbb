//! Shared helpers of the multi-process integration tests.
//!
//! A test that needs other processes re-executes its own test binary: [`child`] builds a
//! `Command` running `current_exe() <test name> --exact --nocapture` with `ROLE_VAR` naming the
//! role it should play and `ARG_VAR` one string argument. The test function checks [`role`] on
//! entry: in a child it plays the role and exits with a status (see [`run_role`]), in the parent
//! it orchestrates. Names are unique per test and process, and [`Names`] removes them on every
//! path, failing tests included.
#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const ROLE_VAR: &str = "INTERPROC_TEST_ROLE";
pub const ARG_VAR: &str = "INTERPROC_TEST_ARG";

/// A name no other test or process uses: `t-<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the names it holds when dropped (also when the test panics).
#[derive(Debug, Default)]
pub struct Names(Vec<String>);

impl Names {
    pub fn new() -> Names {
        Names(Vec::new())
    }
    /// A fresh unique name that will be removed at the end.
    pub fn add(&mut self, tag: &str) -> String {
        let n = unique(tag);
        self.0.push(n.clone());
        n
    }
    /// Registers an existing name for removal.
    pub fn keep(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(format!("/dev/shm/interproc.{n}"));
        }
    }
}

/// The role this process plays, if it is a re-executed child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// The argument passed to a child.
pub fn arg() -> String {
    std::env::var(ARG_VAR).unwrap_or_default()
}

/// A command that re-runs test `test` of this binary as role `role` with argument `arg`.
pub fn child(test: &str, role: &str, arg: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(ARG_VAR, arg)
        .stdin(Stdio::null());
    c
}

/// Spawns [`child`].
pub fn spawn(test: &str, role: &str, arg: &str) -> Child {
    child(test, role, arg)
        .spawn()
        .expect("spawn child test process")
}

/// In a child: runs `f` and exits the process with 0 on `Ok`, 1 (printing the error) on `Err`,
/// and 101 on panic, without returning to the test harness.
pub fn run_role<E: std::fmt::Debug>(f: impl FnOnce() -> Result<(), E>) -> ! {
    let _ = orphaned(); // remember the parent
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("child role failed: {e:?}");
            1
        }
        Err(_) => 101,
    };
    std::process::exit(code)
}

/// Waits for `child` at most `timeout`; kills it and panics if it takes longer.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not finish within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for `child` (generous timeout) and asserts it exited with status 0.
pub fn expect_success(mut child: Child) {
    let status = wait_timeout(&mut child, Duration::from_secs(120));
    assert!(status.success(), "child exited with {status}");
}

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Sends SIGKILL to `pid`.
pub fn sigkill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// True if `/dev/shm/interproc.<name>` exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm/interproc.{name}")).exists()
}

/// Self-checking payloads and the PRNG, shared with the crash soak of the `interproc` tool.
#[path = "../../src/bin/interproc/checked.rs"]
pub mod checked;

#[allow(unused_imports)]
pub use checked::Rng;

/// The seed of a campaign: `INTERPROC_TEST_SEED` if set (to replay a failure), else fresh.
/// Printed, so that a failing run can be replayed.
pub fn seed(campaign: &str) -> u64 {
    let seed = std::env::var("INTERPROC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            t ^ (u64::from(std::process::id()) << 32)
        });
    eprintln!("{campaign}: INTERPROC_TEST_SEED={seed}");
    seed
}

/// Rounds of a campaign: `debug` in debug builds, twice that in release builds, times
/// `INTERPROC_CAMPAIGN_SCALE` (default 1) for longer runs.
pub fn rounds(debug: usize) -> usize {
    let scale = std::env::var("INTERPROC_CAMPAIGN_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1);
    let base = if cfg!(debug_assertions) {
        debug
    } else {
        debug * 2
    };
    base * scale.max(1)
}

/// True if `status` says the process was killed by SIGKILL.
pub fn killed_by_sigkill(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// Sends SIGKILL to `child` (if it still runs) and reaps it, bounded; returns its status.
pub fn kill_and_reap(child: &mut Child) -> ExitStatus {
    let _ = child.kill();
    wait_timeout(child, Duration::from_secs(30))
}

/// Asserts that a campaign's victim died by SIGKILL (from us or from a `kill` failpoint), not
/// by an error of its own (exit code) or another signal (a crash).
pub fn assert_sigkilled(status: &ExitStatus, what: &str) {
    assert!(
        killed_by_sigkill(status),
        "{what} did not die by SIGKILL but {status} (its own error or a crash)"
    );
}

/// `(state, start time)` of process `pid` from `/proc/<pid>/stat`; `None` if it is gone.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: the fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After the name: state is field 3 of the line, start time field 22.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// This process as a `u64` that names it unambiguously (pid and start time: a reused pid gets
/// another start time). Never 0.
pub fn process_id() -> u64 {
    let pid = std::process::id();
    let start = proc_stat(pid).map_or(0, |(_, s)| s);
    u64::from(pid) | (start & 0xFFFF_FFFF) << 32
}

/// True if the process named by a [`process_id`] is gone: no such pid, a zombie, or a pid
/// reused by another process.
pub fn process_dead(id: u64) -> bool {
    match proc_stat(id as u32) {
        None => true,
        Some((state, start)) => {
            matches!(state, 'Z' | 'X' | 'x') || (start & 0xFFFF_FFFF) != id >> 32
        }
    }
}

/// Busy-waits about `d` (a critical section of some length, without sleeping).
pub fn spin_for(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// In a child: true once the process that spawned it is gone (it was re-parented). Children
/// that loop until killed check it, so that a failed test leaves no process behind.
pub fn orphaned() -> bool {
    static PARENT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let first = *PARENT.get_or_init(std::os::unix::process::parent_id);
    std::os::unix::process::parent_id() != first
}

/// In a looping child: exits (status 3) if the parent is gone.
pub fn exit_if_orphaned() {
    if orphaned() {
        std::process::exit(3);
    }
}

/// A numeric child argument.
pub fn num_arg(s: &str) -> u64 {
    s.parse().expect("numeric argument")
}
