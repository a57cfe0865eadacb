//! `#[phi_exempt(reason = "..")]` and `#[phi_source]`: markers read by the source scan
//! (`guardrail_core::coverage::scan_sources`). Both expand to the item unchanged; only their
//! arguments are checked.

use proc_macro2::{Span, TokenStream};
use syn::LitStr;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};

/// The arguments of `#[phi_exempt]`: exactly `reason = "<non-empty text>"`.
struct ExemptArgs;

impl Parse for ExemptArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `reason`: say why this function needs no guard, e.g. \
                 `#[phi_exempt(reason = \"reads only de-identified data\")]`",
            ));
        }
        let key = syn::Ident::parse_any(input)?;
        if key != "reason" {
            return Err(syn::Error::new(
                key.span(),
                format!("unknown key `{key}`; `#[phi_exempt]` takes only `reason = \"..\"`"),
            ));
        }
        input.parse::<syn::Token![=]>()?;
        let reason: LitStr = input.parse().map_err(|e| {
            syn::Error::new(e.span(), "`reason` expects a string: `reason = \"..\"`")
        })?;
        if reason.value().trim().is_empty() {
            return Err(syn::Error::new(
                reason.span(),
                "`reason` is empty: an exemption is listed in the coverage report with its \
                 reason, so say why this function needs no guard",
            ));
        }
        if !input.is_empty() {
            let _comma = input.parse::<syn::Token![,]>()?;
            if !input.is_empty() {
                return Err(input.error("`#[phi_exempt]` takes only `reason = \"..\"`"));
            }
        }
        Ok(ExemptArgs)
    }
}

/// `#[phi_exempt]`: checks the arguments, returns the item unchanged (with the error first,
/// if any).
pub(crate) fn exempt(args: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse2::<ExemptArgs>(args) {
        Ok(ExemptArgs) => item,
        Err(e) => with_item(e, item),
    }
}

/// `#[phi_source]`: takes no arguments, returns the item unchanged.
pub(crate) fn source(args: TokenStream, item: TokenStream) -> TokenStream {
    match args.into_iter().next() {
        None => item,
        Some(first) => with_item(
            syn::Error::new(
                first.span(),
                "`#[phi_source]` takes no arguments: it marks a function that reads or writes \
                 PHI, so that its callers must be guarded",
            ),
            item,
        ),
    }
}

fn with_item(error: syn::Error, item: TokenStream) -> TokenStream {
    let mut out = error.to_compile_error();
    out.extend(item);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn exempt_error(args: TokenStream) -> Option<String> {
        syn::parse2::<ExemptArgs>(args).err().map(|e| e.to_string())
    }

    #[test]
    fn exempt_needs_a_non_empty_reason() {
        assert_eq!(exempt_error(quote!(reason = "aggregates only")), None);
        assert_eq!(exempt_error(quote!(reason = "aggregates only",)), None);
        let missing = exempt_error(quote!()).unwrap_or_default();
        assert!(missing.starts_with("missing `reason`"), "{missing}");
        let blank = exempt_error(quote!(reason = " \t")).unwrap_or_default();
        assert!(blank.starts_with("`reason` is empty"), "{blank}");
        let unknown = exempt_error(quote!(because = "x")).unwrap_or_default();
        assert!(unknown.starts_with("unknown key `because`"), "{unknown}");
        let not_string = exempt_error(quote!(reason = 3)).unwrap_or_default();
        assert!(not_string.contains("expects a string"), "{not_string}");
        assert!(exempt_error(quote!(reason = "a", reason = "b")).is_some());
    }

    #[test]
    fn markers_return_the_item_unchanged() {
        let item = quote!(
            fn f() -> u8 {
                1
            }
        );
        let out = exempt(quote!(reason = "r"), item.clone());
        assert_eq!(out.to_string(), item.to_string());
        assert_eq!(source(quote!(), item.clone()).to_string(), item.to_string());
        assert!(
            source(quote!(x), item)
                .to_string()
                .contains("compile_error")
        );
    }
}
