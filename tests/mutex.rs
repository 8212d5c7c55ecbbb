//! Multi-process tests of `Mutex` / `Lock`: exclusion, poisoning by a killed holder, no
//! take-over from a stopped one, try/timeout variants, and the cost of waiting.

mod common;

use std::process::Command;
use std::sync::TryLockError;
use std::time::{Duration, Instant};

use common::{arg, eventually, expect_success, role, run_role, sigkill, spawn, Names};
use interproc::{Lock, Mutex, Value};

/// Data whose consistency a torn critical section would break.
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Counter {
    n: u64,
    triple: u64,
}

/// The names a parent hands a child, comma-separated.
fn args() -> Vec<String> {
    arg().split(',').map(str::to_owned).collect()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -s {sig} {pid}");
}

/// In a child: wait (bounded) until the flag reads `value`.
fn await_flag(flag: &Value<u32>, value: u32) {
    assert!(
        eventually(Duration::from_secs(60), || flag.load() == value),
        "flag never became {value}"
    );
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it and cannot fail for RUSAGE_SELF with a
    // valid pointer.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
fn two_processes_increment_exactly() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let m = Mutex::<Counter>::open(&arg())?;
            for _ in 0..200_000 {
                let mut g = m.lock().expect("not poisoned");
                assert_eq!(g.triple, g.n * 3, "torn critical section");
                g.n += 1;
                g.triple = g.n * 3;
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("mx-inc");
    let m = Mutex::<Counter>::create(&name, Counter::default()).unwrap();
    let start = Instant::now();
    let kids: Vec<_> = (0..2)
        .map(|_| spawn("two_processes_increment_exactly", "inc", &name))
        .collect();
    for k in kids {
        expect_success(k);
    }
    let g = m.lock().unwrap();
    assert_eq!(
        *g,
        Counter {
            n: 400_000,
            triple: 1_200_000
        }
    );
    println!("2 x 200,000 locked increments in {:?}", start.elapsed());
}

#[test]
fn killed_holder_poisons_promptly_and_keeps_its_data() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let m = Mutex::<Counter>::open(&a[0])?;
            let flag = Value::<u32>::open(&a[1])?;
            let mut g = m.lock().expect("not poisoned");
            g.n = 42;
            flag.store(1); // "holding"
            await_flag(&flag, 99); // never comes: the parent kills us first
            drop(g);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (name, flag_name) = (names.add("mx-kill"), names.add("mx-kill-flag"));
    let m = Mutex::<Counter>::create(&name, Counter::default()).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let mut child = spawn(
        "killed_holder_poisons_promptly_and_keeps_its_data",
        "hold",
        &format!("{name},{flag_name}"),
    );
    assert!(eventually(Duration::from_secs(30), || flag.load() == 1));
    sigkill(child.id());
    let killed = Instant::now();
    let res = m.lock();
    let recovery = killed.elapsed();
    println!("mutex recovery after SIGKILL of the holder: {recovery:?}");
    let mut g = res.expect_err("a killed holder poisons").into_inner();
    assert!(recovery < Duration::from_secs(2), "took {recovery:?}");
    assert_eq!(g.n, 42, "the dead holder's write is kept");
    g.n = 43;
    drop(g);
    let _ = child.wait();
    assert!(m.is_poisoned(), "stays poisoned until cleared");
    assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
    m.clear_poison();
    assert!(!m.is_poisoned());
    assert_eq!(m.lock().unwrap().n, 43);
}

#[test]
fn try_lock_would_block_while_another_process_holds() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let l = Lock::open(&a[0])?;
            let flag = Value::<u32>::open(&a[1])?;
            let g = l.lock().expect("not poisoned");
            flag.store(1);
            await_flag(&flag, 2);
            drop(g);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (name, flag_name) = (names.add("mx-try"), names.add("mx-try-flag"));
    let l = Lock::create(&name, ()).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let child = spawn(
        "try_lock_would_block_while_another_process_holds",
        "hold",
        &format!("{name},{flag_name}"),
    );
    assert!(eventually(Duration::from_secs(30), || flag.load() == 1));
    assert!(matches!(l.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(matches!(
        l.lock_timeout(Duration::from_millis(50)),
        Err(TryLockError::WouldBlock)
    ));
    flag.store(2);
    let g = l.lock_timeout(Duration::from_secs(30)).expect("released");
    drop(g);
    expect_success(child);
    assert!(!l.is_poisoned());
}

#[test]
fn stopped_holder_is_never_taken_over() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let m = Mutex::<Counter>::open(&a[0])?;
            let flag = Value::<u32>::open(&a[1])?;
            let mut g = m.lock().expect("not poisoned");
            g.n = 7;
            flag.store(1);
            await_flag(&flag, 2);
            g.n = 8;
            drop(g); // unlocks normally after SIGCONT
            Ok(())
        });
    }
    let mut names = Names::new();
    let (name, flag_name) = (names.add("mx-stop"), names.add("mx-stop-flag"));
    let m = Mutex::<Counter>::create(&name, Counter::default()).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let child = spawn(
        "stopped_holder_is_never_taken_over",
        "hold",
        &format!("{name},{flag_name}"),
    );
    assert!(eventually(Duration::from_secs(30), || flag.load() == 1));
    signal(child.id(), "STOP");
    let start = Instant::now();
    assert!(matches!(
        m.lock_timeout(Duration::from_millis(300)),
        Err(TryLockError::WouldBlock)
    ));
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(!m.is_poisoned(), "a stopped holder is alive");
    flag.store(2);
    signal(child.id(), "CONT");
    let g = m.lock().expect("released cleanly, not poisoned");
    assert_eq!(g.n, 8);
    drop(g);
    expect_success(child);
}

