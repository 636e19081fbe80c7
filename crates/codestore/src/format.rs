//! The version-1 file format of packs and profiles: encoding, and decoding that never
//! trusts its input. Pure functions over byte slices; no I/O.
//!
//! ```text
//! file    = header record*
//! header  = magic "VMJITCS\0" | version u16 = 1 | kind u16 (1 pack, 2 profile)
//!         | flags u32 = 0 | program [32] | fingerprint [32] (zero for a profile)
//!         | record_count u32 | header_crc u32 (CRC-32 of the 84 bytes before it)
//! record  = record_magic u32 = "VREC" | body_len u32 | body | mac [32]
//!         | frame_crc u32 (CRC-32 of everything in the record before it)
//! mac     = HMAC-SHA256(key, "vmjit-codestore record\0" | version u16 | kind u16
//!                            | program | fingerprint | body_len u32 | body)
//! pack body    = key u64 | guest_start u64 | guest_end u64 | guest_hash [32] | tier u8
//!              | compile_cost_ns u64 | heat u64 | code_len u32 | code
//! profile body = count u32 | count × (key u64 | heat u64)     (count ≤ 4096)
//! ```
//!
//! All integers little-endian. Invariants of the decoder:
//! - **Never panics, never allocates more than the input's size** (plus the decoded
//!   items, which are each bounded by their bytes in the input): lengths are checked
//!   against the bytes present and against [`MAX_BODY_BYTES`] before use.
//! - **Damage costs only the damaged records.** The frame CRC tells damage (counted
//!   `corrupt`) from a wrong key or tampering (`bad_mac`); after damage the decoder
//!   re-synchronises on the next record whose magic and CRC check out, within a work
//!   budget of a few times the file size, so a hostile file cannot make it quadratic.
//! - **A record authenticates its place.** The MAC binds the program and fingerprint
//!   the *caller asked for* (not the ones in the header), the file kind and the format
//!   version, so a record copied into another program's or fingerprint's pack, or from
//!   a pack into a profile, fails its MAC.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::key::StoreKey;
use crate::{Fingerprint, ProfileEntry, ProgramId, RejectCounts, Translation};

type HmacSha256 = hmac::Hmac<Sha256>;

/// First bytes of every file.
pub(crate) const MAGIC: [u8; 8] = *b"VMJITCS\0";
/// The only format version this build reads and writes.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Header size in bytes.
pub(crate) const HEADER_LEN: usize = 88;
const RECORD_MAGIC: [u8; 4] = *b"VREC";
/// Record bytes besides the body: magic, length, MAC, CRC.
pub(crate) const RECORD_OVERHEAD: usize = 4 + 4 + 32 + 4;
/// Largest record body accepted or written (16 MiB).
pub const MAX_BODY_BYTES: usize = 16 << 20;
const TRANSLATION_FIXED: usize = 8 + 8 + 8 + 32 + 1 + 8 + 8 + 4;
/// Largest code of one [`Translation`] the store keeps; larger ones are dropped by
/// `save` (and counted).
pub const MAX_CODE_BYTES: usize = MAX_BODY_BYTES - TRANSLATION_FIXED;
/// Profile entries per profile record.
const PROFILE_CHUNK: usize = 4096;
const MAC_DOMAIN: &[u8] = b"vmjit-codestore record\0";

/// What a file holds; part of the header and of every record's MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Pack = 1,
    Profile = 2,
}

/// Bytes one translation takes in a pack.
pub(crate) fn translation_record_len(t: &Translation) -> usize {
    RECORD_OVERHEAD + TRANSLATION_FIXED + t.code.len()
}

// ---------------------------------------------------------------------------------------
// CRC-32 (IEEE, reflected), table-driven. A checksum, not a defence: the MAC is that.

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

