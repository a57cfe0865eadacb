//! Procedural macros of guardrail. Use them through `guardrail_core` (`prelude::*`); the
//! generated code names only `::guardrail_core::__private` paths.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod action;
mod errors;
mod marker;
mod phi_derive;
mod vocabulary;

/// Guards a function that touches PHI: every call is decided against the policy, recorded in
/// the audit trail before the body runs, recorded again with its outcome (`ok`, `error`,
/// `panic`, `cancelled`), and its Ok value is masked on the way out.
///
/// ```text
/// #[phi_action(kind = "update", role = "provider", resource = "patient_record", subject = patient_id)]
/// async fn update_diagnosis(ctx: &Context, patient_id: &str, dx: &str) -> Result<Chart, AppError> { .. }
/// ```
///
/// Keys:
///
/// - `kind = "create" | "read" | "update" | "delete" | "export" | "disclose"` (required)
/// - `role = "provider"` or `roles = ["provider", "nurse"]` (required, exactly one of the two):
///   the roles the code allows; a policy can only narrow them. Role names are `[a-z0-9_]+`.
/// - `resource = "patient_record"`: the resource type, matched by policy `resources`.
/// - `name = "clinic::update_diagnosis"`: the action's name in policies and events
///   (default: `module_path!()::<fn name>`; methods of two types in one module need one).
/// - `ctx = <param>`: the `Context` parameter (default: the one parameter whose type is
///   `Context`, `&Context`, `&mut Context` or a path ending in `Context`).
/// - `subject = <expr>`: whose PHI (a `Display` value; tokenized in events, compared for
///   `self_only` rules).
/// - `subjects = <expr>`: every patient a bulk call touches (any iterable of `Display` ids,
///   e.g. `&[String]` or `ids.iter()`); each is recorded as a token, so every patient's
///   accounting of disclosures lists the call; `count` defaults to their number; an approval
///   grant is bound to exactly this set. Exclusive with `subject`.
/// - `count = <expr>`: how many records (any integer; negative or out of range denies).
/// - `phi = ["name", "diagnosis", ..]`: the PHI categories touched (`Category` names).
/// - `record = [param, ..]`: parameters recorded in the decision event, as keyed tokens only.
///   Nothing else of the arguments is recorded.
/// - `tx = <param>`: a `&mut` transaction parameter the outcome event is written through.
///
/// The function must return `Result<T, E>` spelled out, with `T: Redact` and
/// `E: From<GuardError>`; sync and async functions, free functions and methods are supported.
/// Misuse is a compile error pointing at the offending token.
#[proc_macro_attribute]
pub fn phi_action(args: TokenStream, item: TokenStream) -> TokenStream {
    action::expand(args.into(), item.into()).into()
}

/// Implements `Redact` from `#[phi(<category>)]` field attributes.
#[proc_macro_derive(Phi, attributes(phi))]
pub fn derive_phi(input: TokenStream) -> TokenStream {
    phi_derive::expand(input.into()).into()
}

/// Marks a function that touches PHI but is deliberately not guarded, with the reason:
/// `#[phi_exempt(reason = "reads only de-identified aggregates")]`. The source scan
/// (`guardrail_core::coverage::scan_sources`) does not report it and lists it, with its
/// reason, in its report. The reason must be a non-empty string. Expands to the item
/// unchanged.
#[proc_macro_attribute]
pub fn phi_exempt(args: TokenStream, item: TokenStream) -> TokenStream {
    marker::exempt(args.into(), item.into()).into()
}

/// Marks a data-access helper that reads or writes PHI (a repository method, a query
/// function): the source scan reports every function calling it that is neither guarded
/// (`#[phi_action]`) nor exempt (`#[phi_exempt]`). Takes no arguments; expands to the item
/// unchanged.
#[proc_macro_attribute]
pub fn phi_source(args: TokenStream, item: TokenStream) -> TokenStream {
    marker::source(args.into(), item.into()).into()
}

/// `&[&str]` of the action kinds `#[phi_action(kind = ..)]` accepts, in order. Not an API:
/// it lets a test compare the macro's copy with `guardrail_core::ActionKind::ALL`.
#[doc(hidden)]
#[proc_macro]
pub fn __action_kinds(_: TokenStream) -> TokenStream {
    let kinds = vocabulary::KINDS;
    quote::quote!(&[#(#kinds),*] as &[&str]).into()
}

/// `&[&str]` of the PHI category names both macros accept, in order. Not an API: it lets a
/// test compare the macro's copy with `guardrail_core::Category::NAMES`.
#[doc(hidden)]
#[proc_macro]
pub fn __category_names(_: TokenStream) -> TokenStream {
    let names = vocabulary::CATEGORIES;
    quote::quote!(&[#(#names),*] as &[&str]).into()
}
