//! Resource hygiene: creating, opening, using and dropping every kind of object many times
//! leaves no file descriptor, no mapping and no name behind.
//!
//! `Process` is checked the same way: spawning, joining and killing children leaves no
//! payload memfd or pidfd open.
//!
//! One test in its own binary, so that no other test of this process opens descriptors or maps
//! memory meanwhile. It warms up first (one cycle of everything: lazily initialised process
//! state such as the membarrier registration and allocator arenas), counts `/proc/self/fd` and
//! `/proc/self/maps`, runs [`CYCLES`] cycles, and counts again: the counts must be equal, no
//! mapping of a `/dev/shm` file may remain, and no name with this test's prefix may remain
//! under `/dev/shm`, except the persisted ones the cycle keeps on purpose, which it then
//! removes by name and checks gone.

use std::time::Duration;

use interproc::spsc::{Receiver, Sender};
use interproc::{
    Barrier, Condvar, Error, Event, Lock, Mutex, Pipe, Queue, RwLock, Semaphore, Value,
};

/// Create/open/drop cycles of every kind.
const CYCLES: usize = 200;
/// Spawn/join cycles of `Process` (each spawns two children).
const PROCESS_CYCLES: usize = 20;

fn prefix() -> String {
    format!("t-hy-{}-", std::process::id())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn maps() -> (usize, Vec<String>) {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap();
    let shm = text
        .lines()
        .filter(|l| l.contains("/dev/shm/"))
        .map(str::to_owned)
        .collect();
    (text.lines().count(), shm)
}

fn leftovers() -> Vec<String> {
    let p = format!("interproc.{}", prefix());
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&p))
        .collect()
}

/// One cycle: every kind created, opened a second time, used, dropped; the error paths
/// (not found, already exists, busy) taken; one object persisted, reopened, removed.
fn cycle(i: usize) {
    let n = |kind: &str| format!("{}{kind}-{i}", prefix());
    let short = Duration::from_millis(0);

    let v = Value::<u64>::create(&n("value"), 1).unwrap();
    let v2 = Value::<u64>::open(&n("value")).unwrap();
    v2.fetch_add(1);
    assert!(matches!(
        Value::<u64>::create(&n("value"), 0),
        Err(Error::AlreadyExists)
    ));
    // Another kind or element type under that name: refused, nothing kept open.
    assert!(matches!(
        Mutex::<u64>::open(&n("value")),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        Value::<u32>::open(&n("value")),
        Err(Error::Incompatible { .. })
    ));
    // What the CLI does: a read-only observer mapping.
    let info = interproc::inspect::inspect(&n("value")).unwrap();
    assert_eq!(info.kind.as_deref(), Some("value"));
    drop((v, v2));
    assert!(matches!(
        Value::<u64>::open(&n("value")),
        Err(Error::NotFound)
    ));

    let m = Mutex::<[u64; 2]>::create(&n("mutex"), [0; 2]).unwrap();
    let m2 = Mutex::<[u64; 2]>::open(&n("mutex")).unwrap();
    m2.lock().unwrap()[0] += 1;
    let cv = Condvar::create(&n("condvar")).unwrap();
    let g = m.lock().unwrap();
    let (g, _) = cv.wait_timeout(g, short).unwrap();
    drop(g);
    cv.notify_all();
    drop((m, m2, cv));

    let l = Lock::open_or_create(&n("lock"), ()).unwrap();
    drop(l.try_lock().unwrap());
    drop(l);

    let rw = RwLock::<u64>::create(&n("rwlock"), 0).unwrap();
    let rw2 = RwLock::<u64>::open(&n("rwlock")).unwrap();
    *rw2.write().unwrap() += 1;
    drop(rw.read().unwrap());
    drop((rw, rw2));

    let s = Semaphore::create(&n("sem"), 2).unwrap();
    let s2 = Semaphore::open(&n("sem")).unwrap();
    s2.acquire();
    s.release();
    drop((s, s2));

    let b = Barrier::create(&n("barrier"), 1).unwrap();
    b.wait();
    let e = Event::create(&n("event")).unwrap();
    e.set();
    assert!(e.wait_timeout(short));
    drop((b, e));

    let tx = Sender::<u64>::create(&n("spsc"), 8).unwrap();
    let rx = Receiver::<u64>::open(&n("spsc")).unwrap();
    assert!(matches!(
        Receiver::<u64>::open(&n("spsc")),
        Err(Error::Busy)
    ));
    tx.send(7).unwrap();
    assert_eq!(rx.recv(), Ok(7));
    drop((tx, rx));
    let rx = Receiver::<u64>::create(&n("spsc2"), 8).unwrap();
    let tx = Sender::<u64>::open(&n("spsc2")).unwrap();
    tx.send_batch(&[1, 2]).unwrap();
    drop((rx, tx));

    let a = Pipe::create(&n("pipe"), 4096).unwrap();
    let bend = Pipe::open(&n("pipe")).unwrap();
    assert!(matches!(Pipe::open(&n("pipe")), Err(Error::Busy)));
    a.send(b"ping").unwrap();
    assert_eq!(bend.recv().unwrap(), b"ping");
    bend.send(b"pong").unwrap();
    assert_eq!(a.recv().unwrap(), b"pong");
    drop((a, bend));

    let q = Queue::<u64>::create(&n("queue"), 8).unwrap();
    let q2 = Queue::<u64>::open(&n("queue")).unwrap();
    q.send(5).unwrap();
    assert_eq!(q2.recv(), Ok(5));
    drop((q, q2));

    // Persisted on purpose: the name outlives its creator until removed by name.
    let p = Queue::<u64>::create(&n("kept"), 2).unwrap();
    p.persist();
    drop(p);
    let p = Queue::<u64>::open(&n("kept")).unwrap();
    drop(p);
    interproc::remove(&n("kept")).unwrap();
    assert!(matches!(
        interproc::remove(&n("kept")),
        Err(Error::NotFound)
    ));
}

