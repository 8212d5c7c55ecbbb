//! The scenarios of `interproc bench`, each beside its baseline.

use std::sync::atomic::Ordering;

use super::harness::{median, n_processes, now_ns, rate, two_processes};
use super::{baseline, Better, Effort, Row};

/// A named scenario producing one or more rows.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(Effort) -> Vec<Row>,
}

pub fn all() -> Vec<Scenario> {
    let s = |name, run| Scenario { name, run };
    vec![
        s("spsc.throughput", spsc_throughput),
        s("spsc.rtt", spsc_round_trip),
        s("queue", queue),
        s("pipe.throughput", pipe_throughput),
        s("pipe.rtt", pipe_round_trip),
        s("mutex", mutex),
        s("value.fetch_add", value_fetch_add),
        s("python", python),
        s("iceoryx2", iceoryx2),
        s("floor", floor),
    ]
}

/// Interleaves `reps` runs of `base` and `ours`, returning (median ours, median base).
fn interleave(
    reps: usize,
    mut base: impl FnMut() -> f64,
    mut ours: impl FnMut() -> f64,
) -> (f64, f64) {
    let (mut b, mut o) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        b.push(base());
        o.push(ours());
    }
    (median(o), median(b))
}

fn unique(tag: &str) -> String {
    format!("bench-{tag}-{}", std::process::id())
}

/// `Value::fetch_add`: uncontended (ns/op) against a raw `AtomicU64::fetch_add` in a shared page,
/// and two processes contending (op/s) against the same raw atomic contended.
fn value_fetch_add(e: Effort) -> Vec<Row> {
    let ops = 2_000_000 * e.scale;
    let name = unique("value");
    let v = interproc::Value::<u64>::create(&name, 0).expect("create value");
    let page = super::harness::SharedPage::new(4096);
    let raw = page.word(0);
    let (ours, base) = interleave(
        e.reps,
        || {
            let t = now_ns();
            for _ in 0..ops {
                raw.fetch_add(1, Ordering::SeqCst);
            }
            (now_ns() - t) as f64 / ops as f64
        },
        || {
            let t = now_ns();
            for _ in 0..ops {
                v.fetch_add(1);
            }
            (now_ns() - t) as f64 / ops as f64
        },
    );
    let mut rows = vec![Row {
        scenario: "value fetch_add, uncontended".into(),
        unit: "ns",
        interproc: ours,
        baseline: "raw AtomicU64 fetch_add".into(),
        baseline_value: base,
        better: Better::Lower,
        target: None,
    }];
    let each = ops / 2;
    let (ours, base) = interleave(
        e.reps,
        || {
            let (ns, child) = two_processes(
                true,
                || {
                    let t = now_ns();
                    for _ in 0..each {
                        raw.fetch_add(1, Ordering::SeqCst);
                    }
                    now_ns() - t
                },
                || {
                    let t = now_ns();
                    for _ in 0..each {
                        raw.fetch_add(1, Ordering::SeqCst);
                    }
                    now_ns() - t
                },
            );
            rate(2 * each, ns.max(child))
        },
        || {
            let (ns, child) = two_processes(
                true,
                || {
                    let v = interproc::Value::<u64>::open(&name).expect("open value");
                    let t = now_ns();
                    for _ in 0..each {
                        v.fetch_add(1);
                    }
                    now_ns() - t
                },
                || {
                    let t = now_ns();
                    for _ in 0..each {
                        v.fetch_add(1);
                    }
                    now_ns() - t
                },
            );
            rate(2 * each, ns.max(child))
        },
    );
    rows.push(Row {
        scenario: "value fetch_add, 2 processes contending".into(),
        unit: "op/s",
        interproc: ours,
        baseline: "raw AtomicU64 contended".into(),
        baseline_value: base,
        better: Better::Higher,
        target: None,
    });
    rows
}

