//! `interproc bench --soak SECONDS`: a crash soak. For the given time it runs producers,
//! consumers and lock users in child processes, SIGKILLs one at a random moment each round,
//! checks what the survivors see, starts a replacement, and finally prints what it checked.
//!
//! Scenarios, in turn (one round each):
//! - `spsc-producer`: a child sends checksummed messages to this process's `spsc::Receiver`
//!   and records each acknowledged seq in a `Value` after `send` returns. After the kill the
//!   receiver drains until `Disconnected` (bounded): every message whole, in order, once, and
//!   every acknowledged one present.
//! - `spsc-consumer`: this process sends; a child receives and records each seq after `recv`
//!   returned. The next child must start right after what the dead one recorded (or one later:
//!   the dead one's last message, taken but not recorded); the sender sees `Disconnected`.
//! - `pipe`: a child is end B of a `Pipe` (sends its own stream, receives ours), end A is here.
//! - `queue`: two children feed a `Queue` this process drains; one dies per round and the
//!   survivor's later messages must still arrive (a claim of the dead never wedges the queue).
//! - `mutex`: two children update a `Mutex` whose two fields must stay equal; after a kill this
//!   process locks within 5 s: poisoned only if the victim held it, data as it left it.
//! - `semaphore`: two children take turns on a one-permit `Semaphore`; a permit held by the dead
//!   comes back (a leak is accepted only for a death inside `acquire`/`release`, as documented).
//!
//! "Recovery" is the time from the victim's death (reaped) to the survivors' next success.
//!
//! Names are `soak-<pid>-<what>` and removed at the end, also after Ctrl-C (SIGINT/SIGTERM are
//! caught and end the run). If the soak itself is killed, `interproc gc` removes what it left.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::TryLockError;
use std::time::{Duration, Instant};

use crate::checked::{pack, pipe_check, pipe_msg, seq_in, Guarded, Msg, Rng};
use interproc::spsc::{Receiver, Sender};
use interproc::{
    Error, Mutex, Pipe, Process, Queue, RecvTimeoutError, Semaphore, SendTimeoutError, Value,
};

/// Set by SIGINT/SIGTERM: finish the round, clean up, report.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Bound of every wait that must end "promptly".
const PROMPT: Duration = Duration::from_secs(5);
/// Timeout of the children's own blocking calls.
const CHILD_WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Children (run by `Process::spawn`; `main` calls `interproc::process::init()` first).

/// Ends a child whose parent is gone (the soak was killed), and reports a broken promise.
fn child_check(parent: u32) {
    if std::os::unix::process::parent_id() != parent {
        std::process::exit(3);
    }
}

/// Runs `op` with short timeouts until it succeeds, fails otherwise, or [`CHILD_WAIT`] has
/// passed, checking between tries that the soak still runs: a child whose parent was killed
/// leaves within a fraction of a second (and `interproc gc` can then remove the objects).
fn patiently<T, E>(
    parent: u32,
    mut op: impl FnMut(Duration) -> std::result::Result<T, E>,
    timed_out: impl Fn(&E) -> bool,
) -> std::result::Result<T, E> {
    let start = Instant::now();
    loop {
        match op(Duration::from_millis(200)) {
            Err(e) if timed_out(&e) && start.elapsed() < CHILD_WAIT => child_check(parent),
            other => return other,
        }
    }
}

fn child_fail(what: String) -> ! {
    eprintln!("interproc soak: child {}: {what}", std::process::id());
    std::process::exit(1)
}

fn spsc_producer((ring, acked, epoch): (String, String, u64)) {
    let tx = Sender::<Msg>::open(&ring).unwrap_or_else(|e| child_fail(format!("open: {e}")));
    produce_acked(&acked, epoch, |m, d| tx.send_timeout(m, d));
}

/// A producer child's loop: sends `Msg::new(epoch, 1..)` with `send` and records each seq in
/// the `Value` `acked` after the send returned.
fn produce_acked(
    acked: &str,
    epoch: u64,
    send: impl Fn(Msg, Duration) -> Result<(), SendTimeoutError<Msg>>,
) {
    let parent = std::os::unix::process::parent_id();
    let acked = Value::<u64>::open(acked).unwrap_or_else(|e| child_fail(e.to_string()));
    for seq in 1.. {
        child_check(parent);
        let sent = patiently(
            parent,
            |d| send(Msg::new(epoch, seq), d),
            |e| matches!(e, SendTimeoutError::Timeout(_)),
        );
        if let Err(e) = sent {
            child_fail(format!("send: {e}"));
        }
        acked.store(pack(epoch, seq));
    }
}

