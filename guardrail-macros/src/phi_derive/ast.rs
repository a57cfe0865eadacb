//! Typed, borrowed views of the derive input, with each `#[phi(..)]` attribute parsed.
//! Shape errors (a union, a malformed attribute) are reported here; meaning errors (an
//! unknown category, a duplicate, a misplaced attribute) in `valid`.

use crate::errors::Errors;
use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{
    Attribute, Data, DeriveInput, Error, Fields, Generics, Ident, Index, Member, Meta, Result, Type,
};

pub(crate) enum Input<'a> {
    Struct(Struct<'a>),
    Enum(Enum<'a>),
}

pub(crate) struct Struct<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) generics: &'a Generics,
    /// `#[phi(..)]` on the type itself (an error: they go on fields).
    pub(crate) misplaced: Vec<&'a Attribute>,
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Enum<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) generics: &'a Generics,
    pub(crate) misplaced: Vec<&'a Attribute>,
    pub(crate) variants: Vec<Variant<'a>>,
}

pub(crate) struct Variant<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) misplaced: Vec<&'a Attribute>,
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Field<'a> {
    pub(crate) member: Member,
    pub(crate) ty: &'a Type,
    /// Every `#[phi(..)]` on the field, in order (more than one is an error).
    pub(crate) attrs: Vec<PhiAttr<'a>>,
}

pub(crate) struct PhiAttr<'a> {
    pub(crate) original: &'a Attribute,
    pub(crate) kind: AttrKind,
}

pub(crate) enum AttrKind {
    /// `#[phi(<category>)]`; the name is checked in `valid`.
    Category(Ident),
    /// `#[phi(skip)]`: leave the field alone.
    Skip,
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(node: &'a DeriveInput) -> Result<Input<'a>> {
        let mut errors = Errors::default();
        let misplaced = phi_attrs(&node.attrs);
        let input = match &node.data {
            Data::Struct(data) => Input::Struct(Struct {
                ident: &node.ident,
                generics: &node.generics,
                misplaced,
                fields: Field::multiple(&data.fields, &mut errors),
            }),
            Data::Enum(data) => Input::Enum(Enum {
                ident: &node.ident,
                generics: &node.generics,
                misplaced,
                variants: data
                    .variants
                    .iter()
                    .map(|v| Variant {
                        ident: &v.ident,
                        misplaced: phi_attrs(&v.attrs),
                        fields: Field::multiple(&v.fields, &mut errors),
                    })
                    .collect(),
            }),
            Data::Union(data) => {
                return Err(Error::new_spanned(
                    data.union_token,
                    "`#[derive(Phi)]` does not support unions: which field holds the value is \
                     not known, so it cannot be masked; use a struct or an enum",
                ));
            }
        };
        errors.finish()?;
        Ok(input)
    }
}

impl<'a> Field<'a> {
    fn multiple(fields: &'a Fields, errors: &mut Errors) -> Vec<Field<'a>> {
        fields
            .iter()
            .enumerate()
            .map(|(i, field)| Field {
                member: match &field.ident {
                    Some(ident) => Member::Named(ident.clone()),
                    None => Member::Unnamed(Index {
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        span: Span::call_site(),
                    }),
                },
                ty: &field.ty,
                attrs: phi_attrs(&field.attrs)
                    .into_iter()
                    .filter_map(|attr| match parse_attr(attr) {
                        Ok(kind) => Some(PhiAttr {
                            original: attr,
                            kind,
                        }),
                        Err(e) => {
                            errors.push(e);
                            None
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

fn phi_attrs(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("phi")).collect()
}

const EXPECTED: &str =
    "expected `#[phi(<category>)]` (a PHI category such as `ssn`) or `#[phi(skip)]`";

fn parse_attr(attr: &Attribute) -> Result<AttrKind> {
    let list = match &attr.meta {
        Meta::List(list) => list,
        Meta::Path(_) | Meta::NameValue(_) => return Err(Error::new_spanned(attr, EXPECTED)),
    };
    if list.tokens.is_empty() {
        return Err(Error::new_spanned(attr, EXPECTED));
    }
    list.parse_args_with(|input: ParseStream| {
        if !input.peek(Ident::peek_any) {
            return Err(input.error(EXPECTED));
        }
        let ident = input.call(Ident::parse_any)?;
        if !input.is_empty() {
            return Err(
                input.error("expected `)`: a field has exactly one PHI category (or `skip`)")
            );
        }
        Ok(if ident == "skip" {
            AttrKind::Skip
        } else {
            AttrKind::Category(ident)
        })
    })
}
