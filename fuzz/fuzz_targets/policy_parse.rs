//! `Policy::from_toml_str` on arbitrary text: never panics, and every error names a line and
//! a column.
#![no_main]

use guardrail_core::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Policy::from_toml_str(text) {
        assert!(
            e.line.is_some() && e.column.is_some(),
            "error without a place: {e} for {text:?}"
        );
    }
});
