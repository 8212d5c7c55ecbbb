//! Multi-process tests of `Condvar`: wake-ups across processes, timeouts, notify_all, a long
//! ping-pong without lost wake-ups, and a holder that dies while a waiter re-locks.

mod common;

use std::time::{Duration, Instant};

use common::{arg, eventually, expect_success, role, run_role, sigkill, spawn, Names};
use interproc::{Condvar, Mutex, Value};

fn args() -> Vec<String> {
    arg().split(',').map(str::to_owned).collect()
}

#[test]
fn notify_from_another_process_wakes_a_waiter() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let m = Mutex::<u32>::open(&a[0])?;
            let cv = Condvar::open(&a[1])?;
            let waiting = Value::<u32>::open(&a[2])?;
            let g = m.lock().expect("not poisoned");
            waiting.store(1); // under the lock: the parent's notify comes after our wait
            let g = cv.wait_while(g, |v| *v == 0).expect("not poisoned");
            assert_eq!(*g, 1);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (mn, cn, wn) = (names.add("cv-m"), names.add("cv-cv"), names.add("cv-w"));
    let m = Mutex::<u32>::create(&mn, 0).unwrap();
    let cv = Condvar::create(&cn).unwrap();
    let waiting = Value::<u32>::create(&wn, 0).unwrap();
    let mut child = spawn(
        "notify_from_another_process_wakes_a_waiter",
        "wait",
        &format!("{mn},{cn},{wn}"),
    );
    assert!(eventually(Duration::from_secs(30), || waiting.load() == 1));
    *m.lock().unwrap() = 1; // the child released the mutex inside `wait`
    let notified = Instant::now();
    cv.notify_one();
    let status = common::wait_timeout(&mut child, Duration::from_secs(30));
    assert!(status.success());
    println!(
        "waiter process finished {:?} after notify",
        notified.elapsed()
    );
}

#[test]
fn wait_timeout_honours_the_timeout() {
    let mut names = Names::new();
    let m = Mutex::<u32>::create(&names.add("cv-to-m"), 0).unwrap();
    let cv = Condvar::create(&names.add("cv-to")).unwrap();
    let start = Instant::now();
    let (g, r) = cv
        .wait_timeout(m.lock().unwrap(), Duration::from_millis(300))
        .unwrap();
    let took = start.elapsed();
    assert!(r.timed_out());
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(g);
    let start = Instant::now();
    let (g, r) = cv
        .wait_timeout_while(m.lock().unwrap(), Duration::from_millis(100), |v| *v == 0)
        .unwrap();
    assert!(r.timed_out() && *g == 0);
    assert!(start.elapsed() >= Duration::from_millis(100));
}

#[test]
fn notify_all_wakes_every_process() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let m = Mutex::<u32>::open(&a[0])?;
            let cv = Condvar::open(&a[1])?;
            let waiting = Value::<u32>::open(&a[2])?;
            let g = m.lock().expect("not poisoned");
            waiting.fetch_add(1);
            let (g, r) = cv
                .wait_timeout_while(g, Duration::from_secs(60), |go| *go == 0)
                .expect("not poisoned");
            assert!(!r.timed_out() && *g == 1);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (mn, cn, wn) = (
        names.add("cv-all-m"),
        names.add("cv-all"),
        names.add("cv-all-w"),
    );
    let m = Mutex::<u32>::create(&mn, 0).unwrap();
    let cv = Condvar::create(&cn).unwrap();
    let waiting = Value::<u32>::create(&wn, 0).unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            spawn(
                "notify_all_wakes_every_process",
                "wait",
                &format!("{mn},{cn},{wn}"),
            )
        })
        .collect();
    assert!(eventually(Duration::from_secs(30), || waiting.load() == 3));
    *m.lock().unwrap() = 1;
    cv.notify_all();
    for k in kids {
        expect_success(k);
    }
}

/// Two processes take turns 1,000 times each: every turn is handed over by a notify, so a
/// single lost wake-up would stall the game (the waits time out after 30 s and fail).
#[test]
fn ping_pong_between_processes() {
    const ROUNDS: u32 = 1_000;
    fn play(m: &Mutex<[u32; 2]>, cv: &Condvar, me: u32) {
        for _ in 0..ROUNDS {
            let (mut g, r) = cv
                .wait_timeout_while(m.lock().unwrap(), Duration::from_secs(30), |s| s[0] != me)
                .unwrap();
            assert!(!r.timed_out(), "turn never came: lost wake-up?");
            g[0] = 1 - me;
            g[1] += 1;
            drop(g);
            cv.notify_one();
        }
    }
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            play(&Mutex::open(&a[0])?, &Condvar::open(&a[1])?, 1);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (mn, cn) = (names.add("cv-pp-m"), names.add("cv-pp"));
    let m = Mutex::<[u32; 2]>::create(&mn, [0, 0]).unwrap();
    let cv = Condvar::create(&cn).unwrap();
    let child = spawn("ping_pong_between_processes", "pong", &format!("{mn},{cn}"));
    let start = Instant::now();
    play(&m, &cv, 0);
    expect_success(child);
    assert_eq!(*m.lock().unwrap(), [0, 2 * ROUNDS]);
    println!(
        "{} condvar hand-overs between two processes in {:?}",
        2 * ROUNDS,
        start.elapsed()
    );
}

/// The waiter is woken, but the notifier dies holding the mutex: the waiter's re-lock takes
/// the mutex over and returns `Err(PoisonError)` promptly instead of hanging.
#[test]
fn wait_returns_poisoned_when_the_holder_dies() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let m = Mutex::<u32>::open(&a[0])?;
            let cv = Condvar::open(&a[1])?;
            let flag = Value::<u32>::open(&a[2])?;
            assert!(eventually(Duration::from_secs(30), || flag.load() == 1));
            let mut g = m.lock().expect("not poisoned");
            *g = 9;
            cv.notify_all();
            flag.store(2); // "notified and holding"
            eventually(Duration::from_secs(60), || false); // killed meanwhile
            drop(g);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (mn, cn, fnm) = (names.add("cv-d-m"), names.add("cv-d"), names.add("cv-d-f"));
    let m = Mutex::<u32>::create(&mn, 0).unwrap();
    let cv = Condvar::create(&cn).unwrap();
    let flag = Value::<u32>::create(&fnm, 0).unwrap();
    let mut child = spawn(
        "wait_returns_poisoned_when_the_holder_dies",
        "notify",
        &format!("{mn},{cn},{fnm}"),
    );
    let g = m.lock().unwrap();
    let killer = std::thread::spawn({
        let pid = child.id();
        let flag = Value::<u32>::open(&fnm).unwrap();
        move || {
            assert!(eventually(Duration::from_secs(30), || flag.load() == 2));
            sigkill(pid);
        }
    });
    flag.store(1); // we hold the mutex: the child's lock waits for our `wait` to release it
    let start = Instant::now();
    let r = cv.wait_timeout(g, Duration::from_secs(30));
    let took = start.elapsed();
    killer.join().unwrap();
    let (g, timed_out) = r.expect_err("the holder died").into_inner();
    assert!(!timed_out.timed_out());
    assert_eq!(*g, 9);
    assert!(took < Duration::from_secs(10), "{took:?}");
    drop(g);
    let _ = child.wait();
}
