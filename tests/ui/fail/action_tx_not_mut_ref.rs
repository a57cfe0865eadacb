use guardrail_core::prelude::*;

#[phi_action(kind = "update", role = "provider", tx = tx)]
fn update_chart(ctx: &Context, tx: Vec<u8>) -> Result<(), GuardError> {
    let _ = tx;
    Ok(())
}

fn main() {}
