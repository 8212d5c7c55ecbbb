//! Single-process tests on real regions (both handles in this process: separate open file
//! descriptions, so the role locks behave exactly as across processes).

use std::collections::VecDeque;
use std::sync::atomic::Ordering as StdOrdering;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn name(tag: &str) -> String {
    crate::test_names::unit("spsc", tag)
}

fn pair<T: Pod>(tag: &str, capacity: usize) -> (Sender<T>, Receiver<T>) {
    let tx = Sender::create(&name(tag), capacity).unwrap();
    let rx = Receiver::open(tx.name()).unwrap();
    (tx, rx)
}

#[test]
fn capacity_rounds_up_and_zero_is_refused() {
    let (tx, rx) = pair::<u64>("cap", 5);
    assert_eq!(tx.capacity(), 8);
    assert_eq!(rx.capacity(), 8);
    assert!(matches!(
        Sender::<u64>::create(&name("cap0"), 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Receiver::<u64>::create(&name("cap0"), 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Sender::<u64>::create(&name("capmax"), usize::MAX),
        Err(Error::InvalidArgument(_))
    ));
    let one = Sender::<u8>::create(&name("cap1"), 1).unwrap();
    assert_eq!(one.capacity(), 1);
}

#[test]
fn layout_never_panics_and_refuses_nonsense() {
    let base = Spec {
        kind: Kind::Spsc,
        elem_size: 8,
        elem_align: 8,
        capacity: 16,
        params: [0, 3, 0, 0],
        body_len: 0,
    };
    assert_eq!(layout(&base), Some(4096 + 128));
    let edge = [
        0,
        1,
        2,
        3,
        7,
        8,
        128,
        256,
        1 << 31,
        1 << 32,
        1 << 33,
        u64::MAX / 2 + 1,
        u64::MAX,
    ];
    for &cap in &edge {
        for &size in &[0u32, 1, 8, 24, 4096, u32::MAX] {
            for &align in &[0u32, 1, 3, 8, 128, 256, u32::MAX] {
                for &k in &[0u64, 14, 15, u64::MAX] {
                    let s = Spec {
                        capacity: cap,
                        elem_size: size,
                        elem_align: align,
                        params: [0, k, 0, 0],
                        ..base
                    };
                    if let Some(len) = layout(&s) {
                        assert!(cap.is_power_of_two() && k < 15 && align <= 128);
                        assert!((4096..=region::header::MAX_TOTAL_LEN).contains(&len));
                    }
                }
            }
        }
    }
    assert_eq!(
        layout(&Spec {
            params: [1, 0, 0, 0],
            ..base
        }),
        None
    );
    assert_eq!(
        layout(&Spec {
            params: [0, 0, 0, 1],
            ..base
        }),
        None
    );
}

#[test]
fn hot_lines_are_staggered_and_never_alias_each_other() {
    for k in 0..STAGGER_STEPS {
        let c = consumer_offset(k);
        let p = producer_offset(k);
        assert!(p + LINE <= SLOTS_OFFSET && c >= LINE);
        assert_ne!(c % 4096, p % 4096);
    }
    let ks: std::collections::HashSet<u64> =
        (0..100).map(|i| stagger(&format!("ring{i}"))).collect();
    assert!(ks.len() > 10, "names spread over the stagger positions");
}

#[test]
fn send_and_recv_in_order_across_many_wraps() {
    let (tx, rx) = pair::<u64>("order", 4);
    for i in 0..1000u64 {
        tx.try_send(i).unwrap();
        if i % 3 == 2 {
            for j in (i - 2)..=i {
                assert_eq!(rx.try_recv(), Ok(j));
            }
        }
    }
    assert_eq!(rx.len(), 1);
    assert_eq!(rx.try_recv(), Ok(999));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn full_and_empty() {
    let (tx, rx) = pair::<u32>("full", 2);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(tx.len(), 2);
    assert!(!tx.is_empty());
    assert_eq!(
        tx.send_timeout(3, Duration::from_millis(30)),
        Err(SendTimeoutError::Timeout(3))
    );
    assert_eq!(rx.recv(), Ok(1));
    tx.send(3).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok(2));
    assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok(3));
    let start = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn one_sender_and_one_receiver_at_a_time() {
    let (tx, rx) = pair::<u8>("busy", 4);
    assert!(matches!(Sender::<u8>::open(tx.name()), Err(Error::Busy)));
    assert!(matches!(Receiver::<u8>::open(tx.name()), Err(Error::Busy)));
    assert!(matches!(
        Sender::<u8>::open_or_create(tx.name(), 4),
        Err(Error::Busy)
    ));
    drop(rx);
    let rx2 = Receiver::<u8>::open(tx.name()).unwrap();
    assert!(matches!(Receiver::<u8>::open(tx.name()), Err(Error::Busy)));
    // The creator (sender) can go and come back while the receiver keeps the region mapped.
    let name = tx.name().to_owned();
    tx.persist();
    drop(tx);
    let tx2 = Sender::<u8>::open(&name).unwrap();
    tx2.send(5).unwrap();
    assert_eq!(rx2.recv(), Ok(5));
    crate::remove(&name).unwrap();
}

#[test]
fn incompatible_element_types_are_refused() {
    let tx = Sender::<u64>::create(&name("incompat"), 4).unwrap();
    assert!(matches!(
        Receiver::<u32>::open(tx.name()),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        crate::Value::<u64>::open(tx.name()),
        Err(Error::Incompatible { .. })
    ));
}

#[test]
fn receiver_disconnects_after_draining() {
    let (tx, rx) = pair::<u16>("drain", 8);
    tx.send_batch(&[1, 2, 3]).unwrap();
    assert!(!rx.is_disconnected());
    let name = tx.name().to_owned();
    tx.persist();
    drop(tx);
    assert!(rx.is_disconnected());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.recv(), Ok(2));
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Ok(3));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv(), Err(RecvError));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)),
        Err(RecvTimeoutError::Disconnected)
    );
    let mut buf = [0u16; 4];
    assert_eq!(rx.recv_batch(&mut buf), Err(RecvError));
    // A new sender connects the channel again.
    let tx = Sender::<u16>::open(&name).unwrap();
    assert!(!rx.is_disconnected());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(9).unwrap();
    assert_eq!(rx.recv(), Ok(9));
    crate::remove(&name).unwrap();
}

