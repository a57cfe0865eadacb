use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider", ctx = context)]
fn read_chart(ctx: &Context) -> Result<(), GuardError> {
    let _ = ctx;
    Ok(())
}

fn main() {}
