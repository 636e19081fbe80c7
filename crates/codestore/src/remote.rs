//! The Redis tier: GET and SET of whole files (the same MAC'd bytes as on disk) under
//! `vmjit:v1:<program-hex>:<fingerprint-hex>` and `vmjit:v1:<program-hex>:profile`.
//!
//! Invariants:
//! - **Never hangs a run**: connecting is bounded by [`CONNECT_TIMEOUT`] (the `redis`
//!   crate applies it to the TCP connect and the handshake), and every socket read and
//!   write by [`IO_TIMEOUT`] (a stall limit per system call, so a large value that keeps
//!   flowing is not cut off). Host names are resolved by the system resolver before the
//!   connect timeout starts; use an IP address where DNS may be slow.
//! - **Failure degrades, never fails**: after an error the connection is dropped, no
//!   request is made for [`RETRY_AFTER`], and the store carries on with its local
//!   directory. The first failure yields one warning per `Store`; later ones are only
//!   counted.
//! - **Nothing from Redis is trusted**: values are read with `GETRANGE 0 cap`, so a huge
//!   value is never transferred whole, and decoded by the same MAC-checking decoder as
//!   files.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Fingerprint, ProgramId, RemoteCounts, StoreError};

/// Bound on connecting (TCP connect plus handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Bound on each socket read or write.
pub const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the tier stays off after a failure.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Expiry set on every value written (30 days), so packs of fingerprints nobody uses
/// any more leave the server; each save of a changed file renews it.
pub const REMOTE_TTL_SECS: u64 = 30 * 24 * 3600;

/// `redis://user:password@host` without the credentials, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn pack_key(p: &ProgramId, fp: &Fingerprint) -> String {
    format!("vmjit:v1:{}:{}", p.to_hex(), fp.to_hex())
}

pub(crate) fn profile_key(p: &ProgramId) -> String {
    format!("vmjit:v1:{}:profile", p.to_hex())
}

struct State {
    conn: Option<redis::Connection>,
    off_until: Option<Instant>,
    warned: bool,
}

pub(crate) struct Remote {
    client: redis::Client,
    shown_url: String,
    state: Mutex<State>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Parses the URL; does not connect (the first request does).
    pub(crate) fn new(url: &str) -> Result<Remote, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::InvalidLocation(format!("{}: {e}", redact(url))))?;
        Ok(Remote {
            client,
            shown_url: redact(url),
            state: Mutex::new(State {
                conn: None,
                off_until: None,
                warned: false,
            }),
        })
    }

    fn with_conn<T>(
        &self,
        counts: &mut RemoteCounts,
        warnings: &mut Vec<String>,
        op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        // A panic elsewhere while holding the lock leaves a usable state: take it.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.off_until.is_some_and(|t| Instant::now() < t) {
            counts.skipped += 1;
            return None;
        }
        let result = match state.conn.take() {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
        .and_then(|mut conn| op(&mut conn).map(|v| (v, conn)));
        match result {
            Ok((v, conn)) => {
                state.conn = Some(conn);
                state.off_until = None;
                Some(v)
            }
            Err(e) => {
                counts.errors += 1;
                state.off_until = Some(Instant::now() + RETRY_AFTER);
                if !state.warned {
                    state.warned = true;
                    warnings.push(format!(
                        "code store: Redis at {} failed ({e}); continuing with the local store only",
                        self.shown_url
                    ));
                }
                None
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(conn)
    }

    /// The value at `key`, at most `cap + 1` bytes of it (more means too large).
    /// `None` on a miss or an error (counted).
    pub(crate) fn get(
        &self,
        key: &str,
        cap: u64,
        counts: &mut RemoteCounts,
        warnings: &mut Vec<String>,
    ) -> Option<Vec<u8>> {
        let end = i64::try_from(cap).unwrap_or(i64::MAX);
        let value: Vec<u8> = self.with_conn(counts, warnings, |c| {
            redis::cmd("GETRANGE").arg(key).arg(0).arg(end).query(c)
        })?;
        // GETRANGE answers "" for an absent key; no valid file is empty.
        if value.is_empty() {
            counts.misses += 1;
            None
        } else {
            counts.hits += 1;
            Some(value)
        }
    }

    /// Sets `key` to `bytes` with [`REMOTE_TTL_SECS`]; errors are counted.
    pub(crate) fn set(
        &self,
        key: &str,
        bytes: &[u8],
        counts: &mut RemoteCounts,
        warnings: &mut Vec<String>,
    ) {
        let done: Option<()> = self.with_conn(counts, warnings, |c| {
            redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .arg("EX")
                .arg(REMOTE_TTL_SECS)
                .query(c)
        });
        if done.is_some() {
            counts.writes += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("redis://:secret@10.0.0.1:6379/2"),
            "redis://***@10.0.0.1:6379/2"
        );
        assert_eq!(redact("redis://10.0.0.1:6379"), "redis://10.0.0.1:6379");
    }
}
