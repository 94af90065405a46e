//! Signature primitives for checking Standard Webhooks headers independently of hookline's own
//! signing code (the mainstream RustCrypto crates, not hookline-wire).

use base64::Engine;
use hmac::{KeyInit, Mac};

pub fn base64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}
