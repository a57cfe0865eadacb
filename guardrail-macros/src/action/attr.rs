//! Parses the arguments of `#[phi_action(..)]` into [`ActionArgs`].
//!
//! Each key's value is checked here, where its tokens are at hand, so every error points at
//! the offending token: an unknown key at the key, a duplicate at its second occurrence, a
//! value of the wrong shape or outside its vocabulary at the value.

use proc_macro2::{Span, TokenTree};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Error, Expr, Ident, LitStr, Token, bracketed};

use crate::vocabulary::{self, CATEGORIES, KINDS};

const KEYS: &[&str] = &[
    "kind", "role", "roles", "resource", "name", "ctx", "subject", "subjects", "count", "phi",
    "record", "tx",
];

/// The parsed arguments. Values are syntactically and lexically valid; whether `ctx`, `tx`
/// and `record` name parameters is checked against the function in `valid.rs`.
pub(crate) struct ActionArgs {
    pub(crate) kind: Option<LitStr>,
    /// The roles the code allows, from `role = ".."` or `roles = [..]`.
    pub(crate) roles: Option<Vec<LitStr>>,
    pub(crate) resource: Option<LitStr>,
    pub(crate) name: Option<LitStr>,
    pub(crate) ctx: Option<Ident>,
    pub(crate) tx: Option<Ident>,
    pub(crate) subject: Option<Expr>,
    /// Every patient a bulk call touches (`subjects = ..`).
    pub(crate) subjects: Option<Expr>,
    pub(crate) count: Option<Expr>,
    pub(crate) phi: Vec<LitStr>,
    pub(crate) record: Vec<Ident>,
}

impl Parse for ActionArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ActionArgs {
            kind: None,
            roles: None,
            resource: None,
            name: None,
            ctx: None,
            tx: None,
            subject: None,
            subjects: None,
            count: None,
            phi: Vec::new(),
            record: Vec::new(),
        };
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            if !input.peek(Ident::peek_any) {
                return Err(input.error(format!(
                    "expected a key such as `kind = \"read\"`; the keys are: {}",
                    KEYS.join(", ")
                )));
            }
            let key = input.call(Ident::parse_any)?;
            let key_name = key.unraw().to_string();
            if !KEYS.contains(&key_name.as_str()) {
                return Err(Error::new(
                    key.span(),
                    format!(
                        "unknown key `{key_name}`; expected one of: {}",
                        KEYS.join(", ")
                    ),
                ));
            }
            if seen.contains(&key_name) {
                return Err(Error::new(
                    key.span(),
                    format!("duplicate key `{key_name}`: give each key once"),
                ));
            }
            let other_subject_key = match key_name.as_str() {
                "subject" => Some("subjects"),
                "subjects" => Some("subject"),
                _ => None,
            };
            if let Some(other) = other_subject_key.filter(|o| seen.iter().any(|s| s == o)) {
                return Err(Error::new(
                    key.span(),
                    format!(
                        "both `subject` and `subjects` are given: keep one (`subject = ..` for \
                         one patient, `subjects = ..` for a bulk call); `{other}` came first"
                    ),
                ));
            }
            let other_role_key = match key_name.as_str() {
                "role" => Some("roles"),
                "roles" => Some("role"),
                _ => None,
            };
            if let Some(other) = other_role_key.filter(|o| seen.iter().any(|s| s == o)) {
                return Err(Error::new(
                    key.span(),
                    format!(
                        "both `role` and `roles` are given: keep one (`role = \"..\"` for one \
                         role, `roles = [..]` for several); `{other}` came first"
                    ),
                ));
            }
            seen.push(key_name.clone());
            if !input.peek(Token![=]) {
                return Err(input.error(format!("expected `=` after `{key_name}`")));
            }
            input.parse::<Token![=]>()?;
            match key_name.as_str() {
                "kind" => args.kind = Some(parse_kind(input)?),
                "role" => args.roles = Some(vec![parse_role(input, "role")?]),
                "roles" => args.roles = Some(parse_roles(input)?),
                "resource" => args.resource = Some(parse_resource(input)?),
                "name" => args.name = Some(parse_name(input)?),
                "ctx" => args.ctx = Some(parse_param(input, "ctx", "ctx")?),
                "tx" => args.tx = Some(parse_param(input, "tx", "tx")?),
                "subject" => args.subject = Some(parse_expr(input, "subject", "patient_id")?),
                "subjects" => {
                    args.subjects = Some(parse_expr(input, "subjects", "patient_ids")?);
                }
                "count" => args.count = Some(parse_expr(input, "count", "ids.len()")?),
                "phi" => args.phi = parse_phi(input)?,
                "record" => args.record = parse_record(input)?,
                _ => unreachable_key(&key)?,
            }
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error(format!("expected `,` after the value of `{key_name}`")));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

