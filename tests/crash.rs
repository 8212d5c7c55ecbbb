//! Crash campaigns: real processes SIGKILLed at random points of their loops and at deliberate
//! failpoints (`src/failpoint.rs`, `name=kill@N`), while survivors keep using the object.
//!
//! Every campaign checks, after every kill:
//! - the survivors return from every call within a bound (no hang) and do not crash (a crash
//!   of the test process fails the test; a crash of a helper shows in its exit status);
//! - every message received is whole (checksummed) and arrives once, in order;
//! - nothing reported sent is lost: senders record the last acknowledged sequence number in a
//!   `Value<u64>` *after* `send` returned, and the receiver must have got every one of them;
//! - locks come back promptly, poisoned exactly when the victim held them, with their data
//!   as the victim left it (a lock-protected invariant that a torn section would break);
//! - a new endpoint (sender, receiver, pipe end) takes the victim's place and the stream goes on.
//!
//! Kill points: "early" rounds kill the victim 0-25 ms after spawn (exec, open, attach);
//! "running" rounds kill it 0-25 ms after it reported ready; failpoint rounds make it kill
//! itself at the N-th pass through a protocol point (random N).
//!
//! Rounds scale with `INTERPROC_CAMPAIGN_SCALE`; `INTERPROC_TEST_SEED` replays a run.

mod common;

use std::process::{Child, ExitStatus};
use std::sync::TryLockError;
use std::time::{Duration, Instant};

use common::checked::{pack, pipe_check, pipe_msg, unpack, Guarded, Msg};
use common::{
    arg, assert_sigkilled, child, kill_and_reap, role, rounds, run_role, seed, Names, Rng,
};
use interproc::spsc::{Receiver, Sender};
use interproc::{Error, Mutex, Pipe, RecvTimeoutError, RwLock, Semaphore, SendTimeoutError, Value};

/// Bound for anything that must happen "promptly" (generous: a loaded 2-core machine).
const PROMPT: Duration = Duration::from_secs(5);
/// Timeout of a victim's own blocking calls (it is killed long before, unless the parent died).
const VICTIM_WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Rounds.

/// When a round's victim dies.
#[derive(Debug, Clone)]
enum Plan {
    /// Killed this long after spawn (exec, open, attach: wherever it is).
    Early(Duration),
    /// Killed this long after it reported ready (inside its loop).
    Running(Duration),
    /// Kills itself at a failpoint (`INTERPROC_FAILPOINTS=<spec>`); killed by us after
    /// `fallback` of running if the failpoint is never reached.
    Failpoint { spec: String, fallback: Duration },
}

impl Plan {
    /// A random plan: mostly running kills, some early ones, `fp_percent` % failpoints chosen
    /// by `failpoint` (name=kill@N).
    fn pick(rng: &mut Rng, fp_percent: u64, failpoint: impl FnOnce(&mut Rng) -> String) -> Plan {
        let r = rng.below(100);
        if r < fp_percent {
            Plan::Failpoint {
                spec: failpoint(rng),
                fallback: Duration::from_secs(3),
            }
        } else if r < fp_percent + 15 {
            Plan::Early(Duration::from_micros(rng.below(25_000)))
        } else {
            Plan::Running(Duration::from_micros(rng.below(25_000)))
        }
    }

    fn is_failpoint(&self) -> bool {
        matches!(self, Plan::Failpoint { .. })
    }
}

/// How a victim ended.
struct Death {
    status: ExitStatus,
    /// We sent the SIGKILL (else a `kill` failpoint did).
    by_us: bool,
    /// When it was dead for sure (reaped).
    at: Instant,
}

/// Spawns role `role` of test `test` with `arg` under `plan`.
fn spawn_victim(test: &str, role: &str, arg: &str, plan: &Plan) -> Child {
    let mut c = child(test, role, arg);
    if let Plan::Failpoint { spec, .. } = plan {
        c.env("INTERPROC_FAILPOINTS", spec);
    }
    c.spawn().expect("spawn victim")
}

/// Runs `work` (each call must be bounded, about a millisecond) until the victim dies, killing
/// it as `plan` says. `ready` reads true once the victim is inside its loop.
fn drive(
    victim: &mut Child,
    plan: &Plan,
    mut ready: impl FnMut() -> bool,
    mut work: impl FnMut(),
) -> Death {
    let start = Instant::now();
    let mut ready_at: Option<Instant> = None;
    loop {
        work();
        if let Some(status) = victim.try_wait().expect("try_wait") {
            return Death {
                status,
                by_us: false,
                at: Instant::now(),
            };
        }
        if ready_at.is_none() && ready() {
            ready_at = Some(Instant::now());
        }
        let due = match plan {
            Plan::Early(d) => start.elapsed() >= *d,
            Plan::Running(d) => ready_at.is_some_and(|t| t.elapsed() >= *d),
            Plan::Failpoint { fallback, .. } => ready_at.is_some_and(|t| t.elapsed() >= *fallback),
        };
        if due {
            let status = kill_and_reap(victim);
            return Death {
                status,
                by_us: true,
                at: Instant::now(),
            };
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the victim never got ready (or never died)"
        );
    }
}

/// What a campaign checked, printed at its end.
#[derive(Debug, Default)]
struct Tally {
    rounds: usize,
    kills: usize,
    failpoint_kills: usize,
    verified: u64,
    recoveries: usize,
    max_recovery: Duration,
}

impl Tally {
    fn death(&mut self, d: &Death) {
        self.rounds += 1;
        self.kills += 1;
        if !d.by_us {
            self.failpoint_kills += 1;
        }
    }
    fn recovered(&mut self, took: Duration) {
        self.recoveries += 1;
        self.max_recovery = self.max_recovery.max(took);
        assert!(took < PROMPT, "recovery took {took:?}");
    }
    fn print(&self, what: &str) {
        eprintln!(
            "{what}: {} rounds, {} kills ({} at failpoints), {} messages verified, {} \
             recoveries, max recovery {:?}",
            self.rounds,
            self.kills,
            self.failpoint_kills,
            self.verified,
            self.recoveries,
            self.max_recovery
        );
    }
}

fn args() -> Vec<String> {
    arg().split(',').map(str::to_owned).collect()
}

fn num(s: &str) -> u64 {
    s.parse().expect("numeric argument")
}

// ---------------------------------------------------------------------------------------------
// spsc: the producer dies.

