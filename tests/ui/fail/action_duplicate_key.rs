use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider", kind = "update")]
fn read_chart(ctx: &Context) -> Result<(), GuardError> {
    Ok(())
}

fn main() {}
