//! The opaque values the engine hands the store: [`ProgramId`], [`Fingerprint`], a
//! [`Translation`] and a [`Profile`], and [`hash_bytes`], the one hash engine and store
//! agree on. Nothing here knows what a guest ISA is.

use std::fmt;

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`. The engine uses it for [`ProgramId`]s and
/// [`Translation::guest_hash`]; the store uses the same function internally, so the two
/// agree by construction.
pub fn hash_bytes(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        s.push(char::from(HEX_DIGITS[usize::from(b & 0xf)]));
    }
    s
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex of any even length (either case); `None` on any other input.
pub(crate) fn from_hex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect()
}

fn from_hex_32(s: &str) -> Option<[u8; 32]> {
    from_hex(s.as_bytes())?.try_into().ok()
}

/// Identifies a guest program: the engine hashes the executable (e.g. with
/// [`hash_bytes`]). The store only names directories and binds MACs with it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgramId(pub [u8; 32]);

impl ProgramId {
    /// Lower-case hex, as used in directory and Redis key names.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 64 hex digits (either case); `None` otherwise.
    pub fn from_hex(s: &str) -> Option<Self> {
        from_hex_32(s).map(Self)
    }
}

impl fmt::Debug for ProgramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgramId(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl fmt::Display for ProgramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Identifies everything that makes translated code valid on this host besides the
/// guest bytes: the translator build, the host CPU features it compiled for, and every
/// constant compiled into code. The engine computes it; code stored under one
/// fingerprint is never returned for another (packs are per fingerprint, and each
/// record's MAC binds the fingerprint).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// SHA-256 over the parts, each preceded by its length as a little-endian `u64`, so
    /// `["ab", "c"]` and `["a", "bc"]` differ.
    pub fn from_parts(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for part in parts {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Self(h.finalize().into())
    }

    /// Lower-case hex, as used in pack file and Redis key names.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 64 hex digits (either case); `None` otherwise.
    pub fn from_hex(s: &str) -> Option<Self> {
        from_hex_32(s).map(Self)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprint(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// One translated block as the engine persists it. The store treats every field as
/// opaque except `key` (records are merged by it) and `heat` (the hottest records are
/// kept when a pack must shrink to fit the store's budget).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Translation {
    /// The engine's lookup key (a guest address); unique within one pack.
    pub key: u64,
    /// First guest byte the code was translated from.
    pub guest_start: u64,
    /// One past the last guest byte.
    pub guest_end: u64,
    /// [`hash_bytes`] of the guest bytes `[guest_start, guest_end)` at translation time.
    /// **The store only carries it**: the engine must compare it against current guest
    /// memory before using the code (the MAC proves who wrote a record, not that the
    /// guest still holds the same bytes).
    pub guest_hash: [u8; 32],
    /// The engine's optimisation tier.
    pub tier: u8,
    /// What compiling it cost, in nanoseconds.
    pub compile_cost_ns: u64,
    /// How hot it was when saved.
    pub heat: u64,
    /// The position-independent code bytes (at most [`crate::MAX_CODE_BYTES`]).
    pub code: Vec<u8>,
}

/// One block's heat in a [`Profile`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct ProfileEntry {
    /// The engine's lookup key (a guest address).
    pub key: u64,
    /// Its heat (the engine's unit; merged by maximum).
    pub heat: u64,
}

/// Per-program heat, stored independently of any [`Fingerprint`], so a new translator
/// build can precompile what an old one found hot.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Profile {
    /// Entries; as loaded they are unique by key and sorted hottest first (ties by key).
    pub entries: Vec<ProfileEntry>,
}