fn spsc_consumer((ring, taken): (String, String)) {
    let parent = std::os::unix::process::parent_id();
    let rx = Receiver::<Msg>::open(&ring).unwrap_or_else(|e| child_fail(format!("open: {e}")));
    let taken = Value::<u64>::open(&taken).unwrap_or_else(|e| child_fail(e.to_string()));
    let base = taken.load();
    let mut last = None;
    loop {
        child_check(parent);
        let m = patiently(
            parent,
            |d| rx.recv_timeout(d),
            |e| *e == RecvTimeoutError::Timeout,
        )
        .unwrap_or_else(|e| child_fail(format!("recv: {e}")));
        let ok = m.whole()
            && match last {
                None => m.seq == base + 1 || m.seq == base + 2,
                Some(l) => m.seq == l + 1,
            };
        if !ok {
            child_fail(format!(
                "got {m:?} after {last:?} (predecessor recorded {base})"
            ));
        }
        last = Some(m.seq);
        taken.store(m.seq);
    }
}

fn pipe_end((pipe, acked, taken, epoch, seed): (String, String, String, u64, u64)) {
    let parent = std::os::unix::process::parent_id();
    let c = Pipe::open(&pipe).unwrap_or_else(|e| child_fail(format!("open: {e}")));
    let acked = Value::<u64>::open(&acked).unwrap_or_else(|e| child_fail(e.to_string()));
    let taken = Value::<u64>::open(&taken).unwrap_or_else(|e| child_fail(e.to_string()));
    let mut rng = Rng::new(seed);
    let base = taken.load();
    let mut last = None;
    for seq in 1.. {
        child_check(parent);
        let span = if rng.below(5) == 0 { 1900 } else { 200 };
        let len = 24 + rng.below(span) as usize;
        let msg = pipe_msg(epoch, seq, len);
        let sent = patiently(
            parent,
            |d| c.send_timeout(&msg, d),
            |e| matches!(e, Error::Timeout),
        );
        if let Err(e) = sent {
            child_fail(format!("send: {e}"));
        }
        acked.store(pack(epoch, seq));
        while let Some(m) = c
            .try_recv()
            .unwrap_or_else(|e| child_fail(format!("recv: {e}")))
        {
            let ok = match (pipe_check(&m), last) {
                (Some((0, s)), None) => s == base + 1 || s == base + 2,
                (Some((0, s)), Some(l)) => s == l + 1,
                _ => false,
            };
            if !ok {
                child_fail(format!("bad message of {} bytes after {last:?}", m.len()));
            }
            let s = pipe_check(&m).map_or(0, |(_, s)| s);
            last = Some(s);
            taken.store(s);
        }
    }
}

fn queue_producer((queue, acked, epoch): (String, String, u64)) {
    let q = Queue::<Msg>::open(&queue).unwrap_or_else(|e| child_fail(format!("open: {e}")));
    produce_acked(&acked, epoch, |m, d| q.send_timeout(m, d));
}

fn mutex_worker((name, seed): (String, u64)) {
    let parent = std::os::unix::process::parent_id();
    let m = Mutex::<Guarded>::open(&name).unwrap_or_else(|e| child_fail(format!("open: {e}")));
    let me = u64::from(std::process::id());
    let mut rng = Rng::new(seed);
    loop {
        child_check(parent);
        let locked = patiently(
            parent,
            |d| m.lock_timeout(d),
            |e| matches!(e, TryLockError::WouldBlock),
        );
        let mut g = match locked {
            Ok(g) if g.a == g.b && g.holder == 0 => g,
            Ok(g) => child_fail(format!("inconsistent data under a clean lock: {:?}", *g)),
            Err(TryLockError::Poisoned(p)) => {
                let mut g = p.into_inner();
                if g.holder == me || !(g.a == g.b || g.a == g.b + 1) {
                    child_fail(format!(
                        "poisoned data not as a dead holder leaves it: {:?}",
                        *g
                    ));
                }
                g.b = g.a;
                g.holder = 0;
                m.clear_poison();
                g
            }
            Err(TryLockError::WouldBlock) => child_fail("lock timed out".into()),
        };
        g.holder = me;
        g.a += 1;
        for _ in 0..rng.below(2000) {
            std::hint::spin_loop();
        }
        g.b += 1;
        g.holder = 0;
        g.total += 1;
    }
}

