//! Multi-process tests of `Pipe` / `Connection`: real separate processes (this test binary
//! re-executed in a role, see `common`), including SIGKILLed peers and a hostile one.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use interproc::{Connection, Error, Pipe};

/// Generous bound for anything that must happen "promptly" on a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);
/// Bound for a whole child run.
const CHILD: Duration = Duration::from_secs(120);

/// Opens `name` as a child, retrying while the parent has not created it yet.
fn open_retry(name: &str) -> Connection {
    let start = Instant::now();
    loop {
        match Pipe::open(name) {
            Ok(c) => return c,
            Err(Error::NotFound) if start.elapsed() < PROMPT => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("open {name}: {e}"),
        }
    }
}

fn idle_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The roles children play. `arg` is the pipe name, or `name:extra`.
fn child_main(role: &str) -> ! {
    let arg = common::arg();
    common::run_role(|| -> Result<(), String> {
        match role {
            // Receives and sends back everything until the parent leaves.
            "echo" => {
                let c = open_retry(&arg);
                loop {
                    match c.recv() {
                        Ok(m) => c.send(&m).map_err(|e| e.to_string())?,
                        Err(Error::Disconnected) => return Ok(()),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
            // Says "ready", then blocks receiving (until killed or disconnected).
            "ready-then-recv" => {
                let c = open_retry(&arg);
                c.send(b"ready").map_err(|e| e.to_string())?;
                let _ = c.recv();
                idle_forever()
            }
            // Says "ready", then never touches the pipe again (until killed).
            "ready-then-idle" => {
                let c = open_retry(&arg);
                c.send(b"ready").map_err(|e| e.to_string())?;
                let _keep = c;
                idle_forever()
            }
            // Sends three messages and exits normally (dropping its end).
            "send3-exit" => {
                let c = open_retry(&arg);
                for i in 0..3u8 {
                    c.send(&[i; 10]).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            // Says "ready", lingers, exits normally.
            "ready-linger-exit" => {
                let c = open_retry(&arg);
                c.send(b"ready").map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            }
            // A third opener: must be refused with Busy.
            "expect-busy" => match Pipe::open(&arg) {
                Err(Error::Busy) => Ok(()),
                other => Err(format!("expected Busy, got {other:?}")),
            },
            // Creates (and persists) the pipe, says "ready", then idles until killed.
            "create-then-idle" => {
                let c = Pipe::create(&arg, 4096).map_err(|e| e.to_string())?;
                c.persist();
                c.send(b"ready").map_err(|e| e.to_string())?;
                let _keep = c;
                idle_forever()
            }
            // Waits for "bye".
            "wait-bye" => {
                let c = open_retry(&arg);
                c.send(b"ready").map_err(|e| e.to_string())?;
                loop {
                    match c.recv().map_err(|e| e.to_string())?.as_slice() {
                        b"bye" => return Ok(()),
                        _ => continue,
                    }
                }
            }
            // Blocks in recv_timeout(1 s) and checks it used (almost) no CPU meanwhile.
            "cpu-idle" => {
                let c = open_retry(&arg);
                let before = cpu_time();
                let t = Instant::now();
                match c.recv_timeout(Duration::from_secs(1)) {
                    Err(Error::Timeout) => {}
                    other => return Err(format!("expected Timeout, got {other:?}")),
                }
                let waited = t.elapsed();
                let used = cpu_time() - before;
                if waited < Duration::from_secs(1) {
                    return Err(format!("returned after {waited:?}"));
                }
                if used >= Duration::from_millis(100) {
                    return Err(format!("blocked 1 s and used {used:?} of CPU"));
                }
                c.send(format!("{}", used.as_micros()).as_bytes())
                    .map_err(|e| e.to_string())
            }
            // Attaches properly, then scribbles over the ring it sends on.
            "hostile" => {
                let (name, variant) = arg.split_once(':').unwrap();
                let c = open_retry(name);
                scribble(name, variant);
                let _keep = c;
                idle_forever()
            }
            // Benchmark sink: receives `n` messages (copying or in place), then says "done".
            "bench-sink" => {
                let _ = interproc::pin_to_cpu(1);
                let (name, rest) = arg.split_once(':').unwrap();
                let (n, in_place) = rest.split_once(':').unwrap();
                let n: u64 = n.parse().unwrap();
                let c = open_retry(name);
                let mut bytes = 0usize;
                for _ in 0..n {
                    bytes += if in_place == "1" {
                        c.recv_with(|m| m.len()).map_err(|e| e.to_string())?
                    } else {
                        c.recv().map_err(|e| e.to_string())?.len()
                    };
                }
                c.send(format!("{bytes}").as_bytes())
                    .map_err(|e| e.to_string())
            }
            // Benchmark echo for round trips: sends every message back.
            "bench-echo" => {
                let _ = interproc::pin_to_cpu(1);
                let c = open_retry(&arg);
                let mut buf = Vec::new();
                loop {
                    match c.recv_with(|m| {
                        buf.clear();
                        buf.extend_from_slice(m)
                    }) {
                        Ok(()) => c.send(&buf).map_err(|e| e.to_string())?,
                        Err(Error::Disconnected) => return Ok(()),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
            other => Err(format!("unknown role {other}")),
        }
    })
}

/// User + system CPU time of this process, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

// The on-file layout the hostile child writes to (see `src/region` and `src/queue/pipe.rs`):
// the body starts after the 128-byte header and the 2 KiB participant registry; in the body,
// ring control blocks at 128 (A -> B) and 512 (B -> A), three 128-byte lines each (tail,
// head, flags); data areas at 1024 and 1024 + size + 2048.
const BODY: u64 = 128 + 2048;
const RING_SIZE: u64 = 4096; // for a pipe of capacity 4096

fn scribble(name: &str, variant: &str) {
    let path = format!("/dev/shm/interproc.{name}");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let expected_len = (BODY + 1024 + 2 * RING_SIZE + 2048).div_ceil(4096) * 4096;
    assert_eq!(f.metadata().unwrap().len(), expected_len, "layout changed");
    // We are end B: we produce into ring 1 (B -> A).
    let tail_at = BODY + 512;
    let data_at = BODY + 1024 + RING_SIZE + 2048;
    let mut put = |at: u64, v: u64| {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&v.to_ne_bytes()).unwrap();
    };
    const MSG: u64 = 0x4D53_4731;
    const PAD: u64 = 0x5041_4431;
    match variant {
        // A message longer than the largest allowed.
        "huge-length" => {
            put(data_at, (MSG << 32) | 0xFFFF_FFF0);
            put(tail_at, 64);
        }
        // A message longer than what is published.
        "beyond-tail" => {
            put(data_at, (MSG << 32) | 1000);
            put(tail_at, 16);
        }
        // A tail more than a ring ahead of the head.
        "tail-too-far" => put(tail_at, RING_SIZE * 3),
        // A misaligned tail.
        "tail-misaligned" => put(tail_at, 13),
        // Padding at index 0 (never written by a correct producer).
        "padding-at-0" => {
            put(data_at, (PAD << 32) | (RING_SIZE - 8));
            put(tail_at, RING_SIZE);
        }
        // Garbage where a header should be.
        "garbage-tag" => {
            put(data_at, 0xDEAD_BEEF_0000_0010);
            put(tail_at, 24);
        }
        other => panic!("unknown variant {other}"),
    }
    // Read back, so the writes are surely in the shared object before we say so.
    let mut buf = [0u8; 8];
    f.seek(SeekFrom::Start(tail_at)).unwrap();
    f.read_exact(&mut buf).unwrap();
}

/// Deterministic sizes in 0..=max (xorshift), with 0 and max among the first.
fn sizes(n: usize, max: usize) -> Vec<usize> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|i| match i {
            0 => 0,
            1 => max,
            2 => 1,
            3 => max - 1,
            _ => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % (max as u64 + 1)) as usize
            }
        })
        .collect()
}

fn content(i: usize, len: usize) -> Vec<u8> {
    let seed = (i as u32).wrapping_mul(2_654_435_761);
    (0..len)
        .map(|j| (seed >> (j % 4 * 8)) as u8 ^ j as u8)
        .collect()
}

#[test]
fn connection_is_send_sync_and_debug() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<Connection>();
    check::<Pipe>();
    let mut names = common::Names::new();
    let name = names.add("pipe-debug");
    let a = Pipe::create(&name, 4096).unwrap();
    let shown = format!("{a:?}");
    assert!(shown.contains(&name) && shown.contains("pipe"), "{shown}");
    assert_eq!(a.name(), name);
    assert_eq!(a.capacity(), 4096);
    assert!(matches!(
        Pipe::open("no-such-pipe-anywhere"),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        Pipe::create("bad/name", 4096),
        Err(Error::InvalidName)
    ));
    assert!(matches!(
        Pipe::create(&name, 4096),
        Err(Error::AlreadyExists)
    ));
    assert!(matches!(
        Pipe::create(&names.add("pipe-small"), 1023),
        Err(Error::InvalidArgument(_))
    ));
    // open_or_create: the second call opens the other end, a third is Busy.
    let other = names.add("pipe-ooc");
    let x = Pipe::open_or_create(&other, 4096).unwrap();
    let y = Pipe::open_or_create(&other, 4096).unwrap();
    x.send(b"x").unwrap();
    assert_eq!(y.recv().unwrap(), b"x");
    assert!(matches!(
        Pipe::open_or_create(&other, 4096),
        Err(Error::Busy)
    ));
    // A persisted pipe outlives its creator's handle.
    let kept = names.add("pipe-persist");
    let p = Pipe::create(&kept, 4096).unwrap();
    p.persist();
    drop(p);
    assert!(common::exists(&kept));
    let q = Pipe::open(&kept).unwrap();
    drop(q);
    interproc::remove(&kept).unwrap();
}

#[test]
fn echo_of_20000_messages() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    let name = names.add("pipe-echo");
    let a = Pipe::create(&name, 8192).unwrap();
    let max = a.max_message_size();
    assert!((1024..=8192).contains(&max));
    let child = common::spawn("echo_of_20000_messages", "echo", &name);
    let sizes = sizes(20_000, max);
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, &len) in sizes.iter().enumerate() {
                a.send(&content(i, len)).unwrap();
            }
        });
        for (i, &len) in sizes.iter().enumerate() {
            let got = a.recv_timeout(Duration::from_secs(60)).unwrap();
            assert_eq!(got.len(), len, "message {i}");
            assert!(got == content(i, len), "message {i} content");
        }
    });
    assert_eq!(a.try_recv().unwrap(), None);
    drop(a); // the echo sees Disconnected and exits 0
    common::expect_success(child);
}

