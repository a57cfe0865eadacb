//! `guardrail_fuzz::checkpoint`: the properties are documented (and shared with the proptest
//! properties of `tests/parsers_prop.rs`) there.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| guardrail_fuzz::checkpoint::check_input(data));
