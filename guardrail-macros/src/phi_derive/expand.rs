//! Code generation for a validated input.
//!
//! # Bounds
//!
//! A type parameter gets a bound only if a field that is masked or recursed into mentions it:
//! `T: Redact` when it appears in an unannotated field, `T: PhiValue` when it appears in a
//! `#[phi(<category>)]` field. Parameters used only in `#[phi(skip)]` fields or inside
//! `PhantomData` get none. An associated type (`T::Item`) is bounded as a whole. Bounding
//! parameters rather than whole field types (as serde does) keeps recursive types
//! (`struct Tree<T> { kids: Vec<Tree<T>> }`) from sending the trait solver into a cycle.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Generics, Ident, Member, Type, TypePath, WherePredicate};

use super::ast::{AttrKind, Enum, Field, Input, Struct};
use crate::vocabulary;

const MASKER: &str = "__guardrail_masker";

pub(crate) fn expand(input: &Input<'_>) -> TokenStream {
    match input {
        Input::Struct(s) => expand_struct(s),
        Input::Enum(e) => expand_enum(e),
    }
}

fn masker() -> Ident {
    Ident::new(MASKER, Span::call_site())
}

/// What the derive does with one field.
enum Action<'a> {
    Mask(&'a Ident),
    Recurse,
    Skip,
}

fn action<'a>(field: &'a Field<'_>) -> Action<'a> {
    match field.attrs.first().map(|a| &a.kind) {
        Some(AttrKind::Category(ident)) => Action::Mask(ident),
        Some(AttrKind::Skip) => Action::Skip,
        None => Action::Recurse,
    }
}

/// The statement for one field, given an expression of type `&mut FieldType`.
fn field_statement(field: &Field<'_>, place: TokenStream) -> Option<TokenStream> {
    let m = masker();
    let span = field.ty.span();
    match action(field) {
        Action::Mask(category) => {
            let variant = Ident::new(&vocabulary::variant(&category.to_string()), category.span());
            Some(quote_spanned! {span=>
                ::guardrail_core::__private::PhiValue::mask_as(
                    #place,
                    ::guardrail_core::__private::Category::#variant,
                    #m,
                );
            })
        }
        Action::Recurse => Some(quote_spanned! {span=>
            ::guardrail_core::__private::Redact::redact(#place, #m);
        }),
        Action::Skip => None,
    }
}

fn expand_struct(s: &Struct<'_>) -> TokenStream {
    let body: Vec<TokenStream> = s
        .fields
        .iter()
        .filter_map(|f| {
            let member = &f.member;
            // Spanned on the field so that a missing impl points at it, not at the derive.
            field_statement(f, quote_spanned!(f.ty.span()=> &mut self.#member))
        })
        .collect();
    let fields: Vec<&Field<'_>> = s.fields.iter().collect();
    finish(s.ident, s.generics, &fields, quote!(#(#body)*))
}

fn expand_enum(e: &Enum<'_>) -> TokenStream {
    let arms: Vec<TokenStream> = e
        .variants
        .iter()
        .map(|v| {
            let ident = v.ident;
            let mut bindings = Vec::new();
            let mut body = Vec::new();
            for f in &v.fields {
                if matches!(action(f), Action::Skip) {
                    continue;
                }
                let binding = match &f.member {
                    Member::Named(name) => format_ident!("__guardrail_field_{}", name),
                    Member::Unnamed(index) => format_ident!("__guardrail_field_{}", index.index),
                };
                let member = &f.member;
                bindings.push(quote!(#member: #binding));
                body.extend(field_statement(f, binding.to_token_stream()));
            }
            quote! {
                Self::#ident { #(#bindings,)* .. } => { #(#body)* }
            }
        })
        .collect();
    let fields: Vec<&Field<'_>> = e.variants.iter().flat_map(|v| &v.fields).collect();
    let body = if arms.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #(#arms)* })
    };
    finish(e.ident, e.generics, &fields, body)
}

fn finish(
    ident: &Ident,
    generics: &Generics,
    fields: &[&Field<'_>],
    body: TokenStream,
) -> TokenStream {
    let generics = with_bounds(generics, fields);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let m = masker();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::guardrail_core::__private::Redact for #ident #ty_generics #where_clause {
            fn redact(&mut self, #m: &::guardrail_core::__private::Masker<'_>) {
                #body
            }
        }
    }
}

/// `generics` plus the bounds the fields need (see the module docs).
fn with_bounds(generics: &Generics, fields: &[&Field<'_>]) -> Generics {
    let params: BTreeSet<String> = generics
        .type_params()
        .map(|p| p.ident.to_string())
        .collect();
    let mut generics = generics.clone();
    if params.is_empty() {
        return generics;
    }
    let mut seen = BTreeSet::new();
    let mut predicates: Vec<WherePredicate> = Vec::new();
    for field in fields {
        let bound = match action(field) {
            Action::Mask(_) => quote!(::guardrail_core::__private::PhiValue),
            Action::Recurse => quote!(::guardrail_core::__private::Redact),
            Action::Skip => continue,
        };
        let mut finder = ParamUses {
            params: &params,
            found: Vec::new(),
        };
        finder.visit_type(field.ty);
        for ty in finder.found {
            let key = format!("{} : {}", ty.to_token_stream(), bound);
            if seen.insert(key) {
                predicates.push(syn::parse_quote!(#ty: #bound));
            }
        }
    }
    generics.make_where_clause().predicates.extend(predicates);
    generics
}

/// Finds the uses of type parameters in a field type that need a bound.
struct ParamUses<'p> {
    params: &'p BTreeSet<String>,
    found: Vec<Type>,
}

impl<'ast> Visit<'ast> for ParamUses<'_> {
    fn visit_type_path(&mut self, node: &'ast TypePath) {
        // `PhantomData<T>` holds no `T`.
        if node
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "PhantomData")
        {
            return;
        }
        if node.qself.is_none() {
            if let Some(first) = node.path.segments.first() {
                if self.params.contains(&first.ident.to_string()) {
                    self.found.push(Type::Path(node.clone()));
                    return;
                }
            }
        }
        visit::visit_type_path(self, node);
    }

    fn visit_type_macro(&mut self, _: &'ast syn::TypeMacro) {
        // Cannot see inside a macro; its expansion is checked where it is used.
    }
}
