use guardrail_core::prelude::*;

#[phi_action(kind = read, role = "provider")]
fn read_chart(ctx: &Context) -> Result<(), GuardError> {
    Ok(())
}

fn main() {}
