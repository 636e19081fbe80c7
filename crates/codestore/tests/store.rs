//! The directory store end to end: round trips, misses, every kind of damaged file,
//! permissions, pruning, stats and clear.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use codestore::{KeySource, Location, Profile, Store, StoreConfig, StoreError};
use common::*;

#[test]
fn save_then_load_returns_exactly_what_was_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let ts = trs(0..20, 1, 100);
    let prof = profile(0..20);
    let saved = store.save(&program(1), &fp(1), &ts, &prof).unwrap();
    assert_eq!(saved.translations_stored, 20);
    assert!(saved.pack_written && saved.profile_written);

    // A fresh Store value, as a later run would have.
    let loaded = open(tmp.path()).load(&program(1), &fp(1));
    assert_eq!(loaded.translations, ts);
    assert_eq!(loaded.profile, Some(normalised(prof)));
    let r = &loaded.report;
    assert_eq!(r.rejected.total(), 0);
    assert_eq!((r.translations_loaded, r.profile_entries_loaded), (20, 20));
    assert!(r.pack_found && r.profile_found);
    assert!(r.bytes_read > 20 * 100);
    assert!(r.warnings.is_empty());
}

#[test]
fn saving_merges_by_key_and_the_new_record_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store
        .save(&program(1), &fp(1), &trs(0..10, 1, 8), &profile(0..10))
        .unwrap();
    let r = store
        .save(&program(1), &fp(1), &trs(5..15, 2, 8), &Profile::default())
        .unwrap();
    assert_eq!(r.translations_changed, 10);
    assert!(!r.profile_written, "an empty profile changes nothing");
    let loaded = store.load(&program(1), &fp(1));
    let mut want = trs(0..5, 1, 8);
    want.extend(trs(5..15, 2, 8));
    assert_eq!(loaded.translations, want);

    // Saving the same again rewrites nothing.
    let again = store
        .save(&program(1), &fp(1), &trs(5..15, 2, 8), &profile(0..10))
        .unwrap();
    assert!(!again.pack_written && !again.profile_written);
    assert_eq!(again.bytes_written, 0);
}

#[test]
fn profile_heats_merge_by_maximum_and_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let entry = |key, heat| codestore::ProfileEntry { key, heat };
    let first = Profile {
        entries: vec![entry(1, 10), entry(2, 50)],
    };
    let second = Profile {
        entries: vec![entry(1, 30), entry(2, 20), entry(3, 5)],
    };
    store.save(&program(1), &fp(1), &[], &first).unwrap();
    store.save(&program(1), &fp(2), &[], &second).unwrap();
    let got = store.load(&program(1), &fp(9)).profile.unwrap();
    assert_eq!(got.entries, vec![entry(2, 50), entry(1, 30), entry(3, 5)]);

    let many = Profile {
        entries: (0..codestore::MAX_PROFILE_ENTRIES as u64 + 100)
            .map(|k| entry(k, k))
            .collect(),
    };
    let r = store.save(&program(2), &fp(1), &[], &many).unwrap();
    assert_eq!(
        r.profile_entries_stored,
        codestore::MAX_PROFILE_ENTRIES as u64
    );
    let got = store.load(&program(2), &fp(1)).profile.unwrap();
    assert_eq!(got.entries.len(), codestore::MAX_PROFILE_ENTRIES);
    assert_eq!(
        got.entries.last().unwrap().heat,
        100,
        "the coldest 100 went"
    );
}

#[test]
fn another_fingerprint_or_program_finds_nothing_and_rejects_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store
        .save(&program(1), &fp(1), &trs(0..5, 1, 16), &profile(0..5))
        .unwrap();

    let other_fp = store.load(&program(1), &fp(2));
    assert!(other_fp.translations.is_empty());
    assert!(!other_fp.report.pack_found);
    assert_eq!(other_fp.report.rejected.total(), 0);
    assert!(other_fp.profile.is_some(), "profiles outlive fingerprints");

    let other_program = store.load(&program(2), &fp(1));
    assert!(other_program.translations.is_empty() && other_program.profile.is_none());
    assert_eq!(other_program.report.rejected.total(), 0);
}

#[test]
fn a_pack_copied_under_another_fingerprint_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store
        .save(&program(1), &fp(1), &trs(0..5, 1, 16), &Profile::default())
        .unwrap();
    fs::copy(
        pack_path(tmp.path(), &program(1), &fp(1)),
        pack_path(tmp.path(), &program(1), &fp(2)),
    )
    .unwrap();
    let loaded = store.load(&program(1), &fp(2));
    assert!(loaded.translations.is_empty());
    assert_eq!(loaded.report.rejected.wrong_header, 1);
}