// ---------------------------------------------------------------------------------------
// Little-endian reads that cannot panic.

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn arr32_at(b: &[u8], at: usize) -> Option<[u8; 32]> {
    b.get(at..at.checked_add(32)?)?.try_into().ok()
}

// ---------------------------------------------------------------------------------------
// MAC.

/// The HMAC state after the binding prefix; cloned per record.
fn mac_prefix(key: &StoreKey, kind: Kind, program: &ProgramId, fp: &[u8; 32]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it, but stay
    // panic-free regardless by falling back to an all-zero key (never reached).
    let mut m = match HmacSha256::new_from_slice(key.bytes()) {
        Ok(m) => m,
        Err(_) => <HmacSha256 as KeyInit>::new(&Default::default()),
    };
    m.update(MAC_DOMAIN);
    m.update(&FORMAT_VERSION.to_le_bytes());
    m.update(&(kind as u16).to_le_bytes());
    m.update(&program.0);
    m.update(fp);
    m
}

fn record_mac(prefix: &HmacSha256, body: &[u8]) -> [u8; 32] {
    let mut m = prefix.clone();
    m.update(&(body.len() as u32).to_le_bytes());
    m.update(body);
    m.finalize().into_bytes().into()
}

fn mac_ok(prefix: &HmacSha256, body: &[u8], tag: &[u8]) -> bool {
    let mut m = prefix.clone();
    m.update(&(body.len() as u32).to_le_bytes());
    m.update(body);
    m.verify_slice(tag).is_ok() // constant-time comparison
}

// ---------------------------------------------------------------------------------------
// Encoding.

fn header(kind: Kind, program: &ProgramId, fp: &[u8; 32], count: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[10..12].copy_from_slice(&(kind as u16).to_le_bytes());
    // h[12..16]: flags, zero.
    h[16..48].copy_from_slice(&program.0);
    h[48..80].copy_from_slice(fp);
    h[80..84].copy_from_slice(&count.to_le_bytes());
    let crc = crc32(&h[..84]);
    h[84..88].copy_from_slice(&crc.to_le_bytes());
    h
}

fn push_record(out: &mut Vec<u8>, prefix: &HmacSha256, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&record_mac(prefix, body));
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Encodes a pack. The caller has dropped translations whose code exceeds
/// [`MAX_CODE_BYTES`] (they are skipped here too, so the output always decodes).
pub(crate) fn encode_pack<'a>(
    key: &StoreKey,
    program: &ProgramId,
    fp: &Fingerprint,
    translations: impl ExactSizeIterator<Item = &'a Translation> + Clone,
) -> Vec<u8> {
    let fitting = translations.filter(|t| t.code.len() <= MAX_CODE_BYTES);
    let count = fitting.clone().count();
    let size: usize = HEADER_LEN + fitting.clone().map(translation_record_len).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&header(Kind::Pack, program, &fp.0, count as u32));
    let prefix = mac_prefix(key, Kind::Pack, program, &fp.0);
    let mut body = Vec::new();
    for t in fitting {
        body.clear();
        body.extend_from_slice(&t.key.to_le_bytes());
        body.extend_from_slice(&t.guest_start.to_le_bytes());
        body.extend_from_slice(&t.guest_end.to_le_bytes());
        body.extend_from_slice(&t.guest_hash);
        body.push(t.tier);
        body.extend_from_slice(&t.compile_cost_ns.to_le_bytes());
        body.extend_from_slice(&t.heat.to_le_bytes());
        body.extend_from_slice(&(t.code.len() as u32).to_le_bytes());
        body.extend_from_slice(&t.code);
        push_record(&mut out, &prefix, &body);
    }
    out
}