#[test]
fn receiver_blocks_before_any_sender_attached() {
    let rx = Receiver::<u64>::create(&name("never"), 4).unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert!(!rx.is_disconnected());
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    );
}

#[test]
fn sender_disconnects_once_the_receiver_leaves() {
    let tx = Sender::<u64>::create(&name("txdisc"), 2).unwrap();
    // No receiver yet: sends buffer, then the ring is full (not disconnected).
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert!(!tx.is_disconnected());
    let rx = Receiver::<u64>::open(tx.name()).unwrap();
    assert_eq!(rx.recv(), Ok(1));
    drop(rx);
    assert!(tx.is_disconnected());
    assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
    assert_eq!(tx.send(3), Err(SendError(3)));
    assert_eq!(
        tx.send_timeout(3, Duration::from_secs(1)),
        Err(SendTimeoutError::Disconnected(3))
    );
    assert_eq!(tx.send_batch(&[1, 2]), Err(SendError(0)));
    // A new receiver takes over: connected again, and the queued item is still there.
    let rx = Receiver::<u64>::open(tx.name()).unwrap();
    assert!(!tx.is_disconnected());
    tx.send(3).unwrap();
    assert_eq!(rx.recv(), Ok(2));
    assert_eq!(rx.recv(), Ok(3));
}

