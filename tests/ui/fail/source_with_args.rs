use guardrail_core::prelude::*;

#[phi_source(table = "patients")]
fn load_patient() {}

fn main() {}
