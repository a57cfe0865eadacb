use guardrail_core::prelude::*;

/// Returned by a guarded call, but never derived `Phi`.
pub struct Visit {
    pub note: String,
}

#[phi_action(kind = "read", role = "billing")]
fn visits(ctx: &Context) -> Result<Vec<Visit>, GuardError> {
    Ok(Vec::new())
}

fn main() {}
