//! `?` and early `return` inside the body leave the body with the declared types.
#![deny(warnings)]

use guardrail_core::prelude::*;

#[derive(Debug)]
pub enum AppError {
    Guard(GuardError),
    Parse(std::num::ParseIntError),
    Empty,
}

impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        AppError::Guard(e)
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError::Parse(e)
    }
}

#[phi_action(kind = "read", role = "provider")]
pub fn parse_mrn(ctx: &Context, raw: &str) -> Result<u64, AppError> {
    if raw.is_empty() {
        return Err(AppError::Empty);
    }
    let n: u64 = raw.trim().parse()?;
    if n == 0 {
        return Ok(0);
    }
    for c in raw.chars() {
        if c == 'x' {
            return Ok(1);
        }
    }
    Ok(n)
}

#[phi_action(kind = "read", role = "provider")]
pub async fn parse_mrn_async(ctx: &Context, raw: &str) -> Result<u64, AppError> {
    if raw.is_empty() {
        return Err(AppError::Empty);
    }
    Ok(raw.trim().parse()?)
}

fn main() {
    let _ = parse_mrn;
    let _ = parse_mrn_async;
}
