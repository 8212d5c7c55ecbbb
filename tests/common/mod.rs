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
