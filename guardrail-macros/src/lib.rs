//! Procedural macros of guardrail. Use them through `guardrail_core` (`prelude::*`); the
//! generated code names only `::guardrail_core::__private` paths.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod action;
mod phi_derive;

/// Guards a function that touches PHI. See `guardrail_core` for the keys.
#[proc_macro_attribute]
pub fn phi_action(args: TokenStream, item: TokenStream) -> TokenStream {
    action::expand(args.into(), item.into()).into()
}

/// Implements `Redact` from `#[phi(<category>)]` field attributes.
#[proc_macro_derive(Phi, attributes(phi))]
pub fn derive_phi(input: TokenStream) -> TokenStream {
    phi_derive::expand(input.into()).into()
}
