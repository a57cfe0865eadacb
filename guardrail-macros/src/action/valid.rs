//! Checks an annotated function against its arguments: required keys, the return type, and
//! the parameters that `ctx`, `tx` and `record` name. Every error points at the token to fix.

use proc_macro2::Span;
use syn::spanned::Spanned as _;
use syn::{Error, FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use super::attr::ActionArgs;
use crate::errors::Errors;
use crate::vocabulary::KINDS;

/// What the expansion needs from the signature.
pub(crate) struct Checked<'a> {
    /// The Context parameter.
    pub(crate) ctx: &'a Ident,
    /// The declared return type, `Result<T, E>`.
    pub(crate) ret: &'a Type,
    /// `T` of the return type (errors about masking the Ok value point here).
    pub(crate) ok_ty: &'a Type,
    /// `E` of the return type (errors about `From<GuardError>` point here).
    pub(crate) err_ty: &'a Type,
    /// The transaction parameter and whether its binding is `mut`.
    pub(crate) tx: Option<(&'a Ident, bool)>,
}

/// A named parameter: its binding and its declared type.
struct Param<'a> {
    ident: &'a Ident,
    mutable: bool,
    ty: &'a Type,
}

fn params(f: &ItemFn) -> Vec<Param<'_>> {
    f.sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) if pi.subpat.is_none() => Some(Param {
                    ident: &pi.ident,
                    mutable: pi.mutability.is_some(),
                    ty: &pt.ty,
                }),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// Validates `f` against `args`.
pub(crate) fn check<'a>(args: &'a ActionArgs, f: &'a ItemFn) -> syn::Result<Checked<'a>> {
    let mut errors = Errors::default();
    let fn_name = &f.sig.ident;

    if args.kind.is_none() {
        errors.push(Error::new(
            Span::call_site(),
            format!(
                "missing `kind`: say what `{fn_name}` does to PHI, e.g. `kind = \"read\"` \
                 (one of: {})",
                KINDS.join(", ")
            ),
        ));
    }
    if args.roles.is_none() {
        errors.push(Error::new(
            Span::call_site(),
            format!(
                "missing role: name the roles whose holders may call `{fn_name}`, with \
                 `role = \"provider\"` or `roles = [\"provider\", \"nurse\"]` \
                 (a policy can only narrow them)"
            ),
        ));
    }
    if let Some(c) = &f.sig.constness {
        errors.push(Error::new(
            c.span(),
            "`#[phi_action]` cannot guard a `const fn`: the guard decides at run time",
        ));
    }

    let ret = errors.ok(return_type(f));
    let params = params(f);
    let ctx = errors.ok(context_param(args, f, &params));

    for name in &args.record {
        if !params.iter().any(|p| p.ident == name) {
            errors.push(Error::new(
                name.span(),
                format!(
                    "`{name}` is not a parameter of `{fn_name}`: `record` lists parameters \
                     whose values are recorded (as keyed tokens) in the decision event"
                ),
            ));
        }
    }

    let tx = match &args.tx {
        None => None,
        Some(name) => match params.iter().find(|p| p.ident == name) {
            None => {
                errors.push(Error::new(
                    name.span(),
                    format!(
                        "`tx = {name}` names no parameter of `{fn_name}`: name the parameter \
                         holding the database transaction the outcome event is written through"
                    ),
                ));
                None
            }
            Some(p) if ctx.is_some_and(|c| c == p.ident) => {
                errors.push(Error::new(
                    name.span(),
                    format!("`{name}` is the Context parameter and cannot also be `tx`"),
                ));
                None
            }
            Some(p) => match p.ty {
                Type::Reference(r) if r.mutability.is_some() => Some((p.ident, p.mutable)),
                other => {
                    errors.push(Error::new(
                        other.span(),
                        format!(
                            "the `tx` parameter `{name}` must be a `&mut` reference (such as \
                             `{name}: &mut Transaction<'_, Postgres>`): the outcome event is \
                             written through it after the body ran"
                        ),
                    ));
                    None
                }
            },
        },
    };

    match (errors.into_error(), ret, ctx) {
        (Some(e), _, _) => Err(e),
        (None, Some((ret, ok_ty, err_ty)), Some(ctx)) => Ok(Checked {
            ctx,
            ret,
            ok_ty,
            err_ty,
            tx,
        }),
        // Unreachable: a missing part always pushed an error.
        (None, _, _) => Err(Error::new(Span::call_site(), "invalid `#[phi_action]`")),
    }
}

