use guardrail_core::prelude::*;

#[phi_action(kind = "read", roles = [])]
fn read_chart(ctx: &Context) -> Result<(), GuardError> {
    Ok(())
}

fn main() {}
