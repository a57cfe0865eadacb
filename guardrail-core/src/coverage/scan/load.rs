//! Finding and parsing the crate's files, module by module, and indexing what each module
//! defines and imports.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use std::cell::RefCell;

use syn::{Item, UseTree};

use super::ScanError;

/// A parsed source file.
pub(crate) struct File {
    /// Relative to the crate directory, with `/`.
    pub(crate) rel: String,
    pub(crate) ast: syn::File,
}

/// A type the crate defines.
pub(crate) enum TypeItem {
    /// `#[derive(Phi)]`.
    Phi,
    /// Any other struct, enum, union or trait.
    Plain,
    /// `type Name = <ty>;`
    Alias(Box<syn::Type>),
}

/// One module (file or inline).
#[derive(Default)]
pub(crate) struct Module {
    pub(crate) crate_root: usize,
    pub(crate) parent: Option<usize>,
    /// The file whose items this module's items are among.
    pub(crate) file: usize,
    pub(crate) children: HashMap<String, usize>,
    pub(crate) types: HashMap<String, TypeItem>,
    /// Free functions by name: the `pub`-ness and the markers are read in `analyse`.
    pub(crate) fns: HashSet<String>,
    /// `use` imports: local name → path (relative to this module, as written).
    pub(crate) uses: HashMap<String, Vec<String>>,
    pub(crate) globs: Vec<Vec<String>>,
    /// `mod x;` modules whose items are a whole file.
    pub(crate) own_file: Option<usize>,
}

/// Every module and file of the crate (library and binaries).
pub(crate) struct Crate {
    pub(crate) files: Vec<File>,
    pub(crate) modules: Vec<Module>,
    /// Root modules with their file (lib first if any).
    pub(crate) roots: Vec<usize>,
    /// The library's root, if any, with the name binaries use for it.
    pub(crate) lib: Option<(String, usize)>,
    /// Memo of [`Crate::lookup`] (an entry is `None` while being computed: a cycle).
    memo: RefCell<HashMap<(usize, String), Option<ResKey>>>,
}

/// A [`Res`] without the borrow, for the memo.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ResKey {
    Module(usize),
    Item(usize, String),
}

/// Upper bound on module nesting, against `#[path]` cycles.
const MAX_DEPTH: usize = 64;

pub(crate) fn load(dir: &Path) -> Result<Crate, ScanError> {
    let mut krate = Crate {
        files: Vec::new(),
        modules: Vec::new(),
        roots: Vec::new(),
        lib: None,
        memo: RefCell::new(HashMap::new()),
    };
    let src = dir.join("src");
    let mut root_files: Vec<PathBuf> = Vec::new();
    let lib = src.join("lib.rs");
    if lib.is_file() {
        root_files.push(lib);
    }
    let main = src.join("main.rs");
    if main.is_file() {
        root_files.push(main);
    }
    let bin = src.join("bin");
    if bin.is_dir() {
        let mut bins = Vec::new();
        let entries = std::fs::read_dir(&bin).map_err(|e| ScanError::Io {
            path: bin.clone(),
            source: e,
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| ScanError::Io {
                path: bin.clone(),
                source: e,
            })?;
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "rs") && p.is_file() {
                bins.push(p);
            } else if p.join("main.rs").is_file() {
                bins.push(p.join("main.rs"));
            }
        }
        bins.sort();
        root_files.extend(bins);
    }
    if root_files.is_empty() {
        return Err(ScanError::NoRoot {
            dir: dir.to_owned(),
        });
    }
    let mut seen = HashSet::new();
    for (n, path) in root_files.iter().enumerate() {
        let file = parse_file(dir, path)?;
        let idx = krate.modules.len();
        krate.modules.push(Module {
            crate_root: idx,
            ..Module::default()
        });
        krate.roots.push(idx);
        if n == 0 && path.ends_with("src/lib.rs") {
            krate.lib = Some((lib_name(dir), idx));
        }
        let fi = krate.files.len();
        krate.files.push(file);
        krate.modules[idx].file = fi;
        krate.modules[idx].own_file = Some(fi);
        seen.insert(path.clone());
        let items = std::mem::take(&mut krate.files[fi].ast.items);
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let result = index_items(&mut krate, dir, idx, &items, &base, 0, &mut seen);
        krate.files[fi].ast.items = items;
        result?;
    }
    Ok(krate)
}

/// The library's name as binaries write it: `[lib] name`, else the package name with `-`
/// as `_`.
fn lib_name(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let value: toml::Table = text.parse().unwrap_or_default();
    let from = |section: &str| {
        value
            .get(section)
            .and_then(|s| s.get("name"))
            .and_then(|n| n.as_str())
            .map(|n| n.replace('-', "_"))
    };
    from("lib").or_else(|| from("package")).unwrap_or_default()
}