/// The floor figures on their own (printed as rows whose interproc column repeats the floor), so
/// a run shows the machine's current state next to BASELINES.md.
fn floor(e: Effort) -> Vec<Row> {
    let n = 2_000_000 * e.scale;
    let ring = median(
        (0..e.reps)
            .map(|_| baseline::raw_ring::<8>(n, 4096, false))
            .collect(),
    );
    let mpmc = median((0..e.reps).map(|_| baseline::raw_mpmc(n, 4096)).collect());
    let rt = baseline::raw_ping_pong(100_000 * e.scale);
    let futex = baseline::futex_round_trip(2_000 * e.scale as u32, 0);
    let pipe = baseline::fd_round_trip(2_000 * e.scale as u32, 8, false);
    let row = |scenario: &str, unit: &'static str, v: f64, better| Row {
        scenario: scenario.into(),
        unit,
        interproc: v,
        baseline: super::FLOOR.into(),
        baseline_value: v,
        better,
        target: None,
    };
    vec![
        row("floor: raw spsc ring 8 B", "msg/s", ring, Better::Higher),
        row("floor: raw MPMC ring u64", "msg/s", mpmc, Better::Higher),
        row(
            "floor: raw ping-pong RT p50",
            "ns",
            rt.at(0.5),
            Better::Lower,
        ),
        row(
            "floor: futex RT both sleep p50",
            "ns",
            futex.at(0.5),
            Better::Lower,
        ),
        row("floor: pipe RT 8 B p50", "ns", pipe.at(0.5), Better::Lower),
    ]
}

/// Streams `count` elements of `SIZE` bytes through an spsc ring of 4096 slots between two pinned
/// processes, one by one or in batches of up to 64. Returns messages/s.
pub fn spsc_stream<const SIZE: usize>(count: u64, batched: bool) -> f64
where
    [u8; SIZE]: interproc::Pod,
{
    use interproc::spsc::{Receiver, Sender};
    let name = unique(&format!("spsc{SIZE}"));
    let rx = Receiver::<[u8; SIZE]>::create(&name, 4096).expect("create spsc");
    let (elapsed, _) = two_processes(
        true,
        || {
            let tx = Sender::<[u8; SIZE]>::open(&name).expect("open spsc sender");
            let mut msg = [0u8; SIZE];
            if batched {
                let mut batch = [[0u8; SIZE]; 64];
                let mut sent = 0u64;
                while sent < count {
                    let n = (count - sent).min(64) as usize;
                    for (i, m) in batch[..n].iter_mut().enumerate() {
                        m[0] = (sent as usize + i) as u8;
                    }
                    tx.send_batch(&batch[..n]).expect("send batch");
                    sent += n as u64;
                }
            } else {
                for i in 0..count {
                    msg[0] = i as u8;
                    tx.send(msg).expect("send");
                }
            }
            0
        },
        || {
            let start = now_ns();
            let mut sum = 0u64;
            if batched {
                let mut buf = vec![[0u8; SIZE]; 64];
                let mut got = 0u64;
                while got < count {
                    let n = rx.recv_batch(&mut buf).expect("recv batch");
                    for m in &buf[..n] {
                        sum = sum.wrapping_add(m[0] as u64);
                    }
                    got += n as u64;
                }
            } else {
                for _ in 0..count {
                    sum = sum.wrapping_add(rx.recv().expect("recv")[0] as u64);
                }
            }
            std::hint::black_box(sum);
            now_ns() - start
        },
    );
    rate(count, elapsed)
}

fn spsc_throughput(e: Effort) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |label: &str, ours: f64, base: f64, target: Option<f64>| {
        rows.push(Row {
            scenario: label.into(),
            unit: "msg/s",
            interproc: ours,
            baseline: "raw shm ring".into(),
            baseline_value: base,
            better: Better::Higher,
            target,
        })
    };
    let n = 2_000_000 * e.scale;
    let (o, b) = interleave(
        e.reps,
        || baseline::raw_ring::<8>(n, 4096, false),
        || spsc_stream::<8>(n, false),
    );
    add("spsc 8 B, one by one", o, b, Some(0.9));
    let (o, b) = interleave(
        e.reps,
        || baseline::raw_ring::<8>(n, 4096, true),
        || spsc_stream::<8>(n, true),
    );
    add("spsc 8 B, batches of 64", o, b, Some(0.9));
    let n = 1_000_000 * e.scale;
    let (o, b) = interleave(
        e.reps,
        || baseline::raw_ring::<64>(n, 4096, false),
        || spsc_stream::<64>(n, false),
    );
    add("spsc 64 B, one by one", o, b, None);
    let (o, b) = interleave(
        e.reps,
        || baseline::raw_ring::<64>(n, 4096, true),
        || spsc_stream::<64>(n, true),
    );
    add("spsc 64 B, batches of 64", o, b, None);
    let n = 200_000 * e.scale;
    let (o, b) = interleave(
        e.reps,
        || baseline::raw_ring::<1024>(n, 4096, false),
        || spsc_stream::<1024>(n, false),
    );
    add("spsc 1 KiB, one by one", o, b, None);
    let (o, b) = interleave(
        e.reps,
        || baseline::raw_ring::<1024>(n, 4096, true),
        || spsc_stream::<1024>(n, true),
    );
    add("spsc 1 KiB, batches of 64", o, b, None);
    rows
}