fn semaphore_worker((name, state, owner, progress): (String, String, String, String)) {
    let parent = std::os::unix::process::parent_id();
    let s = Semaphore::open(&name).unwrap_or_else(|e| child_fail(format!("open: {e}")));
    let open = |n: &str| Value::<u64>::open(n).unwrap_or_else(|e| child_fail(e.to_string()));
    let (state, owner, progress) = (open(&state), open(&owner), open(&progress));
    let me = process_token(std::process::id());
    state.store(0);
    loop {
        child_check(parent);
        state.store(1);
        let acquired = patiently(
            parent,
            |d| {
                if s.acquire_timeout(d) {
                    Ok(())
                } else {
                    Err(())
                }
            },
            |_| true,
        );
        if acquired.is_err() {
            child_fail("acquire timed out".into());
        }
        state.store(2);
        let prev = owner.swap(me);
        // The previous owner must be dead (gone, a zombie, or its pid reused).
        if prev != 0 && prev != me && process_token(prev as u32) == prev {
            child_fail(format!("process {} holds the only permit too", prev as u32));
        }
        std::thread::yield_now();
        if owner.compare_exchange(me, 0).is_err() {
            child_fail("the permit was taken while held".into());
        }
        state.store(3);
        s.release();
        state.store(0);
        progress.fetch_add(1);
    }
}

