use guardrail_core::prelude::*;

pub struct PatientId(u64);

#[phi_action(kind = "read", role = "provider", subject = patient)]
fn read_chart(ctx: &Context, patient: PatientId) -> Result<u64, GuardError> {
    Ok(patient.0)
}

fn main() {}