/// Ping-pong of u64 over two spsc rings. `spin`: both sides poll with `try_recv`; otherwise
/// both use the blocking `recv` (which spins briefly, then parks on the futex). Both modes pin
/// the two sides to distinct CPUs, as their baselines do (`raw_ping_pong`, and
/// `futex_round_trip` with a spin phase). Unpinned, the child would inherit the CPU the
/// previous pinned run left the parent on, and both sides would share one CPU.
/// How the spsc ping-pong waits for each answer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RtMode {
    /// `try_recv` in a loop (both processes pinned).
    Spin,
    /// Blocking `recv`: polls a few µs, then sleeps (both processes pinned).
    Blocking,
    /// Blocking `recv` with `set_spin(false)`: both sides sleep every time (not pinned).
    Sleeping,
}

pub fn spsc_ping_pong(round_trips: u64, mode: RtMode) -> super::harness::Percentiles {
    use interproc::spsc::{Receiver, Sender};
    let (ping, pong) = (unique("ping"), unique("pong"));
    let ping_tx = Sender::<u64>::create(&ping, 64).expect("create ping");
    let pong_rx = Receiver::<u64>::create(&pong, 64).expect("create pong");
    pong_rx.set_spin(mode != RtMode::Sleeping);
    let recv = |rx: &Receiver<u64>| -> u64 {
        if mode == RtMode::Spin {
            loop {
                if let Ok(v) = rx.try_recv() {
                    return v;
                }
                std::hint::spin_loop();
            }
        } else {
            rx.recv().expect("recv")
        }
    };
    let (samples, _) = two_processes(
        mode != RtMode::Sleeping,
        || {
            let rx = Receiver::<u64>::open(&ping).expect("open ping");
            rx.set_spin(mode != RtMode::Sleeping);
            let tx = Sender::<u64>::open(&pong).expect("open pong");
            for _ in 0..round_trips {
                let v = recv(&rx);
                tx.send(v).expect("send pong");
            }
            0
        },
        || {
            let mut samples = Vec::with_capacity(round_trips as usize);
            for i in 0..round_trips {
                let t = now_ns();
                ping_tx.send(i).expect("send ping");
                let v = recv(&pong_rx);
                samples.push(now_ns() - t);
                debug_assert_eq!(v, i);
            }
            samples
        },
    );
    super::harness::Percentiles::new(samples)
}

fn spsc_round_trip(e: Effort) -> Vec<Row> {
    let n = 50_000 * e.scale;
    let (mut b50, mut b99, mut b999) = (vec![], vec![], vec![]);
    let (mut o50, mut o99, mut o999) = (vec![], vec![], vec![]);
    for _ in 0..e.reps {
        let b = baseline::raw_ping_pong(n);
        b50.push(b.at(0.5));
        b99.push(b.at(0.99));
        b999.push(b.at(0.999));
        let o = spsc_ping_pong(n, RtMode::Spin);
        o50.push(o.at(0.5));
        o99.push(o.at(0.99));
        o999.push(o.at(0.999));
    }
    let m = 5_000 * e.scale;
    let (mut f50, mut p50) = (vec![], vec![]);
    for _ in 0..e.reps {
        f50.push(baseline::futex_round_trip(m as u32, 2_000).at(0.5));
        p50.push(spsc_ping_pong(m, RtMode::Blocking).at(0.5));
    }
    let (mut s50, mut q50) = (vec![], vec![]);
    for _ in 0..e.reps {
        s50.push(baseline::futex_round_trip(m as u32, 0).at(0.5));
        q50.push(spsc_ping_pong(m, RtMode::Sleeping).at(0.5));
    }
    let row = |scenario: &str, ours: Vec<f64>, base_name: &str, base: Vec<f64>, target| Row {
        scenario: scenario.into(),
        unit: "ns",
        interproc: median(ours),
        baseline: base_name.into(),
        baseline_value: median(base),
        better: Better::Lower,
        target,
    };
    vec![
        row(
            "spsc RT p50, spinning",
            o50,
            "raw atomic ping-pong p50",
            b50,
            Some(1.0 / 1.15),
        ),
        row(
            "spsc RT p99, spinning",
            o99,
            "raw atomic ping-pong p99",
            b99,
            None,
        ),
        row(
            "spsc RT p99.9, spinning",
            o999,
            "raw atomic ping-pong p99.9",
            b999,
            Some(1.0 / 1.5),
        ),
        row(
            "spsc RT p50, blocking recv",
            p50,
            "spin-then-futex RT p50",
            f50,
            Some(1.0 / 1.2),
        ),
        row(
            "spsc RT p50, both sides sleep",
            q50,
            "futex RT p50, both sleep",
            s50,
            Some(1.0 / 1.2),
        ),
    ]
}

