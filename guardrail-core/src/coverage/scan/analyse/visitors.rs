//! The syntax visitors: finding PHI types in a signature, and calls and SQL in a body.

use super::*;

pub(super) struct PhiFinder<'k, 't> {
    pub(super) krate: &'k Crate,
    pub(super) m: usize,
    pub(super) self_ty: Option<&'t Type>,
    pub(super) depth: usize,
    pub(super) found: Option<String>,
}

impl<'ast> Visit<'ast> for PhiFinder<'_, '_> {
    fn visit_type_path(&mut self, tp: &'ast syn::TypePath) {
        if self.found.is_some() {
            return;
        }
        if tp.qself.is_none() {
            let segs: Vec<String> = tp
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            if segs.as_slice() == ["Self"] {
                if let Some(st) = self.self_ty
                    && self.depth < MAX_TYPE_DEPTH
                {
                    self.depth += 1;
                    let outer = self.self_ty.take();
                    self.visit_type(st);
                    self.self_ty = outer;
                    self.depth -= 1;
                }
            } else {
                match self.krate.resolve(self.m, &segs, 0) {
                    Some(Res::Item(mi, name)) => {
                        match self.krate.modules.get(mi).and_then(|x| x.types.get(name)) {
                            Some(TypeItem::Phi) => {
                                self.found = Some(name.to_owned());
                                return;
                            }
                            Some(TypeItem::Alias(target)) if self.depth < MAX_TYPE_DEPTH => {
                                let outer = self.m;
                                self.m = mi;
                                self.depth += 1;
                                self.visit_type(target);
                                self.depth -= 1;
                                self.m = outer;
                                if self.found.is_some() {
                                    return;
                                }
                            }
                            _ => {}
                        }
                    }
                    Some(Res::Module(_)) => {}
                    None => {
                        if let Some(last) = tp.path.segments.last()
                            && last.ident == "Phi"
                            && matches!(last.arguments, syn::PathArguments::AngleBracketed(_))
                        {
                            self.found = Some("Phi<..>".into());
                            return;
                        }
                    }
                }
            }
        }
        visit::visit_type_path(self, tp);
    }
}

/// What a body does: SQL literals, references to functions, router closures.
pub(super) struct Body<'k, 'a> {
    pub(super) krate: &'k Crate,
    pub(super) schema: &'k Schema,
    pub(super) m: usize,
    pub(super) reasons: Vec<Why>,
    pub(super) refs: Vec<Ref>,
    pub(super) closures: Vec<&'a ExprClosure>,
}

impl<'k, 'a> Body<'k, 'a> {
    pub(super) fn new(krate: &'k Crate, schema: &'k Schema, m: usize) -> Self {
        Body {
            krate,
            schema,
            m,
            reasons: Vec::new(),
            refs: Vec::new(),
            closures: Vec::new(),
        }
    }

    fn sql(&mut self, text: &str) {
        if let Some(hit) = sql::analyse(text, self.schema) {
            for (table, columns) in hit.tables {
                push_unique(
                    &mut self.reasons,
                    Why::Sql {
                        statement: hit.statement.clone(),
                        table,
                        columns,
                    },
                );
            }
        }
    }

    fn push_ref(&mut self, r: Ref) {
        if !self.refs.contains(&r) {
            self.refs.push(r);
        }
    }

    /// Literals in tokens a macro call could not be parsed from.
    fn literals(&mut self, tokens: proc_macro2::TokenStream) {
        for tt in tokens {
            match tt {
                proc_macro2::TokenTree::Literal(lit) => {
                    if let Ok(s) = syn::parse_str::<syn::LitStr>(&lit.to_string()) {
                        self.sql(&s.value());
                    }
                }
                proc_macro2::TokenTree::Group(g) => self.literals(g.stream()),
                _ => {}
            }
        }
    }

    fn router_args(&mut self, args: impl Iterator<Item = &'a Expr>) {
        for arg in args {
            match arg {
                Expr::Closure(c) => self.closures.push(c),
                other => self.visit_expr(other),
            }
        }
    }
}

impl<'a> Visit<'a> for Body<'_, 'a> {
    fn visit_item(&mut self, _: &'a Item) {
        // Nested items are not part of this body (and not scanned).
    }

    fn visit_lit_str(&mut self, lit: &'a syn::LitStr) {
        self.sql(&lit.value());
    }

    fn visit_expr_path(&mut self, p: &'a syn::ExprPath) {
        let segs: Vec<String> = p
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        match self.krate.resolve(self.m, &segs, 0) {
            Some(Res::Item(mi, name))
                if self
                    .krate
                    .modules
                    .get(mi)
                    .is_some_and(|x| x.fns.contains(name)) =>
            {
                self.push_ref(Ref::Fn(mi, name.to_owned()));
            }
            _ if segs.len() >= 2 => {
                if let Some(last) = segs.last() {
                    self.push_ref(Ref::Method(last.clone()));
                }
            }
            _ => {}
        }
        visit::visit_expr_path(self, p);
    }

    fn visit_expr_method_call(&mut self, call: &'a syn::ExprMethodCall) {
        self.push_ref(Ref::Method(call.method.to_string()));
        if ROUTER_METHODS.contains(&call.method.to_string().as_str()) {
            self.visit_expr(&call.receiver);
            self.router_args(call.args.iter());
        } else {
            visit::visit_expr_method_call(self, call);
        }
    }

    fn visit_expr_call(&mut self, call: &'a syn::ExprCall) {
        let router = match &*call.func {
            Expr::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| ROUTER_METHODS.contains(&s.ident.to_string().as_str())),
            _ => false,
        };
        if router {
            self.visit_expr(&call.func);
            self.router_args(call.args.iter());
        } else {
            visit::visit_expr_call(self, call);
        }
    }

    fn visit_macro(&mut self, mac: &'a syn::Macro) {
        let parsed = mac
            .parse_body_with(syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated);
        match parsed {
            Ok(exprs) => {
                // The parsed expressions are owned here: visit them with a body of their
                // own lifetime (router closures inside macros are not split out).
                let mut inner = Body::new(self.krate, self.schema, self.m);
                for e in &exprs {
                    inner.visit_expr(e);
                }
                for r in inner.refs {
                    self.push_ref(r);
                }
                for why in inner.reasons {
                    push_unique(&mut self.reasons, why);
                }
                // `inner.closures` borrow `exprs`: their contents count for this body.
                let mut nested = Body::new(self.krate, self.schema, self.m);
                for c in inner.closures {
                    nested.visit_expr(&c.body);
                }
                for r in nested.refs {
                    self.push_ref(r);
                }
                for why in nested.reasons {
                    push_unique(&mut self.reasons, why);
                }
            }
            Err(_) => self.literals(mac.tokens.clone()),
        }
    }
}
