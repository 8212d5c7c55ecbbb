//! Multi-process tests of `RwLock`: data crossing processes, concurrent readers, exclusion,
//! dead writers (poison), dead readers (discounted), stopped readers (never discounted).

mod common;

use std::process::Command;
use std::sync::TryLockError;
use std::time::{Duration, Instant};

use common::{arg, eventually, expect_success, role, run_role, sigkill, spawn, Names};
use interproc::{RwLock, Value};

#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Config {
    version: u64,
    values: [u32; 6],
    check: u64,
}

impl Config {
    fn consistent(&self) -> bool {
        self.check == self.version * 7 && self.values.iter().all(|&v| v as u64 == self.version)
    }
    fn next(&mut self) {
        self.version += 1;
        self.values = [self.version as u32; 6];
        self.check = self.version * 7;
    }
}

fn args() -> Vec<String> {
    arg().split(',').map(str::to_owned).collect()
}

fn await_flag(flag: &Value<u32>, value: u32) {
    assert!(
        eventually(Duration::from_secs(60), || flag.load() == value),
        "flag never became {value}"
    );
}

#[test]
fn data_written_by_one_process_is_read_by_another() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let l = RwLock::<Config>::open(&arg())?;
            let mut g = l.write().expect("not poisoned");
            for _ in 0..5 {
                g.next();
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("rw-data");
    let l = RwLock::<Config>::create(&name, Config::default()).unwrap();
    expect_success(spawn(
        "data_written_by_one_process_is_read_by_another",
        "write",
        &name,
    ));
    let g = l.read().unwrap();
    assert!(g.consistent());
    assert_eq!(g.version, 5);
}

#[test]
fn many_readers_at_once() {
    const READERS: u32 = 3;
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let l = RwLock::<Config>::open(&a[0])?;
            let inside = Value::<u32>::open(&a[1])?;
            let g = l.read().expect("not poisoned");
            inside.fetch_add(1);
            // Every reader holds its read lock at the same time, or this never completes
            // (the parent adds the last 1 once it saw all READERS inside).
            assert!(eventually(Duration::from_secs(60), || inside.load() > READERS));
            assert!(g.consistent());
            drop(g);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (name, inside_name) = (names.add("rw-many"), names.add("rw-many-in"));
    let l = RwLock::<Config>::create(&name, Config::default()).unwrap();
    let inside = Value::<u32>::create(&inside_name, 0).unwrap();
    let kids: Vec<_> = (0..READERS)
        .map(|_| {
            spawn(
                "many_readers_at_once",
                "read",
                &format!("{name},{inside_name}"),
            )
        })
        .collect();
    assert!(eventually(Duration::from_secs(30), || inside.load() == READERS));
    // All readers hold it: a writer cannot get in, another reader can.
    assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
    drop(l.try_read().expect("readers share"));
    inside.fetch_add(1); // release them
    let start = Instant::now();
    let mut g = l.write_timeout(Duration::from_secs(30)).unwrap();
    g.next();
    drop(g);
    println!(
        "writer got in {:?} after releasing the readers",
        start.elapsed()
    );
    for k in kids {
        expect_success(k);
    }
}

#[test]
fn readers_and_writers_in_two_processes_exclude() {
    const N: u32 = 5_000;
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let l = RwLock::<Config>::open(&a[0])?;
            for _ in 0..N {
                if a[1] == "write" {
                    l.write().expect("not poisoned").next();
                } else {
                    let g = l.read().expect("not poisoned");
                    assert!(g.consistent(), "read a torn write: {:?}", *g);
                }
            }
            Ok(())
        });
    }
    let mut names = Names::new();
    let name = names.add("rw-excl");
    let l = RwLock::<Config>::create(&name, Config::default()).unwrap();
    let kids: Vec<_> = ["write", "read", "write", "read"]
        .iter()
        .map(|r| {
            spawn(
                "readers_and_writers_in_two_processes_exclude",
                r,
                &format!("{name},{r}"),
            )
        })
        .collect();
    for k in kids {
        expect_success(k);
    }
    let g = l.read().unwrap();
    assert!(g.consistent());
    assert_eq!(g.version, 2 * N as u64);
}

