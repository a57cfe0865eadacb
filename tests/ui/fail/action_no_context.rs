use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider")]
fn read_chart(patient_id: &str) -> Result<(), GuardError> {
    let _ = patient_id;
    Ok(())
}

fn main() {}