/// Names a running process unambiguously: its pid and (low 32 bits of) its start time; 0 if
/// `pid` is gone or a zombie. A reused pid gets another start time.
fn process_token(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    match fields.get(19).and_then(|f| f.parse::<u64>().ok()) {
        Some(start) if !zombie => u64::from(pid) | (start & 0xFFFF_FFFF) << 32,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

/// What one scenario checked.
#[derive(Debug, Default)]
struct Stat {
    rounds: u64,
    kills: u64,
    verified: u64,
    recoveries: u64,
    max_recovery: Duration,
    leaks: u64,
}

impl Stat {
    fn recovered(&mut self, since: Instant) {
        self.recoveries += 1;
        self.max_recovery = self.max_recovery.max(since.elapsed());
    }
}

type Outcome = std::result::Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Unique names of this run; whatever is left of them is removed on drop.
struct Names {
    prefix: String,
    all: Vec<String>,
}

impl Names {
    fn add(&mut self, tag: &str) -> String {
        let name = format!("{}{tag}", self.prefix);
        self.all.push(name.clone());
        name
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.all {
            let _ = interproc::remove(n);
        }
    }
}

/// Kills `p` (SIGKILL) and reaps it; an exit code instead of the signal means the child found
/// a broken promise (it said which on stderr).
fn kill(p: &mut Process) -> Outcome {
    let _ = p.kill();
    match p.join_timeout(PROMPT).map_err(err)? {
        None => Err(format!("child {} did not die", p.pid())),
        Some(st) => {
            use std::os::unix::process::ExitStatusExt;
            if st.signal() == Some(libc::SIGKILL) {
                Ok(())
            } else {
                Err(format!(
                    "child {} ended with {st}, not by our SIGKILL",
                    p.pid()
                ))
            }
        }
    }
}

/// Runs `work` (each call bounded) until `done` says so, at most `limit`.
fn work_until(
    limit: Duration,
    mut work: impl FnMut() -> Outcome,
    mut done: impl FnMut() -> bool,
) -> std::result::Result<bool, String> {
    let t = Instant::now();
    while t.elapsed() < limit && !STOP.load(Ordering::Relaxed) {
        work()?;
        if done() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A random kill delay: 2 to 40 ms.
fn delay(rng: &mut Rng) -> Duration {
    Duration::from_micros(2_000 + rng.below(38_000))
}

/// Waits (polling) at most `limit` for `cond`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit && !STOP.load(Ordering::Relaxed) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// One kind of round.
trait Scenario {
    fn name(&self) -> &'static str;
    /// Starts what is missing, kills one child, checks the survivors.
    fn round(&mut self, rng: &mut Rng, st: &mut Stat) -> Outcome;
    /// Kills every child still running.
    fn stop(&mut self) {}
}

/// Checks the next message of a stream: whole, of `epoch`, seq `*next`.
fn expect_msg(m: &Msg, epoch: u64, next: &mut u64, what: &str) -> Outcome {
    if m.whole() && m.epoch == epoch && m.seq == *next {
        *next += 1;
        Ok(())
    } else {
        Err(format!(
            "{what}: got {m:?}, expected seq {next} of epoch {epoch}"
        ))
    }
}

/// Checks the next pipe message: whole, of `epoch`, seq `*next`.
fn expect_bytes(m: &[u8], epoch: u64, next: &mut u64) -> Outcome {
    match pipe_check(m) {
        Some((e, s)) if e == epoch && s == *next => {
            *next += 1;
            Ok(())
        }
        other => Err(format!(
            "pipe: got {other:?} ({} bytes), expected seq {next} of epoch {epoch}",
            m.len()
        )),
    }
}

struct SpscProducer {
    rx: Receiver<Msg>,
    ring: String,
    acked: Value<u64>,
    acked_name: String,
    epoch: u64,
}

impl Scenario for SpscProducer {
    fn name(&self) -> &'static str {
        "spsc-producer"
    }
    fn round(&mut self, rng: &mut Rng, st: &mut Stat) -> Outcome {
        self.epoch += 1;
        let epoch = self.epoch;
        let arg = (self.ring.clone(), self.acked_name.clone(), epoch);
        let mut p = Process::spawn(spsc_producer, arg).map_err(err)?;
        let (rx, acked) = (&self.rx, &self.acked);
        let mut next = 1;
        {
            let mut step = || match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(m) => expect_msg(&m, epoch, &mut next, "spsc"),
                Err(_) => Ok(()),
            };
            // Until a first sender attached, an empty receiver waits instead of reporting
            // Disconnected: let the first one attach for sure.
            if epoch == 1 {
                work_until(Duration::from_secs(30), &mut step, || {
                    acked.load() != 0 || !p.is_alive()
                })?;
                if acked.load() == 0 {
                    kill(&mut p)?;
                    return Err("spsc: the first producer never sent".into());
                }
            }
            work_until(delay(rng), &mut step, || false)?;
        }
        kill(&mut p)?;
        let dead = Instant::now();
        loop {
            match rx.recv_timeout(PROMPT) {
                Ok(m) => expect_msg(&m, epoch, &mut next, "spsc")?,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => return Err("spsc: receiver hung".into()),
            }
            if dead.elapsed() > PROMPT * 2 {
                return Err("spsc: receiver never saw the producer's death".into());
            }
        }
        st.recovered(dead);
        let (ack, got) = (seq_in(acked.load(), epoch), next - 1);
        if got != ack && got != ack + 1 {
            return Err(format!(
                "spsc: acknowledged up to {ack}, received up to {got}"
            ));
        }
        st.verified += got;
        Ok(())
    }
}

struct SpscConsumer {
    tx: Sender<Msg>,
    ring: String,
    taken: Value<u64>,
    taken_name: String,
    next: u64,
}

impl Scenario for SpscConsumer {
    fn name(&self) -> &'static str {
        "spsc-consumer"
    }
    fn round(&mut self, rng: &mut Rng, st: &mut Stat) -> Outcome {
        let arg = (self.ring.clone(), self.taken_name.clone());
        let mut p = Process::spawn(spsc_consumer, arg).map_err(err)?;
        let (tx, taken) = (&self.tx, &self.taken);
        let first = taken.load() == 0;
        {
            let next = &mut self.next;
            let mut step = || {
                match tx.send_timeout(Msg::new(0, *next), Duration::from_millis(1)) {
                    Ok(()) => *next += 1,
                    Err(SendTimeoutError::Disconnected(_)) => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(SendTimeoutError::Timeout(_)) => {}
                }
                Ok(())
            };
            // Until a first receiver attached, a full sender waits instead of failing.
            if first {
                work_until(Duration::from_secs(30), &mut step, || {
                    taken.load() != 0 || !p.is_alive()
                })?;
                if taken.load() == 0 {
                    kill(&mut p)?;
                    return Err("spsc: the first consumer never received".into());
                }
            }
            work_until(delay(rng), &mut step, || false)?;
        }
        kill(&mut p)?;
        let dead = Instant::now();
        loop {
            match tx.send_timeout(Msg::new(0, self.next), PROMPT) {
                Ok(()) => self.next += 1,
                Err(SendTimeoutError::Disconnected(_)) => break,
                Err(SendTimeoutError::Timeout(_)) => return Err("spsc: sender hung".into()),
            }
        }
        st.recovered(dead);
        st.verified = taken.load();
        Ok(())
    }
}

struct PipeEnd {
    a: interproc::Connection,
    pipe: String,
    acked: Value<u64>,
    acked_name: String,
    /// Written by the children only; kept here so that the name lives.
    _taken: Value<u64>,
    taken_name: String,
    next_a: u64,
    epoch: u64,
}

impl Scenario for PipeEnd {
    fn name(&self) -> &'static str {
        "pipe"
    }
    fn round(&mut self, rng: &mut Rng, st: &mut Stat) -> Outcome {
        self.epoch += 1;
        let epoch = self.epoch;
        let arg = (
            self.pipe.clone(),
            self.acked_name.clone(),
            self.taken_name.clone(),
            epoch,
            rng.next_u64(),
        );
        let mut p = Process::spawn(pipe_end, arg).map_err(err)?;
        let (a, acked) = (&self.a, &self.acked);
        let mut next_b = 1;
        {
            let next_a = &mut self.next_a;
            let mut step = || -> Outcome {
                let len = 24 + (*next_a as usize * 37) % 1500;
                match a.try_send(&pipe_msg(0, *next_a, len)) {
                    Ok(true) => *next_a += 1,
                    Ok(false) | Err(Error::Disconnected) => {}
                    Err(e) => return Err(format!("pipe send: {e}")),
                }
                match a.recv_timeout(Duration::from_millis(1)) {
                    Ok(m) => expect_bytes(&m, epoch, &mut next_b),
                    Err(Error::Timeout) | Err(Error::Disconnected) => Ok(()),
                    Err(e) => Err(format!("pipe recv: {e}")),
                }
            };
            // Until end B first attached, A's sends wait instead of failing.
            if epoch == 1 {
                work_until(Duration::from_secs(30), &mut step, || {
                    acked.load() != 0 || !p.is_alive()
                })?;
                if acked.load() == 0 {
                    kill(&mut p)?;
                    return Err("pipe: the first end B never sent".into());
                }
            }
            work_until(delay(rng), &mut step, || false)?;
        }
        kill(&mut p)?;
        let dead = Instant::now();
        loop {
            match a.recv_timeout(PROMPT) {
                Ok(m) => expect_bytes(&m, epoch, &mut next_b)?,
                Err(Error::Disconnected) => break,
                Err(e) => return Err(format!("pipe: end A after B died: {e}")),
            }
            if dead.elapsed() > PROMPT * 2 {
                return Err("pipe: end A never saw B's death".into());
            }
        }
        st.recovered(dead);
        let (ack, got) = (seq_in(acked.load(), epoch), next_b - 1);
        if got != ack && got != ack + 1 {
            return Err(format!(
                "pipe: B acknowledged up to {ack}, A received up to {got}"
            ));
        }
        st.verified += got;
        Ok(())
    }
}