#[test]
fn message_too_large_sends_nothing() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    let name = names.add("pipe-large");
    let a = Pipe::create(&name, 4096).unwrap();
    let child = common::spawn("message_too_large_sends_nothing", "echo", &name);
    let max = a.max_message_size();
    match a.send(&vec![1; max + 1]) {
        Err(Error::MessageTooLarge { size, max: m }) => assert_eq!((size, m), (max + 1, max)),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert!(matches!(
        a.try_send(&vec![1; max + 1]),
        Err(Error::MessageTooLarge { .. })
    ));
    assert!(matches!(
        a.send_with(max + 1, |_| unreachable!()),
        Err(Error::MessageTooLarge { .. })
    ));
    a.send(&vec![2; max]).unwrap();
    // Only the message that fits comes back.
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), vec![2; max]);
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(200)),
        Err(Error::Timeout)
    ));
    drop(a);
    common::expect_success(child);
}

#[test]
fn third_open_is_busy() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    let name = names.add("pipe-busy");
    let a = Pipe::create(&name, 4096).unwrap();
    let b = common::spawn("third_open_is_busy", "wait-bye", &name);
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), b"ready");
    // Both ends are held by live processes: a third, here or elsewhere, is refused.
    assert!(matches!(Pipe::open(&name), Err(Error::Busy)));
    common::expect_success(common::spawn("third_open_is_busy", "expect-busy", &name));
    a.send(b"bye").unwrap();
    common::expect_success(b);
    // B's end is free again.
    let b2 = Pipe::open(&name).unwrap();
    a.send(b"hi").unwrap();
    assert_eq!(b2.recv().unwrap(), b"hi");
}

