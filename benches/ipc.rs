//! Criterion benches: each group measures interproc beside its baseline in the same run.
//!
//! Cross-process benches use `iter_custom`: each sample forks a peer (pinned to another CPU when
//! the sides spin) and times `iters` operations. The harness and the baselines are the very
//! files `interproc bench` uses, included by path so the library carries no benchmark code.
//!
//! The scenario bodies are `scenarios.rs`'s too, so a criterion figure and an
//! `interproc bench` row measure the same code. Groups: `spsc_stream` and `spsc_round_trip`
//! (beside the raw ring, the raw ping-pong and bare futex round trips), `pipe_stream` and
//! `pipe_round_trip` (beside pipe(2)), `queue_1to1_u64` (beside the raw MPMC and spsc rings),
//! `value_fetch_add` (beside a raw atomic), `mutex`
//! (beside a robust pthread mutex), `floor`.
//!
//! Run: `cargo bench --bench ipc` (or `-- <group>` to pick one).

#[allow(dead_code)]
#[path = "../src/bin/interproc/bench/baseline.rs"]
mod baseline;
#[allow(dead_code)]
#[path = "../src/bin/interproc/bench/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../src/bin/interproc/bench/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../src/bin/interproc/bench/scenarios.rs"]
mod scenarios;

// What `scenarios.rs` finds in its parent module in the CLI.
#[allow(unused_imports)]
use report::{Better, Effort, Row, FLOOR};

use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use harness::{now_ns, two_processes, SharedPage};

fn unique(tag: &str) -> String {
    format!("crit-{tag}-{}", std::process::id())
}

fn value(c: &mut Criterion) {
    let mut g = c.benchmark_group("value_fetch_add");
    g.throughput(Throughput::Elements(1));
    let page = SharedPage::new(4096);
    let raw = page.word(0);
    g.bench_function("baseline_raw_atomic", |b| {
        b.iter(|| raw.fetch_add(1, Ordering::SeqCst))
    });
    let v = interproc::Value::<u64>::create(&unique("value"), 0).unwrap();
    g.bench_function("interproc", |b| b.iter(|| v.fetch_add(1)));
    g.bench_function("interproc_2proc_contended", |b| {
        b.iter_custom(|iters| {
            let name = v.name().to_owned();
            let (ns, _) = two_processes(
                true,
                || {
                    let v = interproc::Value::<u64>::open(&name).unwrap();
                    for _ in 0..iters {
                        v.fetch_add(1);
                    }
                    0
                },
                || {
                    let t = now_ns();
                    for _ in 0..iters {
                        v.fetch_add(1);
                    }
                    now_ns() - t
                },
            );
            Duration::from_nanos(ns)
        })
    });
    g.finish();
}

/// `Mutex<u64>` lock + increment + unlock beside a robust process-shared pthread mutex in shared
/// memory: uncontended, and two pinned processes contending (time per operation of the pair).
fn mutex(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_pthread_robust_uncontended", |b| {
        b.iter_custom(|iters| {
            Duration::from_nanos(
                (baseline::pthread_mutex_uncontended(iters.max(1)) * iters as f64) as u64,
            )
        })
    });
    let m = interproc::Mutex::<u64>::create(&unique("mutex"), 0).unwrap();
    // Same loop shape as the baseline (an inner loop timed as a whole), so neither side pays
    // criterion's per-iteration overhead.
    g.bench_function("interproc_uncontended", |b| {
        b.iter_custom(|iters| {
            let t = now_ns();
            for _ in 0..iters {
                *m.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            }
            Duration::from_nanos(now_ns() - t)
        })
    });
    g.bench_function("baseline_pthread_robust_2proc_contended", |b| {
        b.iter_custom(|iters| {
            let each = iters.max(2) / 2;
            let (rate, _) = baseline::pthread_mutex_contended(each);
            Duration::from_secs_f64(2.0 * each as f64 / rate)
        })
    });
    g.bench_function("interproc_2proc_contended", |b| {
        b.iter_custom(|iters| {
            let each = iters.max(2) / 2;
            let name = m.name().to_owned();
            let work = || {
                let m = interproc::Mutex::<u64>::open(&name).unwrap();
                let t = now_ns();
                for _ in 0..each {
                    *m.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
                now_ns() - t
            };
            let (a, b) = two_processes(true, work, work);
            Duration::from_nanos(a.max(b))
        })
    });
    g.finish();
}

/// Duration of `iters` messages at `rate` messages per second.
fn at_rate(iters: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(iters as f64 / rate)
}

/// Duration of `iters` round trips of median `p50` nanoseconds.
fn at_p50(iters: u64, p50: f64) -> Duration {
    Duration::from_nanos((p50 * iters as f64) as u64)
}

