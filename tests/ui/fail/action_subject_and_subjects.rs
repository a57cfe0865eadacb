use guardrail_core::prelude::*;

#[phi_action(kind = "export", role = "researcher", subject = id, subjects = ids)]
fn export(ctx: &Context, id: &str, ids: &[String]) -> Result<(), GuardError> {
    Ok(())
}

fn main() {}
