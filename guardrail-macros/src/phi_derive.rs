//! `#[derive(Phi)]`: implements `Redact` from `#[phi(<category>)]` field attributes.
//!
//! parse ([`ast`]) → validate ([`valid`]) → expand ([`expand`]). On any error the derive
//! emits the errors *and* a stub impl ([`fallback`]), so one mistake in a type does not turn
//! every use of the type into a second, misleading "`Redact` is not implemented" error.

mod ast;
mod expand;
mod fallback;
mod valid;

use proc_macro2::TokenStream;
use syn::DeriveInput;

/// Entry point.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let result = ast::Input::from_syn(&input).and_then(|parsed| {
        valid::validate(&parsed)?;
        Ok(expand::expand(&parsed))
    });
    match result {
        Ok(tokens) => tokens,
        Err(e) => fallback::expand(&input, e),
    }
}
