//! The floor and the alternatives, measured in the same run as interproc's figures.
//!
//! Everything here is deliberately minimal hand-written code: a raw SPSC ring, a raw Vyukov MPMC
//! ring and a raw atomic ping-pong in a shared mapping (the hardware floor), bare futex round
//! trips (the floor of a sleeping wake-up), `pipe(2)` and a Unix socketpair (what a user would
//! reach for without interproc), a robust process-shared pthread mutex (the peer of `Mutex`), and
//! Python's `multiprocessing` (the API interproc mirrors). This module makes its own syscalls on
//! purpose: a baseline must not share code with what it is compared against.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::harness::{now_ns, rate, two_processes, Percentiles, SharedPage};

// ---------------------------------------------------------------------------------------------
// Raw shared-memory ring and ping-pong.

/// A raw SPSC ring of `cap` elements of `SIZE` bytes: head and tail on separate lines, cached
/// opposite index, Release publish per message or per batch of up to 64. Returns messages/s.
pub fn raw_ring<const SIZE: usize>(count: u64, cap: usize, batched: bool) -> f64 {
    assert!(cap.is_power_of_two());
    let page = SharedPage::new(512 + cap * SIZE);
    let head = page.word(0); // consumer-owned position
    let tail = page.word(1); // producer-owned position
    let slots = page.ptr(512);
    let mask = cap as u64 - 1;
    let (elapsed, _) = two_processes(
        true,
        || {
            let mut cached_head = 0u64;
            let mut pos = 0u64;
            let mut msg = [0u8; SIZE];
            while pos < count {
                let room = loop {
                    let room = cap as u64 - (pos - cached_head);
                    if room > 0 {
                        break room;
                    }
                    cached_head = head.load(Ordering::Acquire);
                };
                let n = if batched {
                    room.min(64).min(count - pos)
                } else {
                    1
                };
                for i in 0..n {
                    msg[..8.min(SIZE)].copy_from_slice(&(pos + i).to_le_bytes()[..8.min(SIZE)]);
                    // SAFETY: slot index masked into the ring; the slot is free (pos - head < cap).
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            msg.as_ptr(),
                            slots.add(((pos + i) & mask) as usize * SIZE),
                            SIZE,
                        )
                    };
                }
                pos += n;
                tail.store(pos, Ordering::Release);
            }
            0
        },
        || {
            let start = now_ns();
            let mut cached_tail = 0u64;
            let mut pos = 0u64;
            let mut msg = [0u8; SIZE];
            let mut sum = 0u64;
            while pos < count {
                while cached_tail == pos {
                    cached_tail = tail.load(Ordering::Acquire);
                }
                let end = if batched { cached_tail } else { pos + 1 };
                while pos < end {
                    // SAFETY: slot index masked into the ring; published (pos < tail).
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            slots.add((pos & mask) as usize * SIZE),
                            msg.as_mut_ptr(),
                            SIZE,
                        )
                    };
                    sum = sum.wrapping_add(msg[0] as u64);
                    pos += 1;
                }
                head.store(pos, Ordering::Release);
            }
            std::hint::black_box(sum);
            now_ns() - start
        },
    );
    rate(count, elapsed)
}