fn mutex(e: Effort) -> Vec<Row> {
    let ops = 2_000_000 * e.scale;
    let name = unique("mutex");
    let m = interproc::Mutex::<u64>::create(&name, 0).expect("create mutex");
    let (o, b) = interleave(
        e.reps,
        || baseline::pthread_mutex_uncontended(ops),
        || {
            let t = now_ns();
            for _ in 0..ops {
                let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
                *g += 1;
            }
            (now_ns() - t) as f64 / ops as f64
        },
    );
    let mut rows = vec![Row {
        scenario: "mutex lock+inc+unlock, uncontended".into(),
        unit: "ns",
        interproc: o,
        baseline: "robust pshared pthread mutex".into(),
        baseline_value: b,
        better: Better::Lower,
        target: Some(1.0),
    }];
    let each = ops / 4;
    // How evenly the two processes shared the lock, from the same runs: a lock that let one
    // process run to the end before the other would win the rate row without sharing at all.
    let evenness = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let (o, b) = interleave(
        e.reps,
        || {
            let (rate, even) = baseline::pthread_mutex_contended(each);
            evenness.borrow_mut().1.push(even);
            rate
        },
        || {
            let work = || {
                let m = interproc::Mutex::<u64>::open(&name).expect("open mutex");
                let t = now_ns();
                for _ in 0..each {
                    let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
                    *g += 1;
                }
                now_ns() - t
            };
            let (a, b) = two_processes(true, work, work);
            evenness
                .borrow_mut()
                .0
                .push(baseline::finish_evenness(a, b));
            rate(2 * each, a.max(b))
        },
    );
    rows.push(Row {
        scenario: "mutex, 2 processes contending".into(),
        unit: "op/s",
        interproc: o,
        baseline: "robust pshared pthread mutex".into(),
        baseline_value: b,
        better: Better::Higher,
        target: Some(1.0),
    });
    let (ours, theirs) = evenness.into_inner();
    rows.push(Row {
        scenario: "mutex contending: first finish / last".into(),
        unit: "%",
        interproc: median(ours),
        baseline: "robust pshared pthread mutex".into(),
        baseline_value: median(theirs),
        better: Better::Higher,
        target: None,
    });
    rows
}

/// Python-equivalent workloads beside Python's own (skipped without python3).
fn python(e: Effort) -> Vec<Row> {
    let n = 20_000 * e.scale;
    let Some(py) = baseline::python(n) else {
        eprint!("(python3 with multiprocessing not available: skipped) ");
        return Vec::new();
    };
    // Locked increments: two processes, Mutex<i64>, like Lock + Value.
    let name = unique("pylock");
    let m = interproc::Mutex::<i64>::create(&name, 0).expect("create mutex");
    let each = 1_000_000 * e.scale;
    let work = || {
        let m = interproc::Mutex::<i64>::open(&name).expect("open mutex");
        let t = now_ns();
        for _ in 0..each {
            *m.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        }
        now_ns() - t
    };
    // Python's figure comes from one script run; ours is the median of `reps` runs.
    let ours = median(
        (0..e.reps)
            .map(|_| {
                let (a, b) = two_processes(false, work, work);
                rate(2 * each, a.max(b))
            })
            .collect(),
    );
    drop(m);
    vec![Row {
        scenario: "locked increments, 2 processes (Lock + Value)".into(),
        unit: "op/s",
        interproc: ours,
        baseline: "python mp.Lock + mp.Value".into(),
        baseline_value: py.lock_value,
        better: Better::Higher,
        target: Some(20.0),
    }]
}

