//! An async function: the future stays `Send`, `?` and `return` work inside the body.
#![deny(warnings)]

use guardrail_core::prelude::*;

#[derive(Debug)]
pub struct AppError;

impl From<GuardError> for AppError {
    fn from(_: GuardError) -> Self {
        AppError
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(_: std::num::ParseIntError) -> Self {
        AppError
    }
}

async fn load(id: &str) -> Result<u64, AppError> {
    Ok(id.parse::<u64>()?)
}

/// Updates a diagnosis.
#[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient_id)]
pub async fn update_diagnosis(
    ctx: &Context,
    patient_id: &str,
    dx: &str,
) -> Result<String, AppError> {
    let n = load(patient_id).await?;
    if n == 0 {
        return Ok(String::new());
    }
    Ok(format!("{n}: {dx}"))
}

/// A borrowed word of a name; nothing of its own to mask.
pub struct Word<'a>(pub &'a str);

impl Redact for Word<'_> {
    fn redact(&mut self, _: &guardrail_core::Masker<'_>) {}
}

#[phi_action(kind = "read", role = "patient")]
async fn own_name<'a>(ctx: &Context, full: &'a str) -> Result<Word<'a>, AppError> {
    Ok(Word(full.split(' ').next().unwrap_or(full)))
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let guardrail: Option<&Guardrail> = None;
    if let Some(g) = guardrail {
        let ctx = g.context(Principal::new("dr"));
        let fut = update_diagnosis(&ctx, "1", "flu");
        assert_send(&fut);
        drop(fut);
        drop(own_name(&ctx, "Ann Lee"));
    }
}
