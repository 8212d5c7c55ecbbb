//! `set_spin(false)`: a blocked call sleeps at once and still gets what the other side does.
//!
//! The other side acts only after the waiter has certainly gone to sleep (100 ms later, far
//! past any poll phase). These tests fail if a non-spinning wait stops working: returns an
//! error, or hangs until its 20 s timeout. (A lost futex wake-up alone would not fail them:
//! park slices end every 20 ms by design; `tests/spsc.rs` and the loom models cover the
//! wake-up handshake itself.)

mod common;

use std::time::{Duration, Instant};

use interproc::{spsc, Pipe, Queue};

/// Long enough that a lost wake-up shows; the call itself must return well before.
const TIMEOUT: Duration = Duration::from_secs(20);
const LATE: Duration = Duration::from_millis(100);

/// Runs `wait` on a thread, `act` here after `LATE`; returns `wait`'s result and how long it
/// blocked after `act`.
fn woken_after<R: Send>(wait: impl FnOnce() -> R + Send, act: impl FnOnce()) -> (R, Duration) {
    std::thread::scope(|s| {
        let waiter = s.spawn(move || {
            let r = wait();
            (r, Instant::now())
        });
        std::thread::sleep(LATE);
        let acted = Instant::now();
        act();
        let (r, done) = waiter.join().unwrap();
        (r, done.saturating_duration_since(acted))
    })
}

#[test]
fn spsc_receiver_that_does_not_spin_is_woken() {
    let mut names = common::Names::new();
    let name = names.add("spin-spsc");
    let rx = spsc::Receiver::<u64>::create(&name, 16).unwrap();
    let tx = spsc::Sender::<u64>::open(&name).unwrap();
    rx.set_spin(false);
    let (got, late) = woken_after(move || rx.recv_timeout(TIMEOUT), || tx.send(7).unwrap());
    assert_eq!(got.unwrap(), 7);
    assert!(late < TIMEOUT / 4, "woken {late:?} after the send");
}

#[test]
fn spsc_sender_that_does_not_spin_is_woken() {
    let mut names = common::Names::new();
    let name = names.add("spin-spsc-full");
    let rx = spsc::Receiver::<u64>::create(&name, 2).unwrap();
    let tx = spsc::Sender::<u64>::open(&name).unwrap();
    tx.set_spin(false);
    while tx.try_send(1).is_ok() {}
    let (sent, late) = woken_after(
        move || tx.send_timeout(2, TIMEOUT),
        || assert_eq!(rx.recv().unwrap(), 1),
    );
    assert!(sent.is_ok(), "{sent:?}");
    assert!(late < TIMEOUT / 4, "woken {late:?} after the receive");
}

#[test]
fn queue_receiver_that_does_not_spin_is_woken() {
    let mut names = common::Names::new();
    let name = names.add("spin-queue");
    let q = Queue::<u64>::create(&name, 16).unwrap();
    let producer = Queue::<u64>::open(&name).unwrap();
    q.set_spin(false);
    let (got, late) = woken_after(|| q.recv_timeout(TIMEOUT), || producer.send(9).unwrap());
    assert_eq!(got.unwrap(), 9);
    assert!(late < TIMEOUT / 4, "woken {late:?} after the send");
}

#[test]
fn pipe_end_that_does_not_spin_is_woken() {
    let mut names = common::Names::new();
    let name = names.add("spin-pipe");
    let a = Pipe::create(&name, 4096).unwrap();
    let b = Pipe::open(&name).unwrap();
    a.set_spin(false);
    let (got, late) = woken_after(|| a.recv_timeout(TIMEOUT), || b.send(b"late").unwrap());
    assert_eq!(got.unwrap(), b"late");
    assert!(late < TIMEOUT / 4, "woken {late:?} after the send");
}
