//! `ctx = <param>` picks the Context among several, or one behind an `Arc`; `record` names
//! parameters; `mut` parameters stay mutable in the body.
#![deny(warnings)]

use std::sync::Arc;

use guardrail_core::prelude::*;

#[phi_action(kind = "disclose", role = "privacy_officer", ctx = acting)]
pub fn disclose(on_behalf: &Context, acting: &Context) -> Result<String, GuardError> {
    Ok(on_behalf.principal().id().to_owned())
}

#[phi_action(kind = "read", role = "provider", ctx = shared, record = [visit_id])]
pub fn by_arc(shared: Arc<Context>, visit_id: u64, mut tries: u8) -> Result<u8, GuardError> {
    tries += 1;
    let _ = visit_id;
    Ok(tries)
}

mod clinic {
    pub struct Context;
}

#[phi_action(kind = "read", roles = ["provider"], ctx = ctx)]
pub fn other_context(
    ctx: &guardrail_core::Context,
    local: clinic::Context,
) -> Result<(), GuardError> {
    let clinic::Context = local;
    Ok(())
}

fn main() {
    let _ = disclose;
    let _ = by_arc;
    let _ = other_context;
}