/// A producer is killed anywhere (random points, and before publishing its tail); the
/// receiver gets every acknowledged message exactly once, whole and in order, never hangs
/// (`Disconnected` within a bound after the death), and the next `Sender::open` takes over
/// and continues the stream.
#[test]
fn spsc_producer_killed_anywhere() {
    const TEST: &str = "spsc_producer_killed_anywhere";
    if role().is_some() {
        run_role(|| -> Result<(), String> {
            let a = args();
            let tx = Sender::<Msg>::open(&a[0]).map_err(|e| format!("open: {e}"))?;
            let acked = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
            let ready = Value::<u64>::open(&a[2]).map_err(|e| e.to_string())?;
            let (epoch, mode, mut rng) = (num(&a[3]), num(&a[4]), Rng::new(num(&a[5])));
            let mut tx = tx;
            ready.store(epoch);
            let mut seq = 1;
            loop {
                common::exit_if_orphaned();
                let k = rng.range(1, 8);
                let sent = match mode {
                    0 => {
                        tx.send_timeout(Msg::new(epoch, seq), VICTIM_WAIT)
                            .map_err(|e| format!("send: {e}"))?;
                        1
                    }
                    1 => {
                        let batch: Vec<Msg> = (seq..seq + k).map(|s| Msg::new(epoch, s)).collect();
                        tx.send_batch_timeout(&batch, VICTIM_WAIT)
                            .map_err(|e| format!("send_batch: {e}"))?;
                        k
                    }
                    _ => {
                        let mut chunk = tx
                            .write_chunk_timeout(k as usize, VICTIM_WAIT)
                            .map_err(|e| format!("write_chunk: {e}"))?;
                        let n = chunk.len() as u64;
                        let msgs: Vec<Msg> = (seq..seq + n).map(|s| Msg::new(epoch, s)).collect();
                        chunk.copy_from_slice(&msgs);
                        chunk.commit_all();
                        n
                    }
                };
                seq += sent;
                // Acknowledged: `send` returned. The receiver must get everything up to here.
                acked.store(pack(epoch, seq - 1));
            }
        });
    }
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut names = Names::new();
    let (ring, ack, rdy) = (
        names.add("cr-sp"),
        names.add("cr-sp-a"),
        names.add("cr-sp-r"),
    );
    let rx = Receiver::<Msg>::create(&ring, 16).unwrap();
    let acked = Value::<u64>::create(&ack, 0).unwrap();
    let ready = Value::<u64>::create(&rdy, 0).unwrap();
    let mut tally = Tally::default();
    for epoch in 1..=rounds(80) as u64 {
        let mode = rng.below(3);
        let plan = if epoch == 1 {
            // The first producer attaches for sure: before any sender ever attached, an empty
            // receiver waits (by design) instead of reporting Disconnected.
            Plan::Running(Duration::from_millis(5))
        } else {
            Plan::pick(&mut rng, 30, |r| {
                format!("spsc.send.before_publish=kill@{}", r.range(1, 200))
            })
        };
        let arg = format!("{ring},{ack},{rdy},{epoch},{mode},{}", rng.next_u64());
        let mut victim = spawn_victim(TEST, "produce", &arg, &plan);
        // The next seq expected from this epoch's producer.
        let mut next = 1u64;
        let take = |m: Msg, next: &mut u64| {
            assert!(m.whole(), "torn message {m:?}");
            assert_eq!(
                m.epoch, epoch,
                "message {m:?} from another producer (duplicate?)"
            );
            assert_eq!(m.seq, *next, "gap or duplicate in epoch {epoch}");
            *next += 1;
        };
        let death = drive(
            &mut victim,
            &plan,
            || ready.load() == epoch,
            || match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(m) => take(m, &mut next),
                Err(RecvTimeoutError::Timeout) => {}
                // Between producers: the last one is dead, the next not attached yet.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(1)),
            },
        );
        assert_sigkilled(&death.status, "the producer");
        tally.death(&death);
        // Drain: everything published arrives, then `Disconnected` (never a hang).
        loop {
            match rx.recv_timeout(PROMPT) {
                Ok(m) => take(m, &mut next),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("receiver hung: neither data nor Disconnected after the producer died")
                }
            }
        }
        tally.recovered(death.at.elapsed());
        let got = next - 1;
        tally.verified += got;
        let a_seq = match unpack(acked.load()) {
            (e, s) if e == epoch => s,
            _ => 0, // nothing acknowledged in this epoch
        };
        // At most the send in flight (published, not yet acknowledged) beyond the ack: one
        // message, or one batch / chunk of up to 8.
        let in_flight = if mode == 0 { 1 } else { 8 };
        assert!(
            got >= a_seq && got <= a_seq + in_flight,
            "epoch {epoch}: acknowledged up to {a_seq}, received up to {got}"
        );
        if plan.is_failpoint() && !death.by_us && mode == 0 {
            // Died at the N-th commit, before publishing it: exactly N - 1 messages arrived.
            let Plan::Failpoint { spec, .. } = &plan else {
                unreachable!()
            };
            let n: u64 = spec.rsplit('@').next().unwrap().parse().unwrap();
            assert_eq!(got, n - 1, "killed before publishing message {n}");
        }
    }
    tally.print(TEST);
}

// ---------------------------------------------------------------------------------------------
// spsc: the consumer dies.

/// A consumer is killed anywhere (random points, and after reading but before releasing its
/// head); the next `Receiver::open` takes over. No message a consumer received (and recorded)
/// is delivered again, none is skipped beyond the one batch a dying consumer had taken, and
/// every acknowledged send is eventually received.
#[test]
fn spsc_consumer_killed_anywhere() {
    const TEST: &str = "spsc_consumer_killed_anywhere";
    if let Some(r) = role() {
        run_role(|| -> Result<(), String> {
            let a = args();
            let mut rx = Receiver::<Msg>::open(&a[0]).map_err(|e| format!("open: {e}"))?;
            let taken = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
            let window = Value::<u64>::open(&a[2]).map_err(|e| e.to_string())?;
            let ready = Value::<u64>::open(&a[3]).map_err(|e| e.to_string())?;
            let (round, mode, exact) = (num(&a[4]), num(&a[5]), a[6] == "1");
            let mut rng = Rng::new(num(&a[7]));
            let drain = r == "drain";
            // What the previous consumer recorded, and how many it may have taken since.
            let base = taken.load();
            let allowed = window.load().max(1);
            ready.store(round);
            let mut last: Option<u64> = None;
            let check = |m: &Msg, last: &mut Option<u64>| -> Result<(), String> {
                if !m.whole() {
                    return Err(format!("torn message {m:?}"));
                }
                let ok = match *last {
                    None if exact => m.seq == base + 1,
                    None => m.seq > base && m.seq <= base + allowed + 1,
                    Some(l) => m.seq == l + 1,
                };
                if !ok {
                    return Err(format!(
                        "got {} after {last:?} (previous consumer recorded {base}, window \
                         {allowed}, exact {exact})",
                        m.seq
                    ));
                }
                *last = Some(m.seq);
                Ok(())
            };
            let mut buf = [Msg::new(0, 0); 8];
            loop {
                common::exit_if_orphaned();
                let k = rng.range(1, 8) as usize;
                window.store(if mode == 0 { 1 } else { k as u64 });
                let got: Result<usize, ()> = match mode {
                    0 => rx
                        .recv_timeout(VICTIM_WAIT)
                        .map(|m| {
                            buf[0] = m;
                            1
                        })
                        .map_err(|e| {
                            assert!(e == RecvTimeoutError::Disconnected, "recv timed out")
                        }),
                    1 => rx
                        .recv_batch_timeout(&mut buf[..k], VICTIM_WAIT)
                        .map_err(|e| {
                            assert!(e == RecvTimeoutError::Disconnected, "recv_batch timed out")
                        }),
                    _ => match rx.read_chunk_timeout(k, VICTIM_WAIT) {
                        Ok(chunk) => {
                            let n = chunk.len();
                            chunk.copy_to_slice(&mut buf[..n]);
                            chunk.commit_all();
                            Ok(n)
                        }
                        Err(e) => {
                            assert!(e == RecvTimeoutError::Disconnected, "read_chunk timed out");
                            Err(())
                        }
                    },
                };
                let Ok(n) = got else {
                    // Disconnected: only the final consumer sees that (the sender dropped).
                    return if drain {
                        Ok(())
                    } else {
                        Err("disconnected".into())
                    };
                };
                for m in &buf[..n] {
                    check(m, &mut last)?;
                }
                taken.store(last.unwrap());
            }
        });
    }
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut names = Names::new();
    let (ring, tk, win, rdy) = (
        names.add("cr-sc"),
        names.add("cr-sc-t"),
        names.add("cr-sc-w"),
        names.add("cr-sc-r"),
    );
    let tx = Sender::<Msg>::create(&ring, 16).unwrap();
    tx.persist(); // the draining consumer opens it after the sender is gone (Names removes it)
    let taken = Value::<u64>::create(&tk, 0).unwrap();
    let _window = Value::<u64>::create(&win, 1).unwrap();
    let ready = Value::<u64>::create(&rdy, 0).unwrap();
    let mut tally = Tally::default();
    let mut next_send = 1u64;
    // The previous victim died before releasing what it read: the next one must get it again.
    let mut exact = false;
    for round in 1..=rounds(80) as u64 {
        let mode = rng.below(3);
        let plan = if round == 1 {
            // Before any receiver ever attached, a full sender waits instead of failing.
            Plan::Running(Duration::from_millis(5))
        } else {
            Plan::pick(&mut rng, 30, |r| {
                format!("spsc.recv.before_release=kill@{}", r.range(1, 100))
            })
        };
        let arg = format!(
            "{ring},{tk},{win},{rdy},{round},{mode},{},{}",
            exact as u8,
            rng.next_u64()
        );
        let mut victim = spawn_victim(TEST, "consume", &arg, &plan);
        let death = drive(
            &mut victim,
            &plan,
            || ready.load() == round,
            || match tx.send_timeout(Msg::new(0, next_send), Duration::from_millis(1)) {
                Ok(()) => next_send += 1,
                Err(SendTimeoutError::Timeout(_)) => {}
                // Between consumers.
                Err(SendTimeoutError::Disconnected(_)) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
            },
        );
        assert_sigkilled(&death.status, "the consumer");
        tally.death(&death);
        // Died at the failpoint: it had read slots without releasing them.
        exact = plan.is_failpoint() && !death.by_us;
        // The sender notices the death (never blocks past its timeout).
        let t = Instant::now();
        loop {
            match tx.send_timeout(Msg::new(0, next_send), PROMPT) {
                Ok(()) => next_send += 1,
                Err(SendTimeoutError::Disconnected(_)) => break,
                Err(SendTimeoutError::Timeout(_)) => panic!("sender hung after the consumer died"),
            }
        }
        tally.recovered(t.elapsed());
    }
    // A last consumer drains everything once the sender is gone.
    drop(tx);
    let arg = format!(
        "{ring},{tk},{win},{rdy},0,0,{},{}",
        exact as u8,
        rng.next_u64()
    );
    let mut last = child(TEST, "drain", &arg).spawn().unwrap();
    let status = common::wait_timeout(&mut last, Duration::from_secs(60));
    assert!(status.success(), "the draining consumer failed: {status}");
    assert_eq!(
        taken.load(),
        next_send - 1,
        "every acknowledged send was received"
    );
    tally.verified = next_send - 1;
    tally.print(TEST);
}