/// What a spawned child runs: bumps a counter.
fn bump(name: String) {
    Value::<u64>::open(&name).unwrap().fetch_add(1);
}

/// A child that waits to be killed.
fn linger(_: ()) {
    std::thread::sleep(Duration::from_secs(60));
}

/// One `Process` cycle: a child that runs to the end and one that is killed, both joined.
fn process_cycle(counter: &str) {
    const TEST: &str = "every_kind_leaves_no_descriptor_mapping_or_name";
    let mut p = interproc::Process::builder()
        .for_test(TEST)
        .spawn(bump, counter.to_owned())
        .unwrap();
    assert!(p.join().unwrap().success());
    let mut p = interproc::Process::builder()
        .for_test(TEST)
        .spawn(linger, ())
        .unwrap();
    p.kill().unwrap();
    assert!(!p.join().unwrap().success());
}

#[test]
fn every_kind_leaves_no_descriptor_mapping_or_name() {
    interproc::process::init();
    cycle(0);
    let (fd0, (maps0, shm0)) = (fds(), maps());
    assert!(shm0.is_empty(), "a region is still mapped: {shm0:?}");
    for i in 1..=CYCLES {
        cycle(i);
    }
    let (fd1, (maps1, shm1)) = (fds(), maps());
    assert_eq!(fd1, fd0, "descriptors before and after {CYCLES} cycles");
    assert!(shm1.is_empty(), "regions still mapped: {shm1:?}");
    assert_eq!(maps1, maps0, "mappings before and after {CYCLES} cycles");
    // Processes: payload memfds and pidfds are closed again.
    let counter = format!("{}spawned", prefix());
    let spawned = Value::<u64>::create(&counter, 0).unwrap();
    process_cycle(&counter);
    let (fd0, (maps0, _)) = (fds(), maps());
    for _ in 0..PROCESS_CYCLES {
        process_cycle(&counter);
    }
    let (fd1, (maps1, _)) = (fds(), maps());
    assert_eq!(spawned.load(), PROCESS_CYCLES as u64 + 1);
    drop(spawned);
    assert_eq!(
        fd1, fd0,
        "descriptors before and after {PROCESS_CYCLES} process cycles"
    );
    assert_eq!(
        maps1, maps0,
        "mappings before and after {PROCESS_CYCLES} process cycles"
    );
    let left = leftovers();
    assert!(left.is_empty(), "names left under /dev/shm: {left:?}");
    eprintln!("{CYCLES} cycles of every kind: {fd1} descriptors, {maps1} mappings, as before");
}
