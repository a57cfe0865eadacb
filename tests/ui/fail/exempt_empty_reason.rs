use guardrail_core::prelude::*;

#[phi_exempt(reason = "  ")]
fn export_counts() {}

fn main() {}