/// Encodes a profile in chunks of [`PROFILE_CHUNK`] entries per record.
pub(crate) fn encode_profile(
    key: &StoreKey,
    program: &ProgramId,
    entries: &[ProfileEntry],
) -> Vec<u8> {
    let chunks = entries.len().div_ceil(PROFILE_CHUNK);
    let mut out =
        Vec::with_capacity(HEADER_LEN + chunks * (RECORD_OVERHEAD + 4) + entries.len() * 16);
    out.extend_from_slice(&header(Kind::Profile, program, &[0; 32], chunks as u32));
    let prefix = mac_prefix(key, Kind::Profile, program, &[0; 32]);
    let mut body = Vec::new();
    for chunk in entries.chunks(PROFILE_CHUNK) {
        body.clear();
        body.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for e in chunk {
            body.extend_from_slice(&e.key.to_le_bytes());
            body.extend_from_slice(&e.heat.to_le_bytes());
        }
        push_record(&mut out, &prefix, &body);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Decoding.

/// Record count from a header whose magic, version and CRC check out (for stats).
pub(crate) fn header_record_count(bytes: &[u8]) -> Option<u32> {
    let h = bytes.get(..HEADER_LEN)?;
    (h[..8] == MAGIC && u16_at(h, 8)? == FORMAT_VERSION && u32_at(h, 84)? == crc32(&h[..84]))
        .then(|| u32_at(h, 80))
        .flatten()
}

enum Frame<'a> {
    /// Magic and CRC check out.
    Ok {
        body: &'a [u8],
        tag: &'a [u8],
        next: usize,
    },
    /// Magic and a plausible length, but the record runs past the end of the input.
    PastEnd,
    Bad,
}

fn frame_at(b: &[u8], pos: usize) -> Frame<'_> {
    let Some(head) = b.get(pos..).filter(|r| r.len() >= 8) else {
        return Frame::PastEnd;
    };
    if head[..4] != RECORD_MAGIC {
        return Frame::Bad;
    }
    let Some(len) = u32_at(head, 4)
        .map(|l| l as usize)
        .filter(|&l| l <= MAX_BODY_BYTES)
    else {
        return Frame::Bad;
    };
    let total = RECORD_OVERHEAD + len;
    let Some(rec) = head.get(..total) else {
        return Frame::PastEnd;
    };
    let (covered, crc) = rec.split_at(total - 4);
    if u32_at(crc, 0) != Some(crc32(covered)) {
        return Frame::Bad;
    }
    Frame::Ok {
        body: &rec[8..8 + len],
        tag: &rec[8 + len..8 + len + 32],
        next: pos + total,
    }
}

/// Outcome of the header check.
enum HeaderCheck {
    Ok { count: u32 },
    Reject,
}

fn check_header(
    b: &[u8],
    kind: Kind,
    program: &ProgramId,
    fp: &[u8; 32],
    rejects: &mut RejectCounts,
) -> HeaderCheck {
    if b.len() < MAGIC.len() {
        // A prefix of the magic is a file cut short; anything else is not ours.
        if MAGIC.starts_with(b) {
            rejects.truncated += 1;
        } else {
            rejects.unknown_format += 1;
        }
        return HeaderCheck::Reject;
    }
    if b[..8] != MAGIC {
        rejects.unknown_format += 1;
        return HeaderCheck::Reject;
    }
    let Some(h) = b.get(..HEADER_LEN) else {
        rejects.truncated += 1;
        return HeaderCheck::Reject;
    };
    // Version before CRC: a later version may lay its header out differently.
    if u16_at(h, 8) != Some(FORMAT_VERSION) {
        rejects.unknown_format += 1;
        return HeaderCheck::Reject;
    }
    if u32_at(h, 84) != Some(crc32(&h[..84])) {
        rejects.corrupt += 1;
        return HeaderCheck::Reject;
    }
    if u32_at(h, 12) != Some(0) {
        rejects.unknown_format += 1;
        return HeaderCheck::Reject;
    }
    if u16_at(h, 10) != Some(kind as u16) || h[16..48] != program.0 || h[48..80] != *fp {
        rejects.wrong_header += 1;
        return HeaderCheck::Reject;
    }
    match u32_at(h, 80) {
        Some(count) => HeaderCheck::Ok { count },
        None => HeaderCheck::Reject, // unreachable: h has HEADER_LEN bytes
    }
}

