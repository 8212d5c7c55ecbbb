//! `interproc-peer-iceoryx2`: iceoryx2 0.10 figures that `interproc bench` prints beside its own.
//!
//! This crate is its own workspace: interproc never depends on iceoryx2. It measures the same
//! shapes as interproc's spsc scenarios, with iceoryx2's ordinary publish/subscribe API:
//!
//! - `rtt --round-trips N [--preloan]`: two processes (this one and a forked child) pinned to CPU 0
//!   and CPU 1 ping-pong a `u64` over two pub/sub services (`ping`: parent -> child, `pong`: child
//!   -> parent). Each receive busy-waits (`receive()` in a loop until `Some`). Each send is
//!   `loan_uninit` + `write_payload` + `send` inside the timed round trip; with `--preloan` the
//!   next sample is loaned outside it (the shape of iceoryx2's own benchmark). Prints p50/p99/p99.9.
//! - `stream --count N`: a one-way `u64` stream, publisher (child, CPU 1) -> subscriber (parent,
//!   CPU 0, busy-wait receive), subscriber buffer 1024. No message may be lost, so the service has
//!   safe overflow OFF and the publisher uses `BackpressureStrategy::RetryUntilDelivered` (a full
//!   buffer makes the publisher wait, with iceoryx2's adaptive wait: yield, then short sleeps).
//!   The subscriber checks every value arrives in order. Prints messages/s, timed by the
//!   subscriber from the publisher's start to the last message.
//! - `cleanup --pid P`: removes what a run of process P left behind (after it was killed).
//!
//! Output: one JSON line on stdout. Errors: a message on stderr and exit status 1.
//!
//! Leftovers: every run uses its own iceoryx2 config, prefix `iox2_ipx<pid>_` (so its files in
//! /dev/shm are `/dev/shm/iox2_ipx<pid>_*`, including the persistent `*.global_mgmt` segment
//! iceoryx2 never removes) and root path `/tmp/iceoryx2-interproc-<pid>/` (instead of the shared
//! default `/tmp/iceoryx2/`). A guard removes both when the run ends, on success, error or panic.
//! The child dies with the parent (PR_SET_PDEATHSIG), and the whole run has a deadline
//! (`--timeout-s`, default 60) that every busy-wait checks, so a failed peer ends and cleans up
//! instead of spinning forever.

use std::fmt::Debug;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;

type Res<T> = Result<T, String>;

/// Maps any iceoryx2 error to a message with context.
fn ctx<E: Debug>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e:?}")
}

// ---------------------------------------------------------------------------------------------
// Per-run iceoryx2 files and their cleanup.

fn prefix(pid: u32) -> String {
    format!("iox2_ipx{pid}_")
}

fn root_dir(pid: u32) -> String {
    format!("/tmp/iceoryx2-interproc-{pid}/")
}

/// The iceoryx2 config of the run of process `pid`: its own file prefix and root directory.
fn config(pid: u32) -> Res<Config> {
    let mut c = Config::default();
    c.global.prefix = FileName::new(prefix(pid).as_bytes()).map_err(ctx("file prefix"))?;
    c.global
        .set_root_path(&Path::new(root_dir(pid).as_bytes()).map_err(ctx("root path"))?);
    Ok(c)
}

/// Removes `/dev/shm/iox2_ipx<pid>_*` and `/tmp/iceoryx2-interproc-<pid>/`. Returns how many
/// entries it removed.
fn cleanup(pid: u32) -> usize {
    let p = prefix(pid);
    let mut removed = 0;
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        for entry in dir.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&p)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    if std::fs::remove_dir_all(root_dir(pid)).is_ok() {
        removed += 1;
    }
    removed
}

/// Cleans up this run's files when dropped (normal end, early return, or unwinding panic).
struct CleanupGuard(u32);

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        cleanup(self.0);
    }
}

fn node(cfg: &Config) -> Res<Node<ipc::Service>> {
    NodeBuilder::new()
        .config(cfg)
        // Default signal behaviour: SIGTERM/SIGINT end the process (the guard cannot run then;
        // `cleanup --pid` exists for that case).
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(ctx("create node"))
}

// ---------------------------------------------------------------------------------------------
// Two pinned processes with a start line and a failure flag in an anonymous shared page.

struct Ctl {
    ptr: *mut AtomicU64,
}

