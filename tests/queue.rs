//! Multi-process tests of the MPMC `Queue`: separate processes (this test binary re-executed
//! with a role), crashes at claim points, pauses, timeouts and CPU use while blocked.

mod common;

use std::time::{Duration, Instant};

use common::{arg, eventually, expect_success, role, run_role, spawn, wait_timeout, Names};
use interproc::{
    Error, Queue, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError, Value,
};

/// Messages each producer sends in the exactly-once test.
const N: u64 = 200_000;

fn split(arg: &str) -> Vec<String> {
    arg.split(',').map(str::to_owned).collect()
}

/// A 64-bit mix (splitmix64's finaliser): the xor of hashes changes under any loss or
/// duplication of a value, unlike the plain xor of values.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn tag(producer: u64, seq: u64) -> u64 {
    (producer + 1) << 40 | seq
}

/// Per-producer tally a consumer reports: [producer, count, sum, xor of mix, order violations,
/// unknown values, 0, 0].
type Report = [u64; 8];

#[test]
fn two_producers_two_consumers_exactly_once() {
    const TEST: &str = "two_producers_two_consumers_exactly_once";
    if let Some(r) = role() {
        run_role(|| -> Result<(), String> {
            let a = split(&arg());
            match r.as_str() {
                "producer" => {
                    let q = Queue::<u64>::open(&a[0]).map_err(|e| e.to_string())?;
                    let p: u64 = a[1].parse().unwrap();
                    if p == 0 {
                        for i in 0..N {
                            q.send(tag(p, i)).map_err(|e| e.to_string())?;
                        }
                    } else {
                        // The other producer sends in batches of uneven size.
                        let all: Vec<u64> = (0..N).map(|i| tag(p, i)).collect();
                        for chunk in all.chunks(37) {
                            q.send_batch(chunk).map_err(|e| format!("{e:?}"))?;
                        }
                    }
                    Ok(())
                }
                "consumer" => {
                    let q = Queue::<u64>::open(&a[0]).map_err(|e| e.to_string())?;
                    let results = Queue::<Report>::open(&a[1]).map_err(|e| e.to_string())?;
                    let batched = a[2] == "1";
                    let mut rep = [[0u64; 8], [0u64; 8]];
                    let mut last: [Option<u64>; 2] = [None, None];
                    let mut take = |v: u64| {
                        let p = (v >> 40).wrapping_sub(1);
                        if p > 1 {
                            rep[0][5] += 1;
                            return;
                        }
                        let p = p as usize;
                        let seq = v & ((1 << 40) - 1);
                        let r = &mut rep[p];
                        r[0] = p as u64;
                        r[1] += 1;
                        r[2] = r[2].wrapping_add(seq);
                        r[3] ^= mix(v);
                        // Each consumer sees each producer's messages in increasing order.
                        if last[p].is_some_and(|l| l >= seq) {
                            r[4] += 1;
                        }
                        last[p] = Some(seq);
                    };
                    if batched {
                        let mut buf = Vec::with_capacity(64);
                        while q.recv_batch(&mut buf, 50).is_ok() {
                            buf.drain(..).for_each(&mut take);
                        }
                    } else {
                        while let Ok(v) = q.recv() {
                            take(v);
                        }
                    }
                    rep[0][0] = 0;
                    rep[1][0] = 1;
                    for r in rep {
                        results.send(r).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                }
                other => Err(format!("unknown role {other}")),
            }
        });
    }

    let mut names = Names::new();
    let qn = names.add("mpmc-q");
    let q = Queue::<u64>::create(&qn, 256).unwrap();
    let result_names = [names.add("mpmc-r0"), names.add("mpmc-r1")];
    let results: Vec<Queue<Report>> = result_names
        .iter()
        .map(|n| Queue::create(n, 4).unwrap())
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|i| spawn(TEST, "consumer", &format!("{qn},{},{i}", result_names[i])))
        .collect();
    let producers: Vec<_> = (0..2)
        .map(|p| spawn(TEST, "producer", &format!("{qn},{p}")))
        .collect();
    for p in producers {
        expect_success(p);
    }
    q.close();
    for c in consumers {
        expect_success(c);
    }

    let mut total = [[0u64; 8]; 2];
    for r in &results {
        for _ in 0..2 {
            let rep = r.try_recv().expect("each consumer reports twice");
            let p = rep[0] as usize;
            total[p][1] += rep[1];
            total[p][2] = total[p][2].wrapping_add(rep[2]);
            total[p][3] ^= rep[3];
            total[p][4] += rep[4];
            total[p][5] += rep[5];
        }
    }
    for (p, t) in total.iter().enumerate() {
        let expected_xor = (0..N).fold(0, |x, i| x ^ mix(tag(p as u64, i)));
        assert_eq!(t[1], N, "producer {p}: count");
        assert_eq!(
            t[2],
            N * (N - 1) / 2,
            "producer {p}: sum of sequence numbers"
        );
        assert_eq!(
            t[3], expected_xor,
            "producer {p}: xor of hashes (loss or duplicate)"
        );
        assert_eq!(t[4], 0, "producer {p}: per-producer order");
        assert_eq!(t[5], 0, "values nobody sent");
    }
    assert!(q.is_empty());
    assert_eq!(q.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn closed_queue_refuses_sends_and_drains() {
    let mut names = Names::new();
    let q = Queue::<u32>::create(&names.add("mpmc-close"), 4).unwrap();
    q.send(1).unwrap();
    q.send(2).unwrap();
    let other = Queue::<u32>::open(q.name()).unwrap();
    other.close();
    assert!(q.is_closed());
    assert_eq!(q.send(3), Err(SendError(3)));
    assert_eq!(q.try_send(3), Err(TrySendError::Disconnected(3)));
    assert_eq!(
        q.send_timeout(3, Duration::from_secs(1)),
        Err(SendTimeoutError::Disconnected(3))
    );
    assert_eq!(q.recv(), Ok(1));
    assert_eq!(q.recv(), Ok(2));
    assert!(q.recv().is_err());
    assert_eq!(
        q.recv_timeout(Duration::from_secs(1)),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn timeouts_are_honoured() {
    let mut names = Names::new();
    let q = Queue::<u64>::create(&names.add("mpmc-timeout"), 2).unwrap();
    let start = Instant::now();
    assert_eq!(
        q.recv_timeout(Duration::from_millis(200)),
        Err(RecvTimeoutError::Timeout)
    );
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    q.send(1).unwrap();
    q.send(2).unwrap();
    let start = Instant::now();
    assert_eq!(
        q.send_timeout(3, Duration::from_millis(200)),
        Err(SendTimeoutError::Timeout(3))
    );
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    let start = Instant::now();
    assert_eq!(
        q.send_timeout(3, Duration::ZERO),
        Err(SendTimeoutError::Timeout(3))
    );
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn another_element_type_is_incompatible() {
    let mut names = Names::new();
    let q = Queue::<u64>::create(&names.add("mpmc-incompat"), 8).unwrap();
    assert!(matches!(
        Queue::<u32>::open(q.name()),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        Queue::<[u64; 2]>::open_or_create(q.name(), 8),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        Value::<u64>::open(q.name()),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        Queue::<u8>::open(&names.add("mpmc-absent")),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        Queue::<u8>::create(&names.add("mpmc-cap0"), 0),
        Err(Error::InvalidArgument(_))
    ));
    let dbg = format!("{q:?}");
    assert!(dbg.contains("queue") && dbg.contains(q.name()), "{dbg}");
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&q);
}

#[test]
fn blocked_receiver_is_woken_by_send_and_by_close() {
    const TEST: &str = "blocked_receiver_is_woken_by_send_and_by_close";
    if let Some(r) = role() {
        assert_eq!(r, "receiver");
        run_role(|| -> Result<(), String> {
            let a = split(&arg());
            let q = Queue::<u64>::open(&a[0]).map_err(|e| e.to_string())?;
            let ready = Value::<u32>::open(&a[1]).map_err(|e| e.to_string())?;
            ready.store(1);
            let v = q.recv().map_err(|e| e.to_string())?;
            if v != 42 {
                return Err(format!("got {v}"));
            }
            ready.store(2);
            match q.recv() {
                Err(_) => Ok(()),
                Ok(v) => Err(format!("expected Disconnected after close, got {v}")),
            }
        });
    }
    let mut names = Names::new();
    let q = Queue::<u64>::create(&names.add("mpmc-wake"), 4).unwrap();
    let ready = Value::<u32>::create(&names.add("mpmc-wake-flag"), 0).unwrap();
    let mut child = spawn(TEST, "receiver", &format!("{},{}", q.name(), ready.name()));
    assert!(eventually(Duration::from_secs(10), || ready.load() == 1));
    // Give the receiver time to park (not needed for correctness: a receiver that has not
    // parked yet simply finds the message).
    std::thread::sleep(Duration::from_millis(100));
    q.send(42).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || ready.load() == 2),
        "a parked receiver in another process must wake for a send"
    );
    std::thread::sleep(Duration::from_millis(100));
    q.close();
    let status = wait_timeout(&mut child, Duration::from_secs(10));
    assert!(status.success(), "receiver exited with {status}");
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Blocked receivers and senders sleep (after a spin phase of microseconds), in a small queue
/// and in a large one.
#[test]
fn blocked_sides_use_almost_no_cpu() {
    const TEST: &str = "blocked_sides_use_almost_no_cpu";
    if role().is_some() {
        run_role(|| -> Result<(), String> {
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            for name in split(&arg()) {
                blocked_sides(&name, hz)?;
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let small = Queue::<u64>::create(&names.add("mpmc-cpu"), 8).unwrap();
    let large = Queue::<u64>::create(&names.add("mpmc-cpu-large"), 1024).unwrap();
    expect_success(spawn(
        TEST,
        "blocked",
        &format!("{},{}", small.name(), large.name()),
    ));
}

/// One role of `blocked_sides_use_almost_no_cpu`: block on an empty, then on a full queue.
fn blocked_sides(name: &str, hz: u64) -> Result<(), String> {
    let q = Queue::<u64>::open(name).map_err(|e| e.to_string())?;
    // Receiver side: the queue is empty.
    let (before, start) = (cpu_ticks(), Instant::now());
    if q.recv_timeout(Duration::from_secs(1)) != Err(RecvTimeoutError::Timeout) {
        return Err("recv_timeout on an empty queue did not time out".into());
    }
    let (waited, used) = (start.elapsed(), cpu_ticks() - before);
    if waited < Duration::from_secs(1) || used * 1000 / hz >= 100 {
        return Err(format!(
            "receiver waited {waited:?} using {used} ticks at {hz} Hz"
        ));
    }
    // Sender side: fill the queue, then block.
    while q.try_send(0).is_ok() {}
    let (before, start) = (cpu_ticks(), Instant::now());
    if !matches!(
        q.send_timeout(1, Duration::from_secs(1)),
        Err(SendTimeoutError::Timeout(1))
    ) {
        return Err("send_timeout on a full queue did not time out".into());
    }
    let (waited, used) = (start.elapsed(), cpu_ticks() - before);
    if waited < Duration::from_secs(1) || used * 1000 / hz >= 100 {
        return Err(format!(
            "sender waited {waited:?} using {used} ticks at {hz} Hz"
        ));
    }
    Ok(())
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

#[test]
fn killed_sender_holding_a_claimed_slot_does_not_wedge_the_queue() {
    const TEST: &str = "killed_sender_holding_a_claimed_slot_does_not_wedge_the_queue";
    if let Some(r) = role() {
        assert_eq!(r, "claimer");
        run_role(|| -> Result<(), String> {
            let a = split(&arg());
            let q = Queue::<u64>::open(&a[0]).map_err(|e| e.to_string())?;
            let claimed = Value::<u32>::open(&a[1]).map_err(|e| e.to_string())?;
            // Claim a slot, half-write it, and stay inside the claim until killed.
            q.send_with(|slot| {
                *slot = 111;
                claimed.store(1);
                loop {
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
            .map_err(|e| e.to_string())
        });
    }
    let mut names = Names::new();
    let q = Queue::<u64>::create(&names.add("mpmc-dead-tx"), 8).unwrap();
    let claimed = Value::<u32>::create(&names.add("mpmc-dead-tx-flag"), 0).unwrap();
    let mut child = spawn(TEST, "claimer", &format!("{},{}", q.name(), claimed.name()));
    assert!(eventually(Duration::from_secs(10), || claimed.load() == 1));
    q.send(222).unwrap();
    // The claimer lives: its slot is never skipped, so the later message waits behind it.
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        q.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout)
    );
    signal(child.id(), libc::SIGKILL);
    let _ = wait_timeout(&mut child, Duration::from_secs(10));
    // Dead: its claim is skipped and the queue moves on.
    let start = Instant::now();
    assert_eq!(q.recv_timeout(Duration::from_secs(10)), Ok(222));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        q.try_recv(),
        Err(TryRecvError::Empty),
        "the half-written 111 is never seen"
    );
    for v in 0..20 {
        q.send(v).unwrap();
        assert_eq!(q.recv(), Ok(v));
    }
}

#[test]
fn killed_receiver_holding_a_message_does_not_wedge_the_queue() {
    const TEST: &str = "killed_receiver_holding_a_message_does_not_wedge_the_queue";
    if let Some(r) = role() {
        assert_eq!(r, "holder");
        run_role(|| -> Result<(), String> {
            let a = split(&arg());
            let q = Queue::<u64>::open(&a[0]).map_err(|e| e.to_string())?;
            let got = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
            // Take a message and stay inside the claim (the slot unreleased) until killed.
            q.recv_with(|v| {
                got.store(*v);
                loop {
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
            .map_err(|e| e.to_string())
        });
    }
    let mut names = Names::new();
    let q = Queue::<u64>::create(&names.add("mpmc-dead-rx"), 2).unwrap();
    let got = Value::<u64>::create(&names.add("mpmc-dead-rx-flag"), 0).unwrap();
    q.send(10).unwrap();
    let mut child = spawn(TEST, "holder", &format!("{},{}", q.name(), got.name()));
    assert!(eventually(Duration::from_secs(10), || got.load() == 10));
    q.send(20).unwrap();
    // The next send needs the slot the live holder is still reading: it waits.
    assert_eq!(q.try_send(30), Err(TrySendError::Full(30)));
    assert_eq!(
        q.send_timeout(30, Duration::from_millis(300)),
        Err(SendTimeoutError::Timeout(30))
    );
    signal(child.id(), libc::SIGKILL);
    let _ = wait_timeout(&mut child, Duration::from_secs(10));
    // Dead: its slot is released on its behalf (message 10 is lost: at most once).
    let start = Instant::now();
    assert_eq!(q.send_timeout(30, Duration::from_secs(10)), Ok(()));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(q.recv(), Ok(20));
    assert_eq!(q.recv(), Ok(30));
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn paused_sender_is_waited_for_never_skipped() {
    const TEST: &str = "paused_sender_is_waited_for_never_skipped";
    if let Some(r) = role() {
        assert_eq!(r, "slow");
        run_role(|| -> Result<(), String> {
            let a = split(&arg());
            let q = Queue::<u64>::open(&a[0]).map_err(|e| e.to_string())?;
            let state = Value::<u32>::open(&a[1]).map_err(|e| e.to_string())?;
            q.send_with(|slot| {
                state.store(1);
                let start = Instant::now();
                while state.load() != 2 && start.elapsed() < Duration::from_secs(30) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                *slot = 111;
            })
            .map_err(|e| e.to_string())
        });
    }
    let mut names = Names::new();
    let q = Queue::<u64>::create(&names.add("mpmc-paused"), 8).unwrap();
    let state = Value::<u32>::create(&names.add("mpmc-paused-flag"), 0).unwrap();
    let mut child = spawn(TEST, "slow", &format!("{},{}", q.name(), state.name()));
    assert!(eventually(Duration::from_secs(10), || state.load() == 1));
    q.send(222).unwrap();
    signal(child.id(), libc::SIGSTOP);
    state.store(2);
    // Stopped (alive, its OFD lock held): receivers wait for it, far past a slice.
    assert_eq!(
        q.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout)
    );
    signal(child.id(), libc::SIGCONT);
    // Its late commit lands, in claim order, before the message sent after it.
    assert_eq!(q.recv_timeout(Duration::from_secs(10)), Ok(111));
    assert_eq!(q.recv_timeout(Duration::from_secs(10)), Ok(222));
    let status = wait_timeout(&mut child, Duration::from_secs(10));
    assert!(status.success(), "slow sender exited with {status}");
}

/// Throughput figures for the report (not a pass/fail test; sides pinned to CPUs 0 and 1,
/// rate timed inside the consumers): `cargo test --release --test queue -- --ignored
/// --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    const TEST: &str = "throughput";
    const M: u64 = 5_000_000;
    if let Some(r) = role() {
        run_role(|| -> Result<(), String> {
            let a = split(&arg());
            let q = Queue::<u64>::open(&a[0]).map_err(|e| e.to_string())?;
            let count: u64 = a[1].parse().unwrap();
            let _ = interproc::pin_to_cpu(a[2].parse().unwrap());
            if r == "tx" {
                for i in 0..count {
                    q.send(i).map_err(|e| e.to_string())?;
                }
            } else {
                let (mut n, mut start) = (0u64, None);
                while q.recv().is_ok() {
                    start.get_or_insert_with(Instant::now);
                    n += 1;
                }
                let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
                println!(
                    "  consumer: {n} in {secs:.3} s = {:.1} M msg/s",
                    n as f64 / secs / 1e6
                );
            }
            Ok(())
        });
    }
    for (tx, rx) in [(1u64, 1u64), (2, 2)] {
        let mut names = Names::new();
        let q = Queue::<u64>::create(&names.add("mpmc-bench"), 1024).unwrap();
        let per = M / tx;
        // The children must run this ignored test too.
        let run = |role: &str, arg: String| {
            common::child(TEST, role, &arg)
                .arg("--ignored")
                .spawn()
                .unwrap()
        };
        println!("{tx}->{rx}:");
        let start = Instant::now();
        let rxs: Vec<_> = (0..rx)
            .map(|i| run("rx", format!("{},0,{}", q.name(), 1 - i % 2)))
            .collect();
        let txs: Vec<_> = (0..tx)
            .map(|i| run("tx", format!("{},{per},{}", q.name(), i % 2)))
            .collect();
        for t in txs {
            expect_success(t);
        }
        q.close();
        for r in rxs {
            expect_success(r);
        }
        println!(
            "  wall: {} messages in {:.3} s (process start included)",
            per * tx,
            start.elapsed().as_secs_f64()
        );
    }
}
