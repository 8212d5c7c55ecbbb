//! Named regions across real processes: attach by name, races, ownership, permissions, names,
//! typed errors, hostile region files, and `Value` exactness.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{expect_success, role, run_role, spawn, Names};
use interproc::{Error, Value};

fn shm_path(name: &str) -> String {
    format!("/dev/shm/interproc.{name}")
}

/// Exit codes a child uses to report which error it got.
fn error_code(e: &Error) -> i32 {
    match e {
        Error::NotFound => 10,
        Error::Incompatible { .. } => 11,
        Error::Corrupted { .. } => 12,
        Error::Busy => 13,
        Error::InvalidName => 14,
        _ => 19,
    }
}

#[test]
fn attach_by_name_from_another_process() {
    if role().is_some() {
        run_role(|| {
            let v = Value::<u64>::open(&common::arg())?;
            v.fetch_add(41);
            Ok::<_, Error>(())
        });
    }
    let mut names = Names::new();
    let name = names.add("attach");
    let v = Value::<u64>::create(&name, 1).unwrap();
    expect_success(spawn("attach_by_name_from_another_process", "child", &name));
    assert_eq!(v.load(), 42);
}

#[test]
fn open_or_create_race_has_exactly_one_creator() {
    const RACERS: u64 = 6;
    if let Some(r) = role() {
        run_role(|| {
            let (go, name) = common::arg()
                .split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .unwrap();
            let go = Value::<bool>::open(&go)?;
            while !go.load() {
                std::hint::spin_loop();
            }
            let v = Value::<u64>::open_or_create(&name, 0)?;
            v.fetch_add(1);
            // The creator keeps its handle until everyone has counted, then persists so the
            // parent can read the result.
            while v.load() < RACERS {
                std::thread::sleep(Duration::from_millis(1));
            }
            v.persist();
            let _ = r;
            Ok::<_, Error>(())
        });
    }
    let mut names = Names::new();
    let go_name = names.add("race-go");
    let name = names.add("race");
    let go = Value::<bool>::create(&go_name, false).unwrap();
    let children: Vec<_> = (0..RACERS)
        .map(|_| {
            spawn(
                "open_or_create_race_has_exactly_one_creator",
                "racer",
                &format!("{go_name} {name}"),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    go.store(true);
    for c in children {
        expect_success(c);
    }
    // Every racer counted once into the same object: a second creator would have either
    // failed (AlreadyExists is retried as open) or made a second object that lost counts.
    let v = Value::<u64>::open(&name).unwrap();
    assert_eq!(v.load(), RACERS);
}

#[test]
fn creator_owns_the_name_unless_persisted() {
    let mut names = Names::new();
    let name = names.add("own");
    let creator = Value::<i32>::create(&name, 5).unwrap();
    let other = Value::<i32>::open(&name).unwrap();
    drop(creator);
    assert!(
        !common::exists(&name),
        "dropping the creator unlinks the name"
    );
    other.store(6);
    assert_eq!(other.load(), 6, "attached handles keep working");
    assert!(matches!(Value::<i32>::open(&name), Err(Error::NotFound)));

    let creator = Value::<i32>::create(&name, 7).unwrap();
    creator.persist();
    drop(creator);
    assert!(
        common::exists(&name),
        "a persisted name outlives its creator"
    );
    assert_eq!(Value::<i32>::open(&name).unwrap().load(), 7);
    interproc::remove(&name).unwrap();
    assert!(!common::exists(&name));
    assert!(matches!(interproc::remove(&name), Err(Error::NotFound)));
}

#[test]
fn persist_through_any_handle_keeps_the_name() {
    let mut names = Names::new();
    let name = names.add("persist-other");
    let creator = Value::<u8>::create(&name, 1).unwrap();
    Value::<u8>::open(&name).unwrap().persist();
    drop(creator);
    assert!(
        common::exists(&name),
        "an opener's persist hands the creator's name up"
    );
}

#[test]
fn dropping_an_opener_never_unlinks() {
    let mut names = Names::new();
    let name = names.add("opener");
    let creator = Value::<u8>::create(&name, 1).unwrap();
    drop(Value::<u8>::open(&name).unwrap());
    assert!(common::exists(&name));
    drop(creator);
}

#[test]
fn a_recreated_name_is_not_unlinked_by_the_old_owner() {
    let mut names = Names::new();
    let name = names.add("recreate");
    let old = Value::<u8>::create(&name, 1).unwrap();
    interproc::remove(&name).unwrap();
    let new = Value::<u8>::create(&name, 2).unwrap();
    new.persist();
    drop(old);
    assert_eq!(Value::<u8>::open(&name).unwrap().load(), 2);
}

#[test]
fn regions_are_created_mode_0600() {
    let mut names = Names::new();
    let name = names.add("mode");
    let _v = Value::<u8>::create(&name, 0).unwrap();
    let mode = std::fs::metadata(shm_path(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_create_mode_can_be_chosen() {
    if role().is_some() {
        run_role(|| {
            interproc::set_create_mode(0o640);
            let v = Value::<u8>::create(&common::arg(), 0)?;
            v.persist();
            Ok::<_, Error>(())
        });
    }
    let mut names = Names::new();
    let name = names.add("mode640");
    expect_success(spawn("the_create_mode_can_be_chosen", "creator", &name));
    let mode = std::fs::metadata(shm_path(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(
        interproc::create_mode(),
        0o600,
        "the parent's default is untouched"
    );
}

#[test]
fn every_invalid_name_is_refused() {
    let long = "x".repeat(65);
    for bad in [
        "",
        ".dot",
        "a/b",
        "sp ace",
        "tab\t",
        "uni\u{e9}",
        "nul\0",
        long.as_str(),
        "a*b",
    ] {
        assert!(
            matches!(Value::<u8>::create(bad, 0), Err(Error::InvalidName)),
            "{bad:?}"
        );
        assert!(
            matches!(Value::<u8>::open(bad), Err(Error::InvalidName)),
            "{bad:?}"
        );
        assert!(
            matches!(Value::<u8>::open_or_create(bad, 0), Err(Error::InvalidName)),
            "{bad:?}"
        );
        assert!(
            matches!(interproc::remove(bad), Err(Error::InvalidName)),
            "{bad:?}"
        );
    }
    let mut names = Names::new();
    let ok = names.add("x.y_Z-9");
    assert!(Value::<u8>::create(&ok, 0).is_ok());
    let max = "m".repeat(64);
    names.keep(&max);
    let _ = interproc::remove(&max);
    assert!(
        Value::<u8>::create(&max, 0).is_ok(),
        "64 characters is allowed"
    );
}

#[test]
fn typed_errors_for_missing_existing_and_incompatible() {
    let mut names = Names::new();
    let name = names.add("typed");
    assert!(matches!(Value::<u64>::open(&name), Err(Error::NotFound)));
    let _v = Value::<u64>::create(&name, 0).unwrap();
    assert!(matches!(
        Value::<u64>::create(&name, 0),
        Err(Error::AlreadyExists)
    ));
    assert!(matches!(
        Value::<u32>::open(&name),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        Value::<i64>::open(&name),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        Value::<u32>::open_or_create(&name, 0),
        Err(Error::Incompatible { .. })
    ));
    let shown = format!("{:?}", Value::<u64>::open(&name).unwrap());
    assert!(shown.contains(&name) && shown.contains("value"), "{shown}");
}

/// A header as the crate writes it, with a hook to break one field.
fn value_header(total_len: u64, state_ready: bool) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"IPROC\0\0\x01"); // magic
    h.extend_from_slice(&2u32.to_le_bytes()); // version (FORMAT_VERSION)
    h.extend_from_slice(&(if state_ready { 0x5245_4459u32 } else { 0 }).to_le_bytes());
    h.extend_from_slice(&10u32.to_le_bytes()); // kind: value
    h.extend_from_slice(&8u32.to_le_bytes()); // elem size
    h.extend_from_slice(&8u32.to_le_bytes()); // elem align
    h.extend_from_slice(&0u32.to_le_bytes()); // flags
    h.extend_from_slice(&1u64.to_le_bytes()); // capacity
    h.extend_from_slice(&2176u64.to_le_bytes()); // body offset
    h.extend_from_slice(&8u64.to_le_bytes()); // body len
    h.extend_from_slice(&total_len.to_le_bytes()); // total len
    h.extend_from_slice(&[0u8; 8]); // creator pid + reserved
    h.extend_from_slice(&[0u8; 8]); // creator start
    h.extend_from_slice(&4u64.to_le_bytes()); // params[0]: u64's tag
    h.resize(4096, 0);
    h
}

#[test]
fn hostile_region_files_give_typed_errors_in_a_child() {
    if role().is_some() {
        // Open whatever is there; exit with the code of the error, 0 if it opened.
        let code = match Value::<u64>::open(&common::arg()) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("child got: {e}");
                error_code(&e)
            }
        };
        std::process::exit(code);
    }
    let mut names = Names::new();
    let mut garbage = vec![0u8; 8192];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in garbage.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut bad_magic = value_header(4096, true);
    bad_magic[0] = b'X';
    let mut bad_version = value_header(4096, true);
    bad_version[8] = 9;
    let mut bad_kind = value_header(4096, true);
    bad_kind[16] = 4; // a mutex
    let cases: Vec<(&str, Vec<u8>, i32)> = vec![
        ("empty", vec![], 12),
        ("short", vec![1, 2, 3], 12),
        ("garbage", garbage, 12),
        ("never-ready", value_header(4096, false), 12),
        ("wrong-total", value_header(8192, true), 12),
        ("bad-magic", bad_magic, 12),
        ("bad-version", bad_version, 11),
        ("bad-kind", bad_kind, 11),
        ("good", value_header(4096, true), 0),
    ];
    for (tag, bytes, want) in cases {
        let name = names.add(tag);
        std::fs::write(shm_path(&name), &bytes).unwrap();
        let mut child = spawn(
            "hostile_region_files_give_typed_errors_in_a_child",
            "open",
            &name,
        );
        let status = common::wait_timeout(&mut child, Duration::from_secs(60));
        assert_eq!(status.code(), Some(want), "{tag}: {status}");
    }
}

#[test]
fn a_region_truncated_after_creation_is_refused() {
    if role().is_some() {
        let code = match Value::<u64>::open(&common::arg()) {
            Ok(_) => 0,
            Err(e) => error_code(&e),
        };
        std::process::exit(code);
    }
    let mut names = Names::new();
    let name = names.add("trunc");
    let v = Value::<u64>::create(&name, 3).unwrap();
    v.persist();
    drop(v);
    for len in [100u64, 0] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(shm_path(&name))
            .unwrap()
            .set_len(len)
            .unwrap();
        let mut child = spawn(
            "a_region_truncated_after_creation_is_refused",
            "open",
            &name,
        );
        let status = common::wait_timeout(&mut child, Duration::from_secs(60));
        assert_eq!(status.code(), Some(12), "truncated to {len}: {status}");
    }
    // Grown files are refused too: the header's length must match the file's.
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    assert!(matches!(
        Value::<u64>::open(&name),
        Err(Error::Corrupted { .. })
    ));
}

#[test]
fn value_is_exact_under_two_processes() {
    const N: u64 = 1_000_000;
    if role().is_some() {
        run_role(|| {
            let v = Value::<u64>::open(&common::arg())?;
            for _ in 0..N {
                v.fetch_add(1);
            }
            Ok::<_, Error>(())
        });
    }
    let mut names = Names::new();
    let name = names.add("exact");
    let v = Value::<u64>::create(&name, 0).unwrap();
    let a = spawn("value_is_exact_under_two_processes", "adder", &name);
    let b = spawn("value_is_exact_under_two_processes", "adder", &name);
    expect_success(a);
    expect_success(b);
    assert_eq!(v.load(), 2 * N);
}

#[test]
fn open_waits_for_a_live_creator_and_refuses_a_dead_one() {
    if role().is_some() {
        run_role(|| {
            let v = Value::<u64>::create(&common::arg(), 9)?;
            v.persist();
            Ok::<_, Error>(())
        });
    }
    let mut names = Names::new();
    // A creator that stalls 300 ms before publishing: the opener waits and then succeeds.
    let slow = names.add("slow-creator");
    let mut child = common::child(
        "open_waits_for_a_live_creator_and_refuses_a_dead_one",
        "creator",
        &slow,
    )
    .env(
        "INTERPROC_FAILPOINTS",
        "region.create.before_ready=sleep:300",
    )
    .spawn()
    .unwrap();
    assert!(common::eventually(Duration::from_secs(30), || {
        common::exists(&slow)
    }));
    let v = Value::<u64>::open(&slow).expect("open waits for the live creator");
    assert_eq!(v.load(), 9);
    assert!(common::wait_timeout(&mut child, Duration::from_secs(60)).success());

    // A creator that dies before publishing: the opener is told so, at once.
    let dead = names.add("dead-creator");
    let mut child = common::child(
        "open_waits_for_a_live_creator_and_refuses_a_dead_one",
        "creator",
        &dead,
    )
    .env("INTERPROC_FAILPOINTS", "region.create.before_ready=abort")
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let status = common::wait_timeout(&mut child, Duration::from_secs(60));
    assert!(!status.success());
    assert!(
        common::exists(&dead),
        "the half-made object is left behind for gc"
    );
    let start = std::time::Instant::now();
    assert!(matches!(
        Value::<u64>::open(&dead),
        Err(Error::Corrupted { .. })
    ));
    assert!(matches!(
        Value::<u64>::open_or_create(&dead, 0),
        Err(Error::Corrupted { .. })
    ));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no waiting for a dead creator"
    );
}

#[test]
fn open_waits_for_a_creator_that_has_not_taken_its_owner_lock_yet() {
    if role().is_some() {
        run_role(|| {
            let v = Value::<u64>::create(&common::arg(), 9)?;
            v.persist();
            Ok::<_, Error>(())
        });
    }
    let mut names = Names::new();
    // A creator that stalls between `O_EXCL` and taking its owner lock: the file exists, is
    // empty and nobody holds a lock on it. That is a live creator, not a dead one: the opener
    // must wait for it instead of reporting the object corrupted.
    let slow = names.add("pre-lock-creator");
    let mut child = common::child(
        "open_waits_for_a_creator_that_has_not_taken_its_owner_lock_yet",
        "creator",
        &slow,
    )
    .env(
        "INTERPROC_FAILPOINTS",
        "region.create.before_owner_lock=sleep:1000",
    )
    .spawn()
    .unwrap();
    assert!(common::eventually(Duration::from_secs(30), || {
        common::exists(&slow)
    }));
    let v = Value::<u64>::open(&slow).expect("open waits for the live creator");
    assert_eq!(v.load(), 9);
    assert!(common::wait_timeout(&mut child, Duration::from_secs(60)).success());

    // A creator that dies at that point leaves an empty, unlocked file: the opener gives up
    // within its init wait, with a typed error.
    let dead = names.add("pre-lock-dead");
    let mut child = common::child(
        "open_waits_for_a_creator_that_has_not_taken_its_owner_lock_yet",
        "creator",
        &dead,
    )
    .env(
        "INTERPROC_FAILPOINTS",
        "region.create.before_owner_lock=abort",
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    assert!(!common::wait_timeout(&mut child, Duration::from_secs(60)).success());
    assert!(common::exists(&dead));
    let start = std::time::Instant::now();
    assert!(matches!(
        Value::<u64>::open(&dead),
        Err(Error::Corrupted { .. })
    ));
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_fifo_in_place_of_a_region_never_blocks_the_observer() {
    if role().is_some() {
        // list / inspect / gc open every `interproc.*` entry read-only; a FIFO there (any user
        // can create one in /dev/shm) must be reported, not waited on for a writer.
        run_role(|| {
            let name = common::arg();
            let info = interproc::inspect::inspect(&name)?;
            assert!(info.kind.is_none() && info.error.is_some(), "{info:?}");
            let listed = interproc::inspect::list()?;
            assert!(listed.iter().any(|i| i.name == name && i.kind.is_none()));
            let opts = interproc::inspect::GcOptions {
                dry_run: true,
                force: true,
                prefix: Some(name.clone()),
            };
            interproc::inspect::gc(&opts)?;
            assert!(Value::<u64>::open(&name).is_err());
            Ok::<_, Error>(())
        });
    }
    let mut names = Names::new();
    let name = names.add("fifo");
    let path = std::ffi::CString::new(shm_path(&name)).unwrap();
    // SAFETY: `path` is a valid NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let mut child = spawn(
        "a_fifo_in_place_of_a_region_never_blocks_the_observer",
        "observer",
        &name,
    );
    let status = common::wait_timeout(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

#[test]
fn a_creator_whose_file_gc_removed_never_gets_a_nameless_object() {
    if role().is_some() {
        let name = common::arg();
        let code = match Value::<u64>::create(&name, 9) {
            // Ok must mean: the name refers to the object this process just made.
            Ok(v) if common::exists(&name) => {
                v.persist();
                0
            }
            Ok(_) => 3,
            Err(e) => {
                eprintln!("child got: {e}");
                0
            }
        };
        std::process::exit(code);
    }
    let mut names = Names::new();
    let name = names.add("gc-stalled");
    // A creator stalled between O_EXCL and its owner lock for longer than gc's grace period:
    // gc rightly takes the empty, unlocked file for the leftover of a dead creator.
    let mut child = common::child(
        "a_creator_whose_file_gc_removed_never_gets_a_nameless_object",
        "creator",
        &name,
    )
    .env(
        "INTERPROC_FAILPOINTS",
        "region.create.before_owner_lock=sleep:6000",
    )
    .spawn()
    .unwrap();
    assert!(common::eventually(Duration::from_secs(30), || {
        common::exists(&name)
    }));
    let opts = interproc::inspect::GcOptions {
        dry_run: false,
        force: false,
        prefix: Some(name.clone()),
    };
    let removed = common::eventually(Duration::from_secs(5), || {
        std::thread::sleep(Duration::from_millis(100));
        interproc::inspect::gc(&opts)
            .unwrap()
            .iter()
            .any(|a| a.name == name && a.outcome == interproc::inspect::GcOutcome::Removed)
    });
    assert!(removed, "gc should remove the stalled creator's empty file");
    let status = common::wait_timeout(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "create returned a nameless object");
}

#[test]
fn a_world_writable_object_of_another_user_is_refused() {
    let mut names = Names::new();
    let name = names.add("squatted");
    let v = Value::<u64>::create(&name, 1).unwrap();
    v.persist();
    drop(v);
    let path = shm_path(&name);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(
        Value::<u64>::open(&name).is_ok(),
        "our own world-writable object is fine"
    );
    // Hand it to another user (needs root, as CI and this machine run; skipped otherwise).
    let c = std::ffi::CString::new(path.clone()).unwrap();
    // SAFETY: a valid NUL-terminated path; chown has no memory-safety preconditions.
    if unsafe { libc::chown(c.as_ptr(), 65534, 65534) } != 0 {
        eprintln!("not root: skipping the other-user half");
        return;
    }
    match Value::<u64>::open(&name) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied),
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
    assert!(
        Value::<u64>::open(&name).is_ok(),
        "group-shared objects of other users are accepted"
    );
}
