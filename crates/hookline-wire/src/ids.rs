//! Ids: the 25-character generated shape and the producer-given `hookId` rule.

use chrono::{DateTime, Datelike, Timelike, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TIMESTAMP_LEN: usize = 14;
const RANDOM_LEN: usize = 11;

/// Length of an id made by [`generate_id`].
pub const GENERATED_ID_LEN: usize = TIMESTAMP_LEN + RANDOM_LEN;

/// Longest producer-given `hookId` accepted by [`is_valid_hook_id`].
pub const MAX_HOOK_ID_LEN: usize = 64;

/// A new id such as `20240429205809GcSUXthVA00`: the current UTC time as `yyyyMMddHHmmss`, then 11
/// base62 characters from a cryptographically secure RNG (rand's thread RNG, a ChaCha stream seeded
/// and periodically reseeded from the OS).
///
/// 62^11 (about 5.2 * 10^19) random values per second make collisions practically impossible, and the
/// timestamp prefix makes ids sort roughly by creation time.
pub fn generate_id() -> String {
    let mut id = String::with_capacity(GENERATED_ID_LEN);
    push_timestamp(&mut id, Utc::now());

    let mut rng = rand::rng();
    let mut buf = [0u8; 16];
    let mut written = 0;
    while written < RANDOM_LEN {
        rng.fill_bytes(&mut buf);
        for &byte in &buf {
            // Rejection sampling: 248 = 4 * 62, so bytes below it map uniformly onto base62;
            // taking `byte % 62` of every byte would favour the first eight characters.
            if byte < 248 && written < RANDOM_LEN {
                id.push(char::from(BASE62[usize::from(byte % 62)]));
                written += 1;
            }
        }
    }
    id
}

/// An id of the [`generate_id`] shape made from `seed` instead of the RNG: `at` as
/// `yyyyMMddHHmmss`, then 11 base62 characters from the SHA-256 of `seed`. The same `at` and
/// `seed` always give the same id, so a producer that may make one thing twice (a retried outbox
/// row) gets the same id both times and the second is stored once.
pub fn derived_id(at: DateTime<Utc>, seed: &[u8]) -> String {
    let mut id = String::with_capacity(GENERATED_ID_LEN);
    push_timestamp(&mut id, at);
    // `% 62` favours the first eight characters slightly; unlike generate_id this needs no
    // uniformity, only determinism, and changing the mapping would change ids already promised.
    id.extend(
        Sha256::digest(seed)
            .iter()
            .take(RANDOM_LEN)
            .map(|b| char::from(BASE62[usize::from(*b) % 62])),
    );
    id
}

/// `at` as `yyyyMMddHHmmss`, formatted by hand: ids are made once per hook and delivery, and
/// chrono's format machinery costs more than the id itself. Years beyond 9999 cannot occur before
/// the id format is retired.
fn push_timestamp(id: &mut String, at: DateTime<Utc>) {
    push_digits(id, at.year().unsigned_abs(), 4);
    push_digits(id, at.month(), 2);
    push_digits(id, at.day(), 2);
    push_digits(id, at.hour(), 2);
    push_digits(id, at.minute(), 2);
    // Leap seconds show up in chrono as second 59 with a large nanosecond, so this stays 0..=59.
    push_digits(id, at.second(), 2);
}

fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    while div > 0 {
        out.push(char::from(b'0' + ((value / div) % 10) as u8));
        div /= 10;
    }
}

/// Whether `s` has the shape of a [`generate_id`] id: 14 ASCII digits then 11 ASCII letters or
/// digits. Only the shape is checked, not that the digits form a real date.
pub fn is_generated_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == GENERATED_ID_LEN
        && b[..TIMESTAMP_LEN].iter().all(u8::is_ascii_digit)
        && b[TIMESTAMP_LEN..].iter().all(u8::is_ascii_alphanumeric)
}

/// Whether `s` is acceptable as a producer-given `hookId`: 1 to 64 characters, each an ASCII letter,
/// digit, `-`, `_` or `.`. (Ids that go into URLs and logs unescaped.)
pub fn is_valid_hook_id(s: &str) -> bool {
    (1..=MAX_HOOK_ID_LEN).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_digits_pads() {
        let mut s = String::new();
        push_digits(&mut s, 7, 2);
        push_digits(&mut s, 2024, 4);
        push_digits(&mut s, 0, 2);
        assert_eq!(s, "07202400");
    }

    #[test]
    fn generated_timestamp_is_now() {
        let before = Utc::now().format("%Y%m%d%H%M%S").to_string();
        let id = generate_id();
        let after = Utc::now().format("%Y%m%d%H%M%S").to_string();
        let ts = &id[..TIMESTAMP_LEN];
        assert!(before.as_str() <= ts && ts <= after.as_str(), "{id}");
    }
}
