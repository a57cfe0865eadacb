use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider")]
struct Chart;

fn main() {}
