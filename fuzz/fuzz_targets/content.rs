//! MIMI content (draft-ietf-mimi-content-08): the deterministic CBOR decoder on its own
//! (first byte even) and the whole content decoder with the C§9.1 checks and the
//! message ID (first byte odd).
//!
//! Checked: no panic, memory bounded by the input (run with -malloc_limit_mb), and
//! every accepted input re-encodes to exactly itself (deterministic CBOR is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodes::content::{cbor, message_id, MimiContent};

fuzz_target!(|data: &[u8]| {
    let Some((&which, b)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        if let Ok(v) = cbor::decode(b) {
            assert_eq!(v.encode(), b, "cbor: encode(decode(b)) != b");
            let _ = v.depth();
        }
    } else if let Ok(c) = MimiContent::decode(b) {
        assert_eq!(c.encode(), b, "content: encode(decode(b)) != b");
        let _ = c.message_id();
        let _ = message_id(b);
        let _ = c.text_body();
        let _ = c.expires.as_ref().map(|e| e.check(1_767_225_600));
    }
});