/// A raw bounded MPMC ring of `cap` u64s in the shape of crossbeam's `ArrayQueue` (Dmitry
/// Vyukov's algorithm): `tail` and `head` on lines of their own, each claimed with a CAS; per
/// slot a stamp (`pos` free for the producer of `pos`, `pos + 1` full) beside the value.
/// Producer `p` claims position `t` once slot `t % cap` is stamped `t`, writes, stamps `t + 1`
/// (`Release`); consumer claims `h` once the stamp is `h + 1` (`Acquire`), reads, stamps
/// `h + cap`. Busy-polling, no parking, no liveness. A side that finds its slot not ready just
/// polls the stamp again (crossbeam's `pop` would also load the other side's index to return
/// `None`; a spinning caller does not need that answer, and skipping it keeps the floor a
/// floor). One producer process and one consumer process, pinned to distinct CPUs, stream
/// `count` messages. Returns messages/s.
pub fn raw_mpmc(count: u64, cap: usize) -> f64 {
    assert!(cap.is_power_of_two() && cap >= 2);
    let page = SharedPage::new(512 + cap * 16);
    let tail = page.word(0); // producers' claim word
    let head = page.word(1); // consumers' claim word
    let base = page.ptr(512);
    let mask = cap as u64 - 1;
    let stamp = |pos: u64| -> &AtomicU64 {
        // SAFETY: slot index masked into the ring (16-byte slots after the 512-byte control
        // block, inside the mapping); 8-aligned; the stamp is only accessed atomically.
        unsafe { &*(base.add((pos & mask) as usize * 16) as *const AtomicU64) }
    };
    let value = |pos: u64| -> *mut u64 {
        // SAFETY: as above; the value sits 8 bytes after its stamp.
        unsafe { base.add((pos & mask) as usize * 16 + 8) as *mut u64 }
    };
    for i in 0..cap as u64 {
        stamp(i).store(i, Ordering::Relaxed);
    }
    let cap = cap as u64;
    let send = |v: u64| {
        let mut t = tail.load(Ordering::Relaxed);
        loop {
            let s = stamp(t).load(Ordering::Acquire);
            if s == t {
                match tail.compare_exchange_weak(t, t + 1, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: position t is ours (claimed, its slot released for it).
                        unsafe { value(t).write(v) };
                        stamp(t).store(t + 1, Ordering::Release);
                        return;
                    }
                    Err(now) => t = now,
                }
            } else {
                std::hint::spin_loop();
                t = tail.load(Ordering::Relaxed);
            }
        }
    };
    let recv = || -> u64 {
        let mut h = head.load(Ordering::Relaxed);
        loop {
            let s = stamp(h).load(Ordering::Acquire);
            if s == h + 1 {
                match head.compare_exchange_weak(h, h + 1, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: position h is ours (claimed, published: Acquire above).
                        let v = unsafe { value(h).read() };
                        stamp(h).store(h + cap, Ordering::Release);
                        return v;
                    }
                    Err(now) => h = now,
                }
            } else {
                std::hint::spin_loop();
                h = head.load(Ordering::Relaxed);
            }
        }
    };
    let (elapsed, _) = two_processes(
        true,
        || {
            for v in 0..count {
                send(v);
            }
            0
        },
        || {
            let start = now_ns();
            let mut sum = 0u64;
            for _ in 0..count {
                sum = sum.wrapping_add(recv());
            }
            std::hint::black_box(sum);
            now_ns() - start
        },
    );
    rate(count, elapsed)
}

/// Raw atomic ping-pong, both sides busy-spinning. Returns per-round-trip nanoseconds.
pub fn raw_ping_pong(round_trips: u64) -> Percentiles {
    let page = SharedPage::new(4096);
    let ping = page.word(0);
    let pong = page.word(3); // lines apart, no 4K aliasing concern within one page
    let (samples, _) = two_processes(
        true,
        || {
            for i in 1..=round_trips {
                while ping.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                pong.store(i, Ordering::Release);
            }
            0
        },
        || {
            let mut samples = Vec::with_capacity(round_trips as usize);
            for i in 1..=round_trips {
                let t = now_ns();
                ping.store(i, Ordering::Release);
                while pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                samples.push(now_ns() - t);
            }
            samples
        },
    );
    Percentiles::new(samples)
}

// ---------------------------------------------------------------------------------------------
// Bare futex round trips.

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a valid aligned u32 in a shared mapping; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid aligned u32; FUTEX_WAKE only uses its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Waits until `word == want`, spinning `spin` times first, then sleeping on the futex.
fn await_value(word: &AtomicU32, want: u32, spin: u32) {
    for _ in 0..spin {
        if word.load(Ordering::Acquire) == want {
            return;
        }
        std::hint::spin_loop();
    }
    loop {
        let seen = word.load(Ordering::Acquire);
        if seen == want {
            return;
        }
        futex_wait(word, seen);
    }
}

/// A futex round trip. `spin == 0`: both sides sleep every time (the wake-up floor); otherwise
/// each side spins that many times before sleeping and the waker always calls FUTEX_WAKE.
pub fn futex_round_trip(round_trips: u32, spin: u32) -> Percentiles {
    let page = SharedPage::new(4096);
    let ping = page.word32(0);
    let pong = page.word32(3);
    let pin = spin > 0;
    let (samples, _) = two_processes(
        pin,
        || {
            for i in 1..=round_trips {
                await_value(ping, i, spin);
                pong.store(i, Ordering::Release);
                futex_wake(pong);
            }
            0
        },
        || {
            let mut samples = Vec::with_capacity(round_trips as usize);
            for i in 1..=round_trips {
                let t = now_ns();
                ping.store(i, Ordering::Release);
                futex_wake(ping);
                await_value(pong, i, spin);
                samples.push(now_ns() - t);
            }
            samples
        },
    );
    Percentiles::new(samples)
}

// ---------------------------------------------------------------------------------------------
// pipe(2) and socketpair.

fn pipe_pair() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

fn socket_pair() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    assert_eq!(
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) },
        0
    );
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

