//! Policies: a TOML document compiled once into an index queried per call.
//!
//! See `docs/policy.md` for the reference.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::decision::{Decision, DenyReason};
use crate::mask::MaskingConfig;
use crate::model::{Endpoint, Principal, Purpose};
use crate::registry::ActionDescriptor;

/// Why a policy could not be loaded. Names the place (file, line, column) and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file, when loaded from one.
    pub path: Option<std::path::PathBuf>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field involved, when known (`rule[2].roles`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}:", p.display())?;
        }
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, "{l}:{c}: ")?;
        } else if self.path.is_some() {
            f.write_str(" ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "`{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// One call, as the policy sees it.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The action.
    pub action: &'static ActionDescriptor,
    /// Who.
    pub principal: &'a Principal,
    /// From where.
    pub endpoint: Option<Endpoint>,
    /// Why.
    pub purpose: Option<Purpose>,
    /// Whose PHI (raw; only compared, never stored).
    pub subject: Option<&'a dyn fmt::Display>,
    /// How many records.
    pub count: Option<u64>,
    /// The declared break-glass reason.
    pub break_glass: Option<&'a str>,
    /// Per-context cache (role masks per policy generation).
    pub cache: &'a ContextCache,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("action", &self.action.name)
            .field("principal", &self.principal)
            .field("endpoint", &self.endpoint)
            .field("purpose", &self.purpose)
            .field("subject", &self.subject.map(|_| "[REDACTED]"))
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// Per-context memo of what the policy computed about the principal.
#[derive(Debug, Default, Clone)]
pub struct ContextCache {}

/// A loaded, validated and compiled policy. Cheap to clone.
#[derive(Clone)]
pub struct Policy {
    version: Arc<str>,
    hash: Arc<str>,
    masking: MaskingConfig,
    required: Vec<Arc<str>>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("sha256", &self.hash)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Parses, validates and compiles a policy.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let _ = text;
        Err(PolicyError {
            path: None,
            line: None,
            column: None,
            field: None,
            message: "not yet".into(),
        })
    }

    /// Reads and compiles a policy file; errors name the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            path: Some(path.to_owned()),
            line: None,
            column: None,
            field: None,
            message: format!("cannot read the policy file: {e}"),
        })?;
        Policy::from_toml_str(&text).map_err(|mut e| {
            e.path = Some(path.to_owned());
            e
        })
    }

    /// The policy's `version` string.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub(crate) fn version_arc(&self) -> Arc<str> {
        self.version.clone()
    }

    /// SHA-256 (hex) of the policy text.
    pub fn sha256(&self) -> &str {
        &self.hash
    }

    pub(crate) fn hash_arc(&self) -> Arc<str> {
        self.hash.clone()
    }

    /// Decides one call.
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        let _ = request;
        Decision::deny(DenyReason::NoMatchingRule, self.version_arc(), self.hash_arc())
    }

    /// The masking strategies per category.
    pub fn masking(&self) -> &MaskingConfig {
        &self.masking
    }

    /// Sinks named in `[audit] required` (empty: every sink is required).
    pub fn required_sinks(&self) -> &[Arc<str>] {
        &self.required
    }

    /// True if a failure of sink `name` must deny the call.
    pub fn sink_required(&self, name: &str) -> bool {
        self.required.is_empty() || self.required.iter().any(|r| &**r == name)
    }
}