#[test]
fn blocked_sides_wake_each_other_across_threads() {
    let (tx, rx) = pair::<u64>("threads", 4);
    const N: u64 = 200_000;
    let t = std::thread::spawn(move || {
        for i in 0..N {
            tx.send(i).unwrap();
        }
    });
    for i in 0..N {
        assert_eq!(rx.recv(), Ok(i));
    }
    t.join().unwrap();
    assert_eq!(rx.recv(), Err(RecvError), "sender dropped on exit");
}

/// Ping-pong through two capacity-1 rings: every message makes a side park (light mode,
/// membarrier, if the kernel has it). A lost wake-up would show as a slice that ran out with
/// the message already there, and would cost 20 ms. (Smoke test for the membarrier path,
/// which loom cannot model; a preempted waker can also cause a late wake, hence a bound.)
#[test]
fn ping_pong_loses_no_wake_ups() {
    let (ping_tx, ping_rx) = pair::<u64>("ping", 1);
    let (pong_tx, pong_rx) = pair::<u64>("pong", 1);
    const ROUND_TRIPS: u64 = 3_000;
    let before = self::core::LATE_WAKES.load(StdOrdering::Relaxed);
    // Busy delays of 0..100 µs on both sides make the waiting side park at varying moments
    // around the other's publication (spinning alone absorbs most waits).
    fn delay(seed: u64) {
        let until = Instant::now() + Duration::from_micros(seed.wrapping_mul(7919) % 100);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
    let echo = std::thread::spawn(move || {
        while let Ok(v) = ping_rx.recv() {
            delay(v);
            pong_tx.send(v + 1).unwrap();
        }
    });
    let start = Instant::now();
    for i in 0..ROUND_TRIPS {
        delay(i.wrapping_mul(31));
        ping_tx.send(i).unwrap();
        assert_eq!(pong_rx.recv(), Ok(i + 1));
    }
    let took = start.elapsed();
    drop(ping_tx);
    echo.join().unwrap();
    let late = self::core::LATE_WAKES.load(StdOrdering::Relaxed) - before;
    eprintln!(
        "{ROUND_TRIPS} round trips in {took:?}, light mode {}, {late} late wake-ups",
        light_mode()
    );
    assert!(late <= 5, "{late} wake-ups were lost or late");
}

/// The liveness gate of the polling paths: never more than `MAX_CLOCK_SKIP` polls in a row
/// without a clock read, the first look always checks, and a forced look always checks.
#[test]
fn the_liveness_gate_skips_a_bounded_number_of_polls() {
    let gate = LiveGate::default();
    assert!(!gate.skip(), "no skip before the first clock read");
    assert!(gate.pass(false), "the first look checks");
    let (mut run, mut longest) = (0, 0);
    for _ in 0..100_000 {
        if gate.skip() {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
            let _ = gate.pass(false);
        }
    }
    assert!(
        longest <= MAX_CLOCK_SKIP,
        "{longest} polls in a row skipped"
    );
    assert!(gate.pass(true), "a forced look always checks");
}

/// A receiver polling `try_recv` in a tight loop (the gate then skips clock reads) still
/// reports a sender that went away, and a polling sender a receiver that went away.
#[test]
fn tight_polling_sees_a_drop() {
    let (tx, rx) = pair::<u64>("polldrop", 2);
    tx.send(1).unwrap();
    for _ in 0..10_000 {
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(1).unwrap();
    }
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(1), "queued items outlive the sender");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));

    let (tx, rx) = pair::<u64>("polldrop2", 1);
    tx.send(0).unwrap();
    for _ in 0..10_000 {
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
    }
    drop(rx);
    assert_eq!(tx.try_send(1), Err(TrySendError::Disconnected(1)));
}

