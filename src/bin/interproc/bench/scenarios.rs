//! The scenarios of `interproc bench`, each beside its baseline.

use std::sync::atomic::Ordering;

use super::harness::{median, now_ns, rate, two_processes};
use super::{baseline, Better, Effort, Row};

/// A named scenario producing one or more rows.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(Effort) -> Vec<Row>,
}

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "value.fetch_add",
            run: value_fetch_add,
        },
        Scenario {
            name: "baseline.floor",
            run: floor,
        },
    ]
}

/// Interleaves `reps` runs of `base` and `ours`, returning (median ours, median base).
fn interleave(
    reps: usize,
    mut base: impl FnMut() -> f64,
    mut ours: impl FnMut() -> f64,
) -> (f64, f64) {
    let (mut b, mut o) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        b.push(base());
        o.push(ours());
    }
    (median(o), median(b))
}

fn unique(tag: &str) -> String {
    format!("bench-{tag}-{}", std::process::id())
}

/// `Value::fetch_add`: uncontended (ns/op) against a raw `AtomicU64::fetch_add` in a shared page,
/// and two processes contending (op/s) against the same raw atomic contended.
fn value_fetch_add(e: Effort) -> Vec<Row> {
    let ops = 2_000_000 * e.scale;
    let name = unique("value");
    let v = interproc::Value::<u64>::create(&name, 0).expect("create value");
    let page = super::harness::SharedPage::new(4096);
    let raw = page.word(0);
    let (ours, base) = interleave(
        e.reps,
        || {
            let t = now_ns();
            for _ in 0..ops {
                raw.fetch_add(1, Ordering::SeqCst);
            }
            (now_ns() - t) as f64 / ops as f64
        },
        || {
            let t = now_ns();
            for _ in 0..ops {
                v.fetch_add(1);
            }
            (now_ns() - t) as f64 / ops as f64
        },
    );
    let mut rows = vec![Row {
        scenario: "value fetch_add, uncontended".into(),
        unit: "ns",
        interproc: ours,
        baseline: "raw AtomicU64 fetch_add".into(),
        baseline_value: base,
        better: Better::Lower,
        target: None,
    }];
    let each = ops / 2;
    let (ours, base) = interleave(
        e.reps,
        || {
            let (ns, child) = two_processes(
                true,
                || {
                    let t = now_ns();
                    for _ in 0..each {
                        raw.fetch_add(1, Ordering::SeqCst);
                    }
                    now_ns() - t
                },
                || {
                    let t = now_ns();
                    for _ in 0..each {
                        raw.fetch_add(1, Ordering::SeqCst);
                    }
                    now_ns() - t
                },
            );
            rate(2 * each, ns.max(child))
        },
        || {
            let (ns, child) = two_processes(
                true,
                || {
                    let v = interproc::Value::<u64>::open(&name).expect("open value");
                    let t = now_ns();
                    for _ in 0..each {
                        v.fetch_add(1);
                    }
                    now_ns() - t
                },
                || {
                    let t = now_ns();
                    for _ in 0..each {
                        v.fetch_add(1);
                    }
                    now_ns() - t
                },
            );
            rate(2 * each, ns.max(child))
        },
    );
    rows.push(Row {
        scenario: "value fetch_add, 2 processes contending".into(),
        unit: "op/s",
        interproc: ours,
        baseline: "raw AtomicU64 contended".into(),
        baseline_value: base,
        better: Better::Higher,
        target: None,
    });
    rows
}

/// The floor figures on their own (printed as rows whose interproc column repeats the floor), so
/// a run shows the machine's current state next to BASELINES.md.
fn floor(e: Effort) -> Vec<Row> {
    let n = 2_000_000 * e.scale;
    let ring = median(
        (0..e.reps)
            .map(|_| baseline::raw_ring::<8>(n, 4096, false))
            .collect(),
    );
    let rt = baseline::raw_ping_pong(100_000 * e.scale);
    let futex = baseline::futex_round_trip(2_000 * e.scale as u32, 0);
    let pipe = baseline::fd_round_trip(2_000 * e.scale as u32, 8, false);
    let row = |scenario: &str, unit: &'static str, v: f64, better| Row {
        scenario: scenario.into(),
        unit,
        interproc: v,
        baseline: "(floor itself)".into(),
        baseline_value: v,
        better,
        target: None,
    };
    vec![
        row("floor: raw spsc ring 8 B", "msg/s", ring, Better::Higher),
        row(
            "floor: raw ping-pong RT p50",
            "ns",
            rt.at(0.5),
            Better::Lower,
        ),
        row(
            "floor: futex RT both sleep p50",
            "ns",
            futex.at(0.5),
            Better::Lower,
        ),
        row("floor: pipe RT 8 B p50", "ns", pipe.at(0.5), Better::Lower),
    ]
}