/// Checks the next queued message against its producer's stream.
fn take_queued(next: &mut std::collections::HashMap<u64, u64>, m: &Msg) -> Outcome {
    let n = next.entry(m.epoch).or_insert(1);
    expect_msg(m, m.epoch, n, "queue")
}

struct QueueProducers {
    q: Queue<Msg>,
    queue: String,
    acked: [Value<u64>; 2],
    acked_names: [String; 2],
    producers: [Option<(Process, u64)>; 2],
    next: std::collections::HashMap<u64, u64>,
    epoch: u64,
}

impl Scenario for QueueProducers {
    fn name(&self) -> &'static str {
        "queue"
    }
    fn round(&mut self, rng: &mut Rng, st: &mut Stat) -> Outcome {
        for i in 0..2 {
            if self.producers[i].is_none() {
                self.epoch += 1;
                let arg = (self.queue.clone(), self.acked_names[i].clone(), self.epoch);
                let p = Process::spawn(queue_producer, arg).map_err(err)?;
                self.producers[i] = Some((p, self.epoch));
            }
        }
        let (q, next) = (&self.q, &mut self.next);
        work_until(
            delay(rng),
            || match q.recv_timeout(Duration::from_millis(1)) {
                Ok(m) => take_queued(next, &m),
                Err(_) => Ok(()),
            },
            || false,
        )?;
        let v = rng.below(2) as usize;
        let (mut victim, dead_epoch) = self.producers[v].take().expect("both run");
        kill(&mut victim)?;
        let dead = Instant::now();
        let s_epoch = self.producers[1 - v].as_ref().expect("both run").1;
        let s_acked = seq_in(self.acked[1 - v].load(), s_epoch);
        // Not wedged: what the survivor claims after the death arrives.
        while next.get(&s_epoch).copied().unwrap_or(1) <= s_acked + 2 {
            match q.recv_timeout(PROMPT) {
                Ok(m) => take_queued(next, &m)?,
                Err(e) => return Err(format!("queue wedged after a producer died: {e}")),
            }
        }
        st.recovered(dead);
        let got = self.next.get(&dead_epoch).copied().unwrap_or(1) - 1;
        let ack = seq_in(self.acked[v].load(), dead_epoch);
        if got != ack && got != ack + 1 {
            return Err(format!(
                "queue: acknowledged up to {ack}, received up to {got}"
            ));
        }
        st.verified += got;
        Ok(())
    }
    fn stop(&mut self) {
        for (p, _) in self.producers.iter_mut().flatten() {
            let _ = kill(p);
        }
    }
}

