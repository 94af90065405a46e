//! Any bytes as a delivery body: `Envelope::parse`, `event` and `typed_hooks` never panic.
#![no_main]

use hookline_wire::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse(data) {
        assert!(!envelope.hooks.is_empty());
        let _ = envelope.event();
        if let Ok(hooks) = envelope.typed_hooks() {
            assert_eq!(hooks.len(), envelope.hooks.len());
        }
    }
});
