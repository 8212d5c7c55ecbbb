//! Python's classic `multiprocessing.Pipe` example, across two processes:
//!
//! ```python
//! def f(conn):
//!     conn.send(['Hi! This is child info'])
//!     conn.close()
//!
//! parent_conn, child_conn = Pipe()
//! p = Process(target=f, args=(child_conn,))
//! p.start()
//! print(parent_conn.recv())
//! p.join()
//! ```
//!
//! The child is this same program re-executed with the role argument `child` (until
//! `interproc::Process` can run a plain function for us). Run with
//! `cargo run --example pipe`.

use std::process::Command;

use interproc::{Error, Pipe};

fn child(name: &str) -> Result<(), Error> {
    // The other end of the pipe the parent created.
    let conn = Pipe::open(name)?;
    conn.send(b"Hi! This is child info")?;
    Ok(()) // dropping `conn` closes the child's end
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        return Ok(child(&args[2])?);
    }

    let name = format!("example-pipe-{}", std::process::id());
    // The parent's end; dropping it at the end of main removes the name.
    let parent_conn = Pipe::create(&name, 4096)?;
    let mut p = Command::new(std::env::current_exe()?)
        .args(["child", &name])
        .spawn()?;

    let msg = parent_conn.recv()?;
    println!("{}", String::from_utf8_lossy(&msg));

    // Once the child has exited, its end is gone: recv reports it, like EOFError in Python.
    let status = p.wait()?;
    assert!(matches!(parent_conn.recv(), Err(Error::Disconnected)));
    assert!(status.success(), "child failed: {status}");
    Ok(())
}