/// interproc beside iceoryx2 0.10, run as a separate peer binary (`bench-peers/iceoryx2`, never a
/// dependency of interproc); skipped when the peer is not built. Same shapes on both sides: u64
/// ping-pong with both sides pinned and busy-polling, and a one-way u64 stream with a blocking
/// sender (iceoryx2: subscriber buffer 1024, no overflow, `RetryUntilDelivered`).
fn iceoryx2(e: Effort) -> Vec<Row> {
    if baseline::iceoryx2_peer().is_none() {
        eprint!(
            "(iceoryx2 peer not built: skipped (build with: {})) ",
            baseline::ICEORYX2_BUILD
        );
        return Vec::new();
    }
    // A failed peer run (message already on stderr) drops its row rather than skew a median.
    let failed = std::cell::Cell::new(false);
    let peer = |kind: &str, n: u64, key: &str| {
        let v = baseline::iceoryx2(kind, n).and_then(|v| v[key].as_f64());
        failed.set(failed.get() || v.is_none());
        v.unwrap_or(f64::NAN)
    };
    let mut rows = Vec::new();
    let n = 50_000 * e.scale;
    let (ours, base) = interleave(
        e.reps,
        || peer("rtt", n, "p50_ns"),
        || spsc_ping_pong(n, RtMode::Spin).at(0.5),
    );
    if !failed.replace(false) {
        rows.push(Row {
            scenario: "spsc RT p50 vs iceoryx2 (busy wait)".into(),
            unit: "ns",
            interproc: ours,
            baseline: "iceoryx2 pub/sub RT p50".into(),
            baseline_value: base,
            better: Better::Lower,
            target: Some(1.0 / 0.3),
        });
    }
    let n = 500_000 * e.scale;
    let (ours, base) = interleave(
        e.reps,
        || peer("stream", n, "msg_per_s"),
        || spsc_stream::<8>(n, false),
    );
    if !failed.replace(false) {
        rows.push(Row {
            scenario: "spsc stream u64 vs iceoryx2".into(),
            unit: "msg/s",
            interproc: ours,
            baseline: "iceoryx2 stream, buffer 1024".into(),
            baseline_value: base,
            better: Better::Higher,
            target: Some(10.0),
        });
    }
    rows
}

/// Bytes per direction of the benchmark pipes: room for 64 KiB messages.
const PIPE_CAPACITY: usize = 256 * 1024;

/// Streams `count` messages of `size` bytes from a child to this process over a `Pipe`. Like the
/// pipe(2) baseline, every byte is copied in (`send` from a buffer) and out (`recv_with` copying
/// into a buffer, which saves only the `Vec` allocation of `recv`).
pub fn pipe_stream(count: u64, size: usize) -> f64 {
    let name = unique(&format!("pipe{size}"));
    let parent = interproc::Pipe::create(&name, PIPE_CAPACITY).expect("create pipe");
    let (elapsed, _) = two_processes(
        true,
        || {
            let child = interproc::Pipe::open(&name).expect("open pipe");
            let mut msg = vec![1u8; size];
            for i in 0..count {
                if let Some(b) = msg.first_mut() {
                    *b = i as u8;
                }
                child.send(&msg).expect("send");
            }
            0
        },
        || {
            let start = now_ns();
            let mut sum = 0u64;
            let mut out = vec![0u8; size];
            for _ in 0..count {
                sum += parent
                    .recv_with(|m| {
                        out[..m.len()].copy_from_slice(m);
                        out.first().copied().unwrap_or(0) as u64
                    })
                    .expect("recv");
            }
            std::hint::black_box(sum);
            now_ns() - start
        },
    );
    rate(count, elapsed)
}

fn pipe_throughput(e: Effort) -> Vec<Row> {
    let mut rows = Vec::new();
    for (size, count, target) in [
        (16usize, 500_000 * e.scale, Some(10.0)),
        (1024, 200_000 * e.scale, None),
        (64 * 1024, 5_000 * e.scale, None),
    ] {
        let (o, b) = interleave(
            e.reps,
            || baseline::pipe_stream(count, size),
            || pipe_stream(count, size),
        );
        rows.push(Row {
            scenario: format!("pipe {} stream", fmt_size(size)),
            unit: "msg/s",
            interproc: o,
            baseline: "pipe(2), same sizes".into(),
            baseline_value: b,
            better: Better::Higher,
            target,
        });
    }
    rows
}

