//! Semantic checks of a parsed input, each error spanned on the offending node.

use super::ast::{AttrKind, Field, Input};
use crate::errors::Errors;
use crate::vocabulary::{self, CATEGORIES};
use syn::{Attribute, Error, Result};

pub(crate) fn validate(input: &Input<'_>) -> Result<()> {
    let mut errors = Errors::default();
    match input {
        Input::Struct(s) => {
            misplaced(&s.misplaced, "the type", &mut errors);
            fields(&s.fields, &mut errors);
        }
        Input::Enum(e) => {
            misplaced(&e.misplaced, "the type", &mut errors);
            for v in &e.variants {
                misplaced(&v.misplaced, "a variant", &mut errors);
                fields(&v.fields, &mut errors);
            }
        }
    }
    errors.finish()
}

fn misplaced(attrs: &[&Attribute], on: &str, errors: &mut Errors) {
    for attr in attrs {
        errors.push(Error::new_spanned(
            attr,
            format!(
                "`#[phi(..)]` goes on fields, not on {on}: mark each PHI field with its category"
            ),
        ));
    }
}

fn fields(fields: &[Field<'_>], errors: &mut Errors) {
    for field in fields {
        for dup in field.attrs.iter().skip(1) {
            errors.push(Error::new_spanned(
                dup.original,
                "duplicate `#[phi(..)]` attribute: a field has exactly one PHI category (or `skip`)",
            ));
        }
        for attr in &field.attrs {
            if let AttrKind::Category(ident) = &attr.kind {
                let name = ident.to_string();
                if !vocabulary::is_category(&name) {
                    errors.push(Error::new_spanned(ident, unknown_message(&name)));
                }
            }
        }
    }
}

fn unknown_message(name: &str) -> String {
    let hint = vocabulary::suggest_category(name)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    format!(
        "unknown PHI category `{name}`{hint}; expected one of: {}, or `skip`",
        CATEGORIES.join(", ")
    )
}
