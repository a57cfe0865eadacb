use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider")]
fn read_chart(ctx: &Context) -> Result<impl Redact, GuardError> {
    Ok(1u32)
}

fn main() {}
