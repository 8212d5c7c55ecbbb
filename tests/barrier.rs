//! Multi-process tests of `Barrier`: generations across processes, timeouts that withdraw,
//! and the arrival of a killed waiter being withdrawn.

mod common;

use std::time::Duration;

use interproc::{Barrier, Error, Value};

/// Generations the three processes of `three_processes_pass_generations_together` go through.
const GENERATIONS: u64 = 40;

fn names(arg: &str) -> Vec<String> {
    arg.split(',').map(str::to_owned).collect()
}

#[test]
fn three_processes_pass_generations_together() {
    if common::role().is_some() {
        common::run_role(|| -> Result<(), String> {
            let n = names(&common::arg());
            let b = Barrier::open(&n[0]).map_err(|e| e.to_string())?;
            let arrived = Value::<u64>::open(&n[1]).map_err(|e| e.to_string())?;
            let leaders = Value::<u64>::open(&n[2]).map_err(|e| e.to_string())?;
            for g in 0..GENERATIONS {
                arrived.fetch_add(1);
                if b.wait().is_leader() {
                    leaders.fetch_add(1);
                }
                // Everyone arrived in generation g before anyone passed it, and nobody can
                // have arrived twice more (generation g+1 cannot complete without us).
                let seen = arrived.load();
                if seen < 3 * (g + 1) {
                    return Err(format!("passed generation {g} after only {seen} arrivals"));
                }
                if seen > 3 * (g + 1) + 2 {
                    return Err(format!("{seen} arrivals while we are in generation {g}"));
                }
            }
            Ok(())
        });
    }
    let mut names = common::Names::new();
    let (b, a, l) = (
        names.add("bar3"),
        names.add("bar3-in"),
        names.add("bar3-lead"),
    );
    let barrier = Barrier::create(&b, 3).unwrap();
    let arrived = Value::<u64>::create(&a, 0).unwrap();
    let leaders = Value::<u64>::create(&l, 0).unwrap();
    let arg = format!("{b},{a},{l}");
    let children: Vec<_> = (0..3)
        .map(|k| {
            common::spawn(
                "three_processes_pass_generations_together",
                &k.to_string(),
                &arg,
            )
        })
        .collect();
    for c in children {
        common::expect_success(c);
    }
    assert_eq!(arrived.load(), 3 * GENERATIONS);
    assert_eq!(
        leaders.load(),
        GENERATIONS,
        "exactly one leader per generation"
    );
    assert_eq!(barrier.waiting(), 0);
}

#[test]
fn wait_timeout_withdraw_keeps_barrier_usable() {
    if let Some(role) = common::role() {
        common::run_role(|| -> Result<(), String> {
            let n = names(&common::arg());
            let b = Barrier::open(&n[0]).map_err(|e| e.to_string())?;
            let leaders = Value::<u32>::open(&n[1]).map_err(|e| e.to_string())?;
            match role.as_str() {
                // Alone at the barrier: must time out and withdraw.
                "early" => match b.wait_timeout(Duration::from_millis(200)) {
                    Err(Error::Timeout) => Ok(()),
                    other => Err(format!("expected a timeout, got {other:?}")),
                },
                _ => {
                    let r = b
                        .wait_timeout(Duration::from_secs(60))
                        .map_err(|e| e.to_string())?;
                    leaders.fetch_add(r.is_leader() as u32);
                    Ok(())
                }
            }
        });
    }
    let mut names = common::Names::new();
    let (b, l) = (names.add("bar-to"), names.add("bar-to-lead"));
    let barrier = Barrier::create(&b, 2).unwrap();
    let leaders = Value::<u32>::create(&l, 0).unwrap();
    let arg = format!("{b},{l}");
    let test = "wait_timeout_withdraw_keeps_barrier_usable";

    // Time out in this process and in another one.
    assert!(matches!(
        barrier.wait_timeout(Duration::from_millis(100)),
        Err(Error::Timeout)
    ));
    common::expect_success(common::spawn(test, "early", &arg));
    assert_eq!(
        barrier.waiting(),
        0,
        "both timed-out arrivals were withdrawn"
    );

    // Still a barrier of two: this process and a fresh one pass a generation together.
    let child = common::spawn(test, "late", &arg);
    let mine = barrier.wait_timeout(Duration::from_secs(60)).unwrap();
    leaders.fetch_add(mine.is_leader() as u32);
    common::expect_success(child);
    assert_eq!(
        leaders.load(),
        1,
        "one leader for the one completed generation"
    );
    assert_eq!(barrier.waiting(), 0);
}

#[test]
fn arrival_of_killed_waiter_is_withdrawn() {
    if let Some(role) = common::role() {
        common::run_role(|| -> Result<(), String> {
            let b = Barrier::open(&common::arg()).map_err(|e| e.to_string())?;
            match role.as_str() {
                "doomed" => {
                    let _ = b.wait_timeout(Duration::from_secs(60));
                    Err("was not killed".into())
                }
                _ => b
                    .wait_timeout(Duration::from_secs(60))
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            }
        });
    }
    let mut names = common::Names::new();
    let b = names.add("bar-kill");
    let barrier = Barrier::create(&b, 3).unwrap();
    let test = "arrival_of_killed_waiter_is_withdrawn";

    let mut doomed = common::spawn(test, "doomed", &b);
    assert!(common::eventually(Duration::from_secs(30), || barrier
        .waiting()
        == 1));
    let survivor = common::spawn(test, "survivor", &b);
    assert!(common::eventually(Duration::from_secs(30), || barrier
        .waiting()
        == 2));
    common::sigkill(doomed.id());
    common::wait_timeout(&mut doomed, Duration::from_secs(10));
    // The survivor, parked, withdraws the dead arrival at the end of a slice (20 ms).
    assert!(
        common::eventually(Duration::from_secs(5), || barrier.waiting() == 1),
        "the killed waiter's arrival is still counted"
    );
    // A replacement arrives: without the withdrawal it would complete the generation with
    // the dead arrival counted and go on before this process arrived.
    let replacement = common::spawn(test, "replacement", &b);
    assert!(common::eventually(Duration::from_secs(30), || barrier
        .waiting()
        == 2));
    let r = barrier.wait_timeout(Duration::from_secs(60)).unwrap();
    assert!(r.is_leader(), "this process arrived last");
    common::expect_success(survivor);
    common::expect_success(replacement);
    assert_eq!(barrier.waiting(), 0);
}