// ---------------------------------------------------------------------------------------------
// Pipe: end B dies.

/// Payload length of the next pipe message: mostly short, sometimes up to `max`.
fn pipe_len(rng: &mut Rng, max: usize) -> usize {
    if rng.chance(80) {
        rng.range(24, 200) as usize
    } else {
        rng.range(24, max as u64) as usize
    }
}

/// End B of a pipe is killed anywhere: at random points, mid-payload (inside `send_with`),
/// after the whole record is written but before the tail publishes it, after a wrap's padding
/// record, and after reading a message before releasing it. End A gets every message B's
/// `send` acknowledged, whole, once and in order, then `Disconnected` (never a hang); A's own
/// sends fail with `Disconnected` while B is dead and go on when a new B takes the end over;
/// every message A sent is received by some B exactly once (one may be lost only to a B that
/// died having received it).
#[test]
fn pipe_end_killed_anywhere() {
    const TEST: &str = "pipe_end_killed_anywhere";
    if let Some(r) = role() {
        pipe_victim(&r);
    }
    pipe_campaign(TEST, false);
}

/// As [`pipe_end_killed_anywhere`] with the roles swapped: the victims hold end A (the
/// creator's end, whose first holder dropped it), the survivor end B. A new `Pipe::open` takes
/// the dead holder's end A over.
#[test]
fn pipe_creator_end_killed_anywhere() {
    const TEST: &str = "pipe_creator_end_killed_anywhere";
    if let Some(r) = role() {
        pipe_victim(&r);
    }
    pipe_campaign(TEST, true);
}

/// A pipe victim: sends its stream (acknowledging each send), receives the survivor's.
fn pipe_victim(r: &str) -> ! {
    {
        run_role(|| -> Result<(), String> {
            let a = args();
            let c = Pipe::open(&a[0]).map_err(|e| format!("open: {e}"))?;
            let acked = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
            let taken = Value::<u64>::open(&a[2]).map_err(|e| e.to_string())?;
            let ready = Value::<u64>::open(&a[3]).map_err(|e| e.to_string())?;
            let (epoch, exact, midkill) = (num(&a[4]), a[5] == "1", num(&a[6]));
            let mut rng = Rng::new(num(&a[7]));
            let drain = r == "drain";
            let base = taken.load();
            ready.store(epoch);
            let max = c.max_message_size();
            let mut seq = 1u64;
            let mut last: Option<u64> = None;
            loop {
                common::exit_if_orphaned();
                if !drain {
                    let m = pipe_msg(epoch, seq, pipe_len(&mut rng, max));
                    if seq == midkill {
                        // Die half-way through writing the payload in place.
                        c.send_with(m.len(), |buf| {
                            let half = m.len() / 2;
                            buf[..half].copy_from_slice(&m[..half]);
                            // SAFETY: kill/getpid have no memory-safety preconditions.
                            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                            buf[half..].copy_from_slice(&m[half..]);
                        })
                        .map_err(|e| format!("send_with: {e}"))?;
                    } else if rng.chance(20) {
                        c.send_with(m.len(), |buf| buf.copy_from_slice(&m))
                            .map_err(|e| format!("send_with: {e}"))?;
                    } else {
                        c.send_timeout(&m, VICTIM_WAIT)
                            .map_err(|e| format!("send: {e}"))?;
                    }
                    acked.store(pack(epoch, seq));
                    seq += 1;
                }
                for _ in 0..8 {
                    // Checked and recorded inside the closure, before the message is released:
                    // a kill can leave a message recorded and still queued (the next B gets
                    // it again: at-least-once for the one in flight), never consumed and
                    // unrecorded.
                    let mut check = |m: &[u8]| -> Result<(), String> {
                        let Some((0, s)) = pipe_check(m) else {
                            return Err(format!("torn or foreign message of {} bytes", m.len()));
                        };
                        let ok = match last {
                            // Died after reading, before releasing: we get that one again.
                            None if exact => s == base,
                            None => s == base || s == base + 1,
                            Some(l) => s == l + 1,
                        };
                        if !ok {
                            return Err(format!(
                                "got {s} after {last:?} (previous B recorded {base}, exact {exact})"
                            ));
                        }
                        last = Some(s);
                        taken.store(s);
                        Ok(())
                    };
                    let got = if drain {
                        match c.recv_with_timeout(VICTIM_WAIT, &mut check) {
                            Ok(r) => Some(r),
                            Err(Error::Disconnected) => return Ok(()),
                            Err(e) => return Err(format!("drain recv: {e}")),
                        }
                    } else {
                        c.try_recv_with(&mut check)
                            .map_err(|e| format!("try_recv_with: {e}"))?
                    };
                    match got {
                        None => break,
                        Some(checked) => checked?,
                    }
                }
            }
        })
    }
}