#[test]
fn a_corrupt_byte_costs_one_record() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let ts = trs(0..10, 1, 64);
    store
        .save(&program(1), &fp(1), &ts, &Profile::default())
        .unwrap();
    let path = pack_path(tmp.path(), &program(1), &fp(1));
    let mut bytes = fs::read(&path).unwrap();
    let len = bytes.len();
    bytes[len / 2] ^= 0xff; // somewhere in the middle record's body
    fs::write(&path, &bytes).unwrap();

    let loaded = store.load(&program(1), &fp(1));
    assert_eq!(loaded.translations.len(), 9);
    assert!(loaded.translations.iter().all(|t| ts.contains(t)));
    assert_eq!(loaded.report.rejected.corrupt, 1);
    assert_eq!(loaded.report.rejected.total(), 1);

    // The next save drops the bad record and writes a clean file.
    let r = store
        .save(&program(1), &fp(1), &[], &Profile::default())
        .unwrap();
    assert_eq!(r.rejected_existing.corrupt, 1);
    assert!(r.pack_written);
    assert_eq!(store.load(&program(1), &fp(1)).report.rejected.total(), 0);
}

#[test]
fn truncated_files_keep_their_whole_records() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let ts = trs(0..4, 1, 40);
    store
        .save(&program(1), &fp(1), &ts, &profile(0..3))
        .unwrap();
    let path = pack_path(tmp.path(), &program(1), &fp(1));
    let full = fs::read(&path).unwrap();
    for cut in 0..full.len() {
        fs::write(&path, &full[..cut]).unwrap();
        let loaded = store.load(&program(1), &fp(1));
        assert_eq!(
            loaded.report.rejected.truncated, 1,
            "cut at {cut}: {:?}",
            loaded.report.rejected
        );
        assert_eq!(loaded.report.rejected.total(), 1, "cut at {cut}");
        assert_eq!(
            loaded.translations[..],
            ts[..loaded.translations.len()],
            "cut at {cut}"
        );
        assert!(loaded.profile.is_some(), "the profile is another file");
    }
}

#[test]
fn a_wrong_key_rejects_every_record_as_bad_mac() {
    let tmp = tempfile::tempdir().unwrap();
    open(tmp.path())
        .save(&program(1), &fp(1), &trs(0..6, 1, 16), &profile(0..6))
        .unwrap();
    let mut c = config(tmp.path());
    c.key = KeySource::Secret(b"some other key, long enough".to_vec());
    let other = Store::open(c).unwrap();
    let loaded = other.load(&program(1), &fp(1));
    assert!(loaded.translations.is_empty() && loaded.profile.is_none());
    assert_eq!(
        loaded.report.rejected.bad_mac,
        6 + 1,
        "six records and one profile chunk"
    );
    assert!(loaded.report.pack_found);
}

#[test]
fn garbage_files_unknown_versions_and_absurd_lengths_never_fail_a_load() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store
        .save(&program(1), &fp(1), &trs(0..3, 1, 16), &profile(0..3))
        .unwrap();
    let pack = pack_path(tmp.path(), &program(1), &fp(1));
    let good = fs::read(&pack).unwrap();

    let mut v9 = good.clone();
    v9[8] = 9;
    let mut absurd = good.clone();
    absurd[88 + 4..88 + 8].copy_from_slice(&u32::MAX.to_le_bytes()); // first record's length
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"hello, this is not a pack at all".to_vec()),
        ("zeros", vec![0; 4096]),
        ("version 9", v9),
        ("absurd length", absurd),
    ];
    for (what, bytes) in cases {
        fs::write(&pack, &bytes).unwrap();
        let loaded = store.load(&program(1), &fp(1));
        assert!(
            loaded.report.rejected.total() >= 1,
            "{what}: {:?}",
            loaded.report
        );
        assert!(loaded.profile.is_some(), "{what}");
        if what == "absurd length" {
            assert_eq!(
                loaded.translations.len(),
                2,
                "{what}: later records still load"
            );
        } else {
            assert!(loaded.translations.is_empty(), "{what}");
        }
    }

    // Junk beside the real files, and a directory where a pack should be.
    let pdir = tmp.path().join("v1").join(program(1).to_hex());
    fs::write(pdir.join("README"), "junk").unwrap();
    fs::remove_file(&pack).unwrap();
    fs::create_dir(&pack).unwrap();
    let loaded = store.load(&program(1), &fp(1));
    assert_eq!(loaded.report.rejected.corrupt, 1);
    assert_eq!(loaded.report.io_errors, 0);
    fs::remove_dir(&pack).unwrap();
    fs::write(tmp.path().join("v1").join("not-a-program"), "junk").unwrap();
    store
        .save(&program(1), &fp(1), &trs(0..3, 1, 16), &Profile::default())
        .unwrap();
    assert_eq!(store.load(&program(1), &fp(1)).translations.len(), 3);
}