/// Walks the records of `b`, calling `on_body` with each authenticated body; `on_body`
/// returns `false` for a body that does not decode (counted `corrupt`).
fn decode_records(
    b: &[u8],
    key: &StoreKey,
    kind: Kind,
    program: &ProgramId,
    fp: &[u8; 32],
    rejects: &mut RejectCounts,
    mut on_body: impl FnMut(&[u8]) -> bool,
) {
    let HeaderCheck::Ok { count } = check_header(b, kind, program, fp, rejects) else {
        return;
    };
    let prefix = mac_prefix(key, kind, program, fp);
    let before = rejects.total();
    // Bytes the resynchronising scan may CRC in total: bounds hostile input to linear work.
    let mut resync_budget = b.len().saturating_mul(4).max(1 << 20);
    let mut framed: u64 = 0;
    let mut pos = HEADER_LEN;
    while pos < b.len() {
        match frame_at(b, pos) {
            Frame::Ok { body, tag, next } => {
                framed += 1;
                if !mac_ok(&prefix, body, tag) {
                    rejects.bad_mac += 1;
                } else if !on_body(body) {
                    rejects.corrupt += 1;
                }
                pos = next;
            }
            failed => match resync(b, pos + 1, &mut resync_budget) {
                Some(next) => {
                    rejects.corrupt += 1;
                    pos = next;
                }
                None => {
                    if matches!(failed, Frame::PastEnd) {
                        rejects.truncated += 1;
                    } else {
                        rejects.corrupt += 1;
                    }
                    return;
                }
            },
        }
    }
    // Cut exactly at a record boundary: only the header's count tells.
    if rejects.total() == before && framed < u64::from(count) {
        rejects.truncated += 1;
    }
}

/// The next position at or after `from` where a whole record checks out.
fn resync(b: &[u8], from: usize, budget: &mut usize) -> Option<usize> {
    let mut pos = from;
    while pos.checked_add(RECORD_OVERHEAD)? <= b.len() {
        if b[pos..pos + 4] == RECORD_MAGIC {
            let len = u32_at(b, pos + 4)? as usize;
            if len <= MAX_BODY_BYTES && pos + RECORD_OVERHEAD + len <= b.len() {
                *budget = budget.checked_sub(len + RECORD_OVERHEAD)?;
                if let Frame::Ok { .. } = frame_at(b, pos) {
                    return Some(pos);
                }
            }
        }
        pos += 1;
    }
    None
}

fn decode_translation(body: &[u8]) -> Option<Translation> {
    let code_len = u32_at(body, 73)? as usize;
    if body.len() != TRANSLATION_FIXED.checked_add(code_len)? {
        return None;
    }
    Some(Translation {
        key: u64_at(body, 0)?,
        guest_start: u64_at(body, 8)?,
        guest_end: u64_at(body, 16)?,
        guest_hash: arr32_at(body, 24)?,
        tier: *body.get(56)?,
        compile_cost_ns: u64_at(body, 57)?,
        heat: u64_at(body, 65)?,
        code: body.get(TRANSLATION_FIXED..)?.to_vec(),
    })
}

/// Decodes a pack for (program, fingerprint), in file order; rejects are counted.
pub(crate) fn decode_pack(
    b: &[u8],
    key: &StoreKey,
    program: &ProgramId,
    fp: &Fingerprint,
    rejects: &mut RejectCounts,
) -> Vec<Translation> {
    let mut out = Vec::new();
    decode_records(
        b,
        key,
        Kind::Pack,
        program,
        &fp.0,
        rejects,
        |body| match decode_translation(body) {
            Some(t) => {
                out.push(t);
                true
            }
            None => false,
        },
    );
    out
}

