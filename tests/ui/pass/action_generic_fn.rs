//! Generic functions with bounds, where-clauses and lifetimes keep their signatures.
#![deny(warnings)]

use std::fmt::Display;

use guardrail_core::prelude::*;

#[phi_action(kind = "export", role = "billing", count = ids.len(), subject = first)]
pub fn export<'a, T, I: IntoIterator<Item = T>>(
    ctx: &Context,
    first: &'a T,
    ids: &[T],
    more: I,
) -> Result<Vec<String>, GuardError>
where
    T: Display + Clone,
{
    let mut out: Vec<String> = ids.iter().map(ToString::to_string).collect();
    out.extend(more.into_iter().map(|t| t.to_string()));
    out.push(first.to_string());
    Ok(out)
}

pub struct Store<S> {
    items: Vec<S>,
}

impl<S: Clone + Redact> Store<S> {
    #[phi_action(kind = "read", role = "provider")]
    pub async fn first(&self, ctx: &Context) -> Result<Option<S>, GuardError> {
        Ok(self.items.first().cloned())
    }
}

fn main() {
    let _ = export::<u32, Vec<u32>>;
    let _ = Store::<u32>::first;
}
