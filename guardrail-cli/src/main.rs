//! The `guardrail` command.
#![forbid(unsafe_code)]

fn main() {}