fn fmt_size(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Round trips of `size`-byte messages over one duplex `Pipe`, both processes pinned (a
/// blocking `recv` polls for a few microseconds before it parks, so this is a spinning
/// scenario). Like the pipe(2) baseline, each side copies the message out into its own buffer
/// (`recv_with`) and sends from a buffer. Returns per-round-trip nanoseconds.
pub fn pipe_ping_pong(round_trips: u64, size: usize) -> super::harness::Percentiles {
    let name = unique("pipe-rtt");
    let parent = interproc::Pipe::create(&name, PIPE_CAPACITY).expect("create pipe");
    let msg = vec![7u8; size];
    let (samples, _) = two_processes(
        true,
        || {
            let child = interproc::Pipe::open(&name).expect("open pipe");
            let mut buf = vec![0u8; size];
            for _ in 0..round_trips {
                let n = child
                    .recv_with(|m| {
                        buf[..m.len()].copy_from_slice(m);
                        m.len()
                    })
                    .expect("recv");
                child.send(&buf[..n]).expect("send");
            }
            0
        },
        || {
            let mut samples = Vec::with_capacity(round_trips as usize);
            let mut buf = vec![0u8; size];
            for _ in 0..round_trips {
                let t = now_ns();
                parent.send(&msg).expect("send");
                parent
                    .recv_with(|m| buf[..m.len()].copy_from_slice(m))
                    .expect("recv");
                samples.push(now_ns() - t);
            }
            samples
        },
    );
    super::harness::Percentiles::new(samples)
}

fn pipe_round_trip(e: Effort) -> Vec<Row> {
    let n = 5_000 * e.scale;
    let (mut o, mut b) = (vec![], vec![]);
    for _ in 0..e.reps {
        b.push(baseline::fd_round_trip(n as u32, 16, false).at(0.5));
        o.push(pipe_ping_pong(n, 16).at(0.5));
    }
    let ours = median(o);
    let mut rows = vec![Row {
        scenario: "pipe RT 16 B p50".into(),
        unit: "ns",
        interproc: ours,
        baseline: "pipe(2) ping-pong p50".into(),
        baseline_value: median(b),
        better: Better::Lower,
        target: Some(20.0),
    }];
    let (mut o, mut b) = (vec![], vec![]);
    for _ in 0..e.reps {
        b.push(baseline::fd_round_trip(n as u32, 16, true).at(0.5));
        o.push(pipe_ping_pong(n, 16).at(0.5));
    }
    rows.push(Row {
        scenario: "pipe RT 16 B p50 vs socketpair".into(),
        unit: "ns",
        interproc: median(o),
        baseline: "unix socketpair ping-pong p50".into(),
        baseline_value: median(b),
        better: Better::Lower,
        target: None,
    });
    for (size, n) in [(1024usize, n), (64 * 1024, n / 5)] {
        let (mut o, mut b) = (vec![], vec![]);
        for _ in 0..e.reps {
            b.push(baseline::fd_round_trip(n as u32, size, false).at(0.5));
            o.push(pipe_ping_pong(n, size).at(0.5));
        }
        rows.push(Row {
            scenario: format!("pipe RT {} p50", fmt_size(size)),
            unit: "ns",
            interproc: median(o),
            baseline: "pipe(2) ping-pong p50".into(),
            baseline_value: median(b),
            better: Better::Lower,
            target: None,
        });
    }
    if let Some(py) = baseline::python(2_000 * e.scale) {
        rows.push(Row {
            scenario: "pipe RT p50 vs Python".into(),
            unit: "ns",
            interproc: ours,
            baseline: "python mp.Pipe RT p50".into(),
            baseline_value: py.pipe_rt_ns,
            better: Better::Lower,
            target: Some(50.0),
        });
    }
    rows
}

/// `producers` processes each send `per_producer` u64s through one `Queue` (capacity 4096) to
/// `consumers` processes, one message at a time or in batches of up to 64; the queue is closed
/// once every producer is done and the consumers drain it. Returns messages/s over the whole run.
fn queue_stream(
    producers: usize,
    consumers: usize,
    per_producer: u64,
    batched: bool,
    pin: bool,
) -> f64 {
    let name = unique(&format!("queue{producers}x{consumers}"));
    let q = interproc::Queue::<u64>::create(&name, 4096).expect("create queue");
    let done = interproc::Value::<u64>::create(&unique("queue-done"), 0).expect("create counter");
    let total = per_producer * producers as u64;
    let work = |i: usize| {
        if pin {
            let _ = interproc::pin_to_cpu(i);
        }
        let q = interproc::Queue::<u64>::open(&name).expect("open queue");
        if i < producers {
            if batched {
                let batch: Vec<u64> = (0..64).collect();
                let mut sent = 0;
                while sent < per_producer {
                    let n = (per_producer - sent).min(64) as usize;
                    q.send_batch(&batch[..n]).expect("send batch");
                    sent += n as u64;
                }
            } else {
                for v in 0..per_producer {
                    q.send(v).expect("send");
                }
            }
            if done.fetch_add(1) + 1 == producers as u64 {
                q.close();
            }
        } else {
            let mut got = 0u64;
            let mut buf = Vec::with_capacity(64);
            loop {
                if batched {
                    buf.clear();
                    match q.recv_batch(&mut buf, 64) {
                        Ok(n) => got += n as u64,
                        Err(_) => break,
                    }
                } else if q.recv().is_err() {
                    break;
                } else {
                    got += 1;
                }
            }
            std::hint::black_box(got);
        }
    };
    let ns = n_processes(producers + consumers, work);
    assert_eq!(q.len(), 0);
    rate(total, ns)
}

fn queue(e: Effort) -> Vec<Row> {
    let n = 1_000_000 * e.scale;
    let (o, b) = interleave(
        e.reps,
        || spsc_stream::<8>(n, false),
        || queue_stream(1, 1, n, false, true),
    );
    let mut rows = vec![Row {
        scenario: "queue 1->1 u64, one by one".into(),
        unit: "msg/s",
        interproc: o,
        baseline: "interproc spsc, same run".into(),
        baseline_value: b,
        better: Better::Higher,
        target: Some(0.5),
    }];
    // The floor of any Vyukov MPMC ring (crossbeam's `ArrayQueue` shape), beside the issue's
    // spsc-relative target above. Every message costs each side a locked CAS on its position
    // word, and a locked instruction waits for the store buffer to drain; the buffer holds the
    // previous message's stamp store (publish, release) to a slot line the other side is
    // reading right then, so each message puts a cross-core line transfer on both sides'
    // critical path. An spsc ring has no read-modify-write: its stores drain in the background.
    // Measured on the 2-vCPU EPYC VM: raw MPMC ring 125-130 M msg/s, raw spsc ring 470-500 M,
    // interproc spsc 270-300 M: the floor alone is ~0.45x the spsc row, so 0.5x is out of
    // reach for this design; this row shows what is left to gain inside the algorithm.
    let (o, b) = interleave(
        e.reps,
        || baseline::raw_mpmc(n, 4096),
        || queue_stream(1, 1, n, false, true),
    );
    rows.push(Row {
        scenario: "queue 1->1 u64 vs raw MPMC ring".into(),
        unit: "msg/s",
        interproc: o,
        baseline: "raw Vyukov MPMC ring, same run".into(),
        baseline_value: b,
        better: Better::Higher,
        target: None,
    });
    let (o, b) = interleave(
        e.reps,
        || spsc_stream::<8>(n, false),
        || queue_stream(2, 2, n / 2, false, false),
    );
    rows.push(Row {
        scenario: "queue 2->2 u64, one by one (4 processes, 2 cores)".into(),
        unit: "msg/s",
        interproc: o,
        baseline: "interproc spsc, same run".into(),
        baseline_value: b,
        better: Better::Higher,
        target: None,
    });
    if let Some(py) = baseline::python(20_000 * e.scale) {
        let ours = median(
            (0..e.reps)
                .map(|_| queue_stream(1, 1, n, false, false))
                .collect(),
        );
        rows.push(Row {
            scenario: "queue 1->1, one at a time vs Python".into(),
            unit: "msg/s",
            interproc: ours,
            baseline: "python mp.Queue put/get".into(),
            baseline_value: py.queue,
            better: Better::Higher,
            target: Some(500.0),
        });
        let ours = median(
            (0..e.reps)
                .map(|_| queue_stream(1, 1, 4 * n, true, false))
                .collect(),
        );
        rows.push(Row {
            scenario: "queue 1->1, batches of 64 vs Python".into(),
            unit: "msg/s",
            interproc: ours,
            baseline: "python mp.Queue put/get".into(),
            baseline_value: py.queue,
            better: Better::Higher,
            target: Some(2000.0),
        });
    }
    rows
}
