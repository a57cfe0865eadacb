use guardrail_core::prelude::*;

#[derive(Debug)]
pub struct AppError;

#[phi_action(kind = "read", role = "provider")]
fn read_chart(ctx: &Context) -> Result<(), AppError> {
    Ok(())
}

fn main() {}