#[test]
fn a_receiver_blocked_in_recv_sees_a_drop_promptly() {
    let (tx, rx) = pair::<u64>("dropwake", 4);
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        let r = rx.recv();
        (r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    tx.persist();
    let name = tx.name().to_owned();
    drop(tx);
    let (r, took) = t.join().unwrap();
    assert_eq!(r, Err(RecvError));
    assert!(took < Duration::from_secs(5));
    crate::remove(&name).unwrap();
}

#[test]
fn batches_stream_across_threads() {
    let (tx, rx) = pair::<u32>("batches", 16);
    const N: u32 = 100_000;
    let t = std::thread::spawn(move || {
        let data: Vec<u32> = (0..N).collect();
        for chunk in data.chunks(37) {
            tx.send_batch(chunk).unwrap();
        }
    });
    let mut next = 0;
    let mut buf = [0u32; 23];
    while next < N {
        let n = rx.recv_batch(&mut buf).unwrap();
        assert!(n >= 1);
        for &v in &buf[..n] {
            assert_eq!(v, next);
            next += 1;
        }
    }
    t.join().unwrap();
    assert_eq!(rx.recv_batch(&mut buf), Err(RecvError));
}

#[test]
fn chunks_wrap_and_commit_partially() {
    let (mut tx, mut rx) = pair::<u64>("chunks", 4);
    tx.send_batch(&[0, 1, 2]).unwrap();
    assert_eq!(rx.recv(), Ok(0));
    assert_eq!(rx.recv(), Ok(1));
    // tail = 3, head = 2: two free slots wrap (3, then 0).
    {
        let mut c = tx.try_write_chunk(10).unwrap();
        assert_eq!(c.len(), 3);
        let (a, b) = c.as_mut_slices();
        assert_eq!((a.len(), b.len()), (1, 2));
        a[0] = 3;
        b[0] = 4;
        b[1] = 99;
        c.commit(2); // 99 is not sent
    }
    assert_eq!(tx.len(), 3);
    {
        let c = rx.try_read_chunk(2).unwrap();
        assert_eq!(c.as_slices(), (&[2u64, 3][..], &[][..]));
        // dropped without commit: still queued
    }
    {
        let c = rx.read_chunk(10).unwrap();
        let (a, b) = c.as_slices();
        let all: Vec<u64> = a.iter().chain(b).copied().collect();
        assert_eq!(all, vec![2, 3, 4]);
        c.commit(1);
    }
    let c = rx.try_read_chunk(10).unwrap();
    assert_eq!(c.len(), 2);
    let mut out = [0u64; 2];
    c.copy_to_slice(&mut out);
    assert_eq!(out, [3, 4]);
    c.commit_all();
    assert!(matches!(rx.try_read_chunk(1), Err(TryRecvError::Empty)));
    assert!(rx.try_read_chunk(0).unwrap().is_empty());
    let mut c = tx.write_chunk(4).unwrap();
    assert_eq!(c.len(), 4);
    c.copy_from_slice(&[7, 8]);
    c.commit(2);
    assert_eq!(rx.try_recv(), Ok(7));
    assert!(tx.write_chunk_timeout(4, Duration::from_millis(10)).is_ok());
    assert!(matches!(
        rx.read_chunk_timeout(4, Duration::from_millis(10))
            .map(|c| c.len()),
        Ok(1)
    ));
}

#[test]
fn zero_sized_and_large_elements() {
    let (tx, rx) = pair::<()>("zst", 3);
    tx.try_send(()).unwrap();
    tx.try_send(()).unwrap();
    assert_eq!(rx.len(), 2);
    assert_eq!(rx.try_recv(), Ok(()));
    let (tx, rx) = pair::<[u64; 64]>("big", 2);
    let v: [u64; 64] = std::array::from_fn(|i| i as u64 * 3);
    tx.send(v).unwrap();
    assert_eq!(rx.recv(), Ok(v));
}

#[test]
fn debug_and_inspect() {
    let (tx, rx) = pair::<u64>("debug", 4);
    tx.send_batch(&[1, 2]).unwrap();
    let d = format!("{tx:?} {rx:?}");
    assert!(
        d.contains("spsc") && d.contains(tx.name()) && d.contains("capacity: 4"),
        "{d}"
    );
    let observer =
        Region::open_observer(tx.name(), &|_| &layout as &'static region::LayoutFn).unwrap();
    let fields = inspect(&observer);
    assert!(fields.contains(&("depth", "2".to_string())), "{fields:?}");
    assert!(
        fields.contains(&("sender", "attached".to_string())),
        "{fields:?}"
    );
    drop(rx);
    let fields = inspect(&observer);
    assert!(
        fields.contains(&("receiver", "detached".to_string())),
        "{fields:?}"
    );
}

#[test]
fn open_or_create_races_settle() {
    let n = name("race");
    let n2 = n.clone();
    let t = std::thread::spawn(move || Receiver::<u64>::open_or_create(&n2, 8).unwrap());
    let tx = Sender::<u64>::open_or_create(&n, 8).unwrap();
    let rx = t.join().unwrap();
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
    drop((tx, rx));
    let _ = crate::remove(&n);
}

/// Scribbled positions: the receiver reports Disconnected, for good, and never hangs.
#[test]
fn hostile_tail_makes_the_receiver_disconnect() {
    let cases: [fn(u64) -> u64; 4] = [
        |_| u64::MAX,                // far ahead
        |_| 1 << 40,                 // more than the capacity ahead
        |tail| tail.wrapping_sub(1), // backwards
        |tail| tail.wrapping_sub(1 << 20),
    ];
    for (i, scribble) in cases.iter().enumerate() {
        let (tx, rx) = pair::<u64>("hostile", 8);
        tx.send_batch(&[1, 2, 3]).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Ok(3));
        let w = rx.chan.words();
        let tail = w.producer.tail.load(Relaxed);
        w.producer.tail.store(scribble(tail), Relaxed);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected), "case {i}");
        // Sticky, even once the word looks sane again.
        w.producer.tail.store(tail, Relaxed);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected), "case {i}");
        assert_eq!(rx.recv(), Err(RecvError));
        assert!(rx.is_disconnected());
        // A new receiver attaching to a scribbled ring is refused.
        w.producer.tail.store(scribble(tail), Relaxed);
        drop(rx);
        assert!(
            matches!(
                Receiver::<u64>::open(tx.name()),
                Err(Error::Corrupted { .. })
            ),
            "case {i}"
        );
    }
}