/// Ping-pong of `size`-byte messages over two pipes (`socket: false`) or one socketpair.
pub fn fd_round_trip(round_trips: u32, size: usize, socket: bool) -> Percentiles {
    let ((mut a_read, mut a_write), (mut b_read, mut b_write)) = if socket {
        let (x, y) = socket_pair();
        let (x2, y2) = (x.try_clone().unwrap(), y.try_clone().unwrap());
        ((x, x2), (y, y2))
    } else {
        let (r1, w1) = pipe_pair(); // parent -> child
        let (r2, w2) = pipe_pair(); // child -> parent
        ((r2, w1), (r1, w2))
    };
    let (samples, _) = two_processes(
        false,
        move || {
            let mut buf = vec![0u8; size];
            for _ in 0..round_trips {
                b_read.read_exact(&mut buf).unwrap();
                b_write.write_all(&buf).unwrap();
            }
            0
        },
        move || {
            let mut buf = vec![7u8; size];
            let mut samples = Vec::with_capacity(round_trips as usize);
            for _ in 0..round_trips {
                let t = now_ns();
                a_write.write_all(&buf).unwrap();
                a_read.read_exact(&mut buf).unwrap();
                samples.push(now_ns() - t);
            }
            samples
        },
    );
    Percentiles::new(samples)
}

/// One-way stream of `count` messages of `size` bytes through a pipe. Returns messages/s.
pub fn pipe_stream(count: u64, size: usize) -> f64 {
    let (mut r, mut w) = pipe_pair();
    let (elapsed, _) = two_processes(
        false,
        move || {
            let buf = vec![1u8; size];
            for _ in 0..count {
                w.write_all(&buf).unwrap();
            }
            0
        },
        move || {
            let start = now_ns();
            let mut buf = vec![0u8; size];
            for _ in 0..count {
                r.read_exact(&mut buf).unwrap();
            }
            now_ns() - start
        },
    );
    rate(count, elapsed)
}

// ---------------------------------------------------------------------------------------------
// Robust process-shared pthread mutex.

struct PthreadMutex<'a> {
    m: *mut libc::pthread_mutex_t,
    counter: &'a AtomicU64,
}

impl PthreadMutex<'_> {
    fn new(page: &SharedPage) -> PthreadMutex<'_> {
        let m = page.ptr(1024) as *mut libc::pthread_mutex_t;
        // SAFETY: attr and mutex live in valid memory (`m` in the shared page, suitably aligned:
        // offset 1024 of a page); initialised once before any use, destroyed never (the page is
        // unmapped at the end).
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            libc::pthread_mutex_init(m, &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        PthreadMutex {
            m,
            counter: page.word(0),
        }
    }

    #[inline]
    fn locked_increment(&self) {
        // SAFETY: `m` was initialised in `new`; a robust mutex whose owner died would return
        // EOWNERDEAD, which cannot happen in this benchmark (no process dies holding it).
        unsafe {
            libc::pthread_mutex_lock(self.m);
            let v = self.counter.load(Ordering::Relaxed);
            self.counter.store(v + 1, Ordering::Relaxed);
            libc::pthread_mutex_unlock(self.m);
        }
    }
}

/// Uncontended lock + increment + unlock of a robust pshared pthread mutex: ns per operation.
pub fn pthread_mutex_uncontended(ops: u64) -> f64 {
    let page = SharedPage::new(4096);
    let m = PthreadMutex::new(&page);
    let start = now_ns();
    for _ in 0..ops {
        m.locked_increment();
    }
    (now_ns() - start) as f64 / ops as f64
}

/// Two processes each doing `ops_each` locked increments: total operations per second.
/// Two pinned processes, `ops_each` locked increments each. Returns the rate (op/s) and how
/// evenly the lock was shared ([`finish_evenness`]).
pub fn pthread_mutex_contended(ops_each: u64) -> (f64, f64) {
    let page = SharedPage::new(4096);
    let m = PthreadMutex::new(&page);
    let (elapsed, child_ns) = two_processes(
        true,
        || {
            let start = now_ns();
            for _ in 0..ops_each {
                m.locked_increment();
            }
            now_ns() - start
        },
        || {
            let start = now_ns();
            for _ in 0..ops_each {
                m.locked_increment();
            }
            now_ns() - start
        },
    );
    assert_eq!(
        m.counter.load(Ordering::Relaxed),
        2 * ops_each,
        "pthread mutex lost updates"
    );
    (
        rate(2 * ops_each, elapsed.max(child_ns)),
        finish_evenness(elapsed, child_ns),
    )
}

/// How evenly two processes that did the same work under one lock shared it: the first one's
/// time to finish over the last one's, in percent (100: they finished together; near 0: one
/// held the lock until it was done, then the other ran).
pub fn finish_evenness(a_ns: u64, b_ns: u64) -> f64 {
    100.0 * a_ns.min(b_ns) as f64 / a_ns.max(b_ns).max(1) as f64
}

// ---------------------------------------------------------------------------------------------
// Python multiprocessing.

