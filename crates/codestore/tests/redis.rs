//! The Redis tier against a real `redis-server` started on a free loopback port (the
//! tests that need one print that they were skipped and pass if it is not on PATH), and
//! against a closed port and a server that never answers.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codestore::{KeySource, Location, Profile, Store, StoreConfig, StoreError};
use common::*;

struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server`, or `None` (with a note) if it is not installed.
    fn start() -> Option<RedisServer> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let spawned = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("redis-server is not on PATH: skipped");
                return None;
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis_config(url: &str, local: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(Location::Redis {
        url: url.to_owned(),
        local: local.to_owned(),
    });
    c.key = KeySource::Secret(SECRET.to_vec());
    c
}

#[test]
fn round_trip_through_redis_fills_an_empty_local_store() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let machine_a = tempfile::tempdir().unwrap();
    let machine_b = tempfile::tempdir().unwrap();
    let ts = trs(0..30, 1, 300);
    let prof = profile(0..30);

    let a = Store::open(redis_config(&server.url(), machine_a.path())).unwrap();
    let saved = a.save(&program(1), &fp(1), &ts, &prof).unwrap();
    assert_eq!(saved.remote.writes, 2, "{saved:?}");
    assert!(saved.warnings.is_empty(), "{:?}", saved.warnings);
    let mut con = server.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("vmjit:v1:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys.len(), 2);
    let ttl: i64 = redis::cmd("TTL").arg(&keys[0]).query(&mut con).unwrap();
    assert!(ttl > 0, "values expire");

    // Another machine: nothing local, everything from Redis, written through.
    let b = Store::open(redis_config(&server.url(), machine_b.path())).unwrap();
    let loaded = b.load(&program(1), &fp(1));
    assert_eq!(loaded.translations, ts);
    assert_eq!(loaded.profile, Some(normalised(prof.clone())));
    assert_eq!(
        (loaded.report.remote.hits, loaded.report.remote.misses),
        (2, 0)
    );
    assert_eq!(loaded.report.rejected.total(), 0);
    assert_eq!(
        b.stats().unwrap().records,
        30,
        "written through to the local directory"
    );

    // Now local: no Redis request.
    let again = b.load(&program(1), &fp(1));
    assert_eq!(again.translations, ts);
    assert_eq!(again.report.remote, codestore::RemoteCounts::default());

    // A fingerprint Redis does not have is a miss, not an error.
    let miss = b.load(&program(1), &fp(2));
    assert!(miss.translations.is_empty());
    assert_eq!(
        (miss.report.remote.misses, miss.report.remote.errors),
        (1, 0)
    );
}

#[test]
fn redis_values_written_with_another_key_are_rejected() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Store::open(redis_config(&server.url(), a_dir.path())).unwrap();
    a.save(&program(1), &fp(1), &trs(0..5, 1, 10), &profile(0..5))
        .unwrap();
    let mut c = redis_config(&server.url(), b_dir.path());
    c.key = KeySource::Secret(b"an attacker's own key, long enough".to_vec());
    let loaded = Store::open(c).unwrap().load(&program(1), &fp(1));
    assert!(loaded.translations.is_empty() && loaded.profile.is_none());
    assert_eq!(loaded.report.rejected.bad_mac, 5 + 1);
    assert_eq!(
        b_dir.path().join("v1").read_dir().unwrap().count(),
        0,
        "nothing written through"
    );

    // Garbage under a store key is rejected too.
    let mut con = server.conn();
    let key = format!("vmjit:v1:{}:{}", program(2).to_hex(), fp(1).to_hex());
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(b"not a pack".as_slice())
        .query(&mut con)
        .unwrap();
    let loaded = a.load(&program(2), &fp(1));
    assert!(loaded.translations.is_empty());
    assert_eq!(loaded.report.rejected.unknown_format, 1);
}

#[test]
fn unreachable_redis_runs_on_locally_with_one_warning() {
    let local = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{}", free_port());
    let store = Store::open(redis_config(&url, local.path())).unwrap();
    let mut warnings = Vec::new();
    let saved = store
        .save(&program(1), &fp(1), &trs(0..5, 1, 10), &profile(0..5))
        .unwrap();
    assert!(saved.pack_written);
    assert!(saved.remote.errors >= 1);
    warnings.extend(saved.warnings);
    for _ in 0..3 {
        let loaded = store.load(&program(1), &fp(1));
        assert!(
            loaded.translations.len() >= 5,
            "the local directory still serves"
        );
        warnings.extend(loaded.report.warnings);
        let miss = store.load(&program(2), &fp(1));
        warnings.extend(miss.report.warnings);
        let saved = store
            .save(&program(1), &fp(1), &trs(5..6, 1, 10), &Profile::default())
            .unwrap();
        warnings.extend(saved.warnings);
    }
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("Redis") && warnings[0].contains("local store only"));
}

#[test]
fn a_redis_that_never_answers_times_out_with_one_warning() {
    // Accepts connections, never replies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for _ in 0..4 {
            match listener.accept() {
                Ok((s, _)) => open.push(s),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    let local = tempfile::tempdir().unwrap();
    let store = Store::open(redis_config(&url, local.path())).unwrap();
    let loaded = store.load(&program(1), &fp(1));
    assert!(loaded.translations.is_empty());
    assert_eq!(loaded.report.remote.errors, 1);
    assert_eq!(
        loaded.report.remote.skipped, 1,
        "the profile GET is not tried after a failure"
    );
    assert_eq!(loaded.report.warnings.len(), 1);
    let saved = store
        .save(&program(1), &fp(1), &trs(0..2, 1, 10), &Profile::default())
        .unwrap();
    assert!(saved.pack_written && saved.warnings.is_empty());
    drop(held);
}

#[test]
fn a_redis_location_needs_a_shared_key() {
    let local = tempfile::tempdir().unwrap();
    for key in [KeySource::DirKeyFile, KeySource::Secret(b"short".to_vec())] {
        let mut c = redis_config("redis://127.0.0.1:1", &local.path().join("s"));
        c.key = key.clone();
        let r = Store::open(c);
        match key {
            KeySource::DirKeyFile => {
                assert!(matches!(r, Err(StoreError::SharedKeyRequired)), "{r:?}")
            }
            _ => assert!(matches!(r, Err(StoreError::KeyTooShort { .. })), "{r:?}"),
        }
    }
    assert!(
        !local.path().join("s").exists(),
        "a refused open creates nothing"
    );
}