struct MutexWorkers {
    m: Mutex<Guarded>,
    name: String,
    workers: [Option<Process>; 2],
}

impl Scenario for MutexWorkers {
    fn name(&self) -> &'static str {
        "mutex"
    }
    fn round(&mut self, rng: &mut Rng, st: &mut Stat) -> Outcome {
        for w in &mut self.workers {
            if w.is_none() {
                let arg = (self.name.clone(), rng.next_u64());
                *w = Some(Process::spawn(mutex_worker, arg).map_err(err)?);
            }
        }
        std::thread::sleep(delay(rng));
        let v = rng.below(2) as usize;
        let mut victim = self.workers[v].take().expect("both run");
        let victim_pid = u64::from(victim.pid());
        kill(&mut victim)?;
        let dead = Instant::now();
        let (mut g, poisoned) = match self.m.lock_timeout(PROMPT) {
            Ok(g) => (g, false),
            Err(TryLockError::Poisoned(p)) => (p.into_inner(), true),
            Err(TryLockError::WouldBlock) => return Err("mutex: not recovered within 5 s".into()),
        };
        st.recovered(dead);
        if poisoned {
            // The victim died holding it: the data is as it left it.
            let holder_ok = g.holder == 0 || g.holder == victim_pid;
            if !holder_ok || !(g.a == g.b || g.a == g.b + 1) {
                return Err(format!(
                    "mutex: poisoned data not as a dead holder leaves it: {:?}",
                    *g
                ));
            }
            g.b = g.a;
            g.holder = 0;
            self.m.clear_poison();
        } else if g.a != g.b || g.holder != 0 {
            return Err(format!("mutex: clean lock, inconsistent data {:?}", *g));
        }
        st.verified = g.total;
        Ok(())
    }
    fn stop(&mut self) {
        for p in self.workers.iter_mut().flatten() {
            let _ = kill(p);
        }
    }
}

/// A semaphore worker's state before it reports in.
const STARTING: u64 = 4;

