//! From TOML text to a validated [`Doc`]: every field checked, every error placed.
//!
//! The document is read with `toml`'s spanned tree (`DeTable`) rather than serde so that each
//! error can name the exact line and column of the offending key or value, and the field
//! path (`rule "x".kinds`), in the words of the policy author rather than of Rust types.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::glob::Glob;
use super::{AlertThresholds, PolicyError, Rule, RuleApproval, Schema, Threshold};
use crate::mask::{MaskingConfig, Strategy};
use crate::model::{ActionKind, Endpoint, Purpose};
use crate::model::{Category, CategorySet};
use crate::policy::Effect;
use crate::relation::{Consent, ConsentSet};

mod rule;
mod sections;
mod table;

use rule::*;
use sections::*;
use table::*;

/// Policies name at most this many distinct roles in rules and `[break_glass]`: a role is a
/// bit in a `u64` mask on the decision path.
pub(crate) const MAX_POLICY_ROLES: usize = 64;

/// A parsed and validated policy document, not yet compiled.
#[derive(Debug)]
pub(crate) struct Doc {
    pub(crate) version: Arc<str>,
    pub(crate) required: Vec<Arc<str>>,
    pub(crate) masking: MaskingConfig,
    pub(crate) approval: Option<ApprovalSection>,
    pub(crate) break_glass: Option<BreakGlassDef>,
    pub(crate) alerts: AlertThresholds,
    pub(crate) schema: Schema,
    pub(crate) rules: Vec<Rule>,
}

/// `[approval]`.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalSection {
    pub(crate) approver_roles: Vec<Arc<str>>,
    pub(crate) ttl_secs: u64,
}

/// `[break_glass]`.
#[derive(Debug, Clone)]
pub(crate) struct BreakGlassDef {
    pub(crate) roles: Vec<Arc<str>>,
    pub(crate) kinds: u8,
    pub(crate) resources: Option<Vec<Arc<str>>>,
    pub(crate) actions: Option<Vec<Glob>>,
    pub(crate) max_count: Option<u64>,
    pub(crate) reveal: CategorySet,
}

/// Default lifetime of an approval grant.
pub(crate) const DEFAULT_APPROVAL_TTL_SECS: u64 = 900;

type Value<'i> = Spanned<DeValue<'i>>;
type R<T> = Result<T, PolicyError>;

/// The policy text, to turn byte offsets into lines and columns.
struct Source<'t> {
    text: &'t str,
    /// Byte offset of the start of every line (computed once: rules ask for their line).
    line_starts: Vec<usize>,
}

impl<'t> Source<'t> {
    fn new(text: &'t str) -> Source<'t> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source { text, line_starts }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let mut at = offset.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        // The last line starting at or before `at` (the first entry is 0, so `i >= 1`).
        let i = self.line_starts.partition_point(|&start| start <= at);
        let start = self
            .line_starts
            .get(i.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self.text.get(start..at).map_or(0, |l| l.chars().count()) + 1;
        (i.max(1), column)
    }

    fn error(&self, span: &Range<usize>, field: Option<String>, message: String) -> PolicyError {
        let (line, column) = self.position(span.start);
        PolicyError {
            path: None,
            line: Some(line),
            column: Some(column),
            field,
            message,
        }
    }

    fn line(&self, span: &Range<usize>) -> usize {
        self.position(span.start).0
    }
}

/// Parses and validates `text`.
pub(crate) fn parse(text: &str) -> R<Doc> {
    let src = Source::new(text);
    let root = DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        src.error(
            &span,
            None,
            format!("invalid TOML: {}", e.message().trim_end_matches('.')),
        )
    })?;
    let root = Table {
        src: &src,
        table: root.get_ref(),
        span: root.span(),
        path: String::new(),
    };
    root.check_keys(&[
        "version",
        "audit",
        "masking",
        "approval",
        "break_glass",
        "alerts",
        "schema",
        "rule",
    ])?;

    let version = match root.get("version") {
        None => {
            return Err(src.error(
                &(0..0),
                Some("version".into()),
                "the policy has no `version`; add `version = \"...\"` at the top".into(),
            ));
        }
        Some(v) => root.non_empty_string("version", v)?,
    };

    let mut roles = RoleCounter::default();

    let required = match root.get("audit") {
        None => Vec::new(),
        Some(v) => {
            let audit = root.sub_table("audit", v)?;
            audit.check_keys(&["required"])?;
            match audit.get("required") {
                None => Vec::new(),
                Some(v) => audit
                    .names("required", v, true)?
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect(),
            }
        }
    };

    let masking = match root.get("masking") {
        None => MaskingConfig::default(),
        Some(v) => parse_masking(&root.sub_table("masking", v)?)?,
    };

    let approval = match root.get("approval") {
        None => None,
        Some(v) => Some(parse_approval(&root.sub_table("approval", v)?)?),
    };

    let break_glass = match root.get("break_glass") {
        None => None,
        Some(v) => Some(parse_break_glass(
            &root.sub_table("break_glass", v)?,
            &mut roles,
        )?),
    };

    let alerts = match root.get("alerts") {
        None => AlertThresholds::default(),
        Some(v) => parse_alerts(&root.sub_table("alerts", v)?)?,
    };

    let schema = match root.get("schema") {
        None => Schema::default(),
        Some(v) => parse_schema(&root.sub_table("schema", v)?)?,
    };

    let mut rules = Vec::new();
    if let Some(v) = root.get("rule") {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(src.error(
                &v.span(),
                Some("rule".into()),
                format!(
                    "expected an array of tables (`[[rule]]`), found {}",
                    article(v.get_ref())
                ),
            ));
        };
        let mut seen: HashMap<Arc<str>, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(t) = item.get_ref() else {
                return Err(src.error(
                    &item.span(),
                    Some(format!("rule[{}]", i + 1)),
                    format!("expected a table, found {}", article(item.get_ref())),
                ));
            };
            let table = Table {
                src: &src,
                table: t,
                span: item.span(),
                path: format!("rule[{}]", i + 1),
            };
            let rule = parse_rule(table, approval.is_some(), &mut roles, &mut seen)?;
            rules.push(rule);
        }
    }

    Ok(Doc {
        version: Arc::from(version),
        required,
        masking,
        approval,
        break_glass,
        alerts,
        schema,
        rules,
    })
}

/// Counts the distinct role names a policy uses in decisions (see [`MAX_POLICY_ROLES`]).
#[derive(Default)]
struct RoleCounter {
    names: std::collections::HashSet<Arc<str>>,
}

impl RoleCounter {
    fn add(
        &mut self,
        t: &Table<'_, '_>,
        field: &str,
        name: &Arc<str>,
        span: &Range<usize>,
    ) -> R<()> {
        if self.names.contains(name) {
            return Ok(());
        }
        if self.names.len() >= MAX_POLICY_ROLES {
            return Err(t.err(
                span,
                field,
                format!("a policy may name at most {MAX_POLICY_ROLES} distinct roles; `{name}` is one too many"),
            ));
        }
        self.names.insert(name.clone());
        Ok(())
    }
}
