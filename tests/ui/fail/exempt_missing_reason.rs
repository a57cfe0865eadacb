use guardrail_core::prelude::*;

#[phi_exempt]
fn export_counts() {}

fn main() {}
