//! Static signatures and Standard Webhooks signatures.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hookline_wire::standard_webhooks::{
    self, DEFAULT_TOLERANCE_SECS, generate_secret, is_valid_secret, sign, sign_all, verify,
};
use hookline_wire::{SIGNATURE_HEADER, SignatureError, verify_static_signature};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1614265330;
const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

#[test]
fn static_signature() {
    assert_eq!(SIGNATURE_HEADER, "X-Toast-Webhook-Signature");
    assert!(verify_static_signature(
        "s3cr3t-signature",
        "s3cr3t-signature"
    ));
    assert!(!verify_static_signature(
        "s3cr3t-signaturf",
        "s3cr3t-signature"
    ));
    assert!(!verify_static_signature(
        "s3cr3t-signatur",
        "s3cr3t-signature"
    ));
    assert!(!verify_static_signature(
        "s3cr3t-signature ",
        "s3cr3t-signature"
    ));
    assert!(!verify_static_signature("", "s3cr3t-signature"));
    assert!(!verify_static_signature(
        "S3CR3T-SIGNATURE",
        "s3cr3t-signature"
    ));
}

#[test]
fn standard_webhooks_test_vector() {
    assert_eq!(sign(SECRET, MSG_ID, TS, PAYLOAD).unwrap(), EXPECTED);
    assert_eq!(
        verify(
            SECRET,
            MSG_ID,
            TS,
            PAYLOAD,
            EXPECTED,
            TS,
            DEFAULT_TOLERANCE_SECS
        ),
        Ok(())
    );
    assert!(is_valid_secret(SECRET));
}

#[test]
fn any_change_breaks_the_signature() {
    let v = |id: &str, ts: i64, body: &[u8], header: &str| {
        verify(SECRET, id, ts, body, header, TS, 600)
    };
    assert_eq!(
        v(MSG_ID, TS, br#"{"test": 2432232315}"#, EXPECTED),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        v("msg_other", TS, PAYLOAD, EXPECTED),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        v(MSG_ID, TS + 1, PAYLOAD, EXPECTED),
        Err(SignatureError::Mismatch)
    );
    let other_key = format!("whsec_{}", STANDARD.encode([7u8; 24]));
    assert_eq!(
        verify(&other_key, MSG_ID, TS, PAYLOAD, EXPECTED, TS, 600),
        Err(SignatureError::Mismatch)
    );
    let mut flipped = EXPECTED.to_owned();
    flipped.replace_range(5..6, "X");
    assert_eq!(
        v(MSG_ID, TS, PAYLOAD, &flipped),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn header_parsing() {
    let v = |header: &str| verify(SECRET, MSG_ID, TS, PAYLOAD, header, TS, 300);
    // Several signatures, the matching one anywhere; other versions ignored.
    assert_eq!(v(&format!("v1,AAAA {EXPECTED}")), Ok(()));
    assert_eq!(v(&format!("v1a,xyz {EXPECTED} v2,abc")), Ok(()));
    assert_eq!(v(&format!("  {EXPECTED}  ")), Ok(()));
    assert_eq!(
        v("v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        Err(SignatureError::NoSignature)
    );
    assert_eq!(v(""), Err(SignatureError::NoSignature));
    assert_eq!(
        v("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        Err(SignatureError::NoSignature)
    );
    assert_eq!(v("v1,"), Err(SignatureError::Mismatch));
}

#[test]
fn timestamp_tolerance_both_ways() {
    let v = |now: i64| verify(SECRET, MSG_ID, TS, PAYLOAD, EXPECTED, now, 300);
    assert_eq!(v(TS + 300), Ok(()));
    assert_eq!(v(TS - 300), Ok(()));
    assert_eq!(
        v(TS + 301),
        Err(SignatureError::TimestampOutOfTolerance {
            timestamp: TS,
            now: TS + 301,
            tolerance_secs: 300
        })
    );
    assert!(matches!(
        v(TS - 301),
        Err(SignatureError::TimestampOutOfTolerance { .. })
    ));
    assert!(matches!(
        v(i64::MAX),
        Err(SignatureError::TimestampOutOfTolerance { .. })
    ));
    assert!(matches!(
        v(i64::MIN),
        Err(SignatureError::TimestampOutOfTolerance { .. })
    ));
    assert_eq!(DEFAULT_TOLERANCE_SECS, 300);
}

#[test]
fn rotation_signs_with_every_secret() {
    let old = SECRET;
    let new = generate_secret();
    let third = generate_secret();
    let header = sign_all(&[old, &new], MSG_ID, TS, PAYLOAD).unwrap();
    let parts: Vec<&str> = header.split(' ').collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0], EXPECTED);
    assert_eq!(parts[1], sign(&new, MSG_ID, TS, PAYLOAD).unwrap());
    assert_eq!(verify(old, MSG_ID, TS, PAYLOAD, &header, TS, 300), Ok(()));
    assert_eq!(verify(&new, MSG_ID, TS, PAYLOAD, &header, TS, 300), Ok(()));
    assert_eq!(
        verify(&third, MSG_ID, TS, PAYLOAD, &header, TS, 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(sign_all(&[old], MSG_ID, TS, PAYLOAD).unwrap(), EXPECTED);
    assert!(matches!(
        sign_all(&[], MSG_ID, TS, PAYLOAD),
        Err(SignatureError::InvalidSecret(_))
    ));
    assert!(matches!(
        sign_all(&[old, "nope"], MSG_ID, TS, PAYLOAD),
        Err(SignatureError::InvalidSecret(_))
    ));
}

#[test]
fn invalid_secrets() {
    for bad in [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_",
        "whsec_not base64!",
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
    ] {
        assert!(
            matches!(
                sign(bad, MSG_ID, TS, PAYLOAD),
                Err(SignatureError::InvalidSecret(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(
                verify(bad, MSG_ID, TS, PAYLOAD, EXPECTED, TS, 300),
                Err(SignatureError::InvalidSecret(_))
            ),
            "{bad}"
        );
        assert!(!is_valid_secret(bad), "{bad}");
    }
}

#[test]
fn secret_key_length_bounds() {
    let with_len = |n: usize| format!("whsec_{}", STANDARD.encode(vec![1u8; n]));
    assert!(!is_valid_secret(&with_len(23)));
    assert!(is_valid_secret(&with_len(24)));
    assert!(is_valid_secret(&with_len(64)));
    assert!(!is_valid_secret(&with_len(65)));
    // Signing still works with a short legacy key.
    assert!(
        sign(&with_len(8), MSG_ID, TS, PAYLOAD)
            .unwrap()
            .starts_with("v1,")
    );
}

#[test]
fn generated_secrets() {
    let a = generate_secret();
    let b = generate_secret();
    assert_ne!(a, b);
    for s in [&a, &b] {
        assert!(s.starts_with(standard_webhooks::SECRET_PREFIX));
        assert!(is_valid_secret(s), "{s}");
        assert_eq!(STANDARD.decode(&s["whsec_".len()..]).unwrap().len(), 24);
    }
    let signature = sign(&a, "id", 1, b"body").unwrap();
    assert_eq!(verify(&a, "id", 1, b"body", &signature, 2, 5), Ok(()));
}
