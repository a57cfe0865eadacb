//! Which functions touch PHI, which are guarded, and which of the rest are findings.

use std::collections::HashMap;

use syn::spanned::Spanned as _;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, ExprClosure, FnArg, ImplItem, Item, ReturnType, Signature, Type};

use super::load::{Crate, Res, TypeItem, attr, is_test};
use super::sql;
use super::{Exemption, SourceFinding, Why};
use crate::policy::Schema;

mod visitors;

use visitors::*;

/// Method names and free functions that register a handler: a closure argument of theirs
/// is a handler of its own (run later, outside any guard of the function building the
/// router).
const ROUTER_METHODS: &[&str] = &[
    "route", "get", "post", "put", "patch", "delete", "head", "options", "any", "fallback",
];

/// Nesting bound of type aliases and `Self` (against cycles).
const MAX_TYPE_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ref {
    /// A free function `name` of module `m`.
    Fn(usize, String),
    /// A method (or associated function) by name: every method so named.
    Method(String),
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Free(usize, String),
    Method(String),
    Closure,
}

struct Unit {
    file: usize,
    line: usize,
    column: usize,
    name: String,
    kind: Kind,
    /// Reachable from outside the module without a guard: `pub` of any kind, trait methods,
    /// closures.
    public: bool,
    guarded: bool,
    exempt: Option<String>,
    source: bool,
    reasons: Vec<Why>,
    refs: Vec<Ref>,
}

/// The outcome: findings and exemptions (unsorted), counts.
pub(crate) struct Outcome {
    pub(crate) findings: Vec<SourceFinding>,
    pub(crate) exemptions: Vec<Exemption>,
    pub(crate) functions: usize,
    pub(crate) guarded: usize,
}

pub(crate) fn analyse(krate: &Crate, schema: &Schema) -> Outcome {
    let mut walker = Walker {
        krate,
        schema,
        units: Vec::new(),
    };
    for &root in &krate.roots {
        if let Some(fi) = krate.modules.get(root).and_then(|m| m.own_file)
            && let Some(file) = krate.files.get(fi)
        {
            walker.module(root, &file.ast.items);
        }
    }
    let mut units = walker.units;
    resolve_sources(&mut units);
    let helper_ok = helpers(&units);
    let mut outcome = Outcome {
        findings: Vec::new(),
        exemptions: Vec::new(),
        functions: units.len(),
        guarded: units.iter().filter(|u| u.guarded).count(),
    };
    for (i, u) in units.into_iter().enumerate() {
        let rel = krate
            .files
            .get(u.file)
            .map(|f| f.rel.clone())
            .unwrap_or_default();
        if let Some(reason) = u.exempt {
            outcome.exemptions.push(Exemption {
                file: rel,
                line: u.line,
                column: u.column,
                function: u.name,
                reason,
            });
            continue;
        }
        if u.reasons.is_empty() || u.guarded || u.source || helper_ok.get(i) == Some(&true) {
            continue;
        }
        outcome.findings.push(SourceFinding {
            file: rel,
            line: u.line,
            column: u.column,
            function: u.name,
            reasons: u.reasons,
        });
    }
    outcome
}

/// Adds "calls `#[phi_source]` .." reasons.
fn resolve_sources(units: &mut [Unit]) {
    let mut sources_free: HashMap<(usize, &str), String> = HashMap::new();
    let mut sources_method: HashMap<&str, String> = HashMap::new();
    for u in units.iter().filter(|u| u.source) {
        match &u.kind {
            Kind::Free(m, n) => {
                sources_free.insert((*m, n.as_str()), u.name.clone());
            }
            Kind::Method(n) => {
                sources_method.insert(n.as_str(), u.name.clone());
            }
            Kind::Closure => {}
        }
    }
    let mut added: Vec<(usize, Why)> = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let mut callees: Vec<&String> = Vec::new();
        for r in &u.refs {
            let callee = match r {
                Ref::Fn(m, n) => sources_free.get(&(*m, n.as_str())),
                Ref::Method(n) => sources_method.get(n.as_str()),
            };
            if let Some(c) = callee
                && *c != u.name
                && !callees.contains(&c)
            {
                callees.push(c);
            }
        }
        for c in callees {
            added.push((i, Why::CallsSource { callee: c.clone() }));
        }
    }
    for (i, why) in added {
        if let Some(u) = units.get_mut(i) {
            u.reasons.push(why);
        }
    }
}

