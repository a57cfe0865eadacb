//! `#[phi_action]`: parse the arguments (`attr.rs`) → check them against the function
//! (`valid.rs`) → generate the guarded function (`expand.rs`).

mod attr;
mod expand;
mod valid;

use proc_macro2::{Span, TokenStream};
use syn::ItemFn;

/// Entry point. On error, emits the error and the function unchanged, so one mistake does
/// not cascade into unrelated errors where the function is called.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let f: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            return with_item(
                syn::Error::new(
                    Span::call_site(),
                    "`#[phi_action]` guards functions: put it on a `fn` with a body",
                ),
                item,
            );
        }
    };
    let args = match syn::parse2::<attr::ActionArgs>(args) {
        Ok(a) => a,
        Err(e) => return with_item(e, item),
    };
    match valid::check(&args, &f) {
        Ok(checked) => expand::function(&args, &f, &checked),
        Err(e) => with_item(e, item),
    }
}

fn with_item(error: syn::Error, item: TokenStream) -> TokenStream {
    let mut out = error.to_compile_error();
    // Unguarded, the body no longer reads the Context: an "unused variable" warning there
    // would only distract from the error above.
    out.extend(quote::quote!(#[allow(unused_variables)]));
    out.extend(item);
    out
}
