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
//! Run with `cargo run --example pipe`.

use interproc::{Error, Pipe, Process};

/// The child: attaches to the other end of the pipe the parent created, by name.
fn f(name: String) {
    let conn = Pipe::open(&name).expect("open the child's end");
    conn.send(b"['Hi! This is child info']").expect("send");
    // Dropping `conn` closes the child's end.
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    interproc::process::init();
    let name = format!("example-pipe-{}", std::process::id());
    // The parent's end; dropping it at the end of main removes the name.
    let parent_conn = Pipe::create(&name, 4096)?;
    let mut p = Process::spawn(f, name.clone())?;

    let msg = parent_conn.recv()?;
    println!("{}", String::from_utf8_lossy(&msg));

    // Once the child has exited, its end is gone: recv reports it, like EOFError in Python.
    let status = p.join()?;
    assert!(matches!(parent_conn.recv(), Err(Error::Disconnected)));
    assert!(status.success(), "child failed: {status}");
    Ok(())
}
