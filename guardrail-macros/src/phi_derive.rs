//! `#[derive(Phi)]`.

use proc_macro2::TokenStream;

/// Entry point.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let _ = input;
    TokenStream::new()
}