/// `helper_ok[i]`: unit `i` is a private function with at least one use, every use inside a
/// guarded, exempt or `#[phi_source]` function or another such helper (least fixpoint, so
/// a cycle of helpers with no guarded entry is not covered).
fn helpers(units: &[Unit]) -> Vec<bool> {
    let mut free: HashMap<(usize, &str), Vec<usize>> = HashMap::new();
    let mut methods: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        match &u.kind {
            Kind::Free(m, n) => free.entry((*m, n.as_str())).or_default().push(i),
            Kind::Method(n) => methods.entry(n.as_str()).or_default().push(i),
            Kind::Closure => {}
        }
    }
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for (i, u) in units.iter().enumerate() {
        for r in &u.refs {
            let targets = match r {
                Ref::Fn(m, n) => free.get(&(*m, n.as_str())),
                Ref::Method(n) => methods.get(n.as_str()),
            };
            for &t in targets.into_iter().flatten() {
                if t != i
                    && let Some(list) = users.get_mut(t)
                {
                    list.push(i);
                }
            }
        }
    }
    let covered = |u: &Unit| u.guarded || u.exempt.is_some() || u.source;
    let mut ok = vec![false; units.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for (i, u) in units.iter().enumerate() {
            if ok[i] || u.public || u.kind == Kind::Closure {
                continue;
            }
            let users_i = &users[i];
            if !users_i.is_empty()
                && users_i
                    .iter()
                    .all(|&v| units.get(v).is_some_and(covered) || ok.get(v) == Some(&true))
            {
                ok[i] = true;
                changed = true;
            }
        }
    }
    ok
}

struct Walker<'a> {
    krate: &'a Crate,
    schema: &'a Schema,
    units: Vec<Unit>,
}

/// The context of an `impl` block.
#[derive(Clone, Copy)]
struct ImplCtx<'t> {
    self_ty: &'t Type,
    type_name: &'t str,
    trait_impl: bool,
}

fn exempt_reason(attrs: &[Attribute]) -> Option<String> {
    let a = attr(attrs, "phi_exempt")?;
    let reason = a
        .parse_args_with(|input: syn::parse::ParseStream<'_>| {
            let _key: syn::Ident = input.parse()?;
            let _eq: syn::Token![=] = input.parse()?;
            let lit: syn::LitStr = input.parse()?;
            Ok(lit.value())
        })
        .unwrap_or_default();
    Some(reason)
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        Type::Reference(r) => type_name(&r.elem),
        _ => "_".into(),
    }
}