#[test]
fn arbitrary_bytes_as_pack_files_never_panic() {
    use proptest::prelude::*;
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store
        .save(&program(1), &fp(1), &trs(0..2, 1, 8), &Profile::default())
        .unwrap();
    let pack = pack_path(tmp.path(), &program(1), &fp(1));
    let good = fs::read(&pack).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(
            &(
                proptest::collection::vec(any::<u8>(), 0..512),
                any::<bool>(),
            ),
            |(noise, splice)| {
                let bytes = if splice {
                    [&good[..good.len().min(120)], &noise[..]].concat()
                } else {
                    noise
                };
                fs::write(&pack, &bytes).unwrap();
                let loaded = store.load(&program(1), &fp(1));
                prop_assert!(loaded.translations.len() <= 2);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn directories_are_created_private_and_unsafe_ones_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("store");
    let store = open(&dir);
    store
        .save(&program(1), &fp(1), &trs(0..1, 1, 4), &profile(0..1))
        .unwrap();
    for d in [
        &dir,
        &dir.join("v1"),
        &dir.join("v1").join(program(1).to_hex()),
    ] {
        assert_eq!(
            fs::metadata(d).unwrap().permissions().mode() & 0o777,
            0o700,
            "{}",
            d.display()
        );
    }
    let pack = pack_path(&dir, &program(1), &fp(1));
    assert_eq!(
        fs::metadata(pack).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let open_dir = tmp.path().join("world-writable");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let r = Store::open(config(&open_dir));
    assert!(
        matches!(r, Err(StoreError::WritableByOthers { mode: 0o777, .. })),
        "{r:?}"
    );
    let (disabled, warning) = Store::open_or_disabled(config(&open_dir));
    assert!(!disabled.is_enabled());
    assert!(warning.unwrap().contains("777"));

    let file = tmp.path().join("a-file");
    fs::write(&file, "x").unwrap();
    assert!(matches!(
        Store::open(config(&file)),
        Err(StoreError::NotADirectory(_))
    ));

    // Another user's directory: only root can make one to test with.
    let foreign = tmp.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::set_permissions(&foreign, fs::Permissions::from_mode(0o700)).unwrap();
    if std::os::unix::fs::chown(&foreign, Some(54_321), None).is_ok() {
        let r = Store::open(config(&foreign));
        assert!(
            matches!(r, Err(StoreError::ForeignOwner { owner: 54_321, .. })),
            "{r:?}"
        );
    } else {
        eprintln!("not root: skipped the foreign-owner check");
    }
}

#[test]
fn the_generated_key_file_is_0600_and_a_readable_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = StoreConfig::new(Location::Dir(tmp.path().join("s")));
    c.key = KeySource::DirKeyFile;
    let store = Store::open(c.clone()).unwrap();
    store
        .save(&program(1), &fp(1), &trs(0..2, 1, 4), &Profile::default())
        .unwrap();
    let key = tmp.path().join("s").join("key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The same key next time.
    assert_eq!(
        Store::open(c.clone())
            .unwrap()
            .load(&program(1), &fp(1))
            .translations
            .len(),
        2
    );

    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        Store::open(c),
        Err(StoreError::KeyFileMode { mode: 0o640, .. })
    ));
}

#[test]
fn a_disabled_store_keeps_nothing() {
    let store = Store::open(StoreConfig::new(Location::None)).unwrap();
    assert!(!store.is_enabled());
    let r = store
        .save(&program(1), &fp(1), &trs(0..2, 1, 4), &profile(0..2))
        .unwrap();
    assert_eq!(r.translations_stored, 0);
    let loaded = store.load(&program(1), &fp(1));
    assert!(loaded.translations.is_empty() && loaded.profile.is_none());
    assert_eq!(store.stats().unwrap().programs, 0);
}

fn set_mtime(path: &std::path::Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    fs::File::open(path).unwrap().set_modified(t).unwrap();
}

#[test]
fn pruning_removes_least_recently_used_files_first() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    c.max_bytes = 1 << 30; // prune explicitly below
    let store = Store::open(c).unwrap();
    // Three programs of ~40 KB each; program 1 also has a stale fingerprint.
    for n in 1..=3 {
        store
            .save(&program(n), &fp(1), &trs(0..10, 1, 4000), &profile(0..4))
            .unwrap();
    }
    store
        .save(
            &program(1),
            &fp(0),
            &trs(0..10, 1, 4000),
            &Profile::default(),
        )
        .unwrap();
    let mtimes = [(1u8, 1, 3000), (1, 0, 1000), (2, 1, 2000), (3, 1, 4000)];
    for (p, f, secs) in mtimes {
        set_mtime(&pack_path(tmp.path(), &program(p), &fp(f)), secs);
    }
    for (p, secs) in [(1, 3000), (2, 2000), (3, 4000)] {
        set_mtime(&profile_path(tmp.path(), &program(p)), secs);
    }
    // Loading program 2 makes it the most recently used.
    assert_eq!(store.load(&program(2), &fp(1)).translations.len(), 10);

    let before = store.stats().unwrap();
    assert_eq!((before.programs, before.packs, before.profiles), (3, 4, 3));
    assert_eq!(before.records, 40);
    assert_eq!(before.per_program.last().unwrap().program, program(2));

    // Room for two packs and two profiles: program 1's stale pack goes first, then
    // program 1's current pack and profile (3000), before program 3 (4000) and program
    // 2 (just used).
    let pack_bytes = before.per_program[0].packs[0].bytes;
    let profile_bytes = fs::metadata(profile_path(tmp.path(), &program(3)))
        .unwrap()
        .len();
    let budget = 2 * pack_bytes + 2 * profile_bytes;
    let r = store.prune(budget).unwrap();
    assert_eq!(r.bytes_after, budget);
    assert_eq!(r.files_removed, 3);
    assert!(!pack_path(tmp.path(), &program(1), &fp(0)).exists());
    assert!(!pack_path(tmp.path(), &program(1), &fp(1)).exists());
    assert!(pack_path(tmp.path(), &program(2), &fp(1)).exists());
    assert!(pack_path(tmp.path(), &program(3), &fp(1)).exists());
    assert_eq!(r.programs_removed, 1);
    assert!(!tmp.path().join("v1").join(program(1).to_hex()).exists());
    let after = store.stats().unwrap();
    assert_eq!(after.bytes, r.bytes_after);
    assert_eq!(after.programs, 2);
}

