use guardrail_core::prelude::*;

#[phi_action(kind = "disclose", role = "privacy_officer")]
fn disclose(requester: &Context, acting: &Context) -> Result<(), GuardError> {
    let _ = (requester, acting);
    Ok(())
}

fn main() {}
