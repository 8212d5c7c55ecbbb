//! Python's classic `multiprocessing.Queue` example: a child process puts the even numbers of
//! 0..10 on a queue, the parent prints them.
//!
//! ```text
//! $ cargo run --example queue
//! 0
//! 2
//! 4
//! 6
//! 8
//! ```
//!
//! The child is this same program re-executed with a role argument (`std::process::Command`
//! on `current_exe()`); it finds the queue by name.

use std::error::Error;
use std::process::Command;
use std::time::Duration;

use interproc::{Queue, RecvTimeoutError};

fn child(name: &str) -> Result<(), Box<dyn Error>> {
    let q = Queue::<u64>::open(name)?;
    for n in (0..10).filter(|n| n % 2 == 0) {
        q.send(n)?;
    }
    // Nothing more will come: receivers drain what is queued, then see `Disconnected`.
    q.close();
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, name] = args.as_slice() {
        if role == "--child" {
            return child(name);
        }
    }

    let name = format!("example-queue-{}", std::process::id());
    let q = Queue::<u64>::create(&name, 16)?; // dropping `q` removes the name
    let mut worker = Command::new(std::env::current_exe()?)
        .args(["--child", &name])
        .spawn()?;
    loop {
        match q.recv_timeout(Duration::from_millis(100)) {
            Ok(n) => println!("{n}"),
            Err(RecvTimeoutError::Disconnected) => break,
            // A child that died before closing the queue must not leave us waiting forever.
            Err(RecvTimeoutError::Timeout) => {
                if worker.try_wait()?.is_some() && q.is_empty() {
                    break;
                }
            }
        }
    }
    let status = worker.wait()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    Ok(())
}