#[test]
fn saving_enforces_max_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    c.max_bytes = 100_000;
    let store = Store::open(c).unwrap();
    for n in 0..10 {
        let r = store
            .save(
                &program(n),
                &fp(1),
                &trs(0..10, 1, 2000),
                &Profile::default(),
            )
            .unwrap();
        assert!(r.pruned.bytes_after <= 100_000, "{r:?}");
    }
    let stats = store.stats().unwrap();
    assert!(stats.bytes <= 100_000);
    assert!(stats.programs >= 3, "only what did not fit went: {stats:?}");
    // The latest save survived its own prune.
    assert_eq!(store.load(&program(9), &fp(1)).translations.len(), 10);

    // A pack that alone exceeds the budget keeps its hottest translations.
    let big = trs(0..100, 7, 2000);
    let r = store
        .save(&program(20), &fp(1), &big, &Profile::default())
        .unwrap();
    assert!(r.translations_dropped > 0 && r.translations_stored > 0);
    let loaded = store.load(&program(20), &fp(1)).translations;
    let coldest_kept = loaded.iter().map(|t| t.heat).min().unwrap();
    assert!(
        big.iter()
            .filter(|t| !loaded.contains(t))
            .all(|t| t.heat <= coldest_kept)
    );
}

#[test]
fn stats_and_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store
        .save(&program(1), &fp(1), &trs(0..3, 1, 10), &profile(0..3))
        .unwrap();
    store
        .save(&program(2), &fp(1), &trs(0..5, 1, 10), &Profile::default())
        .unwrap();
    let s = store.stats().unwrap();
    assert_eq!(
        (s.programs, s.packs, s.profiles, s.records, s.temp_files),
        (2, 2, 1, 8, 0)
    );
    assert_eq!(s.bytes, s.per_program.iter().map(|p| p.bytes).sum::<u64>());

    let r = store.clear().unwrap();
    assert_eq!(
        (r.files_removed, r.programs_removed, r.bytes_after),
        (3, 2, 0)
    );
    assert_eq!(store.stats().unwrap(), codestore::StoreStats::default());
    assert!(store.load(&program(1), &fp(1)).translations.is_empty());
    // Still usable.
    store
        .save(&program(1), &fp(1), &trs(0..3, 1, 10), &Profile::default())
        .unwrap();
    assert_eq!(store.load(&program(1), &fp(1)).translations.len(), 3);
}

#[test]
fn stray_temporary_files_are_removed_by_the_next_save() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store
        .save(&program(1), &fp(1), &trs(0..3, 1, 10), &Profile::default())
        .unwrap();
    let pdir = tmp.path().join("v1").join(program(1).to_hex());
    fs::write(
        pdir.join(format!(".{}.pack.999.0.tmp", fp(1).to_hex())),
        b"half a pack",
    )
    .unwrap();
    assert_eq!(store.stats().unwrap().temp_files, 1);
    assert_eq!(store.load(&program(1), &fp(1)).report.rejected.total(), 0);
    store
        .save(&program(1), &fp(1), &[], &Profile::default())
        .unwrap();
    assert_eq!(store.stats().unwrap().temp_files, 0);
}
