//! Multi-process tests of `interproc::spsc`: each test re-executes this binary to play the
//! other endpoint (see `common`).

mod common;

use std::time::{Duration, Instant};

use common::{arg, expect_success, role, run_role, sigkill, spawn, wait_timeout, Names};
use interproc::spsc::{Receiver, Sender};
use interproc::{Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError};

/// Messages in the streaming test: 10 M in release builds, 1 M in debug builds (where the
/// unoptimised copy loops make 10 M take tens of seconds on a loaded 2-core machine).
const STREAM_N: u64 = if cfg!(debug_assertions) {
    1_000_000
} else {
    10_000_000
};

/// Generous bound for anything that should be "prompt" on a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);

/// Polls until the `tx` ring has been drained by the other process (bounded).
fn wait_drained<T: interproc::Pod>(tx: &Sender<T>) {
    assert!(
        common::eventually(PROMPT * 4, || tx.is_empty()),
        "the child never drained the ring"
    );
}

#[test]
fn stream_in_order_between_two_processes() {
    if let Some(r) = role() {
        assert_eq!(r, "sender");
        run_role(|| -> Result<(), String> {
            let tx = Sender::<u64>::open(&arg()).map_err(|e| e.to_string())?;
            for i in 0..STREAM_N {
                tx.send(i).map_err(|_| format!("send {i} failed"))?;
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("stream");
    let rx = Receiver::<u64>::create(&name, 1024).unwrap();
    let child = spawn("stream_in_order_between_two_processes", "sender", &name);
    assert_eq!(rx.recv(), Ok(0));
    let start = Instant::now();
    for i in 1..STREAM_N {
        assert_eq!(rx.recv(), Ok(i));
    }
    let took = start.elapsed();
    eprintln!(
        "streamed {} u64 in {took:?}: {:.1} M msg/s",
        STREAM_N - 1,
        (STREAM_N - 1) as f64 / took.as_secs_f64() / 1e6
    );
    assert_eq!(rx.recv(), Err(RecvError), "the sender exited");
    expect_success(child);
}

#[test]
fn batched_stream_with_chunks_between_two_processes() {
    if let Some(r) = role() {
        assert_eq!(r, "sender");
        run_role(|| -> Result<(), String> {
            let tx = Sender::<u32>::open(&arg()).map_err(|e| e.to_string())?;
            let data: Vec<u32> = (0..1_000_000).collect();
            for part in data.chunks(100) {
                tx.send_batch(part).map_err(|e| format!("{e:?}"))?;
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("chunks");
    let mut rx = Receiver::<u32>::create(&name, 256).unwrap();
    let child = spawn(
        "batched_stream_with_chunks_between_two_processes",
        "sender",
        &name,
    );
    let mut next = 0u32;
    while next < 1_000_000 {
        let chunk = rx.read_chunk(64).unwrap();
        let (a, b) = chunk.as_slices();
        for &v in a.iter().chain(b) {
            assert_eq!(v, next);
            next += 1;
        }
        chunk.commit_all();
    }
    assert!(rx.read_chunk(64).is_err(), "the sender exited");
    expect_success(child);
}

#[test]
fn a_second_sender_or_receiver_is_busy() {
    if let Some(r) = role() {
        assert_eq!(r, "opener");
        run_role(|| -> Result<(), String> {
            match Sender::<u64>::open(&arg()) {
                Err(Error::Busy) => {}
                other => return Err(format!("second sender: {other:?}")),
            }
            match Receiver::<u64>::open(&arg()) {
                Err(Error::Busy) => Ok(()),
                other => Err(format!("second receiver: {other:?}")),
            }
        });
    }
    let mut names = Names::new();
    let name = names.add("busy");
    let _tx = Sender::<u64>::create(&name, 8).unwrap();
    let _rx = Receiver::<u64>::open(&name).unwrap();
    expect_success(spawn(
        "a_second_sender_or_receiver_is_busy",
        "opener",
        &name,
    ));
}

#[test]
fn a_sigkilled_sender_is_taken_over() {
    if let Some(r) = role() {
        assert_eq!(r, "sender");
        run_role(|| -> Result<(), String> {
            let tx = Sender::<u64>::open(&arg()).map_err(|e| e.to_string())?;
            for i in 0..10 {
                tx.send(i).map_err(|_| "send failed".to_string())?;
            }
            // Keep the endpoint until killed.
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    let mut names = Names::new();
    let name = names.add("takeover");
    let rx = Receiver::<u64>::create(&name, 16).unwrap();
    let mut child = spawn("a_sigkilled_sender_is_taken_over", "sender", &name);
    for i in 0..10 {
        assert_eq!(rx.recv_timeout(PROMPT * 4), Ok(i));
    }
    assert!(matches!(Sender::<u64>::open(&name), Err(Error::Busy)));
    sigkill(child.id());
    wait_timeout(&mut child, PROMPT);
    // The dead sender disconnects the (empty) channel...
    assert_eq!(rx.recv_timeout(PROMPT), Err(RecvTimeoutError::Disconnected));
    // ...and its endpoint can be taken over: connected again.
    let tx = Sender::<u64>::open(&name).expect("take over the dead sender's endpoint");
    assert!(!rx.is_disconnected());
    tx.send(10).unwrap();
    assert_eq!(rx.recv(), Ok(10));
}

/// A receiver that polls `try_recv` in a tight loop (so the liveness gate skips most clock
/// reads) still notices a sender that was SIGKILLed, promptly.
#[test]
fn a_tightly_polling_receiver_sees_a_killed_sender() {
    if let Some(r) = role() {
        assert_eq!(r, "sender");
        run_role(|| -> Result<(), String> {
            let tx = Sender::<u64>::open(&arg()).map_err(|e| e.to_string())?;
            tx.send(7).map_err(|_| "send failed".to_string())?;
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    let mut names = Names::new();
    let name = names.add("pollkill");
    let rx = Receiver::<u64>::create(&name, 4).unwrap();
    let mut child = spawn(
        "a_tightly_polling_receiver_sees_a_killed_sender",
        "sender",
        &name,
    );
    assert_eq!(rx.recv_timeout(PROMPT * 4), Ok(7));
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        sigkill(pid);
    });
    let start = Instant::now();
    let mut polls = 0u64;
    let verdict = loop {
        match rx.try_recv() {
            Err(TryRecvError::Empty) if start.elapsed() < PROMPT * 2 => polls += 1,
            other => break other,
        }
    };
    assert_eq!(
        verdict,
        Err(TryRecvError::Disconnected),
        "after {polls} polls"
    );
    killer.join().unwrap();
    wait_timeout(&mut child, PROMPT);
}

#[test]
fn receiver_sees_a_normal_sender_exit_after_draining() {
    if let Some(r) = role() {
        assert_eq!(r, "sender");
        run_role(|| -> Result<(), String> {
            let tx = Sender::<u64>::open(&arg()).map_err(|e| e.to_string())?;
            for i in 0..100 {
                tx.send(i).map_err(|_| "send failed".to_string())?;
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("exit");
    let rx = Receiver::<u64>::create(&name, 256).unwrap();
    let mut child = spawn(
        "receiver_sees_a_normal_sender_exit_after_draining",
        "sender",
        &name,
    );
    assert!(wait_timeout(&mut child, PROMPT * 12).success());
    // Everything sent before the exit is still delivered, then the disconnect.
    for i in 0..100 {
        assert_eq!(rx.try_recv(), Ok(i));
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv(), Err(RecvError));
}

/// The receiver is blocked in `recv` when the sender goes away: by dropping its handle
/// (seen at once through the attach word and a wake-up) or by SIGKILL (seen at the next
/// 20 ms slice through the role lock). Both within a generous bound.
#[test]
fn a_receiver_blocked_in_recv_sees_the_sender_go() {
    if let Some(r) = role() {
        run_role(|| -> Result<(), String> {
            let tx = Sender::<u64>::open(&arg()).map_err(|e| e.to_string())?;
            tx.send(1).map_err(|_| "send failed".to_string())?;
            // Give the parent time to block in recv, then leave or wait to be killed.
            std::thread::sleep(Duration::from_millis(300));
            if r == "drop" {
                drop(tx);
                std::thread::sleep(Duration::from_secs(60)); // process stays alive
                return Ok(());
            }
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    for mode in ["drop", "kill"] {
        let mut names = Names::new();
        let name = names.add(mode);
        let rx = Receiver::<u64>::create(&name, 16).unwrap();
        let mut child = spawn("a_receiver_blocked_in_recv_sees_the_sender_go", mode, &name);
        assert_eq!(rx.recv_timeout(PROMPT * 4), Ok(1), "{mode}");
        let pid = child.id();
        let killer = std::thread::spawn(move || {
            if mode == "kill" {
                std::thread::sleep(Duration::from_millis(300));
                sigkill(pid);
            }
        });
        let start = Instant::now();
        assert_eq!(rx.recv(), Err(RecvError), "{mode}");
        let took = start.elapsed();
        assert!(took < PROMPT, "{mode}: disconnect took {took:?}");
        killer.join().unwrap();
        sigkill(child.id());
        let _ = wait_timeout(&mut child, PROMPT);
    }
}

#[test]
fn a_sender_sees_the_receiver_die() {
    if let Some(r) = role() {
        assert_eq!(r, "receiver");
        run_role(|| -> Result<(), String> {
            let rx = Receiver::<u64>::open(&arg()).map_err(|e| e.to_string())?;
            rx.recv().map_err(|e| e.to_string())?;
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    let mut names = Names::new();
    let name = names.add("rxdie");
    let tx = Sender::<u64>::create(&name, 4).unwrap();
    let mut child = spawn("a_sender_sees_the_receiver_die", "receiver", &name);
    tx.send(0).unwrap();
    wait_drained(&tx);
    // Fill the ring, then block in send while the receiver is killed.
    for i in 1..=4 {
        tx.send(i).unwrap();
    }
    assert!(!tx.is_disconnected());
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        sigkill(pid);
    });
    let start = Instant::now();
    assert_eq!(tx.send(5), Err(SendError(5)));
    assert!(start.elapsed() < PROMPT, "took {:?}", start.elapsed());
    killer.join().unwrap();
    wait_timeout(&mut child, PROMPT);
    assert!(tx.is_disconnected());
    assert_eq!(
        tx.send_timeout(6, Duration::from_millis(10)),
        Err(SendTimeoutError::Disconnected(6))
    );
    // A new receiver takes over the dead one's endpoint and gets what was queued.
    let rx = Receiver::<u64>::open(&name).unwrap();
    assert_eq!(rx.recv(), Ok(1));
    tx.send(6).unwrap();
}

#[test]
fn timeouts_are_honoured() {
    let mut names = Names::new();
    let name = names.add("timeouts");
    let tx = Sender::<u64>::create(&name, 2).unwrap();
    let rx = Receiver::<u64>::open(&name).unwrap();
    let d = Duration::from_millis(200);
    let start = Instant::now();
    assert_eq!(rx.recv_timeout(d), Err(RecvTimeoutError::Timeout));
    let took = start.elapsed();
    assert!(took >= d && took < d + PROMPT, "{took:?}");
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    let start = Instant::now();
    assert_eq!(tx.send_timeout(3, d), Err(SendTimeoutError::Timeout(3)));
    let took = start.elapsed();
    assert!(took >= d && took < d + PROMPT, "{took:?}");
    // Zero timeouts return at once.
    assert_eq!(
        tx.send_timeout(3, Duration::ZERO),
        Err(SendTimeoutError::Timeout(3))
    );
    assert_eq!(rx.recv_timeout(Duration::ZERO), Ok(1));
}

/// utime + stime of this process, in milliseconds.
fn cpu_time_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime); `fields[0]` is field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1000 / hz
}

#[test]
fn a_blocked_receiver_uses_almost_no_cpu() {
    if let Some(r) = role() {
        assert_eq!(r, "receiver");
        run_role(|| -> Result<(), String> {
            let rx = Receiver::<u64>::open(&arg()).map_err(|e| e.to_string())?;
            let before = cpu_time_ms();
            let start = Instant::now();
            match rx.recv_timeout(Duration::from_secs(1)) {
                Err(RecvTimeoutError::Timeout) => {}
                other => return Err(format!("{other:?}")),
            }
            let waited = start.elapsed();
            let used = cpu_time_ms() - before;
            eprintln!("blocked {waited:?}, used {used} ms of CPU");
            if waited < Duration::from_secs(1) {
                return Err(format!("returned early after {waited:?}"));
            }
            if used >= 100 {
                return Err(format!("used {used} ms of CPU while blocked"));
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("idle");
    let _tx = Sender::<u64>::create(&name, 4).unwrap();
    expect_success(spawn(
        "a_blocked_receiver_uses_almost_no_cpu",
        "receiver",
        &name,
    ));
}

/// Another process scribbles over everything after the header (participant table, control
/// page with both positions and flags, the first slots): the receiver and sender return, with
/// no hang and no panic, and the receiver reports the ring as disconnected.
#[test]
fn garbage_indices_written_by_another_process_never_hang() {
    if let Some(r) = role() {
        assert_eq!(r, "scribbler");
        run_role(|| -> Result<(), String> {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/dev/shm/interproc.{}", arg()))
                .map_err(|e| e.to_string())?;
            // Keep the 128-byte header; everything up to 8 KiB: the registry, the control
            // page (head, tail, parked flags, attach words) and the start of the slots.
            f.write_all_at(&vec![0xa5; 8192 - 128], 128)
                .map_err(|e| e.to_string())
        });
    }
    let mut names = Names::new();
    let name = names.add("garbage");
    let tx = Sender::<u64>::create(&name, 64).unwrap();
    let rx = Receiver::<u64>::open(&name).unwrap();
    tx.send_batch(&[1, 2, 3]).unwrap();
    for i in 1..=3 {
        assert_eq!(rx.try_recv(), Ok(i));
    }
    expect_success(spawn(
        "garbage_indices_written_by_another_process_never_hang",
        "scribbler",
        &name,
    ));
    let start = Instant::now();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(rx.recv(), Err(RecvError));
    let _ = tx.try_send(4);
    let _ = tx.send_timeout(5, Duration::from_millis(100));
    let _ = (
        rx.len(),
        tx.len(),
        rx.is_disconnected(),
        tx.is_disconnected(),
    );
    assert!(start.elapsed() < PROMPT);
    // A new receiver either refuses the scribbled ring or finds its (equal, garbage)
    // positions consistent and starts from there; it never panics.
    drop(rx);
    match Receiver::<u64>::open(&name) {
        Ok(_) | Err(Error::Corrupted { .. }) => {}
        Err(e) => panic!("{e}"),
    }
}