struct SemaphoreWorkers {
    s: Semaphore,
    name: String,
    states: [Value<u64>; 2],
    state_names: [String; 2],
    /// Written by the children only; kept here so that the name lives.
    _owner: Value<u64>,
    owner_name: String,
    progress: Value<u64>,
    progress_name: String,
    workers: [Option<Process>; 2],
}

impl Scenario for SemaphoreWorkers {
    fn name(&self) -> &'static str {
        "semaphore"
    }
    fn round(&mut self, rng: &mut Rng, st: &mut Stat) -> Outcome {
        for i in 0..2 {
            if self.workers[i].is_none() {
                self.states[i].store(STARTING);
                let arg = (
                    self.name.clone(),
                    self.state_names[i].clone(),
                    self.owner_name.clone(),
                    self.progress_name.clone(),
                );
                self.workers[i] = Some(Process::spawn(semaphore_worker, arg).map_err(err)?);
            }
        }
        let states = &self.states;
        if !wait_for(Duration::from_secs(30), || {
            states.iter().all(|s| s.load() != STARTING)
        }) {
            return Err("semaphore: workers never started".into());
        }
        std::thread::sleep(delay(rng));
        let v = rng.below(2) as usize;
        let mut victim = self.workers[v].take().expect("both run");
        kill(&mut victim)?;
        let dead = Instant::now();
        let dead_state = self.states[v].load();
        let p0 = self.progress.load();
        let progress = &self.progress;
        if wait_for(Duration::from_secs(3), || progress.load() >= p0 + 2) {
            st.recovered(dead);
        } else if (dead_state == 1 || dead_state == 3)
            && self.s.available() == 0
            && self.s.recover() == 0
        {
            // Died between the two steps of acquire or release: one permit leaked (as
            // documented); put it back.
            st.leaks += 1;
            self.s.release();
            let back = Instant::now();
            if !wait_for(PROMPT, || progress.load() >= p0 + 2) {
                return Err("semaphore: no progress after the leaked permit came back".into());
            }
            st.recovered(back);
        } else {
            return Err(format!(
                "semaphore: the survivor made no progress after a death in state {dead_state}"
            ));
        }
        st.verified = self.progress.load();
        Ok(())
    }
    fn stop(&mut self) {
        for p in self.workers.iter_mut().flatten() {
            let _ = kill(p);
        }
    }
}

/// Creates every scenario's objects under `names`.
fn scenarios(names: &mut Names) -> interproc::Result<Vec<Box<dyn Scenario>>> {
    let value = |names: &mut Names, tag: &str| -> interproc::Result<(Value<u64>, String)> {
        let n = names.add(tag);
        Ok((Value::<u64>::create(&n, 0)?, n))
    };
    let ring = names.add("spsc-p");
    let (acked, acked_name) = value(names, "spsc-p-acked")?;
    let spsc_p = SpscProducer {
        rx: Receiver::create(&ring, 64)?,
        ring,
        acked,
        acked_name,
        epoch: 0,
    };
    let ring = names.add("spsc-c");
    let (taken, taken_name) = value(names, "spsc-c-taken")?;
    let spsc_c = SpscConsumer {
        tx: Sender::create(&ring, 16)?,
        ring,
        taken,
        taken_name,
        next: 1,
    };
    let pipe = names.add("pipe");
    let (acked, acked_name) = value(names, "pipe-acked")?;
    let (taken, taken_name) = value(names, "pipe-taken")?;
    let pipe_end = PipeEnd {
        a: Pipe::create(&pipe, 4096)?,
        pipe,
        acked,
        acked_name,
        _taken: taken,
        taken_name,
        next_a: 1,
        epoch: 0,
    };
    let queue = names.add("queue");
    let (a0, n0) = value(names, "queue-acked0")?;
    let (a1, n1) = value(names, "queue-acked1")?;
    let queue_p = QueueProducers {
        q: Queue::create(&queue, 16)?,
        queue,
        acked: [a0, a1],
        acked_names: [n0, n1],
        producers: [None, None],
        next: Default::default(),
        epoch: 0,
    };
    let name = names.add("mutex");
    let mutex = MutexWorkers {
        m: Mutex::create(&name, Guarded::default())?,
        name,
        workers: [None, None],
    };
    let name = names.add("semaphore");
    let (s0, sn0) = value(names, "semaphore-state0")?;
    let (s1, sn1) = value(names, "semaphore-state1")?;
    let (owner, owner_name) = value(names, "semaphore-owner")?;
    let (progress, progress_name) = value(names, "semaphore-progress")?;
    let sem = SemaphoreWorkers {
        s: Semaphore::create(&name, 1)?,
        name,
        states: [s0, s1],
        state_names: [sn0, sn1],
        _owner: owner,
        owner_name,
        progress,
        progress_name,
        workers: [None, None],
    };
    Ok(vec![
        Box::new(spsc_p),
        Box::new(spsc_c),
        Box::new(pipe_end),
        Box::new(queue_p),
        Box::new(mutex),
        Box::new(sem),
    ])
}

