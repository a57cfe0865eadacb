//! A sync free function with the two required keys; attributes, docs and visibility survive.
#![forbid(unsafe_code)]
#![deny(warnings)]

use guardrail_core::prelude::*;

#[derive(Debug)]
pub enum AppError {
    Guard(GuardError),
}

impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        AppError::Guard(e)
    }
}

/// Reads a chart.
#[must_use = "the chart is the point"]
#[phi_action(kind = "read", role = "provider")]
pub fn read_chart(ctx: &Context, patient_id: &str) -> Result<String, AppError> {
    Ok(format!("chart of {patient_id}"))
}

#[phi_action(kind = "create", roles = ["provider", "nurse"], resource = "note", name = "clinic::add_note")]
pub(crate) fn add_note(ctx: &mut Context, text: String) -> Result<(), AppError> {
    let _ = text.len();
    Ok(())
}

#[phi_action(kind = "delete", role = "admin")]
fn by_value(ctx: Context) -> Result<u32, AppError> {
    drop(ctx);
    Ok(1)
}

fn main() {
    let _: fn(&Context, &str) -> Result<String, AppError> = read_chart;
    let _: fn(&mut Context, String) -> Result<(), AppError> = add_note;
    let _: fn(Context) -> Result<u32, AppError> = by_value;
}
