//! `Process`: real child processes re-executed from this test binary.
//!
//! Every test calls `interproc::process::init()` first: a child is this binary run as
//! `<test> --exact ...` (`Builder::for_test`), and `init` makes that test run the spawned
//! function instead of its body. Results come back through exit statuses and `Value`s.
mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use interproc::process::{Builder, PANIC_EXIT_CODE};
use interproc::{Error, Process, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use common::Names;

const JOIN_LIMIT: Duration = Duration::from_secs(120);

/// Spawns `f(arg)` in a child routed into test `test` of this binary.
fn spawn_in<A: Serialize + DeserializeOwned>(test: &str, f: fn(A), arg: A) -> Process {
    Process::builder()
        .for_test(test)
        .spawn(f, arg)
        .expect("spawn child process")
}

/// Joins with a generous limit (a hung child fails the test instead of hanging it), then
/// checks that plain `join` returns the same, cached status.
fn finish(p: &mut Process) -> ExitStatus {
    let status = match p.join_timeout(JOIN_LIMIT).expect("join") {
        Some(status) => status,
        None => {
            let _ = p.kill();
            panic!("child {} did not finish within {JOIN_LIMIT:?}", p.pid());
        }
    };
    assert_eq!(p.join().expect("second join"), status);
    assert!(!p.is_alive());
    status
}

// ---------------------------------------------------------------------------------------------
// Functions the children run.

fn store_square((name, n): (String, i64)) {
    Value::<i64>::open(&name).unwrap().store(n * n);
}

fn panics(_: ()) {
    panic!("deliberate panic in the child");
}

fn exits_with(code: i32) {
    std::process::exit(code);
}

fn sleeps(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

fn store_pid(name: String) {
    Value::<u32>::open(&name).unwrap().store(std::process::id());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Circle { r: f64 },
    Square(u32),
    Empty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    name: String,
    id: u64,
    note: Option<String>,
    shapes: Vec<Shape>,
    tags: BTreeMap<String, i16>,
    text: String,
}

fn sample_order(name: &str) -> Order {
    Order {
        name: name.to_owned(),
        id: u64::MAX - 7,
        note: None,
        shapes: vec![Shape::Circle { r: 1.5 }, Shape::Square(4), Shape::Empty],
        tags: [("a".to_owned(), -3), ("zz".to_owned(), 12_000)]
            .into_iter()
            .collect(),
        text: "naïve \"quotes\" \\ tab\t newline\n 日本語 🦀".to_owned(),
    }
}

fn check_order(order: Order) {
    assert_eq!(order, sample_order(&order.name));
    Value::<u32>::open(&order.name).unwrap().store(1);
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn big_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn store_checksum((name, bytes): (String, Vec<u8>)) {
    assert_eq!(bytes.len(), 1 << 20);
    Value::<u64>::open(&name).unwrap().store(fnv1a(&bytes));
}

/// Serialises without `missing`, so the child cannot deserialise it.
#[derive(Serialize, Deserialize)]
struct Lopsided {
    #[serde(skip_serializing)]
    missing: u32,
    present: u32,
}

fn never_runs(arg: Lopsided) {
    unreachable!(
        "the argument cannot deserialise ({}, {})",
        arg.missing, arg.present
    );
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn join_reports_success_and_the_function_ran() {
    interproc::process::init();
    let mut names = Names::new();
    let name = names.add("proc-sq");
    let v = Value::<i64>::create(&name, 0).unwrap();
    let mut p = spawn_in(
        "join_reports_success_and_the_function_ran",
        store_square,
        (name.clone(), 12),
    );
    let status = finish(&mut p);
    assert!(status.success(), "{status}");
    assert_eq!(status.code(), Some(0));
    assert_eq!(v.load(), 144);
    // Plain join, on a fresh process.
    let mut p = spawn_in(
        "join_reports_success_and_the_function_ran",
        store_square,
        (name, -5),
    );
    assert!(p.join().unwrap().success());
    assert!(!p.is_alive());
    assert_eq!(v.load(), 25);
}

#[test]
fn panic_in_child_is_a_failure() {
    interproc::process::init();
    let mut p = spawn_in("panic_in_child_is_a_failure", panics, ());
    let status = finish(&mut p);
    assert!(!status.success());
    assert_eq!(status.code(), Some(PANIC_EXIT_CODE));
}

#[test]
fn exit_code_is_reported() {
    interproc::process::init();
    let mut p = spawn_in("exit_code_is_reported", exits_with, 7);
    let status = finish(&mut p);
    assert_eq!(status.code(), Some(7));
    assert!(!status.success());
}

#[test]
fn kill_stops_a_sleeping_child() {
    interproc::process::init();
    let mut p = spawn_in("kill_stops_a_sleeping_child", sleeps, 600);
    assert!(p.is_alive());
    assert_eq!(p.join_timeout(Duration::from_millis(50)).unwrap(), None);
    assert!(p.is_alive());
    p.kill().unwrap();
    assert!(!p.is_alive());
    let status = p.join().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!status.success());
    p.kill().expect("kill after reaping is a no-op");
    assert!(format!("{p:?}").contains(&p.pid().to_string()));
}

#[test]
fn terminate_sends_sigterm() {
    interproc::process::init();
    let mut p = spawn_in("terminate_sends_sigterm", sleeps, 600);
    p.terminate().unwrap();
    let status = finish(&mut p);
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn pid_matches_the_child() {
    interproc::process::init();
    let mut names = Names::new();
    let name = names.add("proc-pid");
    let v = Value::<u32>::create(&name, 0).unwrap();
    let mut p = spawn_in("pid_matches_the_child", store_pid, name);
    let pid = p.pid();
    assert_ne!(pid, std::process::id());
    assert!(finish(&mut p).success());
    assert_eq!(v.load(), pid);
    let debug = format!("{p:?}");
    assert!(
        debug.contains("Process") && debug.contains(&pid.to_string()),
        "{debug}"
    );
}

#[test]
fn struct_argument_arrives_intact() {
    interproc::process::init();
    let mut names = Names::new();
    let name = names.add("proc-struct");
    let v = Value::<u32>::create(&name, 0).unwrap();
    let mut p = spawn_in(
        "struct_argument_arrives_intact",
        check_order,
        sample_order(&name),
    );
    assert!(finish(&mut p).success());
    assert_eq!(v.load(), 1);
}

#[test]
fn large_argument_arrives_intact() {
    interproc::process::init();
    let mut names = Names::new();
    let name = names.add("proc-big");
    let v = Value::<u64>::create(&name, 0).unwrap();
    let bytes = big_bytes(1 << 20);
    let expected = fnv1a(&bytes);
    let mut p = spawn_in(
        "large_argument_arrives_intact",
        store_checksum,
        (name, bytes),
    );
    assert!(finish(&mut p).success());
    assert_eq!(v.load(), expected);
}

#[test]
fn undeserialisable_argument_is_an_error() {
    interproc::process::init();
    let arg = Lopsided {
        missing: 1,
        present: 2,
    };
    let mut p = Process::builder()
        .for_test("undeserialisable_argument_is_an_error")
        .stderr(Stdio::null())
        .spawn(never_runs, arg)
        .unwrap();
    match p.join() {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("missing"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(!p.is_alive());
    assert!(matches!(p.join(), Err(Error::InvalidArgument(_))));
}

#[test]
fn unserialisable_argument_fails_in_spawn() {
    interproc::process::init();
    let mut map = BTreeMap::new();
    map.insert((1u8, 2u8), 3u8); // JSON object keys must be strings
    let r = Process::builder()
        .for_test("no_such_test")
        .spawn(|_: BTreeMap<(u8, u8), u8>| {}, map);
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

/// Deliberately does NOT call `init()`: the child of `forgotten_init_is_reported` runs it.
/// Run normally (no `ARG_VAR`), it does nothing.
#[test]
fn helper_without_init() {
    if let Ok(name) = std::env::var(common::ARG_VAR) {
        // A spawned child that skipped init() must not spawn again (it would recurse).
        let r = Process::builder()
            .for_test("no_such_test")
            .spawn(exits_with, 0);
        let refused = matches!(r, Err(Error::InvalidArgument(_)));
        // A program it starts inherits the variable and the payload descriptor; its init()
        // must see a payload addressed to another pid and quietly ignore it.
        let grandchild = Command::new(std::env::current_exe().unwrap())
            .args(["init_ignores_stale_variable", "--exact", "--nocapture"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let quiet = !String::from_utf8_lossy(&grandchild.stderr).contains("ignoring");
        let verdict = if !refused {
            2
        } else if !grandchild.status.success() || !quiet {
            3
        } else {
            1
        };
        Value::<u32>::open(&name).unwrap().store(verdict);
    }
}

#[test]
fn forgotten_init_is_reported() {
    interproc::process::init();
    let mut names = Names::new();
    let name = names.add("proc-noinit");
    let v = Value::<u32>::create(&name, 0).unwrap();
    let mut p = Process::builder()
        .for_test("helper_without_init")
        .env(common::ARG_VAR, &name)
        .stdout(Stdio::null())
        .spawn(exits_with, 3)
        .unwrap();
    match p.join() {
        Err(Error::Io(e)) => assert!(e.to_string().contains("init()"), "{e}"),
        other => panic!("expected an error naming init(), got {other:?}"),
    }
    assert_eq!(
        v.load(),
        1,
        "spawn in a child that skipped init() must be refused"
    );
}

/// `init()` with a stale variable: warns, removes it, returns.
#[test]
fn init_ignores_stale_variable() {
    interproc::process::init();
    assert!(std::env::var_os("INTERPROC_PROCESS_FD").is_none());
}

#[test]
fn stale_payload_variable_is_ignored() {
    interproc::process::init();
    for fd in ["0", "12345", "junk"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["init_ignores_stale_variable", "--exact", "--nocapture"])
            .env("INTERPROC_PROCESS_FD", fd)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "fd {fd}: {}\n{stderr}", out.status);
        assert!(stderr.contains("ignoring INTERPROC_PROCESS_FD"), "{stderr}");
    }
}

#[test]
fn closures_without_captures_work() {
    interproc::process::init();
    let mut p = spawn_in(
        "closures_without_captures_work",
        |n: i32| std::process::exit(n + 1),
        4,
    );
    assert_eq!(finish(&mut p).code(), Some(5));
}

#[test]
fn piped_stdout_is_available() {
    interproc::process::init();
    use std::io::Read;
    let mut p = Process::builder()
        .for_test("piped_stdout_is_available")
        .stdout(Stdio::piped())
        .spawn(
            |word: String| {
                println!("MARK {word}");
            },
            "hello".to_owned(),
        )
        .unwrap();
    let mut out = String::new();
    p.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    assert!(finish(&mut p).success());
    // libtest's own "test ... " line precedes it, without a newline.
    assert!(out.contains("MARK hello\n"), "{out}");
}

#[test]
fn process_is_send_and_sync() {
    interproc::process::init();
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<Process>();
    check::<Builder>();
}

// --- Many processes, in an isolated child (other tests' children would skew the counts). ---

const MANY: &str = "many_sequential_spawns_leave_no_zombies_or_fds";

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// (pid, state) of every process whose parent is this one.
fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 1..].split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == me {
            out.push((pid, state));
        }
    }
    out
}

fn spawn_many(n: u32) {
    let fds_before = open_fds();
    for i in 0..n {
        let mut p = spawn_in(MANY, exits_with, (i % 3) as i32);
        assert_eq!(p.join().unwrap().code(), Some((i % 3) as i32));
        assert!(!p.is_alive());
    }
    assert_eq!(children(), vec![], "joined children must be gone");
    assert_eq!(open_fds(), fds_before, "descriptors leaked");

    // Dropped without join: not killed, reaped in the background, never a zombie.
    let dropped: Vec<u32> = (0..4).map(|_| spawn_in(MANY, sleeps, 0).pid()).collect();
    let gone = common::eventually(Duration::from_secs(60), || {
        let kids = children();
        dropped
            .iter()
            .all(|pid| !kids.iter().any(|(k, _)| k == pid))
    });
    assert!(gone, "dropped children not reaped: {:?}", children());
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
}

#[test]
fn many_sequential_spawns_leave_no_zombies_or_fds() {
    interproc::process::init();
    // The child spawns grandchildren of its own, which also checks that init() removed the
    // variable (or spawn would refuse).
    let mut p = spawn_in(MANY, spawn_many, 20);
    let status = finish(&mut p);
    assert!(status.success(), "{status}");
}

// --- The example, end to end. ---

#[test]
fn square_cube_example_prints_the_classic_lines() {
    interproc::process::init();
    // target/<profile>/deps/process-<hash> -> target/<profile>/examples/square_cube
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("examples/square_cube"))
        .unwrap();
    if !example.exists() {
        eprintln!(
            "skipped: {} not built (plain `cargo test` builds it)",
            example.display()
        );
        return;
    }
    let out = Command::new(&example)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["Square: 25", "Cube: 125", "Both Processes Completed!"]
    );
}