fn rel(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn parse_file(dir: &Path, path: &Path) -> Result<File, ScanError> {
    let rel = rel(dir, path);
    let text = std::fs::read_to_string(path).map_err(|e| ScanError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    let ast = syn::parse_file(&text).map_err(|e| {
        let start = e.span().start();
        ScanError::Parse {
            file: rel.clone(),
            line: start.line,
            column: start.column + 1,
            message: e.to_string(),
        }
    })?;
    Ok(File { rel, ast })
}

/// The attribute named `name` (last path segment), if any.
pub(crate) fn attr<'a>(attrs: &'a [syn::Attribute], name: &str) -> Option<&'a syn::Attribute> {
    attrs
        .iter()
        .find(|a| a.path().segments.last().is_some_and(|s| s.ident == name))
}

/// `#[cfg(test)]` (skipped: test code is not the service).
pub(crate) fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        (a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
            || a.path().is_ident("test")
    })
}

fn derives_phi(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .any(|a| {
            a.parse_args_with(
                syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
            )
            .is_ok_and(|paths| {
                paths
                    .iter()
                    .any(|p| p.segments.last().is_some_and(|s| s.ident == "Phi"))
            })
        })
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident("path"))
        .and_then(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
}

/// Indexes `items` into module `m`, whose nested `mod x;` files live under `base`.
fn index_items(
    krate: &mut Crate,
    dir: &Path,
    m: usize,
    items: &[Item],
    base: &Path,
    depth: usize,
    seen: &mut HashSet<PathBuf>,
) -> Result<(), ScanError> {
    for item in items {
        match item {
            Item::Struct(s) if !is_test(&s.attrs) => {
                let kind = if derives_phi(&s.attrs) {
                    TypeItem::Phi
                } else {
                    TypeItem::Plain
                };
                krate.modules[m].types.insert(s.ident.to_string(), kind);
            }
            Item::Enum(e) if !is_test(&e.attrs) => {
                let kind = if derives_phi(&e.attrs) {
                    TypeItem::Phi
                } else {
                    TypeItem::Plain
                };
                krate.modules[m].types.insert(e.ident.to_string(), kind);
            }
            Item::Union(u) => {
                krate.modules[m]
                    .types
                    .insert(u.ident.to_string(), TypeItem::Plain);
            }
            Item::Trait(t) => {
                krate.modules[m]
                    .types
                    .insert(t.ident.to_string(), TypeItem::Plain);
            }
            Item::Type(t) => {
                krate.modules[m]
                    .types
                    .insert(t.ident.to_string(), TypeItem::Alias(t.ty.clone()));
            }
            Item::Fn(f) if !is_test(&f.attrs) => {
                krate.modules[m].fns.insert(f.sig.ident.to_string());
            }
            Item::Use(u) => {
                flatten_use(&u.tree, Vec::new(), &mut krate.modules[m]);
            }
            Item::Mod(md) if !is_test(&md.attrs) => {
                if depth >= MAX_DEPTH {
                    continue;
                }
                let name = md.ident.to_string();
                let child = krate.modules.len();
                let file_of_m = krate.modules[m].file;
                let crate_root = krate.modules[m].crate_root;
                krate.modules.push(Module {
                    crate_root,
                    parent: Some(m),
                    file: file_of_m,
                    ..Module::default()
                });
                krate.modules[m].children.insert(name.clone(), child);
                let explicit = path_attr(&md.attrs);
                match &md.content {
                    Some((_, inner)) => {
                        let sub = match &explicit {
                            Some(p) => base.join(p),
                            None => base.join(&name),
                        };
                        index_items(krate, dir, child, inner, &sub, depth + 1, seen)?;
                    }
                    None => {
                        let candidates = match &explicit {
                            Some(p) => vec![base.join(p)],
                            None => vec![
                                base.join(format!("{name}.rs")),
                                base.join(&name).join("mod.rs"),
                            ],
                        };
                        let Some(path) = candidates.iter().find(|p| p.is_file()).cloned() else {
                            let here = krate.files[file_of_m].rel.clone();
                            let start = md.ident.span().start();
                            return Err(ScanError::ModuleNotFound {
                                file: here,
                                line: start.line,
                                module: name,
                                tried: candidates.iter().map(|c| rel(dir, c)).collect(),
                            });
                        };
                        if !seen.insert(path.clone()) {
                            continue;
                        }
                        let file = parse_file(dir, &path)?;
                        let fi = krate.files.len();
                        krate.files.push(file);
                        krate.modules[child].file = fi;
                        krate.modules[child].own_file = Some(fi);
                        // Nested modules of `x.rs` live in `x/`; of `x/mod.rs` (or a
                        // `#[path]` file) beside it.
                        let is_mod_rs = path.file_name().is_some_and(|f| f == "mod.rs");
                        let sub = if explicit.is_some() || is_mod_rs {
                            path.parent().map(Path::to_owned).unwrap_or_default()
                        } else {
                            base.join(&name)
                        };
                        let items = std::mem::take(&mut krate.files[fi].ast.items);
                        let result = index_items(krate, dir, child, &items, &sub, depth + 1, seen);
                        krate.files[fi].ast.items = items;
                        result?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn flatten_use(tree: &UseTree, prefix: Vec<String>, m: &mut Module) {
    match tree {
        UseTree::Path(p) => {
            let mut next = prefix;
            next.push(p.ident.to_string());
            flatten_use(&p.tree, next, m);
        }
        UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last().cloned() {
                    m.uses.insert(last, prefix);
                }
            } else {
                let mut path = prefix;
                path.push(name.clone());
                m.uses.insert(name, path);
            }
        }
        UseTree::Rename(r) => {
            let mut path = prefix;
            let name = r.ident.to_string();
            if name != "self" {
                path.push(name);
            }
            if r.rename != "_" {
                m.uses.insert(r.rename.to_string(), path);
            }
        }
        UseTree::Glob(_) => m.globs.push(prefix),
        UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix.clone(), m);
            }
        }
    }
}

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Res<'a> {
    Module(usize),
    /// A type or function `name` defined in module `m`.
    Item(usize, &'a str),
}

impl Crate {
    /// Resolves `segs` as written in module `m` (imports, re-exports, globs, `crate`,
    /// `self`, `super`, the library's name from a binary). `None` for anything outside the
    /// crate or unknown. Bounded by `depth` against import cycles.
    pub(crate) fn resolve(&self, m: usize, segs: &[String], depth: usize) -> Option<Res<'_>> {
        if depth > 24 {
            return None;
        }
        let (first, rest) = segs.split_first()?;
        let module = self.modules.get(m)?;
        let mut cur = match first.as_str() {
            "crate" => Res::Module(module.crate_root),
            "self" => Res::Module(m),
            "super" => Res::Module(module.parent?),
            "Self" => return None,
            name => match self.lookup(m, name, depth) {
                Some(r) => r,
                None => match &self.lib {
                    Some((lib, root)) if lib == name => Res::Module(*root),
                    _ => return None,
                },
            },
        };
        for seg in rest {
            cur = match (cur, seg.as_str()) {
                (Res::Module(mi), "super") => Res::Module(self.modules.get(mi)?.parent?),
                (Res::Module(mi), "self") => Res::Module(mi),
                (Res::Module(mi), name) => self.lookup(mi, name, depth + 1)?,
                // `Type::assoc`: not a module path.
                (Res::Item(..), _) => return None,
            };
        }
        Some(cur)
    }

    fn lookup(&self, m: usize, name: &str, depth: usize) -> Option<Res<'_>> {
        let key = (m, name.to_owned());
        if let Some(done) = self.memo.borrow().get(&key) {
            return done.as_ref().and_then(|r| self.unkey(r));
        }
        self.memo.borrow_mut().insert(key.clone(), None);
        let found = self.lookup_uncached(m, name, depth);
        let stored = found.map(|r| match r {
            Res::Module(i) => ResKey::Module(i),
            Res::Item(i, n) => ResKey::Item(i, n.to_owned()),
        });
        self.memo.borrow_mut().insert(key, stored);
        found
    }

    fn unkey(&self, r: &ResKey) -> Option<Res<'_>> {
        match r {
            ResKey::Module(i) => Some(Res::Module(*i)),
            ResKey::Item(i, n) => {
                let module = self.modules.get(*i)?;
                module
                    .types
                    .get_key_value(n.as_str())
                    .map(|(k, _)| k.as_str())
                    .or_else(|| module.fns.get(n.as_str()).map(String::as_str))
                    .map(|k| Res::Item(*i, k))
            }
        }
    }

    fn lookup_uncached(&self, m: usize, name: &str, depth: usize) -> Option<Res<'_>> {
        let module = self.modules.get(m)?;
        if let Some(child) = module.children.get(name) {
            return Some(Res::Module(*child));
        }
        if let Some((key, _)) = module.types.get_key_value(name) {
            return Some(Res::Item(m, key.as_str()));
        }
        if let Some(key) = module.fns.get(name) {
            return Some(Res::Item(m, key.as_str()));
        }
        if let Some(path) = module.uses.get(name)
            && path.as_slice() != [name]
        {
            // A `use` path starts at this module, the crate root (`crate::`), or an
            // extern crate.
            return self.resolve(m, path, depth + 1);
        }
        for glob in &module.globs {
            if let Some(Res::Module(g)) = self.resolve(m, glob, depth + 1)
                && g != m
                && let Some(r) = self.lookup(g, name, depth + 1)
            {
                return Some(r);
            }
        }
        None
    }
}
