//! The classic ATM race, across processes.
//!
//! An account starts with a balance of 100. One process withdraws 1 ten thousand times while
//! another deposits 1 ten thousand times. Done under an `interproc::Mutex<i64>` (a `Lock` around
//! the balance), the balance ends at exactly 100 every time; then the same with a lock-free
//! `interproc::Value<i64>` (`fetch_sub` / `fetch_add`).
//!
//! ```text
//! cargo run --example atm
//! ```

use interproc::{Mutex, Process, Value};

const START: i64 = 100;
const TIMES: u32 = 10_000;
const ROUNDS: u32 = 10;

/// Adds `delta` to the balance `TIMES` times, under the mutex.
fn locked((name, delta): (String, i64)) {
    let balance = Mutex::<i64>::open(&name).expect("open the balance");
    for _ in 0..TIMES {
        // A poisoned lock (a worker died mid-update) still gives access to the data.
        let mut g = balance.lock().unwrap_or_else(|e| e.into_inner());
        let seen = *g;
        *g = seen + delta;
    }
}

/// Adds `delta` to the balance `TIMES` times, with atomic read-modify-writes.
fn lock_free((name, delta): (String, i64)) {
    let balance = Value::<i64>::open(&name).expect("open the balance");
    for _ in 0..TIMES {
        if delta < 0 {
            balance.fetch_sub(-delta);
        } else {
            balance.fetch_add(delta);
        }
    }
}

/// Runs a withdrawing and a depositing worker at once and waits for both.
fn run_pair(worker: fn((String, i64)), name: &str) -> interproc::Result<()> {
    let mut withdraw = Process::spawn(worker, (name.to_owned(), -1))?;
    let mut deposit = Process::spawn(worker, (name.to_owned(), 1))?;
    for p in [&mut withdraw, &mut deposit] {
        let status = p.join()?;
        assert!(status.success(), "worker failed: {status}");
    }
    Ok(())
}

fn main() -> interproc::Result<()> {
    interproc::process::init();
    let name = format!("atm-example-{}", std::process::id());

    println!("With a Mutex<i64>:");
    for _ in 0..ROUNDS {
        // The creating handle owns the name: dropping it at the end of the round unlinks it.
        let balance = Mutex::<i64>::create(&name, START)?;
        run_pair(locked, &name)?;
        let end = *balance.lock().unwrap_or_else(|e| e.into_inner());
        println!("Final balance = {end}");
    }

    println!("Lock-free, with a Value<i64>:");
    for _ in 0..ROUNDS {
        let balance = Value::<i64>::create(&name, START)?;
        run_pair(lock_free, &name)?;
        println!("Final balance = {}", balance.load());
    }
    Ok(())
}
