use guardrail_core::prelude::*;

#[phi_action(kind = "read")]
fn read_chart(ctx: &Context) -> Result<(), GuardError> {
    Ok(())
}

fn main() {}
