//! Any bytes as an ingest body: `validate_ingest` never panics; an error names a path; an accepted
//! batch validates again to the same hooks and goes out in an envelope that parses back and types.
#![no_main]

use hookline_wire::{Envelope, IngestLimits, validate_ingest, write_envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = IngestLimits {
        max_hooks: 16,
        max_hook_bytes: 16 * 1024,
    };
    let batch = match validate_ingest(data, &limits) {
        Ok(batch) => batch,
        Err(e) => {
            assert!(!e.path.is_empty(), "error without a path: {e:?}");
            return;
        }
    };
    let hooks: Vec<&str> = batch.hooks.iter().map(|h| h.json.as_str()).collect();
    let again = format!(
        r#"{{"productName":"{}","event":"{}","hooks":[{}]}}"#,
        batch.product.as_str(),
        batch.event.as_str(),
        hooks.join(",")
    );
    let second = validate_ingest(again.as_bytes(), &limits).expect("stored hooks validate again");
    assert_eq!(second.hooks.len(), batch.hooks.len());
    for (a, b) in batch.hooks.iter().zip(&second.hooks) {
        assert_eq!((&a.hook_id, &a.json), (&b.hook_id, &b.json));
    }
    let mut out = Vec::new();
    write_envelope(&mut out, "h\"\u{1}", "c", batch.product, "a\\", batch.event, &hooks);
    let envelope = Envelope::parse(&out).expect("written envelopes parse");
    assert_eq!(envelope.hooks.len(), hooks.len());
    envelope.typed_hooks().expect("accepted hooks fit the typed models");
});