// `KEYS` and the `match` above list the same keys; this keeps the match total without a panic.
fn unreachable_key(key: &Ident) -> syn::Result<()> {
    Err(Error::new(key.span(), format!("unknown key `{key}`")))
}

/// The next token tree, for pointing at a value of the wrong shape.
fn wrong_value(
    input: ParseStream<'_>,
    message: impl FnOnce(Option<&TokenTree>) -> String,
) -> Error {
    match input.parse::<TokenTree>() {
        Ok(tt) => Error::new(tt.span(), message(Some(&tt))),
        Err(_) => input.error(message(None)),
    }
}

/// A string literal value; anything else is an error that shows the quoted form.
fn lit_str(input: ParseStream<'_>, key: &str, example: &str) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        return input.parse();
    }
    Err(wrong_value(input, |tt| {
        let suggestion = match tt {
            Some(TokenTree::Ident(i)) => format!("\"{i}\""),
            _ => format!("\"{example}\""),
        };
        format!("`{key}` expects a string literal: `{key} = {suggestion}`")
    }))
}

/// `[ <item>, .. ]` with a custom element parser; returns the bracket span and the items.
fn list<T>(
    input: ParseStream<'_>,
    key: &str,
    example: &str,
    element: fn(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<(Span, Vec<T>)> {
    if !input.peek(syn::token::Bracket) {
        return Err(wrong_value(input, |_| {
            format!("`{key}` expects a list in brackets: `{key} = {example}`")
        }));
    }
    let content;
    let bracket = bracketed!(content in input);
    let items = Punctuated::<T, Token![,]>::parse_terminated_with(&content, element)?;
    Ok((bracket.span.join(), items.into_iter().collect()))
}

fn parse_kind(input: ParseStream<'_>) -> syn::Result<LitStr> {
    let lit = lit_str(input, "kind", "read")?;
    if !vocabulary::is_kind(&lit.value()) {
        return Err(Error::new(
            lit.span(),
            format!(
                "unknown kind `{}`; expected one of: {}",
                lit.value(),
                KINDS.join(", ")
            ),
        ));
    }
    Ok(lit)
}

/// Role names are matched against policy files and principals: one spelling only.
fn is_role_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_role(lit: &LitStr) -> syn::Result<()> {
    if is_role_name(&lit.value()) {
        Ok(())
    } else {
        Err(Error::new(
            lit.span(),
            format!(
                "`{}` is not a valid role name: use lowercase letters, digits and `_` \
                 (such as `provider` or `billing_clerk`)",
                lit.value()
            ),
        ))
    }
}

fn parse_role(input: ParseStream<'_>, key: &str) -> syn::Result<LitStr> {
    let lit = lit_str(input, key, "provider")?;
    check_role(&lit)?;
    Ok(lit)
}

fn role_element(input: ParseStream<'_>) -> syn::Result<LitStr> {
    parse_role(input, "roles")
}

fn parse_roles(input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let (span, roles) = list(input, "roles", "[\"provider\", \"nurse\"]", role_element)?;
    if roles.is_empty() {
        return Err(Error::new(
            span,
            "`roles` is empty: name at least one role the code allows",
        ));
    }
    reject_duplicates(&roles, |l| l.value(), "role")?;
    Ok(roles)
}

fn reject_duplicates<T: syn::spanned::Spanned>(
    items: &[T],
    key: impl Fn(&T) -> String,
    what: &str,
) -> syn::Result<()> {
    for (i, item) in items.iter().enumerate() {
        let k = key(item);
        if items[..i].iter().any(|earlier| key(earlier) == k) {
            return Err(Error::new(
                item.span(),
                format!("{what} `{k}` is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Resource and action names appear in policy lists, where `*` is a glob and blanks split
/// words: neither may appear in a declared name.
fn check_name_like(lit: &LitStr, key: &str) -> syn::Result<()> {
    let v = lit.value();
    if v.is_empty() {
        return Err(Error::new(lit.span(), format!("`{key}` is empty")));
    }
    if let Some(c) = v
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '*')
    {
        return Err(Error::new(
            lit.span(),
            format!(
                "`{key}` may not contain {}: policies match it literally or with `*` globs",
                if c == '*' {
                    "`*`"
                } else {
                    "blanks or control characters"
                }
            ),
        ));
    }
    Ok(())
}

fn parse_resource(input: ParseStream<'_>) -> syn::Result<LitStr> {
    let lit = lit_str(input, "resource", "patient_record")?;
    check_name_like(&lit, "resource")?;
    Ok(lit)
}

fn parse_name(input: ParseStream<'_>) -> syn::Result<LitStr> {
    let lit = lit_str(input, "name", "clinic::read_chart")?;
    check_name_like(&lit, "name")?;
    Ok(lit)
}

fn parse_param(input: ParseStream<'_>, key: &str, example: &str) -> syn::Result<Ident> {
    if input.peek(Ident) {
        return input.parse();
    }
    Err(wrong_value(input, |tt| match tt {
        Some(TokenTree::Literal(_)) => {
            format!("`{key}` names a parameter without quotes: `{key} = {example}`")
        }
        _ => format!("`{key}` expects the name of a parameter: `{key} = {example}`"),
    }))
}

fn parse_expr(input: ParseStream<'_>, key: &str, example: &str) -> syn::Result<Expr> {
    if input.is_empty() || input.peek(Token![,]) {
        return Err(input.error(format!(
            "`{key}` expects an expression: `{key} = {example}`"
        )));
    }
    input.parse()
}

fn phi_element(input: ParseStream<'_>) -> syn::Result<LitStr> {
    let lit = lit_str(input, "phi", "ssn")?;
    if !vocabulary::is_category(&lit.value()) {
        return Err(Error::new(
            lit.span(),
            format!(
                "unknown PHI category `{}`; expected one of: {}",
                lit.value(),
                CATEGORIES.join(", ")
            ),
        ));
    }
    Ok(lit)
}

fn parse_phi(input: ParseStream<'_>) -> syn::Result<Vec<LitStr>> {
    let (_, phi) = list(input, "phi", "[\"name\", \"diagnosis\"]", phi_element)?;
    reject_duplicates(&phi, |l| l.value(), "PHI category")?;
    Ok(phi)
}

fn record_element(input: ParseStream<'_>) -> syn::Result<Ident> {
    if input.peek(Ident) {
        return input.parse();
    }
    Err(wrong_value(input, |_| {
        "`record` lists parameter names without quotes: `record = [visit_id]`".to_owned()
    }))
}

fn parse_record(input: ParseStream<'_>) -> syn::Result<Vec<Ident>> {
    let (_, record) = list(input, "record", "[visit_id]", record_element)?;
    reject_duplicates(&record, Ident::to_string, "parameter")?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::is_role_name;

    #[test]
    fn role_names_are_lowercase_identifiers() {
        assert!(is_role_name("provider"));
        assert!(is_role_name("billing_clerk2"));
        assert!(!is_role_name(""));
        assert!(!is_role_name("Provider"));
        assert!(!is_role_name("pro vider"));
        assert!(!is_role_name("pro-vider"));
    }
}
