//! The source scan: which functions of a host crate touch PHI without a guard.
//!
//! [`scan_sources`] parses the crate's own sources (never compiles them), starting at
//! `src/lib.rs`, `src/main.rs` and `src/bin/*.rs` and following `mod x;` declarations
//! (`x.rs`, `x/mod.rs`, `#[path]`). A function, method or router closure *touches PHI* when
//!
//! - (a) a parameter, the receiver or the return type mentions a type with
//!   `#[derive(Phi)]` or a `Phi<T>`, anywhere inside it (references, tuples, slices,
//!   `Option`, `Vec`, `Json<..>`, any generic), through `use` renames, type aliases,
//!   re-exports and globs within the crate;
//! - (b) its body holds a string literal that is SQL (see `sql.rs`) naming a table of the
//!   policy's `[schema]`;
//! - (c) it calls or references a function marked `#[phi_source]`.
//!
//! It is a [`SourceFinding`] unless it is guarded (`#[phi_action]`), exempt
//! (`#[phi_exempt(reason = ..)]`, listed in [`ScanReport::exemptions`]), itself a
//! `#[phi_source]`, or a *covered private helper*: a function without any `pub` whose every
//! use in the crate (call or reference; methods are matched by name) is inside a guarded,
//! exempt or `#[phi_source]` function or another covered private helper (a least fixpoint:
//! helpers only reachable from each other are not covered). Trait-impl methods, trait
//! default methods and router closures are never private helpers. `#[cfg(test)]` items and
//! `#[test]` functions are skipped. See `docs/coverage.md` for what is and is not caught.

mod analyse;
mod load;
mod sql;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::policy::Policy;

/// Why the source scan could not run. Never a silent skip: a file it cannot read or parse,
/// or a module file it cannot find, is an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The crate has no `src/lib.rs`, `src/main.rs` or `src/bin/*.rs`.
    #[error("no `src/lib.rs`, `src/main.rs` or `src/bin/*.rs` under `{}`", dir.display())]
    NoRoot {
        /// The crate directory given.
        dir: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid Rust.
    #[error("{file}:{line}:{column}: cannot parse: {message}")]
    Parse {
        /// Relative to the crate directory.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The scan itself failed (a bug: please report it with the crate).
    #[error("the source scan of `{}` failed unexpectedly", dir.display())]
    Internal {
        /// The crate directory given.
        dir: PathBuf,
    },
    /// `mod x;` names no file.
    #[error("{file}:{line}: module `{module}` has no file (tried {})", tried.join(", "))]
    ModuleNotFound {
        /// The file declaring the module, relative to the crate directory.
        file: String,
        /// Its line.
        line: usize,
        /// The module's name.
        module: String,
        /// The paths looked at, relative to the crate directory.
        tried: Vec<String>,
    },
}

/// Why a function touches PHI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Why {
    /// A parameter (or the receiver) mentions a PHI type.
    TakesPhi {
        /// The PHI type (`Chart`, or `Phi<..>`).
        ty: String,
    },
    /// The return type mentions a PHI type.
    ReturnsPhi {
        /// The PHI type.
        ty: String,
    },
    /// A SQL literal names a PHI table.
    Sql {
        /// The statement keyword, lowercase (`select`, `update`, ..).
        statement: String,
        /// The PHI table, lowercase.
        table: String,
        /// The PHI columns of that table it names (all of them for `*`), lowercase.
        columns: Vec<String>,
    },
    /// The body calls or references a `#[phi_source]` function.
    CallsSource {
        /// The callee (`load_chart`, `Repo::chart`).
        callee: String,
    },
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::TakesPhi { ty } => write!(f, "takes PHI type `{ty}`"),
            Why::ReturnsPhi { ty } => write!(f, "returns PHI type `{ty}`"),
            Why::Sql {
                statement,
                table,
                columns,
            } => {
                write!(f, "SQL `{statement}` on PHI table `{table}`")?;
                if !columns.is_empty() {
                    write!(f, " ({})", columns.join(", "))?;
                }
                Ok(())
            }
            Why::CallsSource { callee } => write!(f, "calls `#[phi_source]` `{callee}`"),
        }
    }
}

