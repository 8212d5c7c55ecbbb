//! Hostile peers: a process rewrites a live object's shared memory with garbage while another
//! process keeps using it.
//!
//! Each test runs two children: the *user* creates the object and calls its try/timeout
//! methods in a loop (every call timed), and the *scribbler* maps the region file itself (no
//! participant slot, no protocol) and overwrites random words of it with random, extreme and
//! plausible values (small integers, bit flips of the current value, copies of neighbouring
//! words) for [`SCRIBBLE_MS`]. The test asserts that the user exits with status 0 within a
//! bound: it never crashed (a crash would be a signal status), never panicked (101), and no
//! call took longer than [`CALL_BOUND`] (exit status 2). What the calls *return* under garbage
//! is not checked: errors (`Corrupted`, `Disconnected`, timeouts, poisoned locks) and garbled
//! data are the expected outcomes; a user that finds its handle broken drops it and opens the
//! object again.
//!
//! Three scribble ranges: the object's body only (after the header and the participant
//! registry); everything after the 128-byte header proper (registry included, which makes
//! liveness answers wrong: live owners look dead); and, for the users that re-open their
//! handles (spsc, pipe), the header too. `open` has no timeout argument; it is bounded by
//! [`OPEN_BOUND`] (its own `INIT_WAIT` of 2 s plus slack: a header state scribbled back to 0
//! looks like a creator still initialising).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::TryLockError;
use std::time::{Duration, Instant};

use common::{arg, child, role, run_role, wait_timeout, Names, Rng};
use interproc::spsc::{Receiver, Sender};
use interproc::{
    Barrier, Condvar, Error, Event, Mutex, Pipe, RwLock, Semaphore, TryRecvError, Value,
};

/// How long the scribbler writes garbage.
const SCRIBBLE_MS: u64 = 300;
/// No single call of the user may take longer than this (their timeouts are a few ms).
const CALL_BOUND: Duration = Duration::from_secs(2);
/// `open` has no timeout argument: it waits up to `INIT_WAIT` (2 s) for a live creator that
/// has not published its header yet, and a header state scribbled back to 0 looks just like
/// that. Opens get this bound.
const OPEN_BOUND: Duration = Duration::from_secs(3);
/// Where the object's body starts in the file (`src/region/header.rs`: `BODY_OFFSET`, the
/// 128-byte header plus the 2048-byte participant registry).
const BODY_OFFSET: usize = 2176;
/// Where the registry starts (right after the header proper).
const REGISTRY_OFFSET: usize = 128;

fn args() -> Vec<String> {
    arg().split(',').map(str::to_owned).collect()
}

/// Calls of the user that reported trouble (an error, a poisoned lock, a broken handle).
static TROUBLE: AtomicU64 = AtomicU64::new(0);

/// The longest call (opens aside) of the user, in nanoseconds.
static SLOWEST: AtomicU64 = AtomicU64::new(0);

fn trouble() {
    TROUBLE.fetch_add(1, Ordering::Relaxed);
}

/// Times one call; exits the process with status 2 if it took longer than [`CALL_BOUND`]
/// ([`OPEN_BOUND`] for an `open`).
fn timed<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let bound = if what.ends_with("::open") {
        OPEN_BOUND
    } else {
        CALL_BOUND
    };
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    if !what.ends_with("::open") {
        SLOWEST.fetch_max(took.as_nanos() as u64, Ordering::Relaxed);
    }
    if took > bound {
        eprintln!("hostile: {what} took {took:?} (bound {bound:?})");
        std::process::exit(2);
    }
    r
}