#[test]
fn panic_while_holding_poisons_for_every_process() {
    if role().is_some() {
        run_role(|| -> Result<(), String> {
            let m = Mutex::<Counter>::open(&arg()).map_err(|e| e.to_string())?;
            let verdict = match m.lock() {
                Err(p) if p.get_ref().n == 5 => Ok(()),
                Err(_) => Err("poisoned, but the data is wrong".into()),
                Ok(_) => Err("not poisoned".into()),
            };
            verdict
        });
    }
    let mut names = Names::new();
    let name = names.add("mx-panic");
    let m = Mutex::<Counter>::create(&name, Counter::default()).unwrap();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            let mut g = m.lock().unwrap();
            g.n = 5;
            panic!("panic while holding (expected)");
        })
        .join()
    });
    assert!(r.is_err());
    assert!(m.is_poisoned());
    expect_success(spawn(
        "panic_while_holding_poisons_for_every_process",
        "check",
        &name,
    ));
}

#[test]
fn blocked_waiter_uses_almost_no_cpu() {
    if role().is_some() {
        run_role(|| -> Result<(), String> {
            let l = Lock::open(&arg()).map_err(|e| e.to_string())?;
            let (cpu0, t0) = (cpu_time(), Instant::now());
            let r = l.lock_timeout(Duration::from_secs(1));
            let (cpu, waited) = (cpu_time() - cpu0, t0.elapsed());
            println!("blocked {waited:?} in lock_timeout, using {cpu:?} of CPU");
            if !matches!(r, Err(TryLockError::WouldBlock)) {
                return Err("expected a timeout".into());
            }
            if waited < Duration::from_secs(1) {
                return Err(format!("returned early: {waited:?}"));
            }
            if cpu >= Duration::from_millis(100) {
                return Err(format!("waiting burnt {cpu:?} of CPU"));
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("mx-cpu");
    let l = Lock::create(&name, ()).unwrap();
    let g = l.lock().unwrap();
    expect_success(spawn("blocked_waiter_uses_almost_no_cpu", "wait", &name));
    drop(g);
}

#[test]
fn open_or_create_from_racing_processes() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let m = Mutex::<Counter>::open_or_create(&arg(), Counter::default())?;
            for _ in 0..2_000 {
                let mut g = m.lock().expect("not poisoned");
                g.n += 1;
                g.triple = g.n * 3;
            }
            m.persist(); // whoever created it must not unlink it under the others
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("mx-race");
    let kids: Vec<_> = (0..3)
        .map(|_| spawn("open_or_create_from_racing_processes", "race", &name))
        .collect();
    for k in kids {
        expect_success(k);
    }
    let m = Mutex::<Counter>::open(&name).unwrap();
    assert_eq!(
        *m.lock().unwrap(),
        Counter {
            n: 6_000,
            triple: 18_000
        }
    );
}

/// A holder dies while three other processes wait: exactly one takes over, the others follow
/// in turn (none is left asleep), and every one of them sees the poison.
#[test]
fn several_waiters_recover_from_a_killed_holder() {
    if let Some(r) = role() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let m = Mutex::<Counter>::open(&a[0])?;
            let flag = Value::<u32>::open(&a[1])?;
            if r == "hold" {
                let _g = m.lock().expect("not poisoned");
                flag.store(1);
                await_flag(&flag, 99); // killed meanwhile
                return Ok(());
            }
            flag.fetch_add(1); // one more waiter about to block
            let mut g = m.lock().expect_err("the holder was killed").into_inner();
            g.n += 1;
            g.triple = g.n * 3;
            Ok(())
        });
    }
    const WAITERS: u32 = 3;
    let mut names = Names::new();
    let (name, flag_name) = (names.add("mx-many"), names.add("mx-many-flag"));
    let m = Mutex::<Counter>::create(&name, Counter::default()).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let test = "several_waiters_recover_from_a_killed_holder";
    let arg = format!("{name},{flag_name}");
    let mut holder = spawn(test, "hold", &arg);
    assert!(eventually(Duration::from_secs(30), || flag.load() == 1));
    let waiters: Vec<_> = (0..WAITERS).map(|_| spawn(test, "wait", &arg)).collect();
    assert!(eventually(Duration::from_secs(30), || flag.load() == 1 + WAITERS));
    // Give the waiters a moment to park (not needed for correctness).
    std::thread::sleep(Duration::from_millis(50));
    sigkill(holder.id());
    let killed = Instant::now();
    for w in waiters {
        expect_success(w);
    }
    println!(
        "{WAITERS} waiters all through {:?} after the kill",
        killed.elapsed()
    );
    let _ = holder.wait();
    let g = m.lock().expect_err("still poisoned").into_inner();
    assert_eq!(*g, Counter { n: 3, triple: 9 });
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<S: Send + Sync>() {}
    send_sync::<Mutex<Counter>>();
    send_sync::<Lock>();
    send_sync::<interproc::Condvar>();
    send_sync::<interproc::RwLock<Counter>>();
}