#[test]
fn end_taken_over_after_sigkill() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    // B left by a killed process.
    let name = names.add("pipe-takeover-b");
    let a = Pipe::create(&name, 4096).unwrap();
    let mut child = common::spawn("end_taken_over_after_sigkill", "ready-then-idle", &name);
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), b"ready");
    assert!(matches!(Pipe::open(&name), Err(Error::Busy)));
    common::sigkill(child.id());
    common::wait_timeout(&mut child, PROMPT);
    let b = Pipe::open(&name).expect("the dead process's end is taken over");
    a.send(b"to the new b").unwrap();
    assert_eq!(b.recv().unwrap(), b"to the new b");
    b.send(b"from the new b").unwrap();
    assert_eq!(a.recv().unwrap(), b"from the new b");

    // A (the creator's end) left by a killed process.
    let name = names.add("pipe-takeover-a");
    let mut child = common::spawn("end_taken_over_after_sigkill", "create-then-idle", &name);
    let b = open_retry(&name);
    assert_eq!(b.recv_timeout(PROMPT).unwrap(), b"ready");
    common::sigkill(child.id());
    common::wait_timeout(&mut child, PROMPT);
    let a = Pipe::open(&name).expect("the dead creator's end is taken over");
    b.send(b"to the new a").unwrap();
    assert_eq!(a.recv().unwrap(), b"to the new a");
    a.send(b"from the new a").unwrap();
    assert_eq!(b.recv().unwrap(), b"from the new a");
}