/// The scribbler: maps `/dev/shm/interproc.<name>` and overwrites words from `from` on:
/// mostly the first 4 KiB of the body (where every object keeps its control words), also
/// anywhere in the body, and, when `from` reaches into it, the participant registry.
fn scribble(name: &str, from: usize, seed: u64) -> std::io::Result<u64> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/interproc.{name}"))?;
    let len = file.metadata()?.len() as usize;
    let map = memmap2::MmapOptions::new().len(len).map_raw(&file)?;
    let base = map.as_mut_ptr();
    let word = |at: usize| {
        assert!(at + 8 <= len && at % 8 == 0);
        // SAFETY: in bounds and 8-aligned (checked; the mapping is page-aligned); the memory
        // is only accessed atomically here. Other processes access it through their own
        // atomics or raw copies: garbage is the point.
        unsafe { AtomicU64::from_ptr(base.add(at) as *mut u64) }
    };
    // `body_len` from the header (offset 48), which the scribbler never touches.
    let body_words = (word(48).load(Ordering::Relaxed) as usize)
        .min(len - BODY_OFFSET)
        .div_ceil(8)
        .max(1);
    let hot_words = body_words.min(4096 / 8);
    let registry_words = (BODY_OFFSET - from.max(REGISTRY_OFFSET)) / 8;
    let mut rng = Rng::new(seed);
    let end = Instant::now() + Duration::from_millis(SCRIBBLE_MS);
    let mut writes = 0u64;
    while Instant::now() < end {
        for _ in 0..64 {
            let r = rng.below(100);
            let at = if from == 0 && r < 10 {
                // The header proper (everything but `body_len`, read above, is fair game).
                8 * rng.below(REGISTRY_OFFSET as u64 / 8) as usize
            } else if r < 60 {
                BODY_OFFSET + 8 * rng.below(hot_words as u64) as usize
            } else if r < 85 || registry_words == 0 {
                BODY_OFFSET + 8 * rng.below(body_words as u64) as usize
            } else {
                REGISTRY_OFFSET + 8 * rng.below(registry_words as u64) as usize
            };
            let w = word(at);
            let cur = w.load(Ordering::Relaxed);
            let v = match rng.below(9) {
                0 => rng.next_u64(),
                1 => 0,
                2 => u64::MAX,
                3 => rng.below(256),
                4 => cur.wrapping_add(rng.range(1, 8)),
                5 => cur.wrapping_sub(rng.range(1, 8)),
                6 => cur ^ (1 << rng.below(64)),
                7 => {
                    // A neighbour's value (a position, a token, a flag from elsewhere).
                    let j = at + 8 * rng.range(1, 16) as usize;
                    if j + 8 <= len {
                        word(j).load(Ordering::Relaxed)
                    } else {
                        cur
                    }
                }
                _ => (cur & 0xFFFF_FFFF_0000_0000) | rng.below(1 << 32),
            };
            w.store(v, Ordering::Relaxed);
            writes += 1;
        }
        std::thread::yield_now();
    }
    Ok(writes)
}

