//! What the derive emits when the input has errors: the errors, and an impl of `Redact` that
//! is never run (the build fails on the errors) but keeps every use of the type from adding
//! a second, misleading "does not implement `Redact`" error.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

pub(crate) fn expand(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let error = error.to_compile_error();
    quote! {
        #error

        #[automatically_derived]
        impl #impl_generics ::guardrail_core::__private::Redact for #ident #ty_generics #where_clause {
            fn redact(&mut self, _: &::guardrail_core::__private::Masker<'_>) {
                ::core::unreachable!("`#[derive(Phi)]` failed to compile")
            }
        }
    }
}
