//! Secrets: app keys, secret keys and the admin token are random; only their SHA-256 is stored.
//!
//! Secrets are random and long, so a plain SHA-256 is enough to store them: nothing stored or
//! logged lets anyone recover one. Comparisons run on hashes in constant time.

use rand::RngExt;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Letters and digits in a generated app key.
pub const APP_KEY_LEN: usize = 20;
/// Letters and digits in a generated secret key.
pub const SECRET_KEY_LEN: usize = 32;

/// The SHA-256 of a secret.
pub type SecretDigest = [u8; 32];

pub fn secret_digest(secret: &str) -> SecretDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// The stored form of a secret: its SHA-256 in hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(secret_digest(secret))
}

/// A random string of letters and digits.
pub fn new_secret(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Whether `secret` hashes to `expected_hash`, compared in constant time.
pub fn secret_matches(secret: &str, expected_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(expected_hash.as_bytes())
        .into()
}