// The start protocol (each flag on its own cache line, set once, Release/Acquire):
// 1. the parent creates the services and its ports, sets PARENT_READY;
// 2. the child opens the services, creates its ports, connects its publisher (the connection to
//    the parent's subscriber now exists), sets CHILD_READY;
// 3. the parent connects its publisher and its subscriber (attaching to the child's connection),
//    sets GO and starts measuring; the child connects its subscriber and starts.
// A publisher must not send before the subscriber is attached: iceoryx2 drops a sample that finds
// a full buffer with no attached receiver. At the end the parent sets DONE, and only then does the
// child drop its ports (so no sample the parent still needs goes away with the publisher).
const PARENT_READY: usize = 0;
const CHILD_READY: usize = 16;
const GO: usize = 32;
const DONE: usize = 48;
const CHILD_FAILED: usize = 64;

impl Ctl {
    fn new() -> Res<Ctl> {
        // SAFETY: an anonymous shared mapping without address hint, checked for MAP_FAILED; it is
        // zero-filled, a valid state for `AtomicU64`s, and never unmapped (process lifetime).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err("mmap of the control page failed".into());
        }
        Ok(Ctl {
            ptr: p as *mut AtomicU64,
        })
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < 4096 / 8);
        // SAFETY: in bounds of the 4096-byte page (checked), 8-aligned, only accessed atomically.
        unsafe { &*self.ptr.add(i) }
    }
}

fn pin(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is the empty set; `cpu` is far below CPU_SETSIZE; pid 0 is
    // this thread. A failure (fewer CPUs) only leaves the process unpinned.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Deadline and peer checks for busy-wait loops, consulted only every 4096 empty polls.
struct Watch {
    deadline: Instant,
    child: Option<libc::pid_t>,
}

impl Watch {
    /// `Err` if the deadline passed or (in the parent) the child has failed or exited.
    fn check(&self, ctl: &Ctl, what: &str) -> Res<()> {
        if Instant::now() > self.deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        if let Some(pid) = self.child {
            if ctl.word(CHILD_FAILED).load(Ordering::Acquire) != 0 {
                return Err(format!("child failed while waiting for {what}"));
            }
            let mut status = 0;
            // SAFETY: polls our own child without blocking; `status` is a valid out-pointer.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                return Err(format!(
                    "child exited (status {status:#x}) while waiting for {what}"
                ));
            }
        }
        Ok(())
    }

    fn await_flag(&self, ctl: &Ctl, i: usize, what: &str) -> Res<()> {
        let mut spins = 0u32;
        while ctl.word(i).load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) {
                self.check(ctl, what)?;
            }
        }
        Ok(())
    }
}

/// Busy-waits for the next sample of `sub`.
#[inline]
fn receive(sub: &Sub, ctl: &Ctl, watch: &Watch) -> Res<u64> {
    let mut spins = 0u32;
    loop {
        if let Some(sample) = sub.receive().map_err(ctx("receive"))? {
            return Ok(*sample);
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) {
            watch.check(ctl, "a message")?;
        }
        std::hint::spin_loop();
    }
}

type Sub = iceoryx2::port::subscriber::Subscriber<ipc::Service, u64, ()>;
type Pub = iceoryx2::port::publisher::Publisher<ipc::Service, u64, ()>;