impl<'a> Walker<'a> {
    fn module(&mut self, m: usize, items: &'a [Item]) {
        for item in items {
            match item {
                Item::Fn(f) if !is_test(&f.attrs) => {
                    let name = f.sig.ident.to_string();
                    self.function(
                        m,
                        &f.attrs,
                        &f.sig,
                        &f.block,
                        !matches!(f.vis, syn::Visibility::Inherited),
                        Kind::Free(m, name.clone()),
                        name,
                        None,
                    );
                }
                Item::Impl(imp) if !is_test(&imp.attrs) => {
                    let type_name = type_name(&imp.self_ty);
                    let ctx = ImplCtx {
                        self_ty: &imp.self_ty,
                        type_name: &type_name,
                        trait_impl: imp.trait_.is_some(),
                    };
                    for ii in &imp.items {
                        if let ImplItem::Fn(f) = ii
                            && !is_test(&f.attrs)
                        {
                            let name = f.sig.ident.to_string();
                            self.function(
                                m,
                                &f.attrs,
                                &f.sig,
                                &f.block,
                                ctx.trait_impl || !matches!(f.vis, syn::Visibility::Inherited),
                                Kind::Method(name.clone()),
                                format!("{}::{name}", ctx.type_name),
                                Some(ctx),
                            );
                        }
                    }
                }
                Item::Trait(t) if !is_test(&t.attrs) => {
                    for ti in &t.items {
                        if let syn::TraitItem::Fn(f) = ti
                            && let Some(block) = &f.default
                        {
                            let name = f.sig.ident.to_string();
                            self.function(
                                m,
                                &f.attrs,
                                &f.sig,
                                block,
                                true,
                                Kind::Method(name.clone()),
                                format!("{}::{name}", t.ident),
                                None,
                            );
                        }
                    }
                }
                Item::Mod(md) if !is_test(&md.attrs) => {
                    let name = md.ident.to_string();
                    let Some(&child) = self
                        .krate
                        .modules
                        .get(m)
                        .and_then(|x| x.children.get(&name))
                    else {
                        continue;
                    };
                    match &md.content {
                        Some((_, inner)) => self.module(child, inner),
                        None => {
                            if let Some(fi) = self.krate.modules.get(child).and_then(|c| c.own_file)
                                && let Some(file) = self.krate.files.get(fi)
                            {
                                self.module(child, &file.ast.items);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn function(
        &mut self,
        m: usize,
        attrs: &[Attribute],
        sig: &Signature,
        block: &'a syn::Block,
        public: bool,
        kind: Kind,
        name: String,
        imp: Option<ImplCtx<'_>>,
    ) {
        let start = sig.ident.span().start();
        let file = self.krate.modules.get(m).map_or(0, |x| x.file);
        let self_ty = imp.map(|c| c.self_ty);
        let mut reasons = Vec::new();
        for arg in &sig.inputs {
            let found = match arg {
                FnArg::Typed(pt) => self.phi_type(m, &pt.ty, self_ty),
                FnArg::Receiver(_) => self_ty.and_then(|t| self.phi_type(m, t, None)),
            };
            if let Some(ty) = found {
                push_unique(&mut reasons, Why::TakesPhi { ty });
            }
        }
        if let ReturnType::Type(_, ty) = &sig.output
            && let Some(ty) = self.phi_type(m, ty, self_ty)
        {
            reasons.push(Why::ReturnsPhi { ty });
        }
        let mut body = Body::new(self.krate, self.schema, m);
        body.visit_block(block);
        let closures = std::mem::take(&mut body.closures);
        reasons.extend(body.reasons);
        let unit = Unit {
            file,
            line: start.line,
            column: start.column + 1,
            name: name.clone(),
            kind,
            public,
            guarded: attr(attrs, "phi_action").is_some(),
            exempt: exempt_reason(attrs),
            source: attr(attrs, "phi_source").is_some(),
            reasons,
            refs: body.refs,
        };
        self.units.push(unit);
        self.closures(m, file, &name, closures, self_ty);
    }

    /// Router closures found in a body: each is a unit; their own bodies may hold more.
    fn closures(
        &mut self,
        m: usize,
        file: usize,
        enclosing: &str,
        mut pending: Vec<&'a ExprClosure>,
        self_ty: Option<&Type>,
    ) {
        while let Some(c) = pending.pop() {
            let start = c.or1_token.span().start();
            let mut reasons = Vec::new();
            for input in &c.inputs {
                if let syn::Pat::Type(pt) = input
                    && let Some(ty) = self.phi_type(m, &pt.ty, self_ty)
                {
                    push_unique(&mut reasons, Why::TakesPhi { ty });
                }
            }
            if let ReturnType::Type(_, ty) = &c.output
                && let Some(ty) = self.phi_type(m, ty, self_ty)
            {
                reasons.push(Why::ReturnsPhi { ty });
            }
            let mut body = Body::new(self.krate, self.schema, m);
            body.visit_expr(&c.body);
            pending.append(&mut body.closures);
            reasons.extend(body.reasons);
            self.units.push(Unit {
                file,
                line: start.line,
                column: start.column + 1,
                name: format!("{enclosing}::{{closure}}"),
                kind: Kind::Closure,
                public: true,
                guarded: false,
                exempt: None,
                source: false,
                reasons,
                refs: body.refs,
            });
        }
    }

    /// The PHI type `ty` mentions anywhere (wrappers, references, tuples, generic
    /// arguments), resolved in module `m`.
    fn phi_type(&self, m: usize, ty: &Type, self_ty: Option<&Type>) -> Option<String> {
        let mut finder = PhiFinder {
            krate: self.krate,
            m,
            self_ty,
            depth: 0,
            found: None,
        };
        finder.visit_type(ty);
        finder.found
    }
}

fn push_unique(reasons: &mut Vec<Why>, why: Why) {
    if !reasons.contains(&why) {
        reasons.push(why);
    }
}
