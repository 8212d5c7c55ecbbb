//! The classic ATM race, across processes.
//!
//! An account starts with a balance of 100. One process withdraws 1 ten thousand times while
//! another deposits 1 ten thousand times. Done under an `interproc::Mutex<i64>`, the balance
//! ends at exactly 100 every time; then the same with a lock-free `interproc::Value<i64>`
//! (`fetch_sub` / `fetch_add`).
//!
//! The worker processes are this same program re-executed with a role argument
//! (`atm --role <role> <name>`).
//!
//! ```text
//! cargo run --example atm
//! ```

use std::error::Error;
use std::process::{Child, Command};

use interproc::{Mutex, Value};

const START: i64 = 100;
const TIMES: u32 = 10_000;
const ROUNDS: u32 = 10;

type Res<T> = Result<T, Box<dyn Error>>;

/// Withdraws or deposits 1, `TIMES` times, under the mutex.
fn locked(name: &str, delta: i64) -> Res<()> {
    let balance = Mutex::<i64>::open(name)?;
    for _ in 0..TIMES {
        // A poisoned lock (a worker died mid-update) still gives access to the data.
        let mut g = balance.lock().unwrap_or_else(|e| e.into_inner());
        let seen = *g;
        *g = seen + delta;
    }
    Ok(())
}

/// Withdraws or deposits 1, `TIMES` times, with atomic read-modify-writes.
fn lock_free(name: &str, delta: i64) -> Res<()> {
    let balance = Value::<i64>::open(name)?;
    for _ in 0..TIMES {
        if delta < 0 {
            balance.fetch_sub(-delta);
        } else {
            balance.fetch_add(delta);
        }
    }
    Ok(())
}

fn spawn(role: &str, name: &str) -> Res<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .args(["--role", role, name])
        .spawn()?)
}

/// Runs the withdrawing and the depositing worker and waits for both.
fn run_pair(kind: &str, name: &str) -> Res<()> {
    let workers = [
        spawn(&format!("{kind}-withdraw"), name)?,
        spawn(&format!("{kind}-deposit"), name)?,
    ];
    for mut w in workers {
        let status = w.wait()?;
        if !status.success() {
            return Err(format!("worker failed: {status}").into());
        }
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--role" {
        let name = &args[3];
        return match args[2].as_str() {
            "locked-withdraw" => locked(name, -1),
            "locked-deposit" => locked(name, 1),
            "lock-free-withdraw" => lock_free(name, -1),
            "lock-free-deposit" => lock_free(name, 1),
            other => Err(format!("unknown role {other}").into()),
        };
    }

    let name = format!("atm-example-{}", std::process::id());

    println!("With a Mutex<i64>:");
    for _ in 0..ROUNDS {
        // The creating handle owns the name: dropping it at the end of the round unlinks it.
        let balance = Mutex::<i64>::create(&name, START)?;
        run_pair("locked", &name)?;
        let end = *balance.lock().unwrap_or_else(|e| e.into_inner());
        println!("Final balance = {end}");
    }

    println!("Lock-free, with a Value<i64>:");
    for _ in 0..ROUNDS {
        let balance = Value::<i64>::create(&name, START)?;
        run_pair("lock-free", &name)?;
        println!("Final balance = {}", balance.load());
    }
    Ok(())
}