/// Runs the soak for `seconds` and prints what it checked.
pub fn run(seconds: u64) -> ExitCode {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let mut names = Names {
        prefix: format!("soak-{}-", std::process::id()),
        all: Vec::new(),
    };
    eprintln!(
        "interproc bench --soak: {seconds} s of SIGKILLed producers, consumers and lock \
         holders; objects are named {}* and removed at the end (`interproc gc` removes them \
         if this process is killed)",
        names.prefix
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = Rng::new(seed);
    let mut all = match scenarios(&mut names) {
        Ok(all) => all,
        Err(e) => return crate::fail(format!("soak: cannot create the objects: {e}")),
    };
    let mut stats: Vec<Stat> = all.iter().map(|_| Stat::default()).collect();
    let started = Instant::now();
    let budget = Duration::from_secs(seconds);
    let mut failure = None;
    let mut turn = 0;
    while started.elapsed() < budget && !STOP.load(Ordering::Relaxed) {
        let i = turn % all.len();
        turn += 1;
        stats[i].rounds += 1;
        stats[i].kills += 1;
        if let Err(e) = all[i].round(&mut rng, &mut stats[i]) {
            // Ctrl-C reaches the children too: a round cut short by it proves nothing.
            if !STOP.load(Ordering::Relaxed) {
                failure = Some(format!("{}: {e}", all[i].name()));
            }
            break;
        }
    }
    let took = started.elapsed();
    for s in &mut all {
        s.stop();
    }
    let labels: Vec<&str> = all.iter().map(|s| s.name()).collect();
    drop(all);
    drop(names);
    report(&labels, &stats, took);
    match failure {
        Some(e) => crate::fail(format!("soak FAILED (seed {seed}): {e}")),
        None if STOP.load(Ordering::Relaxed) => {
            println!("interrupted: stopped early (nothing failed); the run's objects are removed");
            ExitCode::from(130)
        }
        None => ExitCode::SUCCESS,
    }
}

fn report(labels: &[&str], stats: &[Stat], took: Duration) {
    let row = |name: &str, s: &Stat| {
        println!(
            "{name:<14} {:>7} {:>7} {:>12} {:>11} {:>12.1} ms {:>6}",
            s.rounds,
            s.kills,
            s.verified,
            s.recoveries,
            s.max_recovery.as_secs_f64() * 1e3,
            s.leaks
        )
    };
    println!(
        "{:<14} {:>7} {:>7} {:>12} {:>11} {:>15} {:>6}",
        "scenario", "rounds", "kills", "verified", "recoveries", "max recovery", "leaks"
    );
    let mut total = Stat::default();
    for (name, s) in labels.iter().zip(stats) {
        row(name, s);
        total.rounds += s.rounds;
        total.kills += s.kills;
        total.verified += s.verified;
        total.recoveries += s.recoveries;
        total.max_recovery = total.max_recovery.max(s.max_recovery);
        total.leaks += s.leaks;
    }
    row("total", &total);
    println!(
        "\n{:.1} s. verified: messages (spsc, pipe, queue) whole, in order, never twice, every \
         acknowledged one received after its sender died, receivers and senders never hung; \
         locked updates (mutex) and permit handovers (semaphore) with the lock recovered, \
         poisoned only after a holder died, its data as the holder left it. recovery: from \
         the victim's death to the survivors' next success. leaks: semaphore permits lost to \
         a death between the two steps of acquire/release (documented; put back).",
        took.as_secs_f64()
    );
}
