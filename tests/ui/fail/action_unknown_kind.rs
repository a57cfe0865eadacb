use guardrail_core::prelude::*;

#[phi_action(kind = "view", role = "provider")]
fn read_chart(ctx: &Context) -> Result<(), GuardError> {
    Ok(())
}

fn main() {}