#[test]
fn disconnected_after_peer_exits_normally() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    let name = names.add("pipe-exit");
    let a = Pipe::create(&name, 4096).unwrap();
    let child = common::spawn(
        "disconnected_after_peer_exits_normally",
        "send3-exit",
        &name,
    );
    common::expect_success(child);
    // What it sent is still delivered, then Disconnected, for every kind of call.
    for i in 0..3u8 {
        assert_eq!(a.recv_timeout(PROMPT).unwrap(), vec![i; 10]);
    }
    assert!(matches!(a.recv(), Err(Error::Disconnected)));
    assert!(matches!(a.try_recv(), Err(Error::Disconnected)));
    assert!(matches!(a.recv_timeout(PROMPT), Err(Error::Disconnected)));
    assert!(matches!(a.send(b"x"), Err(Error::Disconnected)));
    assert!(matches!(a.try_send(b"x"), Err(Error::Disconnected)));

    // A receiver blocked while the peer exits normally returns promptly.
    let name = names.add("pipe-exit-blocked");
    let a = Pipe::create(&name, 4096).unwrap();
    let mut child = common::spawn(
        "disconnected_after_peer_exits_normally",
        "ready-linger-exit",
        &name,
    );
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), b"ready");
    let t = Instant::now();
    assert!(matches!(a.recv(), Err(Error::Disconnected)));
    assert!(t.elapsed() < PROMPT, "took {:?}", t.elapsed());
    assert!(common::wait_timeout(&mut child, PROMPT).success());
}

