use guardrail_core::prelude::*;

#[phi_action(kind = "update", role = "provider", tx = transaction)]
fn update_chart(ctx: &Context, tx: &mut Vec<u8>) -> Result<(), GuardError> {
    tx.push(1);
    Ok(())
}

fn main() {}