/// The Python figures: `queue` (msg/s, one put/get at a time), `pipe_rt_ns` (p50 round trip),
/// `lock_value` (locked increments/s, two processes). `None` when python3 is missing.
#[derive(Debug, Clone, Copy)]
pub struct PythonFigures {
    pub queue: f64,
    pub pipe_rt_ns: f64,
    pub lock_value: f64,
}

const PYTHON_SCRIPT: &str = r#"
import multiprocessing as mp, time, sys
N = int(sys.argv[1])
def producer(q, n):
    for i in range(n): q.put(i)
    q.put(None)
def echo(c, n):
    for _ in range(n): c.send(c.recv())
def adder(lock, v, n):
    for _ in range(n):
        with lock: v.value += 1
if __name__ == "__main__":
    q = mp.Queue(); p = mp.Process(target=producer, args=(q, N)); p.start()
    t = time.perf_counter(); got = 0
    while q.get() is not None: got += 1
    dt = time.perf_counter() - t; p.join()
    print("queue", got / dt)
    a, b = mp.Pipe(); m = N // 10
    p = mp.Process(target=echo, args=(b, m)); p.start(); rts = []
    for i in range(m):
        t = time.perf_counter_ns(); a.send(i); a.recv(); rts.append(time.perf_counter_ns() - t)
    p.join(); rts.sort(); print("pipe_rt_ns", rts[len(rts) // 2])
    lock = mp.Lock(); v = mp.Value("q", 0, lock=False); m = N // 2
    ps = [mp.Process(target=adder, args=(lock, v, m)) for _ in range(2)]
    t = time.perf_counter()
    for p in ps: p.start()
    for p in ps: p.join()
    dt = time.perf_counter() - t
    assert v.value == 2 * m
    print("lock_value", 2 * m / dt)
"#;

/// Runs the Python script with `n` messages. `None` (with a message) if python3 is missing.
pub fn python(n: u64) -> Option<PythonFigures> {
    let out = std::process::Command::new("python3")
        .args(["-c", PYTHON_SCRIPT, &n.to_string()])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<f64>().ok())
    };
    Some(PythonFigures {
        queue: get("queue ")?,
        pipe_rt_ns: get("pipe_rt_ns ")?,
        lock_value: get("lock_value ")?,
    })
}

// ---------------------------------------------------------------------------------------------
// iceoryx2, through its peer binary (bench-peers/iceoryx2: a crate of its own, so interproc never
// depends on iceoryx2).

/// How to build the iceoryx2 peer (printed when it is missing).
pub const ICEORYX2_BUILD: &str =
    "cargo build --release --manifest-path bench-peers/iceoryx2/Cargo.toml";

const ICEORYX2_PEER: &str = "interproc-peer-iceoryx2";

/// The iceoryx2 peer binary: `$INTERPROC_ICEORYX2_PEER`, else
/// `bench-peers/iceoryx2/target/release/interproc-peer-iceoryx2` under the current directory,
/// else a binary of that name beside this one (a shared `CARGO_TARGET_DIR`). `None` if absent.
pub fn iceoryx2_peer() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("INTERPROC_ICEORYX2_PEER") {
        let p = std::path::PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let local = std::path::Path::new("bench-peers/iceoryx2/target/release").join(ICEORYX2_PEER);
    if local.is_file() {
        return Some(local);
    }
    let beside = std::env::current_exe().ok()?.with_file_name(ICEORYX2_PEER);
    beside.is_file().then_some(beside)
}

/// Runs the iceoryx2 peer: `kind` is `"rtt"` (`n` round trips; JSON keys `p50_ns`, `p99_ns`,
/// `p999_ns`) or `"stream"` (`n` messages; key `msg_per_s`). Returns its JSON line, or `None` when
/// the peer is not built, fails (its message goes to stderr) or runs past the timeout (then it is
/// killed and its iceoryx2 files are removed with `interproc-peer-iceoryx2 cleanup --pid`).
pub fn iceoryx2(kind: &str, n: u64) -> Option<serde_json::Value> {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let peer = iceoryx2_peer()?;
    let count_flag = if kind == "rtt" {
        "--round-trips"
    } else {
        "--count"
    };
    // The peer gives up by itself after 60 s (and cleans up); this is the backstop.
    let mut child = Command::new(&peer)
        .args([kind, count_flag, &n.to_string(), "--timeout-s", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| eprint!("(iceoryx2 peer {}: {e}) ", peer.display()))
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(90);
    // Polled, not waited on in a thread: forks follow in this process, which must stay
    // single-threaded; a 20 ms poll barely disturbs the two pinned peer processes.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = Command::new(&peer)
            .args(["cleanup", "--pid", &child.id().to_string()])
            .stdout(Stdio::null())
            .status();
        eprint!("(iceoryx2 peer timed out) ");
        return None;
    };
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    if !status.success() {
        eprint!("(iceoryx2 peer failed: {status}) ");
        return None;
    }
    out.lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == kind)
}