#[test]
fn disconnected_after_peer_is_sigkilled() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    let test = "disconnected_after_peer_is_sigkilled";

    // Killed while we are blocked in recv.
    let name = names.add("pipe-kill-recv");
    let a = Pipe::create(&name, 4096).unwrap();
    let mut child = common::spawn(test, "ready-then-recv", &name);
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), b"ready");
    std::thread::scope(|s| {
        let blocked = s.spawn(|| {
            let r = a.recv();
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(100));
        let killed = Instant::now();
        common::sigkill(child.id());
        let (r, returned) = blocked.join().unwrap();
        assert!(matches!(r, Err(Error::Disconnected)), "{r:?}");
        let took = returned.saturating_duration_since(killed);
        assert!(took < PROMPT, "noticed after {took:?}");
    });
    common::wait_timeout(&mut child, PROMPT);
    // Every later call sees it too.
    assert!(matches!(a.send(b"x"), Err(Error::Disconnected)));
    assert!(matches!(a.try_recv(), Err(Error::Disconnected)));
    assert!(matches!(
        a.recv_timeout(Duration::from_secs(1)),
        Err(Error::Disconnected)
    ));

    // Killed while we are blocked in send (the ring is full: it never reads).
    let name = names.add("pipe-kill-send");
    let a = Pipe::create(&name, 4096).unwrap();
    let mut child = common::spawn(test, "ready-then-idle", &name);
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), b"ready");
    while a.try_send(&[5; 500]).unwrap() {}
    std::thread::scope(|s| {
        let blocked = s.spawn(|| a.send(&[5; 500]));
        std::thread::sleep(Duration::from_millis(100));
        let killed = Instant::now();
        common::sigkill(child.id());
        let r = blocked.join().unwrap();
        assert!(matches!(r, Err(Error::Disconnected)), "{r:?}");
        assert!(killed.elapsed() < PROMPT);
    });
    common::wait_timeout(&mut child, PROMPT);

    // Killed while idle: a try_recv on the empty ring notices, and from then on every call
    // of the handle fails, sends with room included.
    let name = names.add("pipe-kill-idle");
    let a = Pipe::create(&name, 4096).unwrap();
    let mut child = common::spawn(test, "ready-then-idle", &name);
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), b"ready");
    a.send(b"while alive").unwrap();
    common::sigkill(child.id());
    common::wait_timeout(&mut child, PROMPT);
    assert!(matches!(a.try_recv(), Err(Error::Disconnected)));
    assert!(matches!(a.send(b"after death"), Err(Error::Disconnected)));
    assert!(matches!(
        a.try_send(b"after death"),
        Err(Error::Disconnected)
    ));

    // Killed while idle, and we only send: sends with room make no syscall and succeed, but
    // the first full ring reports the death (try_send asks the kernel at most once per
    // liveness interval, so a few full attempts may say "full" first).
    let name = names.add("pipe-kill-idle-send");
    let a = Pipe::create(&name, 4096).unwrap();
    let mut child = common::spawn(test, "ready-then-idle", &name);
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), b"ready");
    common::sigkill(child.id());
    common::wait_timeout(&mut child, PROMPT);
    let (mut sent, mut full) = (0, 0);
    let outcome = loop {
        match a.try_send(&[9; 500]) {
            Ok(true) => sent += 1,
            Ok(false) if full < 10_000 => {
                full += 1;
                std::thread::sleep(Duration::from_micros(100));
            }
            other => break other,
        }
    };
    assert!(matches!(outcome, Err(Error::Disconnected)), "{outcome:?}");
    assert!(sent <= 8, "{sent} messages of 500 bytes fit a 4 KiB ring");
    assert!(matches!(a.send(b"x"), Err(Error::Disconnected)));
}

#[test]
fn recv_timeout_honours_its_timeout() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    let name = names.add("pipe-timeout");
    let a = Pipe::create(&name, 4096).unwrap();
    let child = common::spawn("recv_timeout_honours_its_timeout", "wait-bye", &name);
    assert_eq!(a.recv_timeout(PROMPT).unwrap(), b"ready");
    for ms in [0u64, 10, 300] {
        let t = Instant::now();
        assert!(matches!(
            a.recv_timeout(Duration::from_millis(ms)),
            Err(Error::Timeout)
        ));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(ms), "{ms} ms took {took:?}");
        assert!(
            took < Duration::from_millis(ms) + PROMPT,
            "{ms} ms took {took:?}"
        );
    }
    assert_eq!(a.try_recv().unwrap(), None);
    a.send(b"bye").unwrap();
    common::expect_success(child);
}

#[test]
fn blocked_receiver_uses_almost_no_cpu() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    let name = names.add("pipe-cpu");
    let a = Pipe::create(&name, 4096).unwrap();
    let child = common::spawn("blocked_receiver_uses_almost_no_cpu", "cpu-idle", &name);
    // The child asserts; it reports what it used.
    let used = a.recv_timeout(Duration::from_secs(60)).unwrap();
    eprintln!(
        "blocked 1 s in recv_timeout using {} µs of CPU",
        String::from_utf8_lossy(&used)
    );
    common::expect_success(child);
}

