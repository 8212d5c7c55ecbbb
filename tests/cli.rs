//! The `interproc` command-line tool, run as a separate process against real objects.
//!
//! Objects are created by this test process or by re-executed children (see `common`); `gc`
//! runs are confined to this test's own names with `--prefix`, so the tool never touches
//! objects of other tests running on the machine.

mod common;

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::Names;
use interproc::Value;

const BIN: &str = env!("CARGO_BIN_EXE_interproc");

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the interproc binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `interproc args`, asserts success, returns stdout.
fn cli_ok(args: &[&str]) -> String {
    let o = cli(args);
    assert!(
        o.status.success(),
        "interproc {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Each line of `text` trimmed, with runs of whitespace collapsed to one space.
fn collapsed(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Kills and reaps the child on drop, so a failing test leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The table row of `name` in `interproc list` output, split into its columns.
fn list_row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| cols.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{table}"))
}

/// The JSON entry of `name` in `interproc list --json` output.
fn list_json(name: &str) -> serde_json::Value {
    let all: serde_json::Value = serde_json::from_str(&cli_ok(&["list", "--json"])).unwrap();
    all.as_array()
        .expect("an array")
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in list --json"))
        .clone()
}

fn pids_of(json: &serde_json::Value) -> Vec<u64> {
    json["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

#[test]
fn list_and_inspect_show_a_live_object_with_its_attached_pids() {
    if common::role().is_some() {
        // "hold": attach, say so (1), stay attached until told to leave (2).
        common::run_role(|| {
            let v = Value::<u64>::open(&common::arg()).map_err(|e| e.to_string())?;
            v.store(1);
            if common::eventually(Duration::from_secs(60), || v.load() == 2) {
                Ok(())
            } else {
                Err("never told to leave".to_string())
            }
        });
    }
    let mut names = Names::new();
    let name = names.add("cli-list");
    let v = Value::<u64>::create(&name, 0).unwrap();
    let mut child = KillOnDrop(common::spawn(
        "list_and_inspect_show_a_live_object_with_its_attached_pids",
        "hold",
        &name,
    ));
    assert!(
        common::eventually(Duration::from_secs(30), || v.load() == 1),
        "child did not attach"
    );
    let me = std::process::id().to_string();
    let other = child.0.id().to_string();

    // The table: NAME KIND SIZE CAPACITY DEPTH OWNER PIDS.
    let row = list_row(&cli_ok(&["list"]), &name);
    assert_eq!(row[1], "value", "{row:?}");
    assert!(row[2].parse::<u64>().unwrap() >= 4096, "{row:?}");
    assert_eq!(row[3], "1", "{row:?}");
    assert_eq!(row[4], "-", "a value has no depth: {row:?}");
    assert_eq!(row[5], "alive", "{row:?}");
    let pids: Vec<&str> = row[6].split(',').collect();
    assert!(
        pids.contains(&me.as_str()) && pids.contains(&other.as_str()),
        "{row:?}"
    );

    // The JSON form says the same.
    let json = list_json(&name);
    assert_eq!(json["kind"], "value");
    assert_eq!(json["capacity"], 1);
    assert_eq!(json["owner"], "alive");
    assert!(json["depth"].is_null() && json["error"].is_null());
    let pids = pids_of(&json);
    assert!(pids.contains(&(std::process::id() as u64)) && pids.contains(&(child.0.id() as u64)));

    // inspect: at least what list shows, plus the header and the value's own fields.
    let text = cli_ok(&["inspect", &name]);
    let lines = collapsed(&text);
    for want in [
        format!("name {name}"),
        "kind value".to_string(),
        "owner alive".to_string(),
        "capacity 1".to_string(),
        "depth -".to_string(),
        "element size 8".to_string(),
        "element align 8".to_string(),
        format!("creator pid {me}"),
        format!("format version {}", 2),
        "type u64".to_string(),
        "value 1".to_string(),
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert!(text.contains(&me) && text.contains(&other), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&cli_ok(&["inspect", &name, "--json"])).unwrap();
    assert_eq!(json["fields"]["value"], "1");
    assert_eq!(json["fields"]["type"], "u64");
    assert_eq!(json["header"]["creator_pid"], std::process::id());
    assert_eq!(json["header"]["elem_size"], 8);

    // Once the child has left, only this process is attached.
    v.store(2);
    let status = common::wait_timeout(&mut child.0, Duration::from_secs(60));
    assert!(status.success(), "child exited with {status}");
    assert_eq!(pids_of(&list_json(&name)), vec![std::process::id() as u64]);
}

#[test]
fn missing_and_invalid_names_fail_on_stderr() {
    let missing = common::unique("cli-missing");
    for args in [
        ["inspect", missing.as_str()],
        ["remove", missing.as_str()],
        ["inspect", "no/slashes"],
        ["remove", ".hidden"],
    ] {
        let o = cli(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&o).contains(args[1]),
            "{args:?}: stderr {:?}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty(), "{args:?}: stdout {:?}", stdout(&o));
    }
    assert!(stderr(&cli(&["inspect", &missing])).contains("no such object"));
}

#[test]
fn remove_unlinks_the_name_and_attached_handles_keep_working() {
    let mut names = Names::new();
    let name = names.add("cli-remove");
    let v = Value::<u32>::create(&name, 5).unwrap();
    assert!(common::exists(&name));
    let out = cli_ok(&["remove", &name]);
    assert!(out.contains(&format!("removed {name}")), "{out}");
    assert!(!common::exists(&name));
    v.store(6);
    assert_eq!(v.load(), 6, "the handle keeps its mapping");
    let again = cli(&["remove", &name]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("no such object"));
    // The name is free for a new object at once.
    let w = Value::<u32>::create(&name, 1).unwrap();
    assert_eq!(w.load(), 1);
}

#[test]
fn gc_removes_a_killed_creators_objects_but_keeps_persisted_and_live_ones() {
    if common::role().is_some() {
        // "creator": orphan, persisted (persist()), held, then ready; then wait to be killed.
        common::run_role(|| {
            let arg = common::arg();
            let n: Vec<&str> = arg.split(',').collect();
            let _orphan = Value::<u64>::create(n[0], 1).map_err(|e| e.to_string())?;
            let persisted = Value::<u64>::create(n[1], 2).map_err(|e| e.to_string())?;
            persisted.persist();
            let _held = Value::<u64>::create(n[2], 3).map_err(|e| e.to_string())?;
            let _ready = Value::<u64>::create(n[3], 4).map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(120));
            Err("was not killed".to_string())
        });
    }
    let mut names = Names::new();
    let prefix = format!("t-cligc-{}-", std::process::id());
    let [orphan, persisted, held, ready, live] = ["", "", "", "", ""].map(|_| names.add("cligc"));
    assert!(orphan.starts_with(&prefix));
    let _live = Value::<u64>::create(&live, 5).unwrap();
    let mut child = KillOnDrop(common::spawn(
        "gc_removes_a_killed_creators_objects_but_keeps_persisted_and_live_ones",
        "creator",
        &[orphan.as_str(), &persisted, &held, &ready].join(","),
    ));
    // `ready` is created last: once it opens, the others are published.
    assert!(
        common::eventually(Duration::from_secs(30), || Value::<u64>::open(&ready)
            .is_ok()),
        "child did not create its objects"
    );
    // This process stays attached to `held`: a live participant after its creator dies.
    let held_handle = Value::<u64>::open(&held).unwrap();
    common::sigkill(child.0.id());
    common::wait_timeout(&mut child.0, Duration::from_secs(30));

    let table = cli_ok(&["list"]);
    assert_eq!(list_row(&table, &orphan)[5], "orphaned");
    assert_eq!(list_row(&table, &persisted)[5], "persisted");
    assert_eq!(list_row(&table, &held)[5], "orphaned");
    assert_eq!(list_row(&table, &live)[5], "alive");

    let dry = cli_ok(&["gc", "--dry-run", "--prefix", &prefix]);
    assert!(dry.contains(&format!("would remove {orphan}:")), "{dry}");
    assert!(dry.contains(&format!("would remove {ready}:")), "{dry}");
    assert_eq!(dry.lines().count(), 2, "{dry}");
    assert!(
        common::exists(&orphan) && common::exists(&ready),
        "dry run removed something"
    );

    let done = cli_ok(&["gc", "--prefix", &prefix]);
    assert!(done.contains(&format!("removed {orphan}:")), "{done}");
    assert!(done.contains(&format!("removed {ready}:")), "{done}");
    assert_eq!(done.lines().count(), 2, "{done}");
    assert!(!common::exists(&orphan) && !common::exists(&ready));
    assert!(common::exists(&persisted), "persisted objects stay");
    assert!(
        common::exists(&held),
        "objects with a live participant stay"
    );
    assert!(common::exists(&live), "objects of a live creator stay");
    assert_eq!(Value::<u64>::open(&persisted).unwrap().load(), 2);
    assert_eq!(
        cli_ok(&["gc", "--prefix", &prefix]).trim(),
        "nothing to collect"
    );

    // Once its last participant is gone, the orphan is garbage too.
    assert_eq!(held_handle.load(), 3);
    drop(held_handle);
    let done = cli_ok(&["gc", "--prefix", &prefix]);
    assert!(done.contains(&format!("removed {held}:")), "{done}");
    assert!(!common::exists(&held) && common::exists(&persisted) && common::exists(&live));
}

#[test]
fn gc_reports_unreadable_files_and_removes_dead_initialisations() {
    let mut names = Names::new();
    let prefix = format!("t-cligarbage-{}-", std::process::id());
    let junk = names.add("cligarbage");
    let unfinished = names.add("cligarbage");
    // Not an interproc region at all.
    std::fs::write(format!("/dev/shm/interproc.{junk}"), vec![0xAB_u8; 5000]).unwrap();

    let row = list_row(&cli_ok(&["list"]), &junk);
    assert_eq!(row[1], "?", "{row:?}");
    assert_eq!(row[2], "5000", "{row:?}");
    assert!(row.join(" ").contains("bad magic"), "{row:?}");
    let o = cli(&["inspect", &junk]);
    assert!(!o.status.success());
    assert!(
        collapsed(&stdout(&o)).contains(&"kind ?".to_string()),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("does not check out"), "{}", stderr(&o));

    // What a creator leaves when it dies between O_EXCL and sizing the file; made just before
    // the first gc, which must find it too young to judge.
    std::fs::write(format!("/dev/shm/interproc.{unfinished}"), b"").unwrap();
    let first = cli_ok(&["gc", "--prefix", &prefix]);
    assert!(first.contains(&format!("skipped {junk}:")), "{first}");
    assert!(first.contains("--force"), "{first}");
    assert!(common::exists(&junk), "unreadable files need --force");
    assert!(
        common::exists(&unfinished),
        "a fresh uninitialised file may still have a live creator"
    );
    let forced = cli_ok(&["gc", "--force", "--prefix", &prefix]);
    assert!(forced.contains(&format!("removed {junk}:")), "{forced}");
    assert!(!common::exists(&junk));

    // After the grace period (a few seconds) the dead initialisation is collected.
    let start = Instant::now();
    while common::exists(&unfinished) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "dead initialisation never collected"
        );
        std::thread::sleep(Duration::from_millis(250));
        cli_ok(&["gc", "--prefix", &prefix]);
    }
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "removed too early"
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        &[][..],
        &["list"],
        &["inspect"],
        &["remove"],
        &["gc"],
        &["bench"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = cli_ok(&args);
        assert!(out.contains("Usage: interproc"), "{args:?}: {out}");
    }
    assert!(cli_ok(&["help", "gc"]).contains("--dry-run"));
    let o = cli(&["frobnicate"]);
    assert!(!o.status.success() && !stderr(&o).is_empty());
    let o = cli(&[]);
    assert!(!o.status.success() && !stderr(&o).is_empty());
}

#[test]
fn bench_runs_a_filtered_scenario_and_prints_json() {
    let out = cli_ok(&["bench", "--quick", "--filter", "value", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("bench --json prints JSON");
    let rows = rows.as_array().expect("an array");
    assert!(!rows.is_empty());
    for row in rows {
        for key in [
            "scenario",
            "unit",
            "interproc",
            "baseline",
            "baseline_value",
            "ratio",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
        let ratio = row["ratio"].as_f64().unwrap();
        let (ours, base) = (
            row["interproc"].as_f64().unwrap(),
            row["baseline_value"].as_f64().unwrap(),
        );
        assert!(ratio > 0.0 && ours > 0.0 && base > 0.0, "{row}");
    }
    let o = cli(&["bench", "--filter", "no-such-scenario"]);
    assert!(!o.status.success() && stderr(&o).contains("no scenario"));
    let help = cli_ok(&["bench", "--help"]);
    for flag in ["--quick", "--filter <PATTERN>", "--json"] {
        assert!(help.contains(flag), "{help}");
    }
}