/// spsc streams of 8 B / 64 B / 1 KiB, one by one and batched, beside the raw shared-memory
/// ring (both sides pinned, busy-polling).
fn spsc(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_stream");
    g.throughput(Throughput::Elements(1));
    for batched in [false, true] {
        let how = if batched { "batched" } else { "one_by_one" };
        g.bench_function(format!("baseline_raw_ring_8B_{how}"), |b| {
            b.iter_custom(|n| at_rate(n, baseline::raw_ring::<8>(n.max(1), 4096, batched)))
        });
        g.bench_function(format!("interproc_8B_{how}"), |b| {
            b.iter_custom(|n| at_rate(n, scenarios::spsc_stream::<8>(n.max(1), batched)))
        });
        g.bench_function(format!("baseline_raw_ring_64B_{how}"), |b| {
            b.iter_custom(|n| at_rate(n, baseline::raw_ring::<64>(n.max(1), 4096, batched)))
        });
        g.bench_function(format!("interproc_64B_{how}"), |b| {
            b.iter_custom(|n| at_rate(n, scenarios::spsc_stream::<64>(n.max(1), batched)))
        });
        g.bench_function(format!("baseline_raw_ring_1KiB_{how}"), |b| {
            b.iter_custom(|n| at_rate(n, baseline::raw_ring::<1024>(n.max(1), 4096, batched)))
        });
        g.bench_function(format!("interproc_1KiB_{how}"), |b| {
            b.iter_custom(|n| at_rate(n, scenarios::spsc_stream::<1024>(n.max(1), batched)))
        });
    }
    g.finish();

    // Round trips: p50 per round trip, beside the raw atomic ping-pong (spinning) and the bare
    // futex round trips (blocking: spin then futex; both sides sleeping).
    use scenarios::RtMode;
    let mut g = c.benchmark_group("spsc_round_trip");
    g.bench_function("baseline_raw_ping_pong", |b| {
        b.iter_custom(|n| at_p50(n, baseline::raw_ping_pong(n.max(1)).at(0.5)))
    });
    g.bench_function("interproc_spinning", |b| {
        b.iter_custom(|n| at_p50(n, scenarios::spsc_ping_pong(n.max(1), RtMode::Spin).at(0.5)))
    });
    g.bench_function("baseline_spin_then_futex", |b| {
        b.iter_custom(|n| {
            at_p50(
                n,
                baseline::futex_round_trip(n.max(1) as u32, 2_000).at(0.5),
            )
        })
    });
    g.bench_function("interproc_blocking_recv", |b| {
        b.iter_custom(|n| {
            at_p50(
                n,
                scenarios::spsc_ping_pong(n.max(1), RtMode::Blocking).at(0.5),
            )
        })
    });
    g.bench_function("baseline_futex_both_sleep", |b| {
        b.iter_custom(|n| at_p50(n, baseline::futex_round_trip(n.max(1) as u32, 0).at(0.5)))
    });
    g.bench_function("interproc_both_sleep", |b| {
        b.iter_custom(|n| {
            at_p50(
                n,
                scenarios::spsc_ping_pong(n.max(1), RtMode::Sleeping).at(0.5),
            )
        })
    });
    g.finish();
}

/// `Pipe` streams and round trips beside pipe(2), for 16 B, 1 KiB and 64 KiB messages.
fn pipe(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_stream");
    g.throughput(Throughput::Elements(1));
    for size in [16usize, 1024, 64 * 1024] {
        g.bench_function(format!("baseline_pipe2_{size}B"), |b| {
            b.iter_custom(|n| at_rate(n, baseline::pipe_stream(n.max(1), size)))
        });
        g.bench_function(format!("interproc_{size}B"), |b| {
            b.iter_custom(|n| at_rate(n, scenarios::pipe_stream(n.max(1), size)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("pipe_round_trip");
    for size in [16usize, 1024, 64 * 1024] {
        g.bench_function(format!("baseline_pipe2_{size}B"), |b| {
            b.iter_custom(|n| {
                at_p50(
                    n,
                    baseline::fd_round_trip(n.max(1) as u32, size, false).at(0.5),
                )
            })
        });
        g.bench_function(format!("interproc_{size}B"), |b| {
            b.iter_custom(|n| at_p50(n, scenarios::pipe_ping_pong(n.max(1), size).at(0.5)))
        });
    }
    g.finish();
}

/// `Queue<u64>` sent and received one by one between two pinned processes, beside the raw
/// Vyukov MPMC ring (the floor of any such queue) and the raw spsc ring: time per message.
fn queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_1to1_u64");
    g.throughput(Throughput::Elements(1));
    let per_message = |iters: u64, rate: f64| Duration::from_secs_f64(iters as f64 / rate);
    g.bench_function("baseline_raw_mpmc", |b| {
        b.iter_custom(|iters| per_message(iters, baseline::raw_mpmc(iters.max(1), 4096)))
    });
    g.bench_function("baseline_raw_spsc", |b| {
        b.iter_custom(|iters| {
            per_message(iters, baseline::raw_ring::<8>(iters.max(1), 4096, false))
        })
    });
    let q = interproc::Queue::<u64>::create(&unique("queue"), 4096).unwrap();
    g.bench_function("interproc", |b| {
        b.iter_custom(|iters| {
            let name = q.name().to_owned();
            let (ns, _) = two_processes(
                true,
                || {
                    let tx = interproc::Queue::<u64>::open(&name).unwrap();
                    for i in 0..iters {
                        tx.send(i).unwrap();
                    }
                    0
                },
                || {
                    let t = now_ns();
                    let mut sum = 0u64;
                    for _ in 0..iters {
                        sum = sum.wrapping_add(q.recv().unwrap());
                    }
                    std::hint::black_box(sum);
                    now_ns() - t
                },
            );
            Duration::from_nanos(ns)
        })
    });
    g.finish();
}

fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor");
    g.bench_function("raw_ping_pong_rt", |b| {
        b.iter_custom(|iters| {
            let p = baseline::raw_ping_pong(iters.max(1));
            Duration::from_nanos((p.at(0.5) * iters as f64) as u64)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    targets = spsc, pipe, queue, value, mutex, floor
}
criterion_main!(benches);
