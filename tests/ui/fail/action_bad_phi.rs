use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider", phi = ["name", "social_security"])]
fn read_chart(ctx: &Context) -> Result<(), GuardError> {
    Ok(())
}

fn main() {}