#[test]
fn corruption_by_a_hostile_peer_is_reported() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    for variant in [
        "huge-length",
        "beyond-tail",
        "tail-too-far",
        "tail-misaligned",
        "padding-at-0",
        "garbage-tag",
    ] {
        let name = names.add("pipe-hostile");
        let a = Pipe::create(&name, RING_SIZE as usize).unwrap();
        let mut child = common::spawn(
            "corruption_by_a_hostile_peer_is_reported",
            "hostile",
            &format!("{name}:{variant}"),
        );
        // Blocks until the scribble lands, then must report it: no hang, no panic.
        let t = Instant::now();
        let r = a.recv_timeout(Duration::from_secs(30));
        assert!(
            matches!(r, Err(Error::Corrupted { .. })),
            "{variant}: expected Corrupted, got {r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(30));
        // And keeps reporting it rather than hanging or panicking.
        assert!(matches!(a.try_recv(), Err(Error::Corrupted { .. })));
        common::sigkill(child.id());
        common::wait_timeout(&mut child, CHILD);
    }
}

/// A child of the (ignored) benchmark: its harness must be told to run ignored tests.
fn bench_child(role: &str, arg: &str) -> std::process::Child {
    common::child("pipe_benchmark", role, arg)
        .arg("--include-ignored")
        .spawn()
        .unwrap()
}

/// Throughput and round-trip figures (not a pass/fail test). Run:
/// `cargo test --release --test pipe -- --ignored --nocapture pipe_benchmark`
#[test]
#[ignore]
fn pipe_benchmark() {
    if let Some(r) = common::role() {
        child_main(&r)
    }
    let mut names = common::Names::new();
    let _ = interproc::pin_to_cpu(0);
    for (size, n, cap, in_place) in [
        (16usize, 2_000_000u64, 1usize << 16, false),
        (16, 2_000_000, 1 << 16, true),
        (64 << 10, 20_000, 1 << 20, false),
        (64 << 10, 20_000, 1 << 20, true),
    ] {
        let name = names.add("pipe-bench");
        let a = Pipe::create(&name, cap).unwrap();
        let child = bench_child("bench-sink", &format!("{name}:{n}:{}", in_place as u8));
        let msg = vec![7u8; size];
        // Wait for the sink to attach, so its start-up is not measured.
        assert!(common::eventually(PROMPT, || a.is_peer_attached()));
        let t = Instant::now();
        for _ in 0..n {
            if in_place {
                a.send_with(size, |b| b.copy_from_slice(&msg)).unwrap();
            } else {
                a.send(&msg).unwrap();
            }
        }
        let done = a.recv().unwrap();
        let el = t.elapsed();
        assert_eq!(
            String::from_utf8(done).unwrap(),
            (n as usize * size).to_string()
        );
        common::expect_success(child);
        let per = el.as_nanos() as f64 / n as f64;
        eprintln!(
            "{size:>6} B x {n} ({}): {:.1} ns/msg, {:.2} M msg/s, {:.2} GB/s",
            if in_place {
                "send_with/recv_with"
            } else {
                "send/recv"
            },
            per,
            1e3 / per,
            size as f64 / per
        );
    }
    let name = names.add("pipe-bench-rt");
    let a = Pipe::create(&name, 1 << 16).unwrap();
    let child = bench_child("bench-echo", &name);
    assert!(common::eventually(PROMPT, || a.is_peer_attached()));
    let mut rts = Vec::with_capacity(50_000);
    for i in 0..50_000u64 {
        let t = Instant::now();
        a.send(&i.to_le_bytes()).unwrap();
        let back = a.recv().unwrap();
        rts.push(t.elapsed());
        assert_eq!(back, i.to_le_bytes());
    }
    drop(a);
    common::expect_success(child);
    rts.sort();
    let pct = |p: f64| rts[((rts.len() as f64 * p) as usize).min(rts.len() - 1)];
    eprintln!(
        "round trip 8 B: p50 {:?}, p99 {:?}, p99.9 {:?}",
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
}