/// The survivor's side of a pipe campaign. `swap`: the survivor holds end B and the victims
/// end A (else the reverse).
fn pipe_campaign(test: &str, swap: bool) {
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let mut names = Names::new();
    let (pipe, ack, tk, rdy) = (
        names.add("cr-pipe"),
        names.add("cr-pipe-a"),
        names.add("cr-pipe-t"),
        names.add("cr-pipe-r"),
    );
    let a = Pipe::create(&pipe, 4096).unwrap();
    a.persist(); // the final victim opens it after we are gone (Names removes it)
    let a = if swap {
        // Give end A up: the victims will take it, we take end B.
        drop(a);
        Pipe::open(&pipe).unwrap()
    } else {
        a
    };
    let max = a.max_message_size();
    let acked = Value::<u64>::create(&ack, 0).unwrap();
    let taken = Value::<u64>::create(&tk, 0).unwrap();
    let ready = Value::<u64>::create(&rdy, 0).unwrap();
    let mut tally = Tally::default();
    let mut next_a = 1u64;
    let mut exact = false;
    for epoch in 1..=rounds(50) as u64 {
        let mut midkill = 0;
        let plan = if epoch == 1 {
            // Before B ever attached, A's sends would wait instead of failing.
            Plan::Running(Duration::from_millis(5))
        } else {
            let p = Plan::pick(&mut rng, 40, |r| match r.below(4) {
                0 => format!("ring.push.before_publish=kill@{}", r.range(1, 100)),
                1 => format!("ring.push.after_padding=kill@{}", r.range(1, 3)),
                2 => format!("ring.pop.before_release=kill@{}", r.range(1, 50)),
                _ => String::new(), // mid-payload, below
            });
            match p {
                Plan::Failpoint { ref spec, .. } if spec.is_empty() => {
                    midkill = rng.range(1, 100);
                    p
                }
                p => p,
            }
        };
        let arg = format!(
            "{pipe},{ack},{tk},{rdy},{epoch},{},{midkill},{}",
            exact as u8,
            rng.next_u64()
        );
        let mut victim = spawn_victim(test, "victim", &arg, &plan);
        let mut next_b = 1u64;
        let take = |m: Vec<u8>, next_b: &mut u64| {
            let Some((e, s)) = pipe_check(&m) else {
                panic!("torn message of {} bytes", m.len())
            };
            assert_eq!(e, epoch, "message from another B (duplicate?)");
            assert_eq!(s, *next_b, "gap or duplicate in epoch {epoch}");
            *next_b += 1;
        };
        let mut len = pipe_len(&mut rng, max);
        let death = drive(
            &mut victim,
            &plan,
            || ready.load() == epoch,
            || {
                match a.try_send(&pipe_msg(0, next_a, len)) {
                    Ok(true) => {
                        next_a += 1;
                        len = pipe_len(&mut rng, max);
                    }
                    Ok(false) | Err(Error::Disconnected) => {}
                    Err(e) => panic!("A's try_send: {e}"),
                }
                match a.recv_timeout(Duration::from_millis(1)) {
                    Ok(m) => take(m, &mut next_b),
                    Err(Error::Timeout) => {}
                    Err(Error::Disconnected) => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("A's recv: {e}"),
                }
            },
        );
        assert_sigkilled(&death.status, "end B");
        tally.death(&death);
        exact = !death.by_us
            && matches!(&plan, Plan::Failpoint { spec, .. } if spec.starts_with("ring.pop"));
        loop {
            match a.recv_timeout(PROMPT) {
                Ok(m) => take(m, &mut next_b),
                Err(Error::Disconnected) => break,
                Err(e) => panic!("A's recv after B died: {e} (hung?)"),
            }
        }
        tally.recovered(death.at.elapsed());
        // A's sends fail now (nothing is sent to a dead end).
        assert!(matches!(
            a.try_send(b"x"),
            Err(Error::Disconnected) | Ok(false)
        ));
        let got = next_b - 1;
        tally.verified += got;
        let a_seq = match unpack(acked.load()) {
            (e, s) if e == epoch => s,
            _ => 0, // nothing acknowledged in this epoch
        };
        // The send in flight may have published before the kill, not more.
        assert!(
            got == a_seq || got == a_seq + 1,
            "epoch {epoch}: B acknowledged up to {a_seq}, A received up to {got}"
        );
        if !death.by_us {
            if midkill > 0 {
                assert_eq!(got, midkill - 1, "died writing message {midkill}");
            } else if let Plan::Failpoint { spec, .. } = &plan {
                if spec.starts_with("ring.push.before_publish") {
                    let n: u64 = spec.rsplit('@').next().unwrap().parse().unwrap();
                    assert_eq!(got, n - 1, "died before publishing message {n}");
                } else if spec.starts_with("ring.push.after_padding") {
                    assert_eq!(got, a_seq, "died after a padding record");
                }
            }
        }
    }
    // A last B drains what A sent once A is gone.
    let arg = format!("{pipe},{ack},{tk},{rdy},0,{},0,1", exact as u8);
    let mut last = child(test, "drain", &arg).spawn().unwrap();
    // (Every victim stored its epoch >= 1; the drainer stores 0.)
    assert!(common::eventually(PROMPT * 4, || ready.load() == 0));
    drop(a);
    let status = common::wait_timeout(&mut last, Duration::from_secs(60));
    assert!(status.success(), "the draining end failed: {status}");
    assert_eq!(
        taken.load(),
        next_a - 1,
        "every message A sent was received"
    );
    tally.verified += next_a - 1;
    tally.print(test);
}

