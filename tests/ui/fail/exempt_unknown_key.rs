use guardrail_core::prelude::*;

#[phi_exempt(because = "aggregates only")]
fn export_counts() {}

fn main() {}