/// Runs one hostile round: the user plays `user_role` (creating the object `name`, with
/// `extra` names for its helpers), the scribbler writes from `from` on.
fn hostile(test: &str, tag: &str, from: usize) {
    let mut names = Names::new();
    let name = names.add(tag);
    // Helpers some users create beside the object.
    names.keep(&format!("{name}-b"));
    names.keep(&format!("{name}-m"));
    let (ready, stop) = (names.add("ho-ready"), names.add("ho-stop"));
    let ready_v = Value::<u64>::create(&ready, 0).unwrap();
    let stop_v = Value::<u64>::create(&stop, 0).unwrap();
    let seed = common::seed(test);
    let start = Instant::now();
    let mut user = child(test, "user", &format!("{name},{ready},{stop},{seed}"))
        .spawn()
        .expect("spawn user");
    assert!(
        common::eventually(Duration::from_secs(30), || ready_v.load() == 1),
        "the user never got ready"
    );
    let mut scribbler = child(test, "scribble", &format!("{name},{from},{seed}"))
        .spawn()
        .expect("spawn scribbler");
    let st = wait_timeout(&mut scribbler, Duration::from_secs(30));
    assert!(st.success(), "the scribbler failed: {st}");
    // Let the user run on the garbage a little longer, then stop it.
    std::thread::sleep(Duration::from_millis(100));
    stop_v.store(1);
    let status = wait_timeout(&mut user, Duration::from_secs(30));
    let took = start.elapsed();
    assert!(
        status.success(),
        "the user did not survive the scribbling: {status} (2: a call exceeded {CALL_BOUND:?}, \
         101: a panic, a signal: a crash)"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    eprintln!("{test}: user survived, {took:?} in all");
}

/// The user side's common frame: opens the helpers, runs `step` until stopped (bounded).
fn user_loop(mut step: impl FnMut(&mut Rng)) -> Result<(), String> {
    let a = args();
    let ready = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
    let stop = Value::<u64>::open(&a[2]).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(common::num_arg(&a[3]));
    let start = Instant::now();
    let mut calls = 0u64;
    ready.store(1);
    while stop.load() == 0 {
        common::exit_if_orphaned();
        if start.elapsed() > Duration::from_secs(60) {
            return Err("never told to stop".into());
        }
        step(&mut rng);
        calls += 1;
    }
    eprintln!(
        "hostile user: {calls} steps, {} reported trouble, slowest call {:?}",
        TROUBLE.load(Ordering::Relaxed),
        Duration::from_nanos(SLOWEST.load(Ordering::Relaxed))
    );
    Ok(())
}

/// The scribbler role, shared by every test.
fn scribbler_role() -> ! {
    run_role(|| -> Result<(), String> {
        let a = args();
        let from: usize = a[1].parse().unwrap();
        let writes = scribble(&a[0], from, common::num_arg(&a[2])).map_err(|e| e.to_string())?;
        eprintln!("scribbler: {writes} garbage writes");
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------

/// spsc ring: the user holds both ends and mixes every send/receive flavour (single, batch,
/// chunk; try and timeout); a broken end is dropped and opened again.
fn spsc_user() -> ! {
    run_role(|| {
        let name = args()[0].clone();
        let tx = Sender::<u64>::create(&name, 64).map_err(|e| e.to_string())?;
        tx.persist(); // reopened below; the test removes the name
        let mut tx = Some(tx);
        let mut rx = Some(Receiver::<u64>::open(&name).map_err(|e| e.to_string())?);
        let mut buf = [0u64; 16];
        user_loop(|rng| {
            if tx.as_ref().is_none_or(|t| t.is_disconnected()) {
                trouble();
                tx = None;
                tx = timed("Sender::open", || Sender::<u64>::open(&name)).ok();
            }
            if rx.as_ref().is_none_or(|r| r.is_disconnected()) {
                trouble();
                rx = None;
                rx = timed("Receiver::open", || Receiver::<u64>::open(&name)).ok();
            }
            let d = Duration::from_millis(rng.range(0, 3));
            if let Some(t) = tx.as_mut() {
                match rng.below(5) {
                    0 => drop(timed("try_send", || t.try_send(rng.next_u64()))),
                    1 => drop(timed("send_timeout", || t.send_timeout(7, d))),
                    2 => drop(timed("send_batch_timeout", || {
                        t.send_batch_timeout(&buf[..5], d)
                    })),
                    3 => {
                        if let Ok(mut c) =
                            timed("write_chunk_timeout", || t.write_chunk_timeout(9, d))
                        {
                            let v = vec![3u64; c.len()];
                            c.copy_from_slice(&v);
                            timed("WriteChunk::commit", || c.commit_all());
                        }
                    }
                    _ => drop(timed("Sender::len", || t.len())),
                }
            }
            if let Some(r) = rx.as_mut() {
                match rng.below(5) {
                    0 => drop(timed("try_recv", || r.try_recv())),
                    1 => drop(timed("recv_timeout", || r.recv_timeout(d))),
                    2 => drop(timed("recv_batch_timeout", || {
                        r.recv_batch_timeout(&mut buf, d)
                    })),
                    3 => {
                        if let Ok(c) = timed("read_chunk_timeout", || r.read_chunk_timeout(9, d)) {
                            let mut out = vec![0u64; c.len()];
                            c.copy_to_slice(&mut out);
                            timed("ReadChunk::commit", || c.commit_all());
                        }
                    }
                    _ => {
                        if let Err(TryRecvError::Disconnected) = timed("try_recv", || r.try_recv())
                        {
                            timed("is_empty", || r.is_empty());
                        }
                    }
                }
            }
        })
    })
}

#[test]
fn spsc_survives_garbage_in_its_body() {
    match role().as_deref() {
        Some("user") => spsc_user(),
        Some(_) => scribbler_role(),
        None => hostile("spsc_survives_garbage_in_its_body", "ho-spsc", BODY_OFFSET),
    }
}

#[test]
fn spsc_survives_garbage_in_its_registry_and_body() {
    match role().as_deref() {
        Some("user") => spsc_user(),
        Some(_) => scribbler_role(),
        None => hostile(
            "spsc_survives_garbage_in_its_registry_and_body",
            "ho-spsc-r",
            REGISTRY_OFFSET,
        ),
    }
}

/// Pipe: the user holds both ends and sends and receives both ways (copying and in place,
/// try and timeout); a broken end is dropped and opened again.
fn pipe_user() -> ! {
    run_role(|| {
        let name = args()[0].clone();
        let a = Pipe::create(&name, 4096).map_err(|e| e.to_string())?;
        a.persist();
        let mut ends = [Some(a), Some(Pipe::open(&name).map_err(|e| e.to_string())?)];
        let msg = vec![0x5au8; 2048];
        user_loop(|rng| {
            let i = rng.below(2) as usize;
            let Some(c) = ends[i].as_ref() else {
                ends[i] = timed("Pipe::open", || Pipe::open(&name)).ok();
                return;
            };
            let len = rng.range(0, c.max_message_size() as u64 + 8) as usize;
            let d = Duration::from_millis(rng.range(0, 3));
            let r = match rng.below(7) {
                0 => timed("try_send", || {
                    c.try_send(&msg[..len.min(msg.len())]).map(drop)
                }),
                1 => timed("send_timeout", || {
                    c.send_timeout(&msg[..len.min(msg.len())], d)
                }),
                2 => timed("send_with_timeout", || {
                    c.send_with_timeout(len, d, |b| b.fill(1))
                }),
                3 => timed("try_recv", || c.try_recv().map(drop)),
                4 => timed("recv_timeout", || c.recv_timeout(d).map(drop)),
                5 => timed("recv_with_timeout", || {
                    c.recv_with_timeout(d, |b| b.iter().map(|&x| x as u64).sum::<u64>())
                        .map(drop)
                }),
                _ => timed("try_recv_with", || c.try_recv_with(|b| b.len()).map(drop)),
            };
            if r.is_err() {
                trouble();
            }
            if matches!(r, Err(Error::Corrupted { .. })) || rng.chance(1) {
                // Broken (or, now and then, just for the exercise): drop and open again.
                ends[i] = None;
            }
        })
    })
}

#[test]
fn pipe_survives_garbage_in_its_body() {
    match role().as_deref() {
        Some("user") => pipe_user(),
        Some(_) => scribbler_role(),
        None => hostile("pipe_survives_garbage_in_its_body", "ho-pipe", BODY_OFFSET),
    }
}

#[test]
fn pipe_survives_garbage_in_its_registry_and_body() {
    match role().as_deref() {
        Some("user") => pipe_user(),
        Some(_) => scribbler_role(),
        None => hostile(
            "pipe_survives_garbage_in_its_registry_and_body",
            "ho-pipe-r",
            REGISTRY_OFFSET,
        ),
    }
}

/// Mutex (with a Condvar on it): try_lock, lock_timeout, writing the data through the guard,
/// poison checks and clearing, condvar timed waits and notifications.
fn mutex_user() -> ! {
    run_role(|| {
        let name = args()[0].clone();
        let m = Mutex::<[u64; 4]>::create(&name, [0; 4]).map_err(|e| e.to_string())?;
        user_loop(|rng| {
            let d = Duration::from_millis(rng.range(0, 3));
            let got = match rng.below(3) {
                0 => timed("try_lock", || m.try_lock()),
                _ => timed("lock_timeout", || m.lock_timeout(d)),
            };
            let mut g = match got {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => {
                    trouble();
                    timed("clear_poison", || m.clear_poison());
                    p.into_inner()
                }
                Err(TryLockError::WouldBlock) => {
                    if std::env::var("HOSTILE_DEBUG").is_ok() && rng.chance(1) {
                        eprintln!("would block: {m:?}");
                    }
                    return;
                }
            };
            g[rng.below(4) as usize] = rng.next_u64();
            timed("is_poisoned", || m.is_poisoned());
            timed("unlock", || drop(g));
        })
    })
}

#[test]
fn mutex_survives_garbage_in_its_body() {
    match role().as_deref() {
        Some("user") => mutex_user(),
        Some(_) => scribbler_role(),
        None => hostile(
            "mutex_survives_garbage_in_its_body",
            "ho-mutex",
            BODY_OFFSET,
        ),
    }
}

#[test]
fn mutex_survives_garbage_in_its_registry_and_body() {
    match role().as_deref() {
        Some("user") => mutex_user(),
        Some(_) => scribbler_role(),
        None => hostile(
            "mutex_survives_garbage_in_its_registry_and_body",
            "ho-mutex-r",
            REGISTRY_OFFSET,
        ),
    }
}

/// Semaphore: try_acquire, acquire_timeout, release, forget, recover, the counters.
fn semaphore_user() -> ! {
    run_role(|| {
        let name = args()[0].clone();
        let s = Semaphore::create(&name, 3).map_err(|e| e.to_string())?;
        user_loop(|rng| {
            let d = Duration::from_millis(rng.range(0, 3));
            match rng.below(7) {
                0 => drop(timed("try_acquire", || s.try_acquire())),
                1 => drop(timed("acquire_timeout", || s.acquire_timeout(d))),
                2 | 3 => timed("release", || s.release()),
                4 => {
                    if timed("recover", || s.recover()) > 0 {
                        trouble();
                    }
                }
                5 => drop(timed("forget", || s.forget())),
                _ => drop(timed("available/held", || (s.available(), s.held()))),
            }
        })
    })
}

#[test]
fn semaphore_survives_garbage_in_its_body() {
    match role().as_deref() {
        Some("user") => semaphore_user(),
        Some(_) => scribbler_role(),
        None => hostile(
            "semaphore_survives_garbage_in_its_body",
            "ho-sem",
            BODY_OFFSET,
        ),
    }
}

#[test]
fn semaphore_survives_garbage_in_its_registry_and_body() {
    match role().as_deref() {
        Some("user") => semaphore_user(),
        Some(_) => scribbler_role(),
        None => hostile(
            "semaphore_survives_garbage_in_its_registry_and_body",
            "ho-sem-r",
            REGISTRY_OFFSET,
        ),
    }
}

/// RwLock: try/timeout reads and writes, poison handling.
fn rwlock_user() -> ! {
    run_role(|| {
        let name = args()[0].clone();
        let rw = RwLock::<[u64; 4]>::create(&name, [0; 4]).map_err(|e| e.to_string())?;
        user_loop(|rng| {
            let d = Duration::from_millis(rng.range(0, 3));
            match rng.below(4) {
                0 => drop(timed("try_read", || rw.try_read())),
                1 => drop(timed("read_timeout", || rw.read_timeout(d))),
                2 => drop(timed("try_write", || rw.try_write())),
                _ => match timed("write_timeout", || rw.write_timeout(d)) {
                    Ok(mut g) => g[0] = rng.next_u64(),
                    Err(TryLockError::Poisoned(p)) => {
                        trouble();
                        drop(p.into_inner());
                        timed("clear_poison", || rw.clear_poison());
                    }
                    Err(TryLockError::WouldBlock) => {}
                },
            }
        })
    })
}

#[test]
fn rwlock_survives_garbage_in_its_body() {
    match role().as_deref() {
        Some("user") => rwlock_user(),
        Some(_) => scribbler_role(),
        None => hostile("rwlock_survives_garbage_in_its_body", "ho-rw", BODY_OFFSET),
    }
}

/// Event and Barrier: timed waits, set/clear, barrier arrivals with a timeout.
fn event_barrier_user() -> ! {
    run_role(|| {
        let name = args()[0].clone();
        let e = Event::create(&name).map_err(|e| e.to_string())?;
        let bname = format!("{name}-b");
        let b = Barrier::create(&bname, 2).map_err(|e| e.to_string())?;
        let r = user_loop(|rng| {
            let d = Duration::from_millis(rng.range(0, 3));
            match rng.below(5) {
                0 => timed("set", || e.set()),
                1 => timed("clear", || e.clear()),
                2 => drop(timed("wait_timeout", || e.wait_timeout(d))),
                3 => drop(timed("is_set", || e.is_set())),
                _ => drop(timed("Barrier::wait_timeout", || b.wait_timeout(d))),
            }
        });
        drop(b);
        r
    })
}

#[test]
fn event_survives_garbage_in_its_body() {
    match role().as_deref() {
        Some("user") => event_barrier_user(),
        Some(_) => scribbler_role(),
        None => hostile("event_survives_garbage_in_its_body", "ho-ev", BODY_OFFSET),
    }
}

/// Condvar timed waits on a Mutex whose body is scribbled (the condvar's own region is left
/// alone: see `condvar_survives_garbage_in_its_body` for that).
fn condvar_user() -> ! {
    run_role(|| {
        let name = args()[0].clone();
        let cv = Condvar::create(&name).map_err(|e| e.to_string())?;
        let mname = format!("{name}-m");
        let m = Mutex::<u64>::create(&mname, 0).map_err(|e| e.to_string())?;
        user_loop(|rng| {
            let d = Duration::from_millis(rng.range(0, 3));
            match rng.below(3) {
                0 => timed("notify_one", || cv.notify_one()),
                1 => timed("notify_all", || cv.notify_all()),
                _ => {
                    let g = match m.lock_timeout(d) {
                        Ok(g) => g,
                        Err(TryLockError::Poisoned(p)) => p.into_inner(),
                        Err(TryLockError::WouldBlock) => return,
                    };
                    let g = timed("Condvar::wait_timeout", || cv.wait_timeout(g, d));
                    drop(g);
                }
            }
        })
    })
}

#[test]
fn condvar_survives_garbage_in_its_body() {
    match role().as_deref() {
        Some("user") => condvar_user(),
        Some(_) => scribbler_role(),
        None => hostile("condvar_survives_garbage_in_its_body", "ho-cv", BODY_OFFSET),
    }
}

/// Queue (MPMC): every send and receive flavour, try and timeout, copying and in place.
fn queue_user() -> ! {
    run_role(|| {
        let name = args()[0].clone();
        let q = interproc::Queue::<[u64; 2]>::create(&name, 64).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        user_loop(|rng| {
            let d = Duration::from_millis(rng.range(0, 3));
            let v = [rng.next_u64(), 1];
            let trouble_if = |bad: bool| {
                if bad {
                    trouble()
                }
            };
            match rng.below(9) {
                0 => trouble_if(timed("try_send", || q.try_send(v)).is_err()),
                1 => trouble_if(timed("send_timeout", || q.send_timeout(v, d)).is_err()),
                2 => trouble_if(
                    timed("send_batch_timeout", || q.send_batch_timeout(&[v; 5], d)).is_err(),
                ),
                3 => trouble_if(
                    timed("send_timeout_with", || q.send_timeout_with(d, |s| *s = v)).is_err(),
                ),
                4 => trouble_if(timed("try_recv", || q.try_recv()).is_err()),
                5 => trouble_if(timed("recv_timeout", || q.recv_timeout(d)).is_err()),
                6 => {
                    out.clear();
                    let r = timed("recv_batch_timeout", || {
                        q.recv_batch_timeout(&mut out, 7, d)
                    });
                    trouble_if(r.is_err());
                }
                7 => trouble_if(
                    timed("recv_timeout_with", || q.recv_timeout_with(d, |m| m[0])).is_err(),
                ),
                _ => drop(timed("len", || (q.len(), q.is_empty(), q.is_closed()))),
            }
        })
    })
}

#[test]
fn queue_survives_garbage_in_its_body() {
    match role().as_deref() {
        Some("user") => queue_user(),
        Some(_) => scribbler_role(),
        None => hostile("queue_survives_garbage_in_its_body", "ho-q", BODY_OFFSET),
    }
}

#[test]
fn queue_survives_garbage_in_its_registry_and_body() {
    match role().as_deref() {
        Some("user") => queue_user(),
        Some(_) => scribbler_role(),
        None => hostile(
            "queue_survives_garbage_in_its_registry_and_body",
            "ho-q-r",
            REGISTRY_OFFSET,
        ),
    }
}

/// Everything, the header included: handles keep their validated copy of the header; a user
/// that re-opens meets a header that does not check out and gets an error, never a crash.
#[test]
fn spsc_survives_garbage_everywhere() {
    match role().as_deref() {
        Some("user") => spsc_user(),
        Some(_) => scribbler_role(),
        None => hostile("spsc_survives_garbage_everywhere", "ho-spsc-all", 0),
    }
}

#[test]
fn pipe_survives_garbage_everywhere() {
    match role().as_deref() {
        Some("user") => pipe_user(),
        Some(_) => scribbler_role(),
        None => hostile("pipe_survives_garbage_everywhere", "ho-pipe-all", 0),
    }
}

/// Regression: a header whose `state` word was scribbled (neither 0, "initialising", nor the
/// ready tag) is refused at once with `Corrupted`. It used to be taken for a live creator
/// still initialising: every `open` then waited the whole `INIT_WAIT` (2 s) and said `Busy`.
#[test]
fn open_refuses_a_scribbled_state_word_at_once() {
    let mut names = Names::new();
    let name = names.add("ho-state");
    let v = Value::<u64>::create(&name, 7).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/interproc.{name}"))
        .unwrap();
    let map = memmap2::MmapOptions::new()
        .len(4096)
        .map_raw(&file)
        .unwrap();
    // SAFETY: offset 12 (the header's `state`, a u32) lies inside the 4 KiB mapping, 4-aligned;
    // accessed atomically only.
    let state =
        unsafe { std::sync::atomic::AtomicU32::from_ptr(map.as_mut_ptr().add(12) as *mut u32) };
    let ready = state.load(Ordering::Relaxed);
    for garbage in [1, 0xdead_beef, ready ^ 1, u32::MAX] {
        state.store(garbage, Ordering::Relaxed);
        let t = Instant::now();
        let r = Value::<u64>::open(&name);
        assert!(
            matches!(r, Err(Error::Corrupted { .. })),
            "state {garbage:#x}: {r:?}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "took {:?}",
            t.elapsed()
        );
    }
    // The handle that was attached keeps working (it validated the header once).
    state.store(ready, Ordering::Relaxed);
    assert_eq!(v.load(), 7);
    assert_eq!(Value::<u64>::open(&name).unwrap().load(), 7);
}