/// The failpoint spec of the next worker of a two-worker lock campaign: if the other worker
/// carries none, in 35% of rounds one of `points` (even odds) at a random pass in `1..=max`;
/// otherwise none.
fn either_failpoint(rng: &mut Rng, other: &str, points: [&str; 2], max: u64) -> String {
    if other.is_empty() && rng.chance(35) {
        let point = points[usize::from(rng.chance(50))];
        format!("{point}=kill@{}", rng.range(1, max))
    } else {
        String::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Locks: a holder dies.

impl Guarded {
    /// Checks the data as a clean (unpoisoned) lock must show it.
    fn clean(&self) -> Result<(), String> {
        if self.a == self.b && self.holder == 0 {
            Ok(())
        } else {
            Err(format!("inconsistent data under a clean lock: {self:?}"))
        }
    }

    /// Checks what a dead holder may have left and repairs it. `me` must not be named.
    fn repair(&mut self, me: u64) -> Result<(), String> {
        let holder_ok =
            self.holder == 0 || (self.holder != me && common::process_dead(self.holder));
        if !holder_ok || !(self.a == self.b || self.a == self.b + 1) {
            return Err(format!(
                "poisoned data not as a dead holder leaves it: {self:?}"
            ));
        }
        self.b = self.a;
        self.holder = 0;
        Ok(())
    }

    /// One critical section of some length.
    fn update(&mut self, me: u64, rng: &mut Rng) {
        self.holder = me;
        self.a += 1;
        common::spin_for(Duration::from_micros(rng.below(30)));
        self.b += 1;
        self.holder = 0;
        self.total += 1;
    }
}

/// Two workers hammer a `Mutex`; one of them is killed per round at a random point, right
/// after taking the lock word, or after releasing it but before waking a parked waiter; some
/// workers also die half-way through taking over a dead holder's lock (before storing the
/// poison). After each death the parent's `lock_timeout` succeeds within a bound, poisoned
/// exactly when a holder died (with the data as that holder left it: `a == b` or
/// `a == b + 1`), clean otherwise (`a == b`); the survivor never waits past its timeout.
#[test]
fn mutex_holder_killed_anywhere() {
    const TEST: &str = "mutex_holder_killed_anywhere";
    /// Failpoints that make their worker the round's victim.
    const ARMED: [&str; 2] = ["mutex.lock", "mutex.unlock"];
    if role().is_some() {
        run_role(|| -> Result<(), String> {
            let a = args();
            let m = Mutex::<Guarded>::open(&a[0]).map_err(|e| format!("open: {e}"))?;
            let recovered = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
            let mut rng = Rng::new(num(&a[2]));
            let ready = Value::<u64>::open(&a[3]).map_err(|e| e.to_string())?;
            let me = common::process_id();
            ready.store(1);
            loop {
                common::exit_if_orphaned();
                let mut g = match m.lock_timeout(VICTIM_WAIT) {
                    Ok(g) => {
                        g.clean()?;
                        g
                    }
                    Err(TryLockError::Poisoned(p)) => {
                        let mut g = p.into_inner();
                        g.repair(me)?;
                        m.clear_poison();
                        recovered.fetch_add(1);
                        g
                    }
                    Err(TryLockError::WouldBlock) => return Err("lock timed out".into()),
                };
                g.update(me, &mut rng);
                drop(g);
                common::spin_for(Duration::from_micros(rng.below(30)));
            }
        });
    }
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut names = Names::new();
    let (name, rec) = (names.add("cr-mx"), names.add("cr-mx-c"));
    let ready_names = [names.add("cr-mx-r0"), names.add("cr-mx-r1")];
    let m = Mutex::<Guarded>::create(&name, Guarded::default()).unwrap();
    let ready = ready_names
        .each_ref()
        .map(|n| Value::<u64>::create(n, 0).unwrap());
    let recovered = Value::<u64>::create(&rec, 0).unwrap();
    let spawn_worker = |rng: &mut Rng, i: usize, spec: &str| {
        ready[i].store(0);
        let arg = format!("{name},{rec},{},{}", rng.next_u64(), ready_names[i]);
        let mut c = child(TEST, "work", &arg);
        c.env("INTERPROC_FAILPOINTS", spec);
        c.spawn().expect("spawn worker")
    };
    // What a fresh worker carries: at most one of the two workers a protocol failpoint (so a
    // death has one known cause); otherwise, one time in five, the chain failpoint: it dies
    // half-way through taking over from a dead holder (before storing the poison).
    let pick_spec = |rng: &mut Rng, other: &str| -> String {
        if !other.starts_with("mutex.lock") && !other.starts_with("mutex.unlock") && rng.chance(40)
        {
            if rng.chance(60) {
                format!("mutex.lock.acquired=kill@{}", rng.range(1, 300))
            } else {
                format!("mutex.unlock.before_wake=kill@{}", rng.range(1, 5))
            }
        } else if rng.chance(20) {
            "mutex.takeover.before_poison=kill@1".to_owned()
        } else {
            String::new()
        }
    };
    let mut specs = [String::new(), String::new()];
    let mut workers = [spawn_worker(&mut rng, 0, ""), spawn_worker(&mut rng, 1, "")];
    // Worker recoveries counted when each worker was spawned: an armed worker may die at its
    // failpoint (and the survivor recover) before the round that awaits it even starts.
    let mut recovered_at_spawn = [0u64; 2];
    let mut tally = Tally::default();
    let mut poisoned_seen = 0;
    for _ in 0..rounds(60) {
        // Both workers inside their loops (a slow start is not a slow recovery).
        assert!(
            within(Duration::from_secs(60), || ready
                .iter()
                .all(|r| r.load() == 1)
                || workers.iter_mut().any(|w| w.try_wait().unwrap().is_some()))
            .is_some(),
            "workers never started"
        );

        // Let them run a little; a worker with a failpoint may die on its own meanwhile.
        let armed = specs
            .iter()
            .position(|s| ARMED.iter().any(|p| s.starts_with(p)));
        let (v, by_us) = await_victim(&mut workers, armed, &mut rng);
        let status = kill_and_reap(&mut workers[v]);
        let death = Death {
            status,
            by_us,
            at: Instant::now(),
        };
        // A self-inflicted death at a lock failpoint says whether the lock was held.
        let expect = match specs[v].as_str() {
            s if by_us || !s.starts_with("mutex.") => None,
            s if s.starts_with("mutex.lock.acquired") => Some(true),
            s if s.starts_with("mutex.unlock") => Some(false),
            _ => None,
        };
        let saw = check_mutex_round(&m, &death, &mut tally, &mut poisoned_seen, expect);
        if expect == Some(true) && !saw {
            // The survivor got there first and recovered it.
            assert!(
                recovered.load() > recovered_at_spawn[v],
                "a holder died, nobody saw the poison"
            );
        }
        // Replace the dead (the victim, and a survivor that died taking over).
        for i in 0..2 {
            if let Some(st) = workers[i].try_wait().unwrap() {
                if i != v {
                    assert_sigkilled(&st, "a chained worker");
                    tally.kills += 1;
                    tally.failpoint_kills += 1;
                }
                specs[i] = pick_spec(&mut rng, &specs[1 - i]);
                recovered_at_spawn[i] = recovered.load();
                workers[i] = spawn_worker(&mut rng, i, &specs[i]);
            }
        }
    }
    for w in &mut workers {
        let st = kill_and_reap(w);
        assert!(
            common::killed_by_sigkill(&st),
            "a worker failed on its own: {st}"
        );
    }
    let g = m.lock_timeout(PROMPT).unwrap_or_else(|e| match e {
        TryLockError::Poisoned(p) => p.into_inner(),
        TryLockError::WouldBlock => panic!("lock not recovered"),
    });
    assert!(g.a == g.b || g.a == g.b + 1, "{g:?}");
    tally.verified = g.total;
    eprintln!(
        "{TEST}: {poisoned_seen} poisoned locks seen by the parent, {} recovered by workers",
        recovered.load()
    );
    tally.print(TEST);
}

/// Waits for a round's victim among two workers: the one `armed` with a protocol failpoint if
/// any (it dies there on its own, or is killed after a second), else a random one after a
/// random delay. Only the armed worker may die on its own: the other one must survive its
/// round. Returns the victim and whether we kill it (else it is dead already).
fn await_victim(workers: &mut [Child; 2], armed: Option<usize>, rng: &mut Rng) -> (usize, bool) {
    let (window, victim) = match armed {
        Some(i) => (Duration::from_secs(1), i),
        None => (
            Duration::from_micros(rng.range(1_000, 25_000)),
            rng.below(2) as usize,
        ),
    };
    let until = Instant::now() + window;
    loop {
        for (i, w) in workers.iter_mut().enumerate() {
            if w.try_wait().expect("try_wait").is_some() {
                return (i, false);
            }
        }
        if Instant::now() >= until {
            return (victim, true);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// After a worker died: the parent locks within [`PROMPT`] and checks poison and data.
/// `expect`: whether the death must have poisoned (`None`: unknown). Returns whether the
/// parent found it poisoned.
fn check_mutex_round(
    m: &Mutex<Guarded>,
    death: &Death,
    tally: &mut Tally,
    poisoned_seen: &mut usize,
    expect: Option<bool>,
) -> bool {
    assert_sigkilled(&death.status, "the mutex victim");
    tally.death(death);
    let me = common::process_id();
    let (mut g, poisoned) = match m.lock_timeout(PROMPT) {
        Ok(g) => (g, false),
        Err(TryLockError::Poisoned(p)) => (p.into_inner(), true),
        Err(TryLockError::WouldBlock) => panic!("lock not recovered within {PROMPT:?}"),
    };
    tally.recovered(death.at.elapsed());
    if poisoned {
        *poisoned_seen += 1;
        g.repair(me).unwrap();
        m.clear_poison();
    } else {
        g.clean().unwrap();
    }
    if expect == Some(false) {
        assert!(!poisoned, "a victim that had released the lock poisoned it");
    }
    drop(g);
    poisoned
}

/// Waits (polling, bounded by `limit`) until `cond` holds; how long that took, if it did.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Two workers share a one-permit `Semaphore` (used as a lock; each checks that no live
/// process holds it at the same time); one is killed per round at a random point, or at a
/// failpoint between the two steps of `acquire` (permit taken, not yet tagged) or `release`
/// (untagged, not yet returned). A permit held by the dead is reclaimed by the waiting survivor
/// within a bound; it leaks only when the death fell between those two steps (as the module
/// documents: one permit, never an extra one), and `release` from a handle that holds nothing
/// puts it back. The semaphore never admits two live holders.
#[test]
fn semaphore_holder_killed_anywhere() {
    const TEST: &str = "semaphore_holder_killed_anywhere";
    /// A worker's state before it reports in.
    const STARTING: u64 = 4;
    /// Failpoints that make their worker the round's victim.
    const ARMED: [&str; 1] = ["semaphore."];
    if role().is_some() {
        run_role(|| -> Result<(), String> {
            let a = args();
            let s = Semaphore::open(&a[0]).map_err(|e| format!("open: {e}"))?;
            let state = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
            let owner = Value::<u64>::open(&a[2]).map_err(|e| e.to_string())?;
            let progress = Value::<u64>::open(&a[3]).map_err(|e| e.to_string())?;
            let mut rng = Rng::new(num(&a[4]));
            let me = common::process_id();
            state.store(0); // started
            loop {
                common::exit_if_orphaned();
                state.store(1);
                if !s.acquire_timeout(VICTIM_WAIT) {
                    return Err("acquire timed out".into());
                }
                state.store(2);
                let prev = owner.swap(me);
                if prev != 0 && !common::process_dead(prev) {
                    return Err(format!("{prev:#x} holds the only permit too"));
                }
                common::spin_for(Duration::from_micros(rng.below(30)));
                if owner.compare_exchange(me, 0).is_err() {
                    return Err("someone took the permit while we held it".into());
                }
                state.store(3);
                s.release();
                state.store(0);
                progress.fetch_add(1);
                common::spin_for(Duration::from_micros(rng.below(30)));
            }
        });
    }
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut names = Names::new();
    let name = names.add("cr-sem");
    let state_names = [names.add("cr-sem-s0"), names.add("cr-sem-s1")];
    let (own, prog) = (names.add("cr-sem-o"), names.add("cr-sem-p"));
    let s = Semaphore::create(&name, 1).unwrap();
    let states = state_names
        .each_ref()
        .map(|n| Value::<u64>::create(n, 0).unwrap());
    let _owner = Value::<u64>::create(&own, 0).unwrap();
    let progress = Value::<u64>::create(&prog, 0).unwrap();
    let spawn_worker = |rng: &mut Rng, i: usize, spec: &str| {
        states[i].store(STARTING);
        let arg = format!("{name},{},{own},{prog},{}", state_names[i], rng.next_u64());
        let mut c = child(TEST, "work", &arg);
        c.env("INTERPROC_FAILPOINTS", spec);
        c.spawn().expect("spawn worker")
    };
    let pick_spec = |rng: &mut Rng, other: &str| {
        either_failpoint(
            rng,
            other,
            [
                "semaphore.acquire.before_tag",
                "semaphore.release.before_add",
            ],
            200,
        )
    };
    let mut specs = [String::new(), String::new()];
    let mut workers = [spawn_worker(&mut rng, 0, ""), spawn_worker(&mut rng, 1, "")];
    let mut tally = Tally::default();
    let mut leaks = 0;
    for _ in 0..rounds(40) {
        assert!(
            within(Duration::from_secs(60), || states
                .iter()
                .all(|s| s.load() != STARTING)
                || workers.iter_mut().any(|w| w.try_wait().unwrap().is_some()))
            .is_some(),
            "workers never started"
        );
        let armed = specs
            .iter()
            .position(|s| ARMED.iter().any(|p| s.starts_with(p)));
        let (v, by_us) = await_victim(&mut workers, armed, &mut rng);
        let status = kill_and_reap(&mut workers[v]);
        let death = Death {
            status,
            by_us,
            at: Instant::now(),
        };
        assert_sigkilled(&death.status, "the semaphore victim");
        tally.death(&death);
        let dead_state = states[v].load();
        let at_failpoint = !by_us && !specs[v].is_empty();
        let p0 = progress.load();
        let limit = if at_failpoint {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(3)
        };
        match within(limit, || progress.load() >= p0 + 2) {
            Some(_) => {
                assert!(
                    !at_failpoint,
                    "died between the two steps, yet no permit leaked"
                );
                tally.recovered(death.at.elapsed());
            }
            None => {
                // The survivor is stuck: only a leak may explain it.
                assert!(
                    dead_state == 1 || dead_state == 3,
                    "the survivor made no progress after a death in state {dead_state}: hang \
                     (survivor state {}, exited {:?}, available {}, {s:?})",
                    states[1 - v].load(),
                    workers[1 - v].try_wait().unwrap(),
                    s.available(),
                );
                assert_eq!(s.available(), 0, "a permit is free, yet nobody takes it");
                assert_eq!(s.recover(), 0, "a dead holder's permit was not reclaimed");
                leaks += 1;
                s.release();
                let back = Instant::now();
                assert!(
                    within(PROMPT, || progress.load() >= p0 + 2).is_some(),
                    "the survivor did not resume after the leaked permit was put back \
                     (survivor state {}, alive {}, available {}, progress {} -> {}, {s:?})",
                    states[1 - v].load(),
                    workers[1 - v].try_wait().unwrap().is_none(),
                    s.available(),
                    p0,
                    progress.load()
                );
                tally.recovered(back.elapsed()); // from the permit's return
            }
        }
        specs[v] = pick_spec(&mut rng, &specs[1 - v]);
        workers[v] = spawn_worker(&mut rng, v, &specs[v]);
    }
    for w in &mut workers {
        let st = kill_and_reap(w);
        assert!(
            common::killed_by_sigkill(&st),
            "a worker failed on its own: {st}"
        );
    }
    // Whatever the last deaths left: permits come back to exactly one (or none if leaked).
    s.recover();
    assert!(
        s.available() <= 1,
        "more permits than created: {}",
        s.available()
    );
    tally.verified = progress.load();
    eprintln!("{TEST}: {leaks} leaked permits, all at the documented windows");
    tally.print(TEST);
}

/// Two workers read (70 %) and write (30 %) an `RwLock`; one is killed per round at a random
/// point, or as a pending writer (token set, readers not drained yet), or right after taking
/// the write lock. The parent's `write_timeout` succeeds within a bound: a dead reader is
/// discounted (never poisons), a dead pending writer poisons nothing, a dead holding writer
/// poisons, and the data is as the dead writer left it.
#[test]
fn rwlock_holder_killed_anywhere() {
    const TEST: &str = "rwlock_holder_killed_anywhere";
    /// Failpoints that make their worker the round's victim.
    const ARMED: [&str; 1] = ["rwlock."];
    if role().is_some() {
        run_role(|| -> Result<(), String> {
            let a = args();
            let rw = RwLock::<Guarded>::open(&a[0]).map_err(|e| format!("open: {e}"))?;
            let mode = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
            let mut rng = Rng::new(num(&a[2]));
            let recovered = Value::<u64>::open(&a[3]).map_err(|e| e.to_string())?;
            let me = common::process_id();
            loop {
                common::exit_if_orphaned();
                if rng.chance(70) {
                    mode.store(1);
                    match rw.read_timeout(VICTIM_WAIT) {
                        Ok(g) => {
                            g.clean()?;
                            common::spin_for(Duration::from_micros(rng.below(30)));
                        }
                        Err(TryLockError::Poisoned(p)) => drop(p.into_inner()),
                        Err(TryLockError::WouldBlock) => return Err("read timed out".into()),
                    }
                } else {
                    mode.store(2);
                    let mut g = match rw.write_timeout(VICTIM_WAIT) {
                        Ok(g) => {
                            g.clean()?;
                            g
                        }
                        Err(TryLockError::Poisoned(p)) => {
                            let mut g = p.into_inner();
                            g.repair(me)?;
                            rw.clear_poison();
                            recovered.fetch_add(1);
                            g
                        }
                        Err(TryLockError::WouldBlock) => return Err("write timed out".into()),
                    };
                    g.update(me, &mut rng);
                }
                mode.store(0);
                common::spin_for(Duration::from_micros(rng.below(30)));
            }
        });
    }
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut names = Names::new();
    let (name, rec) = (names.add("cr-rw"), names.add("cr-rw-c"));
    let mode_names = [names.add("cr-rw-m0"), names.add("cr-rw-m1")];
    let rw = RwLock::<Guarded>::create(&name, Guarded::default()).unwrap();
    let recovered = Value::<u64>::create(&rec, 0).unwrap();
    let modes = mode_names
        .each_ref()
        .map(|n| Value::<u64>::create(n, 0).unwrap());
    let spawn_worker = |rng: &mut Rng, i: usize, spec: &str| {
        let arg = format!("{name},{},{},{rec}", mode_names[i], rng.next_u64());
        let mut c = child(TEST, "work", &arg);
        c.env("INTERPROC_FAILPOINTS", spec);
        c.spawn().expect("spawn worker")
    };
    // At most one worker carries a failpoint: dying as a pending writer (token set, readers
    // not drained) or as a holding writer.
    let pick_spec = |rng: &mut Rng, other: &str| {
        either_failpoint(
            rng,
            other,
            ["rwlock.write.pending", "rwlock.write.held"],
            100,
        )
    };
    let mut specs = [String::new(), String::new()];
    let mut workers = [spawn_worker(&mut rng, 0, ""), spawn_worker(&mut rng, 1, "")];
    // As in the mutex campaign: recoveries counted when each worker was spawned.
    let mut recovered_at_spawn = [0u64; 2];
    let mut tally = Tally::default();
    let me = common::process_id();
    let (mut reader_deaths, mut writer_poisons) = (0, 0);
    for _ in 0..rounds(40) {
        let armed = specs
            .iter()
            .position(|s| ARMED.iter().any(|p| s.starts_with(p)));
        let (v, by_us) = await_victim(&mut workers, armed, &mut rng);
        let status = kill_and_reap(&mut workers[v]);
        let death = Death {
            status,
            by_us,
            at: Instant::now(),
        };
        assert_sigkilled(&death.status, "the rwlock victim");
        tally.death(&death);
        let dead_mode = modes[v].load();
        let (mut g, poisoned) = match rw.write_timeout(PROMPT) {
            Ok(g) => (g, false),
            Err(TryLockError::Poisoned(p)) => (p.into_inner(), true),
            Err(TryLockError::WouldBlock) => {
                panic!("write lock not recovered within {PROMPT:?}")
            }
        };
        tally.recovered(death.at.elapsed());
        if poisoned {
            assert_eq!(dead_mode, 2, "only a dead writer poisons");
            writer_poisons += 1;
            g.repair(me).unwrap();
            rw.clear_poison();
        } else {
            g.clean().unwrap();
        }
        if !by_us && specs[v].starts_with("rwlock.write.pending") {
            // Died waiting for the readers: it never touched the data.
            assert!(!poisoned, "a dead pending writer poisoned the lock");
            assert_eq!(
                recovered.load(),
                recovered_at_spawn[v],
                "a dead pending writer poisoned the lock"
            );
        }
        if !by_us && specs[v].starts_with("rwlock.write.held") {
            assert!(
                poisoned || recovered.load() > recovered_at_spawn[v],
                "a writer died holding the lock, nobody saw the poison"
            );
        }
        if dead_mode == 1 {
            reader_deaths += 1;
        }
        drop(g);
        assert!(
            workers[1 - v].try_wait().unwrap().is_none(),
            "the surviving worker failed"
        );
        specs[v] = pick_spec(&mut rng, &specs[1 - v]);
        recovered_at_spawn[v] = recovered.load();
        workers[v] = spawn_worker(&mut rng, v, &specs[v]);
    }
    for w in &mut workers {
        let st = kill_and_reap(w);
        assert!(
            common::killed_by_sigkill(&st),
            "a worker failed on its own: {st}"
        );
    }
    let g = rw.read_timeout(PROMPT).unwrap_or_else(|e| match e {
        TryLockError::Poisoned(p) => p.into_inner(),
        TryLockError::WouldBlock => panic!("lock not recovered"),
    });
    tally.verified = g.total;
    eprintln!(
        "{TEST}: {reader_deaths} deaths while reading, {writer_poisons} poisoned by a dead \
         writer, {} recovered by workers",
        recovered.load()
    );
    tally.print(TEST);
}

// ---------------------------------------------------------------------------------------------
// Queue (MPMC): producers die, consumers die.

/// Two producers feed a `Queue`, the parent is its only consumer; one producer is killed per
/// round at a random point, after claiming positions but before writing them, or after writing
/// but before publishing. The queue is never wedged: messages the survivor sends after the
/// death arrive within a bound (the dead claimer's positions are skipped once the kernel says
/// it is dead). Every message whose `send` returned arrives exactly once, whole, in its
/// producer's order; nothing of the dead producer arrives beyond what it had in flight.
#[test]
fn queue_producer_killed_anywhere() {
    const TEST: &str = "queue_producer_killed_anywhere";
    if role().is_some() {
        run_role(|| -> Result<(), String> {
            let a = args();
            let q = interproc::Queue::<Msg>::open(&a[0]).map_err(|e| format!("open: {e}"))?;
            let acked = Value::<u64>::open(&a[1]).map_err(|e| e.to_string())?;
            let (epoch, mode, mut rng) = (num(&a[2]), num(&a[3]), Rng::new(num(&a[4])));
            let mut seq = 1;
            loop {
                common::exit_if_orphaned();
                let k = rng.range(1, 8);
                let sent = match mode {
                    0 => {
                        q.send_timeout(Msg::new(epoch, seq), VICTIM_WAIT)
                            .map_err(|e| format!("send: {e}"))?;
                        1
                    }
                    1 => {
                        let batch: Vec<Msg> = (seq..seq + k).map(|s| Msg::new(epoch, s)).collect();
                        q.send_batch_timeout(&batch, VICTIM_WAIT)
                            .map_err(|e| format!("send_batch: {e}"))?;
                        k
                    }
                    _ => {
                        q.send_timeout_with(VICTIM_WAIT, |slot| *slot = Msg::new(epoch, seq))
                            .map_err(|e| format!("send_with: {e}"))?;
                        1
                    }
                };
                seq += sent;
                acked.store(pack(epoch, seq - 1));
            }
        });
    }
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut names = Names::new();
    let name = names.add("cr-q-p");
    let acked_names = [names.add("cr-q-p-a0"), names.add("cr-q-p-a1")];
    let q = interproc::Queue::<Msg>::create(&name, 16).unwrap();
    let acked = acked_names
        .each_ref()
        .map(|n| Value::<u64>::create(n, 0).unwrap());
    let mut next_epoch = 1u64;
    // Per worker: the process, its epoch, its failpoint spec and send mode.
    let mut spawn = |rng: &mut Rng, i: usize, other_armed: bool| {
        let epoch = next_epoch;
        next_epoch += 1;
        let armed = !other_armed && rng.chance(35);
        let spec = if armed && rng.chance(50) {
            format!("queue.send.after_claim=kill@{}", rng.range(1, 200))
        } else if armed {
            format!("queue.send.before_publish=kill@{}", rng.range(1, 200))
        } else {
            String::new()
        };
        // `after_claim` sits in the copying paths (single and batch sends).
        let mode = if spec.contains("after_claim") {
            rng.below(2)
        } else {
            rng.below(3)
        };
        let arg = format!(
            "{name},{},{epoch},{mode},{}",
            acked_names[i],
            rng.next_u64()
        );
        let mut c = child(TEST, "produce", &arg);
        c.env("INTERPROC_FAILPOINTS", &spec);
        (c.spawn().expect("spawn producer"), epoch, spec, mode)
    };
    let w0 = spawn(&mut rng, 0, false);
    let w1 = spawn(&mut rng, 1, !w0.2.is_empty());
    let mut workers = [w0, w1];
    // Next seq expected per epoch.
    let mut next: std::collections::HashMap<u64, u64> = Default::default();
    let take = |m: Msg, next: &mut std::collections::HashMap<u64, u64>| {
        assert!(m.whole(), "torn message {m:?}");
        let n = next.entry(m.epoch).or_insert(1);
        assert_eq!(
            m.seq, *n,
            "gap, duplicate or reordering in epoch {}",
            m.epoch
        );
        *n += 1;
    };
    let mut tally = Tally::default();
    for _ in 0..rounds(60) {
        // Consume while waiting for the round's victim.
        let armed = workers.iter().position(|w| !w.2.is_empty());
        let (window, pick) = match armed {
            Some(i) => (Duration::from_secs(3), i),
            None => (
                Duration::from_micros(rng.range(2_000, 25_000)),
                rng.below(2) as usize,
            ),
        };
        let until = Instant::now() + window;
        let (v, by_us) = loop {
            if let Ok(m) = q.recv_timeout(Duration::from_millis(1)) {
                take(m, &mut next);
            }
            if let Some(i) = (0..2).find(|&i| workers[i].0.try_wait().unwrap().is_some()) {
                break (i, false);
            }
            if Instant::now() >= until {
                break (pick, true);
            }
        };
        let status = kill_and_reap(&mut workers[v].0);
        let death = Death {
            status,
            by_us,
            at: Instant::now(),
        };
        assert_sigkilled(&death.status, "the producer");
        tally.death(&death);
        let (dead_epoch, survivor) = (workers[v].1, 1 - v);
        let s_epoch = workers[survivor].1;
        let s_acked = match unpack(acked[survivor].load()) {
            (e, s) if e == s_epoch => s,
            _ => 0,
        };
        // Not wedged: a message the survivor claimed after the death arrives (it lies beyond
        // the dead claimer's positions, which only a consumer's recovery can step over).
        loop {
            match q.recv_timeout(PROMPT) {
                Ok(m) => {
                    take(m, &mut next);
                    if next.get(&s_epoch).copied().unwrap_or(1) > s_acked + 9 {
                        break;
                    }
                }
                Err(e) => panic!("queue wedged after a producer died: {e:?}"),
            }
        }
        tally.recovered(death.at.elapsed());
        // Everything the dead producer acknowledged arrived, at most its batch in flight more.
        let got = next.get(&dead_epoch).copied().unwrap_or(1) - 1;
        tally.verified += got;
        let a_seq = match unpack(acked[v].load()) {
            (e, s) if e == dead_epoch => s,
            _ => 0,
        };
        let in_flight = if workers[v].3 == 1 { 8 } else { 1 };
        assert!(
            got >= a_seq && got <= a_seq + in_flight,
            "epoch {dead_epoch}: acknowledged up to {a_seq}, received up to {got}"
        );
        if !by_us && workers[v].3 != 1 {
            // Died at the N-th single send, before publishing it: exactly N - 1 arrived.
            let n: u64 = workers[v].2.rsplit('@').next().unwrap().parse().unwrap();
            assert_eq!(got, n - 1, "killed at {}", workers[v].2);
        }
        let other_armed = !workers[survivor].2.is_empty();
        workers[v] = spawn(&mut rng, v, other_armed);
    }
    for w in &mut workers {
        let st = kill_and_reap(&mut w.0);
        assert!(
            common::killed_by_sigkill(&st),
            "a producer failed on its own: {st}"
        );
    }
    tally.print(TEST);
}

/// The parent feeds a `Queue`; two consumer processes drain it and report every message they
/// got on a report ring (spsc) of their own. One consumer is killed per round at a random
/// point, or after reading a message but before releasing its slot. Producers are never
/// wedged by the unreleased slot (the parent keeps sending more than a lap after the death);
/// no message is received twice; every message is received except at most the ones a dying
/// consumer had taken (delivery is at most once across a consumer's death).
#[test]
fn queue_consumer_killed_anywhere() {
    const TEST: &str = "queue_consumer_killed_anywhere";
    if let Some(r) = role() {
        run_role(|| -> Result<(), String> {
            let a = args();
            let q = interproc::Queue::<Msg>::open(&a[0]).map_err(|e| format!("open: {e}"))?;
            let report = Sender::<u64>::open(&a[1]).map_err(|e| format!("report: {e}"))?;
            let window = Value::<u64>::open(&a[2]).map_err(|e| e.to_string())?;
            let (mode, mut rng) = (num(&a[3]), Rng::new(num(&a[4])));
            let drain = r == "drain";
            let mut last = 0u64;
            let mut buf = Vec::new();
            loop {
                common::exit_if_orphaned();
                let k = rng.range(1, 8) as usize;
                window.store(k as u64);
                buf.clear();
                let res = match mode {
                    0 => q.recv_timeout(VICTIM_WAIT).map(|m| buf.push(m)),
                    1 => q.recv_batch_timeout(&mut buf, k, VICTIM_WAIT).map(drop),
                    _ => q.recv_timeout_with(VICTIM_WAIT, |m| buf.push(*m)),
                };
                match res {
                    Ok(()) => {}
                    Err(RecvTimeoutError::Disconnected) if drain => return Ok(()),
                    Err(e) => return Err(format!("recv: {e:?}")),
                }
                for m in &buf {
                    if !m.whole() {
                        return Err(format!("torn message {m:?}"));
                    }
                    // One producer: a consumer's positions, hence seqs, only grow.
                    if m.seq <= last {
                        return Err(format!("{} after {last}", m.seq));
                    }
                    last = m.seq;
                    report
                        .send_timeout(m.seq, VICTIM_WAIT)
                        .map_err(|e| format!("report: {e}"))?;
                }
            }
        });
    }
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut names = Names::new();
    let name = names.add("cr-q-c");
    let report_names = [names.add("cr-q-c-r0"), names.add("cr-q-c-r1")];
    let window_names = [names.add("cr-q-c-w0"), names.add("cr-q-c-w1")];
    let q = interproc::Queue::<Msg>::create(&name, 16).unwrap();
    let reports = report_names
        .each_ref()
        .map(|n| Receiver::<u64>::create(n, 4096).unwrap());
    let windows = window_names
        .each_ref()
        .map(|n| Value::<u64>::create(n, 0).unwrap());
    let spawn = |rng: &mut Rng, i: usize, role: &str, spec: &str| {
        let arg = format!(
            "{name},{},{},{},{}",
            report_names[i],
            window_names[i],
            rng.below(3),
            rng.next_u64()
        );
        let mut c = child(TEST, role, &arg);
        c.env("INTERPROC_FAILPOINTS", spec);
        c.spawn().expect("spawn consumer")
    };
    let pick_spec = |rng: &mut Rng, other: &str| {
        if other.is_empty() && rng.chance(35) {
            format!("queue.recv.before_release=kill@{}", rng.range(1, 200))
        } else {
            String::new()
        }
    };
    let mut specs = [String::new(), String::new()];
    let mut workers = [
        spawn(&mut rng, 0, "consume", ""),
        spawn(&mut rng, 1, "consume", ""),
    ];
    let mut seen: Vec<u8> = vec![0];
    let record = |s: u64, seen: &mut Vec<u8>| {
        let s = s as usize;
        if seen.len() <= s {
            seen.resize(s + 1, 0);
        }
        seen[s] += 1;
        assert_eq!(seen[s], 1, "message {s} received twice");
    };
    let mut next_send = 1u64;
    // Messages a dead consumer may have taken with it.
    let mut allowance = 0u64;
    let mut tally = Tally::default();
    let work = |next_send: &mut u64, seen: &mut Vec<u8>| {
        if q.send_timeout(Msg::new(0, *next_send), Duration::from_millis(1))
            .is_ok()
        {
            *next_send += 1;
        }
        for r in &reports {
            while let Ok(s) = r.try_recv() {
                record(s, seen);
            }
        }
    };
    for _ in 0..rounds(60) {
        let armed = specs.iter().position(|s| !s.is_empty());
        let (window, pick) = match armed {
            Some(i) => (Duration::from_secs(3), i),
            None => (
                Duration::from_micros(rng.range(2_000, 25_000)),
                rng.below(2) as usize,
            ),
        };
        let until = Instant::now() + window;
        let (v, by_us) = loop {
            work(&mut next_send, &mut seen);
            if let Some(i) = (0..2).find(|&i| workers[i].try_wait().unwrap().is_some()) {
                break (i, false);
            }
            if Instant::now() >= until {
                break (pick, true);
            }
        };
        let status = kill_and_reap(&mut workers[v]);
        let death = Death {
            status,
            by_us,
            at: Instant::now(),
        };
        assert_sigkilled(&death.status, "the consumer");
        tally.death(&death);
        allowance += windows[v].load();
        // Producers are not wedged by what the dead consumer left claimed: more than two
        // laps of the ring go through (the survivor consumes them).
        let target = next_send + 40;
        let t = Instant::now();
        while next_send < target {
            work(&mut next_send, &mut seen);
            assert!(
                t.elapsed() < PROMPT,
                "producer wedged after a consumer died"
            );
        }
        tally.recovered(death.at.elapsed());
        specs[v] = pick_spec(&mut rng, &specs[1 - v]);
        workers[v] = spawn(&mut rng, v, "consume", &specs[v]);
    }
    // Stop: close the queue; both consumers drain it and exit.
    for (i, w) in workers.iter_mut().enumerate() {
        let st = kill_and_reap(w);
        assert!(
            common::killed_by_sigkill(&st),
            "a consumer failed on its own: {st}"
        );
        allowance += windows[i].load();
    }
    q.close();
    let mut drains = [
        spawn(&mut rng, 0, "drain", ""),
        spawn(&mut rng, 1, "drain", ""),
    ];
    let t = Instant::now();
    loop {
        for r in &reports {
            while let Ok(s) = r.try_recv() {
                record(s, &mut seen);
            }
        }
        if drains.iter_mut().all(|d| d.try_wait().unwrap().is_some()) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "drain never finished"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for d in &mut drains {
        let st = d.wait().unwrap();
        assert!(st.success(), "a draining consumer failed: {st}");
    }
    for r in &reports {
        while let Ok(s) = r.try_recv() {
            record(s, &mut seen);
        }
    }
    let sent = next_send - 1;
    let missing = (1..=sent as usize)
        .filter(|&s| seen.get(s).copied().unwrap_or(0) == 0)
        .count() as u64;
    assert!(
        missing <= allowance,
        "{missing} of {sent} messages lost, dead consumers can explain {allowance}"
    );
    assert!(
        seen.len() <= sent as usize + 1,
        "received a message never sent"
    );
    tally.verified = sent - missing;
    eprintln!("{TEST}: {missing} messages went down with their consumer (bound {allowance})");
    tally.print(TEST);
}