/// A PHI-touching function with neither `#[phi_action]` nor `#[phi_exempt]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFinding {
    /// The file, relative to the crate directory, with `/`.
    pub file: String,
    /// 1-based line of the function's name (of the closure's first `|`).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// `name`, `Type::name`, or `enclosing::{closure}`.
    pub function: String,
    /// Every reason it touches PHI (never empty).
    pub reasons: Vec<Why>,
}

impl fmt::Display for SourceFinding {
    /// `path:line:col: fn_name: why; why`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: ",
            self.file, self.line, self.column, self.function
        )?;
        for (i, why) in self.reasons.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{why}")?;
        }
        Ok(())
    }
}

/// A function marked `#[phi_exempt(reason = ..)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// The file, relative to the crate directory.
    pub file: String,
    /// 1-based line of the function's name.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The function.
    pub function: String,
    /// The reason given.
    pub reason: String,
}

/// The outcome of [`scan_sources`].
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    findings: Vec<SourceFinding>,
    exemptions: Vec<Exemption>,
    files: usize,
    functions: usize,
    guarded: usize,
}

impl ScanReport {
    /// The findings, sorted by file, line, column.
    pub fn findings(&self) -> &[SourceFinding] {
        &self.findings
    }

    /// The exemptions with their reasons, sorted by file, line, column.
    pub fn exemptions(&self) -> &[Exemption] {
        &self.exemptions
    }

    /// Whether there is no finding.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// How many files were parsed.
    pub fn file_count(&self) -> usize {
        self.files
    }

    /// How many functions, methods and router closures were looked at.
    pub fn function_count(&self) -> usize {
        self.functions
    }

    /// How many of them are `#[phi_action]`.
    pub fn guarded_count(&self) -> usize {
        self.guarded
    }
}

impl fmt::Display for ScanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "source scan: {} files, {} functions, {} guarded, {} exempt, {} unguarded",
            self.files,
            self.functions,
            self.guarded,
            self.exemptions.len(),
            self.findings.len()
        )?;
        for finding in &self.findings {
            writeln!(f, "  {finding}")?;
        }
        for e in &self.exemptions {
            writeln!(
                f,
                "  exempt {}:{}:{}: {}: {}",
                e.file, e.line, e.column, e.function, e.reason
            )?;
        }
        Ok(())
    }
}

/// Scans the sources of the crate in `crate_dir` for PHI-touching functions without a guard
/// (see the module documentation for the exact rules). SQL literals are checked against
/// `policy.schema()`.
pub fn scan_sources(crate_dir: &Path, policy: &Policy) -> Result<ScanReport, ScanError> {
    // Parsing and visiting recurse with the nesting of the source: a thread with a large
    // stack keeps pathological nesting from overflowing the caller's (test threads have
    // 2 MiB).
    let run = || scan(crate_dir, policy);
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("guardrail-scan".into())
            .stack_size(SCAN_STACK)
            .spawn_scoped(scope, run)
        {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(ScanError::Internal {
                    dir: crate_dir.to_owned(),
                })
            }),
            Err(_) => scan(crate_dir, policy),
        }
    })
}

/// Stack of the scanning thread.
const SCAN_STACK: usize = 256 << 20;

fn scan(crate_dir: &Path, policy: &Policy) -> Result<ScanReport, ScanError> {
    let krate = load::load(crate_dir)?;
    let outcome = analyse::analyse(&krate, policy.schema());
    let mut findings = outcome.findings;
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.function).cmp(&(&b.file, b.line, b.column, &b.function))
    });
    let mut exemptions = outcome.exemptions;
    exemptions.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.function).cmp(&(&b.file, b.line, b.column, &b.function))
    });
    Ok(ScanReport {
        findings,
        exemptions,
        files: krate.files.len(),
        functions: outcome.functions,
        guarded: outcome.guarded,
    })
}