/// `Result<T, E>` spelled out, returning the type, `T` and `E`.
fn return_type(f: &ItemFn) -> syn::Result<(&Type, &Type, &Type)> {
    const WHY: &str = "with `E: From<GuardError>`: a denial is returned as `Err(E::from(..))` \
                       and the Ok value is masked on the way out";
    let ty = match &f.sig.output {
        ReturnType::Type(_, ty) => &**ty,
        ReturnType::Default => {
            return Err(Error::new(
                f.sig.ident.span(),
                format!(
                    "`{}` returns nothing: a `#[phi_action]` function must return `Result<T, E>` {WHY}",
                    f.sig.ident
                ),
            ));
        }
    };
    let not_result = || {
        Error::new(
            ty.span(),
            format!("a `#[phi_action]` function must return `Result<T, E>`, spelled out, {WHY}"),
        )
    };
    let Type::Path(tp) = ty else {
        return Err(not_result());
    };
    if tp.qself.is_some() {
        return Err(not_result());
    }
    let Some(last) = tp.path.segments.last() else {
        return Err(not_result());
    };
    if last.ident != "Result" {
        return Err(not_result());
    }
    let PathArguments::AngleBracketed(ab) = &last.arguments else {
        return Err(not_result());
    };
    let types: Vec<&Type> = ab
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    if let Some(opaque) = find_impl_trait(ty) {
        return Err(Error::new(
            opaque.span(),
            "`impl Trait` in the return type of a `#[phi_action]` is not supported: name the \
             type, so the guard can mask the Ok value and convert denials into the error",
        ));
    }
    match (types.as_slice(), ab.args.len()) {
        ([ok, err], 2) => Ok((ty, ok, err)),
        ([_], 1) => Err(Error::new(
            last.ident.span(),
            "spell the return type out as `Result<T, E>` with `E: From<GuardError>`: a type \
             alias such as `io::Result<T>` hides the error type `E` that denials are returned in",
        )),
        _ => Err(not_result()),
    }
}

/// The first `impl Trait` inside `ty` (it cannot be named again inside the body).
fn find_impl_trait(ty: &Type) -> Option<&Type> {
    match ty {
        Type::ImplTrait(_) => Some(ty),
        Type::Reference(r) => find_impl_trait(&r.elem),
        Type::Paren(p) => find_impl_trait(&p.elem),
        Type::Group(g) => find_impl_trait(&g.elem),
        Type::Slice(s) => find_impl_trait(&s.elem),
        Type::Array(a) => find_impl_trait(&a.elem),
        Type::Tuple(t) => t.elems.iter().find_map(find_impl_trait),
        Type::Path(tp) => tp
            .path
            .segments
            .iter()
            .find_map(|seg| match &seg.arguments {
                PathArguments::AngleBracketed(ab) => ab.args.iter().find_map(|a| match a {
                    GenericArgument::Type(t) => find_impl_trait(t),
                    _ => None,
                }),
                _ => None,
            }),
        _ => None,
    }
}

/// True for `Context`, `&Context`, `&mut Context` and paths ending in `Context`.
fn is_context_type(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_context_type(&r.elem),
        Type::Paren(p) => is_context_type(&p.elem),
        Type::Group(g) => is_context_type(&g.elem),
        Type::Path(tp) => {
            tp.qself.is_none()
                && tp
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "Context" && s.arguments.is_none())
        }
        _ => false,
    }
}

fn context_param<'a>(
    args: &ActionArgs,
    f: &'a ItemFn,
    params: &[Param<'a>],
) -> syn::Result<&'a Ident> {
    let fn_name = &f.sig.ident;
    if let Some(name) = &args.ctx {
        return params
            .iter()
            .find(|p| p.ident == name)
            .map(|p| p.ident)
            .ok_or_else(|| {
                Error::new(
                    name.span(),
                    format!(
                        "`ctx = {name}` names no parameter of `{fn_name}`: name the parameter \
                         that holds the `Context`"
                    ),
                )
            });
    }
    // Context-typed parameters bound by a pattern cannot be read by the guard.
    let mut candidates: Vec<&'a Ident> = Vec::new();
    for arg in &f.sig.inputs {
        let FnArg::Typed(pt) = arg else { continue };
        if !is_context_type(&pt.ty) {
            continue;
        }
        match &*pt.pat {
            Pat::Ident(pi) if pi.subpat.is_none() => candidates.push(&pi.ident),
            other => {
                return Err(Error::new(
                    other.span(),
                    "bind the Context parameter to a name (such as `ctx: &Context`): the \
                     guard reads it before the body runs",
                ));
            }
        }
    }
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::new(
            f.sig.paren_token.span.join(),
            format!(
                "`{fn_name}` has no `Context` parameter: add one (such as `ctx: &Context`) so \
                 the guard knows who calls, from where and why, or name it with `ctx = <param>`"
            ),
        )),
        [first, second, ..] => Err(Error::new(
            second.span(),
            format!(
                "`{fn_name}` has several `Context` parameters (`{first}`, `{second}`): say \
                 which one the guard reads with `ctx = {first}` or `ctx = {second}`"
            ),
        )),
    }
}
