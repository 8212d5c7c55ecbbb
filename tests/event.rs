//! Multi-process tests of `Event`: a set in one process wakes waiters in others, timeouts, and
//! a blocked waiter that does not burn CPU.

mod common;

use std::time::{Duration, Instant};

use interproc::Event;

fn names(arg: &str) -> Vec<String> {
    arg.split(',').map(str::to_owned).collect()
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn set_in_one_process_wakes_waiters_in_others() {
    if common::role().is_some() {
        common::run_role(|| -> Result<(), String> {
            let n = names(&common::arg());
            let ev = Event::open(&n[0]).map_err(|e| e.to_string())?;
            let ready = Event::open(&n[1]).map_err(|e| e.to_string())?;
            // Not a handshake the event needs: it only keeps the test from setting before the
            // waiters exist, so the wake-up really crosses processes.
            ready.set();
            if ev.wait_timeout(Duration::from_secs(60)) {
                Ok(())
            } else {
                Err("the set in another process never woke us".into())
            }
        });
    }
    let mut names = common::Names::new();
    let (e, r1, r2) = (
        names.add("ev"),
        names.add("ev-ready1"),
        names.add("ev-ready2"),
    );
    let ev = Event::create(&e).unwrap();
    let ready = [Event::create(&r1).unwrap(), Event::create(&r2).unwrap()];
    let test = "set_in_one_process_wakes_waiters_in_others";
    let children: Vec<_> = [&r1, &r2]
        .iter()
        .enumerate()
        .map(|(k, r)| common::spawn(test, &k.to_string(), &format!("{e},{r}")))
        .collect();
    for r in &ready {
        assert!(
            r.wait_timeout(Duration::from_secs(30)),
            "a waiter never started"
        );
    }
    // Give them a moment to park (any order is correct; this makes the futex path likely).
    std::thread::sleep(Duration::from_millis(100));
    ev.set();
    for c in children {
        common::expect_success(c);
    }
    assert!(ev.is_set());
}

#[test]
fn wait_timeout_returns_false_after_the_timeout() {
    let mut names = common::Names::new();
    let ev = Event::create(&names.add("ev-to")).unwrap();
    let start = Instant::now();
    assert!(!ev.wait_timeout(Duration::from_millis(300)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "returned early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "overslept: {took:?}");
    // Set and cleared again: a later wait times out, a set one returns at once.
    ev.set();
    ev.clear();
    assert!(!ev.wait_timeout(Duration::from_millis(20)));
    ev.set();
    let start = Instant::now();
    assert!(ev.wait_timeout(Duration::from_secs(60)));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn blocked_waiter_uses_almost_no_cpu() {
    if common::role().is_some() {
        common::run_role(|| -> Result<(), String> {
            let ev = Event::open(&common::arg()).map_err(|e| e.to_string())?;
            let before = cpu_time();
            let started = Instant::now();
            if ev.wait_timeout(Duration::from_secs(1)) {
                return Err("nobody set the event".into());
            }
            let waited = started.elapsed();
            let used = cpu_time().saturating_sub(before);
            eprintln!("waited {waited:?} using {used:?} of CPU");
            if waited < Duration::from_secs(1) {
                return Err(format!("returned after {waited:?}"));
            }
            if used >= Duration::from_millis(100) {
                return Err(format!("a 1 s wait burned {used:?} of CPU"));
            }
            Ok(())
        });
    }
    let mut names = common::Names::new();
    let e = names.add("ev-cpu");
    let _ev = Event::create(&e).unwrap();
    common::expect_success(common::spawn(
        "blocked_waiter_uses_almost_no_cpu",
        "waiter",
        &e,
    ));
}
