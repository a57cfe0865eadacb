//! A type error in the body points at the body, not at the macro.
use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider")]
fn read_chart(ctx: &Context) -> Result<String, GuardError> {
    Ok(42)
}

#[phi_action(kind = "read", role = "provider")]
async fn read_chart_async(ctx: &Context) -> Result<String, GuardError> {
    if ctx.get_request_id().is_empty() {
        return Ok(7);
    }
    Ok(String::new())
}

fn main() {}
