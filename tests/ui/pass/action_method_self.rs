//! Methods with `&self`, `&mut self` and `self`, including borrows of `self` returned through
//! the guard (elided lifetimes in the return type).
#![deny(warnings)]

use guardrail_core::Masker;
use guardrail_core::prelude::*;

pub struct Chart {
    name: String,
    notes: Vec<String>,
}

/// A view into a chart; holds no PHI of its own to mask.
pub struct NameRef<'a>(pub &'a str);

impl Redact for NameRef<'_> {
    fn redact(&mut self, _: &Masker<'_>) {}
}

pub struct NotesMut<'a>(pub &'a mut Vec<String>);

impl Redact for NotesMut<'_> {
    fn redact(&mut self, _: &Masker<'_>) {}
}

impl Chart {
    #[phi_action(kind = "read", role = "provider", phi = ["name"])]
    pub fn name(&self, ctx: &Context) -> Result<NameRef<'_>, GuardError> {
        Ok(NameRef(&self.name))
    }

    #[phi_action(kind = "update", role = "provider", count = self.notes.len())]
    pub fn notes_mut(&mut self, ctx: &Context) -> Result<NotesMut<'_>, GuardError> {
        Ok(NotesMut(&mut self.notes))
    }

    #[phi_action(kind = "delete", role = "admin", subject = self.name)]
    pub fn into_notes(self, ctx: &Context) -> Result<Vec<String>, GuardError> {
        Ok(self.notes)
    }

    #[phi_action(kind = "read", role = "provider")]
    pub async fn name_async(&self, ctx: &Context) -> Result<NameRef<'_>, GuardError> {
        Ok(NameRef(&self.name))
    }
}

fn main() {
    let _ = Chart::name;
    let _ = Chart::notes_mut;
    let _ = Chart::into_notes;
    let _ = Chart::name_async;
}