/// Decodes a profile for `program`, in file order; rejects are counted.
pub(crate) fn decode_profile(
    b: &[u8],
    key: &StoreKey,
    program: &ProgramId,
    rejects: &mut RejectCounts,
) -> Vec<ProfileEntry> {
    let mut out = Vec::new();
    decode_records(b, key, Kind::Profile, program, &[0; 32], rejects, |body| {
        let Some(n) = u32_at(body, 0).map(|n| n as usize) else {
            return false;
        };
        if n > PROFILE_CHUNK || body.len() != 4 + n * 16 {
            return false;
        }
        out.extend(body[4..].chunks_exact(16).filter_map(|e| {
            Some(ProfileEntry {
                key: u64_at(e, 0)?,
                heat: u64_at(e, 8)?,
            })
        }));
        true
    });
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key() -> StoreKey {
        StoreKey::derive(b"0123456789abcdef-test", "test").unwrap()
    }

    fn t(k: u64, code_len: usize) -> Translation {
        Translation {
            key: k,
            guest_start: k,
            guest_end: k + 16,
            guest_hash: [k as u8; 32],
            tier: 1,
            compile_cost_ns: 1000 + k,
            heat: k * 3,
            code: (0..code_len).map(|i| (i as u64 ^ k) as u8).collect(),
        }
    }

    const P: ProgramId = ProgramId([7; 32]);
    const F: Fingerprint = Fingerprint([9; 32]);

    fn pack(n: u64) -> (Vec<Translation>, Vec<u8>) {
        let ts: Vec<_> = (0..n).map(|k| t(k, 10 + k as usize)).collect();
        let bytes = encode_pack(&key(), &P, &F, ts.iter());
        (ts, bytes)
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn pack_round_trips() {
        let (ts, bytes) = pack(5);
        let mut r = RejectCounts::default();
        assert_eq!(decode_pack(&bytes, &key(), &P, &F, &mut r), ts);
        assert_eq!(r, RejectCounts::default());
        assert_eq!(header_record_count(&bytes), Some(5));
    }

    #[test]
    fn profile_round_trips_across_chunks() {
        let entries: Vec<_> = (0..10_000u64)
            .map(|k| ProfileEntry {
                key: k,
                heat: k * 7,
            })
            .collect();
        let bytes = encode_profile(&key(), &P, &entries);
        let mut r = RejectCounts::default();
        assert_eq!(decode_profile(&bytes, &key(), &P, &mut r), entries);
        assert_eq!(r, RejectCounts::default());
    }

    #[test]
    fn flipping_any_body_byte_costs_only_that_record() {
        let (ts, bytes) = pack(4);
        for at in HEADER_LEN..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x41;
            let mut r = RejectCounts::default();
            let got = decode_pack(&b, &key(), &P, &F, &mut r);
            assert_eq!(r.total(), 1, "flip at {at}: {r:?}");
            assert_eq!(got.len(), 3, "flip at {at}");
            assert!(got.iter().all(|g| ts.contains(g)));
        }
    }

    #[test]
    fn every_truncation_is_counted_and_keeps_whole_records() {
        let (ts, bytes) = pack(3);
        for cut in 0..bytes.len() {
            let mut r = RejectCounts::default();
            let got = decode_pack(&bytes[..cut], &key(), &P, &F, &mut r);
            assert_eq!(r.total(), 1, "cut at {cut}: {r:?}");
            assert_eq!(r.truncated, 1, "cut at {cut}: {r:?}");
            assert_eq!(got[..], ts[..got.len()], "cut at {cut}");
        }
    }

    #[test]
    fn records_do_not_move_between_programs_fingerprints_or_kinds() {
        let (_, bytes) = pack(3);
        let other_fp = Fingerprint([1; 32]);
        // Rewrite the header to claim the other fingerprint: the header is valid, but
        // every record's MAC binds the fingerprint it was written for.
        let mut moved = bytes.clone();
        moved[..HEADER_LEN].copy_from_slice(&header(Kind::Pack, &P, &other_fp.0, 3));
        let mut r = RejectCounts::default();
        assert!(decode_pack(&moved, &key(), &P, &other_fp, &mut r).is_empty());
        assert_eq!(r.bad_mac, 3);
        // Unchanged header, asked for another program: the header says no.
        let mut r = RejectCounts::default();
        assert!(decode_pack(&bytes, &key(), &ProgramId([8; 32]), &F, &mut r).is_empty());
        assert_eq!(r.wrong_header, 1);
        let mut r = RejectCounts::default();
        assert!(decode_profile(&bytes, &key(), &P, &mut r).is_empty());
        assert_eq!(r.wrong_header, 1);
    }

    #[test]
    fn wrong_key_is_bad_mac_for_every_record() {
        let (_, bytes) = pack(3);
        let other = StoreKey::derive(b"another key of enough length", "test").unwrap();
        let mut r = RejectCounts::default();
        assert!(decode_pack(&bytes, &other, &P, &F, &mut r).is_empty());
        assert_eq!(
            r,
            RejectCounts {
                bad_mac: 3,
                ..Default::default()
            }
        );
    }

    #[test]
    fn unknown_version_and_flags_are_unknown_format() {
        let (_, bytes) = pack(1);
        let mut v2 = bytes.clone();
        v2[8] = 2;
        let mut r = RejectCounts::default();
        assert!(decode_pack(&v2, &key(), &P, &F, &mut r).is_empty());
        assert_eq!(r.unknown_format, 1);
        let mut flags = bytes.clone();
        flags[12] = 1;
        let crc = crc32(&flags[..84]);
        flags[84..88].copy_from_slice(&crc.to_le_bytes());
        let mut r = RejectCounts::default();
        assert!(decode_pack(&flags, &key(), &P, &F, &mut r).is_empty());
        assert_eq!(r.unknown_format, 1);
    }

    #[test]
    fn absurd_length_fields_are_rejected_without_allocating() {
        let (_, bytes) = pack(3);
        let first = HEADER_LEN + 4;
        for len in [u32::MAX, (MAX_BODY_BYTES + 1) as u32, 1 << 30] {
            let mut b = bytes.clone();
            b[first..first + 4].copy_from_slice(&len.to_le_bytes());
            let mut r = RejectCounts::default();
            let got = decode_pack(&b, &key(), &P, &F, &mut r);
            assert_eq!(got.len(), 2);
            assert_eq!(r.corrupt, 1);
        }
    }

    #[test]
    fn an_authenticated_but_malformed_body_is_corrupt() {
        // A writer with the key but a bug: code_len disagrees with the body length.
        let mut out = header(Kind::Pack, &P, &F.0, 1).to_vec();
        let prefix = mac_prefix(&key(), Kind::Pack, &P, &F.0);
        push_record(&mut out, &prefix, &[0u8; TRANSLATION_FIXED + 3]);
        let mut r = RejectCounts::default();
        assert!(decode_pack(&out, &key(), &P, &F, &mut r).is_empty());
        assert_eq!(r.corrupt, 1);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut r = RejectCounts::default();
            let got = decode_pack(&bytes, &key(), &P, &F, &mut r);
            prop_assert!(got.is_empty());
            prop_assert!(r.total() >= 1 || bytes.is_empty());
            let _ = decode_profile(&bytes, &key(), &P, &mut r);
        }

        #[test]
        fn mutated_packs_never_panic_and_return_only_written_records(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let (ts, mut bytes) = pack(6);
            for (at, v) in edits {
                let at = at % bytes.len();
                bytes[at] = v;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let mut r = RejectCounts::default();
            for g in decode_pack(&bytes, &key(), &P, &F, &mut r) {
                prop_assert!(ts.contains(&g));
            }
        }
    }
}
