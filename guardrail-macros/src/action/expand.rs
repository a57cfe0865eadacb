//! Generates the guarded function.
//!
//! The signature, attributes and visibility are kept token for token; only the body changes:
//!
//! ```text
//! static ACTION: ActionDescriptor = ..;  inventory::submit!(ACTION)
//! let call = begin(&ACTION, ctx, subject, count, recorded)?;   // decide + decision event
//!            (begin_many(&ACTION, ctx, &subjects(..), ..) for `subjects = ..`)
//! enter_tx(&call, tx)?;                                         // sync `tx = ..`: tables exist
//! let entered = enter_tx_async(&call, tx).await?;              // async `tx = ..`: tables
//!                                                               // exist, session settings
//! let result: Result<T, E> = <original body, run once>;         // only if allowed
//! call.finish(result)                                           // outcome event + masking
//!   (finish_tx / finish_tx_async(call, tx, entered, result) for `tx = ..`)
//! ```
//!
//! The original body runs in a `move` closure (sync) or `async move` block (async) so that its
//! `return` and `?` leave the body, not the guard. The closure is handed to a local helper
//! whose `FnOnce` bound makes it `FnOnce`, which lets a body return borrows of what it moved
//! in (`&mut self.field`). Generated locals use `Span::mixed_site()` and a `__guardrail_`
//! prefix, so the body can neither see nor shadow them; every path is absolute.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{AttrStyle, Ident, ItemFn, LitStr};

use super::attr::ActionArgs;
use super::valid::Checked;
use crate::vocabulary;

/// `birth_date` → `BirthDate`: the enum variant behind a wire name, spanned on it.
fn variant(wire: &LitStr) -> Ident {
    Ident::new(&vocabulary::variant(&wire.value()), wire.span())
}

fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