#[test]
fn hostile_head_makes_the_sender_disconnect() {
    let (tx, rx) = pair::<u64>("hostilehead", 2);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    // Head beyond the tail: the producer's refresh (needed because the cache says full)
    // refuses it.
    rx.chan.words().consumer.head.store(1000, Relaxed);
    assert_eq!(tx.try_send(3), Err(TrySendError::Disconnected(3)));
    assert_eq!(tx.send(3), Err(SendError(3)));
    assert!(tx.is_disconnected());
}

/// Every byte of the control page scribbled: no panic, no hang, bounded time.
#[test]
fn scribbled_control_page_never_hangs() {
    for byte in [0x00u8, 0x01, 0x5a, 0xa5, 0xff] {
        let (tx, rx) = pair::<u64>("scribble", 4);
        tx.send(1).unwrap();
        let base = rx.chan.region.body_ptr(0);
        // SAFETY: the control page (4096 bytes) lies inside the body; only atomics live there
        // and this test process holds no references into it across the write.
        unsafe { std::ptr::write_bytes(base, byte, SLOTS_OFFSET) };
        let start = Instant::now();
        let _ = rx.try_recv();
        let _ = rx.recv_timeout(Duration::from_millis(50));
        let _ = tx.try_send(2);
        let _ = tx.send_timeout(2, Duration::from_millis(50));
        let _ = (
            rx.len(),
            tx.len(),
            rx.is_disconnected(),
            tx.is_disconnected(),
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}

#[derive(Debug, Clone)]
enum Op {
    TrySend(u32),
    TryRecv,
    SendBatch(Vec<u32>),
    RecvBatch(usize),
    WriteChunk(usize, usize, u32),
    ReadChunk(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u32>().prop_map(Op::TrySend),
        Just(Op::TryRecv),
        proptest::collection::vec(any::<u32>(), 0..12).prop_map(Op::SendBatch),
        (0usize..12).prop_map(Op::RecvBatch),
        (0usize..12, 0usize..12, any::<u32>()).prop_map(|(m, c, v)| Op::WriteChunk(m, c, v)),
        (0usize..12, 0usize..12).prop_map(|(m, c)| Op::ReadChunk(m, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random operations against a `VecDeque` model of a bounded FIFO.
    #[test]
    fn behaves_like_a_bounded_fifo(cap_log in 0u32..4, ops in proptest::collection::vec(op(), 1..120)) {
        let cap = 1usize << cap_log;
        let (mut tx, mut rx) = pair::<u32>("prop", cap);
        let mut model: VecDeque<u32> = VecDeque::new();
        for op in ops {
            match op {
                Op::TrySend(v) => {
                    let r = tx.try_send(v);
                    if model.len() < cap {
                        prop_assert_eq!(r, Ok(()));
                        model.push_back(v);
                    } else {
                        prop_assert_eq!(r, Err(TrySendError::Full(v)));
                    }
                }
                Op::TryRecv => {
                    let r = rx.try_recv();
                    match model.pop_front() {
                        Some(v) => prop_assert_eq!(r, Ok(v)),
                        None => prop_assert_eq!(r, Err(TryRecvError::Empty)),
                    }
                }
                Op::SendBatch(vs) => {
                    let r = tx.try_send_batch(&vs);
                    let room = cap - model.len();
                    if vs.is_empty() {
                        prop_assert_eq!(r, Ok(0));
                    } else if room == 0 {
                        prop_assert_eq!(r, Err(TrySendError::Full(())));
                    } else {
                        let n = vs.len().min(room);
                        prop_assert_eq!(r, Ok(n));
                        model.extend(&vs[..n]);
                    }
                }
                Op::RecvBatch(k) => {
                    let mut buf = vec![0u32; k];
                    let r = rx.try_recv_batch(&mut buf);
                    if k == 0 {
                        prop_assert_eq!(r, Ok(0));
                    } else if model.is_empty() {
                        prop_assert_eq!(r, Err(TryRecvError::Empty));
                    } else {
                        let n = k.min(model.len());
                        prop_assert_eq!(r, Ok(n));
                        for v in &buf[..n] {
                            prop_assert_eq!(Some(*v), model.pop_front());
                        }
                    }
                }
                Op::WriteChunk(max, commit, v) => {
                    let room = cap - model.len();
                    match tx.try_write_chunk(max) {
                        Ok(mut c) => {
                            prop_assert!(max == 0 || room > 0);
                            prop_assert_eq!(c.len(), max.min(room));
                            let n = commit.min(c.len());
                            let (a, b) = c.as_mut_slices();
                            for (i, s) in a.iter_mut().chain(b.iter_mut()).enumerate() {
                                *s = v.wrapping_add(i as u32);
                            }
                            c.commit(n);
                            model.extend((0..n).map(|i| v.wrapping_add(i as u32)));
                        }
                        Err(e) => {
                            prop_assert!(max > 0 && room == 0);
                            prop_assert_eq!(e, TrySendError::Full(()));
                        }
                    }
                }
                Op::ReadChunk(max, commit) => {
                    match rx.try_read_chunk(max) {
                        Ok(c) => {
                            prop_assert_eq!(c.len(), max.min(model.len()));
                            let (a, b) = c.as_slices();
                            let seen: Vec<u32> = a.iter().chain(b).copied().collect();
                            let want: Vec<u32> = model.iter().take(c.len()).copied().collect();
                            prop_assert_eq!(seen, want);
                            let n = commit.min(c.len());
                            c.commit(n);
                            model.drain(..n);
                        }
                        Err(e) => {
                            prop_assert!(max > 0 && model.is_empty());
                            prop_assert_eq!(e, TryRecvError::Empty);
                        }
                    }
                }
            }
            prop_assert_eq!(tx.len(), model.len());
            prop_assert_eq!(rx.len(), model.len());
        }
    }
}
