//! `interproc bench`: every figure a ratio against a baseline measured in the same run.
//!
//! Each scenario interleaves repetitions of its baseline and of interproc (baseline, interproc,
//! baseline, ...) and reports the median of each, so the machine's slow phases (on this kind of
//! VM the floor itself jumps 4-5x for seconds) hit both sides alike. `ratio > 1` always means
//! interproc is better: throughput ratios are `interproc / baseline`, latency and cost ratios
//! `baseline / interproc`. A scenario's target (from the benchmark issue) is a minimum ratio.

mod baseline;
mod harness;
mod report;
mod scenarios;

pub use report::{Better, Effort, Row, FLOOR};

use std::io::Write;

/// The arguments of `interproc bench` (help text: see `Command` in main.rs).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// A short run (about 15 s instead of about a minute).
    #[arg(long)]
    pub quick: bool,
    /// Only run the scenarios whose name contains PATTERN.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Print the results as a JSON array of objects (scenario, unit, interproc, baseline,
    /// baseline_value, ratio, ...).
    #[arg(long)]
    pub json: bool,
    /// Instead of measuring: a crash soak of SECONDS. Producers, consumers and lock holders
    /// run in child processes and are SIGKILLed at random; after every kill the survivors'
    /// view is checked. Prints rounds, kills, what was verified and the recovery times.
    /// Ctrl-C ends it early; `interproc gc` removes its objects if it is killed.
    #[arg(long, value_name = "SECONDS")]
    pub soak: Option<u64>,
}

/// Runs the selected scenarios, printing progress to stderr and the result to stdout.
pub fn run(opts: Args) -> std::process::ExitCode {
    if let Some(seconds) = opts.soak {
        return crate::soak::run(seconds);
    }
    let effort = if opts.quick {
        Effort { reps: 5, scale: 1 }
    } else {
        Effort { reps: 7, scale: 4 }
    };
    let all = scenarios::all();
    let selected: Vec<_> = all
        .iter()
        .filter(|s| opts.filter.as_deref().is_none_or(|f| s.name.contains(f)))
        .collect();
    if selected.is_empty() {
        return crate::fail("bench: no scenario matches the filter");
    }
    let mut rows = Vec::new();
    let started = std::time::Instant::now();
    for (i, s) in selected.iter().enumerate() {
        eprint!("[{}/{}] {} ... ", i + 1, selected.len(), s.name);
        let _ = std::io::stderr().flush();
        let t = std::time::Instant::now();
        let got = (s.run)(effort);
        harness::unpin();
        eprintln!("{:.1}s", t.elapsed().as_secs_f64());
        rows.extend(got);
    }
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    if opts.json {
        print_json(&rows);
    } else {
        print_table(&rows);
    }
    std::process::ExitCode::SUCCESS
}

fn fmt_value(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    match unit {
        "msg/s" | "op/s" => {
            if v >= 1e9 {
                format!("{:.2} G{unit}", v / 1e9)
            } else if v >= 1e6 {
                format!("{:.2} M{unit}", v / 1e6)
            } else if v >= 1e3 {
                format!("{:.1} k{unit}", v / 1e3)
            } else {
                format!("{v:.0} {unit}")
            }
        }
        "ns" => {
            if v >= 1e6 {
                format!("{:.2} ms", v / 1e6)
            } else if v >= 1e3 {
                format!("{:.2} us", v / 1e3)
            } else {
                format!("{v:.1} ns")
            }
        }
        _ => format!("{v:.2} {unit}"),
    }
}

fn print_table(rows: &[Row]) {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.clone(),
                fmt_value(r.interproc, r.unit),
                r.baseline.clone(),
                fmt_value(r.baseline_value, r.unit),
                format!("{:.2}x", r.ratio()),
                r.verdict(),
            ]
        })
        .collect();
    let head = [
        "scenario",
        "interproc",
        "baseline",
        "baseline value",
        "ratio",
        "verdict",
    ];
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.len());
        }
    }
    let line = |c: &[String; 6]| {
        println!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        )
    };
    line(&head.map(String::from));
    for c in &cells {
        line(c);
    }
    println!("\nratio > 1: interproc better (throughput: interproc/baseline; latency: baseline/interproc)");
}

fn print_json(rows: &[Row]) {
    let arr: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "scenario": r.scenario,
                "unit": r.unit,
                "interproc": r.interproc,
                "baseline": r.baseline,
                "baseline_value": r.baseline_value,
                "ratio": r.ratio(),
                "higher_is_better": r.better == Better::Higher,
                "target_ratio": r.target,
                "verdict": r.verdict(),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
}
