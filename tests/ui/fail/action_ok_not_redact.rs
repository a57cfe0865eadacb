use guardrail_core::prelude::*;

pub struct Chart {
    pub diagnosis: String,
}

#[phi_action(kind = "read", role = "provider")]
fn read_chart(ctx: &Context) -> Result<Chart, GuardError> {
    Ok(Chart {
        diagnosis: String::new(),
    })
}

fn main() {}