pub(crate) fn function(args: &ActionArgs, f: &ItemFn, checked: &Checked<'_>) -> TokenStream {
    let p = quote!(::guardrail_core::__private);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = f;
    let outer_attrs = attrs.iter().filter(|a| matches!(a.style, AttrStyle::Outer));
    let inner_attrs = attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Inner(_)));
    let fn_name = sig.ident.unraw().to_string();

    let action = format_ident!("__GUARDRAIL_ACTION");
    let call = local("__guardrail_call");
    let result = local("__guardrail_result");
    let denied = local("__guardrail_denied");
    let allowed = local("__guardrail_allowed");
    let once = local("__guardrail_once");
    let tx_slot = local("__guardrail_tx");
    let subject_list = local("__guardrail_subjects");
    let scope = local("__guardrail_scope");

    // ---- the descriptor (const: the name is built with concat!) ----
    let name = match &args.name {
        Some(lit) => quote!(#lit),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    // `valid::check` rejected a missing kind; this keeps the expansion total without a panic.
    let Some(kind) = &args.kind else {
        return syn::Error::new(Span::call_site(), "missing `kind`").to_compile_error();
    };
    let kind = {
        let v = variant(kind);
        quote!(#p::ActionKind::#v)
    };
    let resource = match &args.resource {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    };
    let roles = args.roles.iter().flatten();
    let phi = args.phi.iter().map(|lit| {
        let v = variant(lit);
        quote_spanned!(lit.span()=> #p::Category::#v.as_str())
    });
    let line = quote_spanned!(sig.ident.span()=> ::core::line!());
    let descriptor = quote! {
        static #action: #p::ActionDescriptor = #p::ActionDescriptor::__new(
            #name,
            #kind,
            #resource,
            &[#(#roles),*],
            &[#(#phi),*],
            ::core::module_path!(),
            ::core::file!(),
            #line,
            #fn_name,
        );
        #p::inventory::submit! { #p::ActionRegistration(&#action) }
    };

    // ---- begin: decide and record before the body ----
    let ctx = checked.ctx;
    let ctx_expr = quote_spanned!(ctx.span()=> #p::AsContext::as_context(&#ctx));
    let subject = match &args.subject {
        Some(expr) => quote_spanned!(expr.span()=>
            ::core::option::Option::Some(&(#expr) as &dyn ::core::fmt::Display)
        ),
        None => quote!(::core::option::Option::None),
    };
    let count = match &args.count {
        Some(expr) => quote_spanned!(expr.span()=> #p::count(#expr)),
        None => quote!(#p::CountArg::Absent),
    };
    let recorded = args.record.iter().map(|ident| {
        let key = ident.unraw().to_string();
        quote_spanned!(ident.span()=> (#key, &#ident as &dyn ::core::fmt::Display))
    });
    // Trait errors (`E: From<GuardError>`, `T: Redact`) must point at the user's `E` and `T`,
    // so those calls name them in qualified paths and turbofishes carrying their spans, and
    // their arguments are hygienic locals located there too.
    let err_ty = checked.err_ty;
    let ok_ty = checked.ok_ty;
    let err_span = err_ty.span();
    let ok_span = ok_ty.span();
    let at =
        |ident: &Ident, span: Span| Ident::new(&ident.to_string(), ident.span().located_at(span));
    let denied_at_err = at(&denied, err_span);
    let deny = quote_spanned!(err_span=>
        ::core::result::Result::Err(
            <#err_ty as ::core::convert::From<#p::GuardError>>::from(#denied_at_err)
        )
    );
    // An async call awaits the durability of its decision instead of blocking its thread.
    let is_async = sig.asyncness.is_some();
    let (begin_one, begin_many) = if is_async {
        (quote!(begin_async), quote!(begin_many_async))
    } else {
        (quote!(begin), quote!(begin_many))
    };
    // A bulk call collects its subjects first (they are tokenized in `begin_many`).
    let (collect_subjects, begin_call) = match &args.subjects {
        Some(expr) => (
            quote_spanned!(expr.span()=> let #subject_list = #p::subjects(#expr);),
            quote!(#p::#begin_many(&#action, #ctx_expr, &#subject_list, #count, &[#(#recorded),*])),
        ),
        None => (
            quote!(),
            quote!(#p::#begin_one(&#action, #ctx_expr, #subject, #count, &[#(#recorded),*])),
        ),
    };
    // The async call's arguments (`&dyn Display` temporaries, not `Send`) end with the
    // statement that starts it, before its first await: the returned future holds none.
    let begun = local("__guardrail_begun");
    let begin_call = if is_async {
        quote! {{
            let #begun = #begin_call;
            #begun.await
        }}
    } else {
        begin_call
    };
    let begin = quote! {
        #collect_subjects
        let #call = match #begin_call {
            ::core::result::Result::Ok(#allowed) => #allowed,
            // `E` may be `GuardError` itself: the conversion is then the identity.
            #[allow(clippy::useless_conversion)]
            ::core::result::Result::Err(#denied) => return #deny,
        };
    };

    // ---- the transaction seam: the body gets a reborrow, the outcome the original ----
    // A `mut` parameter is borrowed rather than moved, so its `mut` stays meaningful (the
    // body may reassign its own binding; the outcome still goes to the caller's transaction).
    let tx_outer = checked.tx.map(|(_, mutable)| {
        if mutable {
            quote!(&mut **#tx_slot)
        } else {
            quote!(&mut *#tx_slot)
        }
    });
    // An async call first publishes itself to the transaction's session (PostgreSQL
    // row-level security reads it); if that fails the body never runs and the call ends
    // with the error, its outcome recorded in the guardrail's sinks.
    let entered = local("__guardrail_entered");
    let failed = local("__guardrail_settings_failed");
    let failed_at_err = at(&failed, err_span);
    let enter = |slot: TokenStream| {
        if !is_async {
            // A sync call first asks the transaction whether the outcome can be recorded at
            // all (the audit tables exist): a forgotten `ensure_schema` refuses before the body.
            return quote! {
                match #p::enter_tx(&#call, #slot) {
                    ::core::result::Result::Ok(()) => {}
                    #[allow(clippy::useless_conversion)]
                    ::core::result::Result::Err(#failed) => {
                        return #p::Call::finish::<#ok_ty, #err_ty>(
                            #call,
                            ::core::result::Result::Err(
                                <#err_ty as ::core::convert::From<#p::GuardError>>::from(
                                    #failed_at_err
                                )
                            ),
                        );
                    }
                }
            };
        }
        quote! {
            let #entered = match #p::enter_tx_async(&#call, #slot).await {
                ::core::result::Result::Ok(#entered) => #entered,
                #[allow(clippy::useless_conversion)]
                ::core::result::Result::Err(#failed) => {
                    return #p::Call::finish::<#ok_ty, #err_ty>(
                        #call,
                        ::core::result::Result::Err(
                            <#err_ty as ::core::convert::From<#p::GuardError>>::from(
                                #failed_at_err
                            )
                        ),
                    );
                }
            };
        }
    };
    let tx_rebind = checked.tx.map(|(tx, mutable)| {
        if mutable {
            let enter = enter(quote!(&mut **#tx_slot));
            quote! {
                let #tx_slot = &mut #tx;
                #enter
                #[allow(unused_variables)]
                let mut #tx = &mut **#tx_slot;
            }
        } else {
            let enter = enter(quote!(&mut *#tx_slot));
            quote! {
                let #tx_slot = #tx;
                #enter
                #[allow(unused_variables)]
                let #tx = &mut *#tx_slot;
            }
        }
    });

    // ---- the body ----
    let ret = checked.ret;
    let run = if is_async {
        // An async block has no return-type syntax: an unreachable `return` of the declared
        // type, first thing in the block, fixes its output before the body is checked, so a
        // body's type error points at the body (tracing's "fake return edge").
        let fake = local("__guardrail_fake_return");
        let fake_return = quote_spanned! {ret.span()=>
            #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::unreachable)]
            if false {
                let #fake: #ret = ::core::unreachable!();
                return #fake;
            }
        };
        // Every poll of the body runs inside the call's marker (the tripwire), and only
        // those polls: another task on the same worker thread never sees it.
        quote! {
            let #result: #ret = #p::Call::guard(&#call, async move {
                #fake_return
                #block
            })
            .await;
        }
    } else {
        quote! {
            #[inline(always)]
            fn #once<__GuardrailR, __GuardrailF: ::core::ops::FnOnce() -> __GuardrailR>(
                body: __GuardrailF,
            ) -> __GuardrailR {
                body()
            }
            let #result = {
                // The body runs inside the call's marker (the tripwire); dropped after it,
                // also when it panics.
                let #scope = #p::Call::enter(&#call);
                #once(move || -> #ret #block)
            };
        }
    };

    // ---- the outcome ----
    let (call_at_ok, result_at_ok) = (at(&call, ok_span), at(&result, ok_span));
    let finish = match (checked.tx, is_async) {
        (None, false) => quote_spanned!(ok_span=>
            #p::Call::finish::<#ok_ty, #err_ty>(#call_at_ok, #result_at_ok)
        ),
        (None, true) => quote_spanned!(ok_span=>
            #p::Call::finish_async::<#ok_ty, #err_ty>(#call_at_ok, #result_at_ok).await
        ),
        (Some(_), false) => {
            quote_spanned!(ok_span=> #p::finish_tx(#call, #tx_outer, #result))
        }
        (Some(_), true) => {
            quote_spanned!(ok_span=> #p::finish_tx_async(#call, #tx_outer, #entered, #result).await)
        }
    };

    quote! {
        #(#outer_attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #descriptor
            #begin
            #tx_rebind
            #run
            #finish
        }
    }
}
