//! Concurrent writers (threads with separate `Store` values, and separate processes)
//! and writers killed with SIGKILL mid-write. The child processes are this test binary
//! re-executed on one test (`child_writer`) with its instructions in the environment;
//! run normally, that test does nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use codestore::Profile;
use common::*;

const CHILD_DIR: &str = "CODESTORE_TEST_CHILD_DIR";
const CHILD_BASE: &str = "CODESTORE_TEST_CHILD_BASE";
const CHILD_ROUNDS: &str = "CODESTORE_TEST_CHILD_ROUNDS";

/// Keys `base .. base + 50`, one version per round.
fn writer_round(store: &codestore::Store, base: u64, round: u64) {
    let ts = trs(base..base + 50, round, 200 + (round as usize % 7) * 50);
    store
        .save(&program(1), &fp(1), &ts, &profile(base..base + 50))
        .unwrap();
}

/// The body of a child process: saves `rounds` rounds (0 = until killed).
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return; // not a child
    };
    let num = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (base, rounds) = (num(CHILD_BASE), num(CHILD_ROUNDS));
    let store = open(std::path::Path::new(&dir));
    let mut round = 1;
    while rounds == 0 || round <= rounds {
        writer_round(&store, base, round);
        round += 1;
    }
}

fn spawn_child(dir: &std::path::Path, base: u64, rounds: u64) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_BASE, base.to_string())
        .env(CHILD_ROUNDS, rounds.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every writer's keys are present, at some round's version, and nothing is rejected.
fn assert_union(dir: &std::path::Path, bases: &[u64]) {
    let loaded = open(dir).load(&program(1), &fp(1));
    assert_eq!(loaded.report.rejected.total(), 0, "{:?}", loaded.report);
    let keys: Vec<u64> = loaded.translations.iter().map(|t| t.key).collect();
    let mut want: Vec<u64> = bases.iter().flat_map(|&b| b..b + 50).collect();
    want.sort_unstable();
    assert_eq!(keys, want);
    for t in &loaded.translations {
        let version = t.compile_cost_ns - 1000;
        assert_eq!(
            *t,
            tr(t.key, version, t.code.len()),
            "a record is one writer's whole record"
        );
    }
    assert_eq!(loaded.profile.unwrap().entries.len(), want.len());
}

#[test]
fn threads_with_separate_stores_saving_one_program_keep_the_union() {
    let tmp = tempfile::tempdir().unwrap();
    let bases = [0u64, 1000, 2000, 3000];
    std::thread::scope(|s| {
        for &base in &bases {
            let dir = tmp.path();
            s.spawn(move || {
                let store = open(dir);
                for round in 1..=25 {
                    writer_round(&store, base, round);
                    // A reader in the middle of it all never sees a bad record.
                    let seen = store.load(&program(1), &fp(1));
                    assert_eq!(seen.report.rejected.total(), 0, "{:?}", seen.report);
                }
            });
        }
    });
    assert_union(tmp.path(), &bases);
}

#[test]
fn processes_saving_one_program_keep_the_union() {
    let tmp = tempfile::tempdir().unwrap();
    let bases = [0u64, 1000, 2000];
    // Create the store (and its layout) before the children race for it.
    open(tmp.path());
    let children: Vec<_> = bases
        .iter()
        .map(|&b| spawn_child(tmp.path(), b, 30))
        .collect();
    let reader = open(tmp.path());
    let mut reads = 0;
    for mut child in children {
        while child.try_wait().unwrap().is_none() {
            let seen = reader.load(&program(1), &fp(1));
            assert_eq!(seen.report.rejected.total(), 0, "{:?}", seen.report);
            reads += 1;
        }
        assert!(child.wait().unwrap().success());
    }
    assert!(reads > 0);
    assert_union(tmp.path(), &bases);
}

#[test]
fn a_writer_killed_mid_write_leaves_a_valid_store() {
    let tmp = tempfile::tempdir().unwrap();
    open(tmp.path());
    let mut killed_with_data = 0;
    for i in 0..12u64 {
        let mut child = spawn_child(tmp.path(), 0, 0);
        // Vary the moment of the kill; the child saves in a tight loop.
        std::thread::sleep(Duration::from_millis(30 + (i * 17) % 60));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let loaded = open(tmp.path()).load(&program(1), &fp(1));
        assert_eq!(
            loaded.report.rejected.total(),
            0,
            "after kill {i}: {:?}",
            loaded.report
        );
        if !loaded.translations.is_empty() {
            killed_with_data += 1;
            assert_eq!(loaded.translations.len(), 50, "a whole writer's set");
        }
    }
    assert!(killed_with_data > 0, "the children never got to save");
    // The store still works, and the next save sweeps whatever temporaries the kills left.
    let store = open(tmp.path());
    store
        .save(
            &program(1),
            &fp(1),
            &trs(100..110, 1, 10),
            &Profile::default(),
        )
        .unwrap();
    assert_eq!(store.stats().unwrap().temp_files, 0);
    let loaded = store.load(&program(1), &fp(1));
    assert_eq!(loaded.report.rejected.total(), 0);
    assert_eq!(loaded.translations.len(), 60);
}