/// Forks; the child (pinned to CPU 1) runs `child` and leaves with `_exit`, setting CHILD_FAILED
/// on error or panic; the parent (CPU 0) runs `parent`, then reaps the child (killing it first if
/// `parent` failed).
fn two_processes<R>(
    timeout: Duration,
    child: impl FnOnce(&Ctl, &Watch) -> Res<()>,
    parent: impl FnOnce(&Ctl, &Watch) -> Res<R>,
) -> Res<R> {
    let ctl = Ctl::new()?;
    let deadline = Instant::now() + timeout;
    // SAFETY: single-threaded here (no iceoryx2 object exists yet); the child only runs `child`
    // and leaves with `_exit`, never returning into main's cleanup guard.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        // SAFETY: prctl with an integer signal number; the child dies if the parent dies.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        pin(1);
        let watch = Watch {
            deadline,
            child: None,
        };
        let ok =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(&ctl, &watch))) {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    eprintln!("interproc-peer-iceoryx2 (child): {e}");
                    false
                }
                Err(_) => false,
            };
        if !ok {
            ctl.word(CHILD_FAILED).store(1, Ordering::Release);
        }
        // SAFETY: leaves the forked child at once, without the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    pin(0);
    let watch = Watch {
        deadline,
        child: Some(pid),
    };
    let result = parent(&ctl, &watch);
    if result.is_err() {
        // SAFETY: signals our own child, which may already have exited (then this is a no-op on
        // the zombie).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: reaps our own child; `status` is a valid out-pointer. ECHILD (already reaped by a
    // `Watch::check`) leaves status 0 and the result decides.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let r = result?;
    if ctl.word(CHILD_FAILED).load(Ordering::Acquire) != 0
        || !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
    {
        return Err(format!("child failed (status {status:#x})"));
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// The two measurements.

const WARMUP: u64 = 100;

fn service(
    node: &Node<ipc::Service>,
    name: &str,
    buffer: usize,
    safe_overflow: bool,
) -> Res<iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>> {
    let name: ServiceName = name.try_into().map_err(ctx("service name"))?;
    node.service_builder(&name)
        .publish_subscribe::<u64>()
        .max_publishers(1)
        .max_subscribers(1)
        .max_nodes(2)
        .history_size(0)
        .subscriber_max_buffer_size(buffer)
        .enable_safe_overflow(safe_overflow)
        .open_or_create()
        .map_err(ctx("open or create service"))
}

/// One send: loan, write, send; an error if no subscriber received it.
#[inline]
fn send(publisher: &Pub, value: u64) -> Res<()> {
    let sample = publisher.loan_uninit().map_err(ctx("loan"))?;
    let delivered = sample.write_payload(value).send().map_err(ctx("send"))?;
    if delivered == 0 {
        return Err("send reached no subscriber".into());
    }
    Ok(())
}

struct RttFigures {
    samples: Vec<u64>,
}

fn rtt(cfg: &Config, pid: u32, n: u64, preloan: bool, timeout: Duration) -> Res<RttFigures> {
    let ping = format!("interproc/bench/{pid}/ping");
    let pong = format!("interproc/bench/{pid}/pong");
    let total = n + WARMUP;
    two_processes(
        timeout,
        |ctl, watch| {
            watch.await_flag(ctl, PARENT_READY, "the parent's ports")?;
            let node = node(cfg)?;
            let ping_svc = service(&node, &ping, 2, true)?;
            let pong_svc = service(&node, &pong, 2, true)?;
            let sub = ping_svc
                .subscriber_builder()
                .buffer_size(2)
                .create()
                .map_err(ctx("create ping subscriber"))?;
            let publisher = pong_svc
                .publisher_builder()
                .create()
                .map_err(ctx("create pong publisher"))?;
            publisher
                .update_connections()
                .map_err(ctx("connect pong"))?;
            ctl.word(CHILD_READY).store(1, Ordering::Release);
            watch.await_flag(ctl, GO, "the start")?;
            sub.update_connections().map_err(ctx("attach ping"))?;
            let mut next = if preloan {
                Some(publisher.loan_uninit().map_err(ctx("loan"))?)
            } else {
                None
            };
            for _ in 0..total {
                let v = receive(&sub, ctl, watch)?;
                match next.take() {
                    Some(sample) => {
                        sample.write_payload(v).send().map_err(ctx("send"))?;
                        next = Some(publisher.loan_uninit().map_err(ctx("loan"))?);
                    }
                    None => send(&publisher, v)?,
                }
            }
            drop(next);
            watch.await_flag(ctl, DONE, "the end")
        },
        |ctl, watch| {
            let node = node(cfg)?;
            let ping_svc = service(&node, &ping, 2, true)?;
            let pong_svc = service(&node, &pong, 2, true)?;
            let sub = pong_svc
                .subscriber_builder()
                .buffer_size(2)
                .create()
                .map_err(ctx("create pong subscriber"))?;
            let publisher = ping_svc
                .publisher_builder()
                .create()
                .map_err(ctx("create ping publisher"))?;
            ctl.word(PARENT_READY).store(1, Ordering::Release);
            watch.await_flag(ctl, CHILD_READY, "the child's ports")?;
            publisher
                .update_connections()
                .map_err(ctx("connect ping"))?;
            sub.update_connections().map_err(ctx("attach pong"))?;
            ctl.word(GO).store(1, Ordering::Release);
            let mut samples = Vec::with_capacity(n as usize);
            let mut next = if preloan {
                Some(publisher.loan_uninit().map_err(ctx("loan"))?)
            } else {
                None
            };
            for i in 0..total {
                let t = Instant::now();
                match next.take() {
                    Some(sample) => {
                        sample.write_payload(i).send().map_err(ctx("send"))?;
                    }
                    None => send(&publisher, i)?,
                }
                let v = receive(&sub, ctl, watch)?;
                let ns = t.elapsed().as_nanos() as u64;
                if v != i {
                    return Err(format!("round trip {i} came back as {v}"));
                }
                if i >= WARMUP {
                    samples.push(ns);
                }
                if preloan {
                    next = Some(publisher.loan_uninit().map_err(ctx("loan"))?);
                }
            }
            drop(next);
            ctl.word(DONE).store(1, Ordering::Release);
            Ok(RttFigures { samples })
        },
    )
}

const STREAM_BUFFER: usize = 1024;

fn stream(cfg: &Config, pid: u32, n: u64, timeout: Duration) -> Res<u64> {
    let name = format!("interproc/bench/{pid}/stream");
    two_processes(
        timeout,
        |ctl, watch| {
            watch.await_flag(ctl, PARENT_READY, "the subscriber")?;
            let node = node(cfg)?;
            let svc = service(&node, &name, STREAM_BUFFER, false)?;
            let publisher = svc
                .publisher_builder()
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()
                .map_err(ctx("create publisher"))?;
            publisher.update_connections().map_err(ctx("connect"))?;
            ctl.word(CHILD_READY).store(1, Ordering::Release);
            watch.await_flag(ctl, GO, "the start")?;
            for i in 0..n {
                send(&publisher, i)?;
            }
            watch.await_flag(ctl, DONE, "the end")
        },
        |ctl, watch| {
            let node = node(cfg)?;
            let svc = service(&node, &name, STREAM_BUFFER, false)?;
            let sub = svc
                .subscriber_builder()
                .buffer_size(STREAM_BUFFER)
                .create()
                .map_err(ctx("create subscriber"))?;
            ctl.word(PARENT_READY).store(1, Ordering::Release);
            watch.await_flag(ctl, CHILD_READY, "the publisher")?;
            sub.update_connections().map_err(ctx("attach"))?;
            ctl.word(GO).store(1, Ordering::Release);
            let start = Instant::now();
            for i in 0..n {
                let v = receive(&sub, ctl, watch)?;
                if v != i {
                    return Err(format!(
                        "stream message {i} arrived as {v} (lost or reordered)"
                    ));
                }
            }
            let elapsed = start.elapsed().as_nanos() as u64;
            ctl.word(DONE).store(1, Ordering::Release);
            Ok(elapsed)
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Command line.

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

const USAGE: &str = "usage: interproc-peer-iceoryx2 rtt --round-trips N [--preloan] [--timeout-s S]
       interproc-peer-iceoryx2 stream --count N [--timeout-s S]
       interproc-peer-iceoryx2 cleanup --pid P";

struct Args {
    cmd: String,
    n: Option<u64>,
    preloan: bool,
    timeout: Duration,
}

fn parse(args: &[String]) -> Res<Args> {
    let cmd = args.first().ok_or(USAGE)?.clone();
    let mut a = Args {
        cmd,
        n: None,
        preloan: false,
        timeout: Duration::from_secs(60),
    };
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let mut value = || -> Res<u64> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{flag} needs a number\n{USAGE}"))
        };
        match flag.as_str() {
            "--round-trips" | "--count" | "--pid" => a.n = Some(value()?),
            "--timeout-s" => a.timeout = Duration::from_secs(value()?),
            "--preloan" => a.preloan = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn run(args: &Args) -> Res<String> {
    let n = args.n.filter(|&n| n > 0).ok_or(USAGE)?;
    let pid = std::process::id();
    if args.cmd == "cleanup" {
        let pid = u32::try_from(n).map_err(|_| "pid out of range")?;
        return Ok(format!(
            r#"{{"peer":"iceoryx2","kind":"cleanup","pid":{pid},"removed":{}}}"#,
            cleanup(pid)
        ));
    }
    let _guard = CleanupGuard(pid);
    set_log_level(LogLevel::Error);
    let cfg = config(pid)?;
    match args.cmd.as_str() {
        "rtt" => {
            let mut s = rtt(&cfg, pid, n, args.preloan, args.timeout)?.samples;
            s.sort_unstable();
            Ok(format!(
                r#"{{"peer":"iceoryx2","kind":"rtt","round_trips":{n},"warmup":{WARMUP},"preloan":{},"receive":"busy wait","min_ns":{},"p50_ns":{},"p99_ns":{},"p999_ns":{},"max_ns":{}}}"#,
                args.preloan,
                percentile(&s, 0.0),
                percentile(&s, 0.5),
                percentile(&s, 0.99),
                percentile(&s, 0.999),
                percentile(&s, 1.0),
            ))
        }
        "stream" => {
            let ns = stream(&cfg, pid, n, args.timeout)?.max(1);
            Ok(format!(
                r#"{{"peer":"iceoryx2","kind":"stream","count":{n},"elapsed_ns":{ns},"msg_per_s":{:.0},"subscriber_buffer":{STREAM_BUFFER},"safe_overflow":false,"backpressure":"RetryUntilDelivered","receive":"busy wait"}}"#,
                n as f64 * 1e9 / ns as f64
            ))
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args).and_then(|a| run(&a)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("interproc-peer-iceoryx2: {e}");
            ExitCode::from(1)
        }
    }
}