#[test]
fn dead_writer_poisons() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let l = RwLock::<Config>::open(&a[0])?;
            let flag = Value::<u32>::open(&a[1])?;
            let mut g = l.write().expect("not poisoned");
            g.next();
            g.values[0] = 1234; // half-way through an update when it dies
            flag.store(1);
            await_flag(&flag, 99);
            drop(g);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (name, flag_name) = (names.add("rw-dw"), names.add("rw-dw-flag"));
    let l = RwLock::<Config>::create(&name, Config::default()).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let mut child = spawn(
        "dead_writer_poisons",
        "write",
        &format!("{name},{flag_name}"),
    );
    assert!(eventually(Duration::from_secs(30), || flag.load() == 1));
    sigkill(child.id());
    let killed = Instant::now();
    let r = l.read();
    let recovery = killed.elapsed();
    println!("rwlock recovery after SIGKILL of the writer: {recovery:?}");
    let g = r.expect_err("a dead writer poisons").into_inner();
    assert!(recovery < Duration::from_secs(2), "{recovery:?}");
    assert_eq!(
        (g.version, g.values[0]),
        (1, 1234),
        "the dead writer's data is kept"
    );
    drop(g);
    let _ = child.wait();
    assert!(matches!(l.try_write(), Err(TryLockError::Poisoned(_))));
    let mut g = l.write().unwrap_err().into_inner();
    g.values[0] = 1;
    drop(g);
    l.clear_poison();
    assert!(l.read().unwrap().consistent());
}

#[test]
fn dead_reader_does_not_block_a_writer() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let l = RwLock::<Config>::open(&a[0])?;
            let flag = Value::<u32>::open(&a[1])?;
            let g = l.read().expect("not poisoned");
            let g2 = l.read().expect("not poisoned"); // two read locks die with it
            flag.store(1);
            await_flag(&flag, 99);
            drop((g, g2));
            Ok(())
        });
    }
    let mut names = Names::new();
    let (name, flag_name) = (names.add("rw-dr"), names.add("rw-dr-flag"));
    let l = RwLock::<Config>::create(&name, Config::default()).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let mut child = spawn(
        "dead_reader_does_not_block_a_writer",
        "read",
        &format!("{name},{flag_name}"),
    );
    assert!(eventually(Duration::from_secs(30), || flag.load() == 1));
    assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
    sigkill(child.id());
    let killed = Instant::now();
    let r = l.write();
    let recovery = killed.elapsed();
    println!("writer past a SIGKILLed reader after {recovery:?}");
    let mut g = r.expect("a dead reader does not poison");
    assert!(recovery < Duration::from_secs(2), "{recovery:?}");
    g.next();
    drop(g);
    let _ = child.wait();
    assert_eq!(l.read().unwrap().version, 1);
}

#[test]
fn stopped_reader_is_never_discounted() {
    if role().is_some() {
        run_role(|| -> interproc::Result<()> {
            let a = args();
            let l = RwLock::<Config>::open(&a[0])?;
            let flag = Value::<u32>::open(&a[1])?;
            let g = l.read().expect("not poisoned");
            flag.store(1);
            await_flag(&flag, 2);
            assert!(
                g.consistent() && g.version == 0,
                "nobody wrote under our read lock"
            );
            drop(g);
            Ok(())
        });
    }
    let mut names = Names::new();
    let (name, flag_name) = (names.add("rw-stop"), names.add("rw-stop-flag"));
    let l = RwLock::<Config>::create(&name, Config::default()).unwrap();
    let flag = Value::<u32>::create(&flag_name, 0).unwrap();
    let child = spawn(
        "stopped_reader_is_never_discounted",
        "read",
        &format!("{name},{flag_name}"),
    );
    assert!(eventually(Duration::from_secs(30), || flag.load() == 1));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-s", "STOP", &pid])
        .status()
        .unwrap()
        .success());
    assert!(matches!(
        l.write_timeout(Duration::from_millis(300)),
        Err(TryLockError::WouldBlock)
    ));
    // The timed-out writer withdrew: readers get in again.
    drop(l.try_read().expect("no writer pending any more"));
    flag.store(2);
    assert!(Command::new("kill")
        .args(["-s", "CONT", &pid])
        .status()
        .unwrap()
        .success());
    l.write().expect("not poisoned").next();
    expect_success(child);
}
