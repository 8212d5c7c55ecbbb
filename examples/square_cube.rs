//! The classic `multiprocessing` demo: two processes, one computing 5², one 5³.
//!
//! ```text
//! $ cargo run --example square_cube
//! Square: 25
//! Cube: 125
//! Both Processes Completed!
//! ```
//!
//! Each line but the last is printed by its own child process (the child's stdout is the
//! parent's). The first child is joined before the second starts, so the order is fixed.

use interproc::Process;

fn square(n: i64) {
    println!("Square: {}", n * n);
}

fn cube(n: i64) {
    println!("Cube: {}", n * n * n);
}

fn main() -> Result<(), interproc::Error> {
    // In a child started by Process::spawn, this runs its function and exits.
    interproc::process::init();

    let mut p1 = Process::spawn(square, 5i64)?;
    let status = p1.join()?;
    assert!(status.success(), "square: {status}");

    let mut p2 = Process::spawn(cube, 5i64)?;
    let status = p2.join()?;
    assert!(status.success(), "cube: {status}");

    println!("Both Processes Completed!");
    Ok(())
}
