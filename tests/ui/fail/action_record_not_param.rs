use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider", record = [visit])]
fn read_chart(ctx: &Context, visit_id: u64) -> Result<(), GuardError> {
    let _ = visit_id;
    Ok(())
}

fn main() {}
