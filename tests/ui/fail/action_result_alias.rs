use guardrail_core::prelude::*;

#[phi_action(kind = "read", role = "provider")]
fn read_chart(ctx: &Context) -> std::io::Result<String> {
    Ok(String::new())
}

fn main() {}
