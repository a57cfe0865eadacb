//! `#[phi_action]`: parse (attr.rs) → validate → expand (expand.rs).

use proc_macro2::TokenStream;

/// Entry point.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let _ = args;
    item
}
