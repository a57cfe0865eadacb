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

/// `[schema.<table>]` tables of `column = "<category>"`.
fn parse_schema(t: &Table<'_, '_>) -> R<Schema> {
    let mut schema = Schema::default();
    for (key, value) in t.entries_in_order() {
        let table_name: &str = key.get_ref();
        if !is_sql_identifier(table_name) {
            return Err(t.err(
                &key.span(),
                table_name,
                format!(
                    "table `{}` is not an SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`)",
                    table_name.escape_debug()
                ),
            ));
        }
        let table = t.sub_table(table_name, value)?;
        let columns = table.entries_in_order();
        if columns.is_empty() {
            return Err(t.err(
                &value.span(),
                table_name,
                format!(
                    "table `{table_name}` lists no column; add `column = \"<category>\"` lines"
                ),
            ));
        }
        for (col, cat) in columns {
            let column: &str = col.get_ref();
            if !is_sql_identifier(column) {
                return Err(table.err(
                    &col.span(),
                    column,
                    format!(
                        "column `{}` is not an SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`)",
                        column.escape_debug()
                    ),
                ));
            }
            let name = table.string(column, cat)?;
            let category: Category = name
                .parse()
                .map_err(|_| table.err(&cat.span(), column, unknown_category(name, false)))?;
            schema.insert(table_name, column, category);
        }
    }
    Ok(schema)
}

fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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

fn parse_masking(t: &Table<'_, '_>) -> R<MaskingConfig> {
    let mut config = MaskingConfig::default();
    for (key, value) in t.entries_in_order() {
        let name: &str = key.get_ref();
        let category: Category = name
            .parse()
            .map_err(|_| t.err(&key.span(), name, unknown_category(name, false)))?;
        let s = t.string(name, value)?;
        let strategy = Strategy::parse(s).ok_or_else(|| {
            t.err(
                &value.span(),
                name,
                format!(
                    "unknown masking strategy `{s}`, expected one of: redact partial tokenize generalize scan"
                ),
            )
        })?;
        config.set(category, strategy);
    }
    Ok(config)
}

fn parse_approval(t: &Table<'_, '_>) -> R<ApprovalSection> {
    t.check_keys(&["approver_roles", "ttl_secs"])?;
    let approver_roles = match t.get("approver_roles") {
        None => {
            return Err(t.err(
                &t.span,
                "approver_roles",
                "missing field; name the roles that may approve, e.g. `approver_roles = [\"privacy_officer\"]`".into(),
            ));
        }
        Some(v) => t
            .names("approver_roles", v, false)?
            .into_iter()
            .map(|(s, _)| s)
            .collect(),
    };
    let ttl_secs = match t.get("ttl_secs") {
        None => DEFAULT_APPROVAL_TTL_SECS,
        Some(v) => t.positive("ttl_secs", v)?,
    };
    Ok(ApprovalSection {
        approver_roles,
        ttl_secs,
    })
}

fn parse_break_glass(t: &Table<'_, '_>, counter: &mut RoleCounter) -> R<BreakGlassDef> {
    t.check_keys(&[
        "roles",
        "kinds",
        "resources",
        "actions",
        "max_count",
        "reveal",
    ])?;
    let roles = match t.get("roles") {
        None => {
            return Err(t.err(
                &t.span,
                "roles",
                "missing field; name the roles that may declare break-glass".into(),
            ));
        }
        Some(v) => {
            let names = t.names("roles", v, false)?;
            for (name, span) in &names {
                counter.add(t, "roles", name, span)?;
            }
            names.into_iter().map(|(s, _)| s).collect()
        }
    };
    let kinds = match t.get("kinds") {
        None => {
            return Err(t.err(
                &t.span,
                "kinds",
                "missing field; name the action kinds break-glass may open, e.g. `kinds = [\"read\"]`".into(),
            ));
        }
        Some(v) => t.kinds("kinds", v)?,
    };
    let resources = match t.get("resources") {
        None => None,
        Some(v) => Some(
            t.names("resources", v, false)?
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
        ),
    };
    let actions = match t.get("actions") {
        None => None,
        Some(v) => Some(t.globs("actions", v)?),
    };
    let max_count = match t.get("max_count") {
        None => None,
        Some(v) => Some(t.unsigned("max_count", v)?),
    };
    let reveal = match t.get("reveal") {
        None => CategorySet::ALL,
        Some(v) => t.categories("reveal", v)?,
    };
    Ok(BreakGlassDef {
        roles,
        kinds,
        resources,
        actions,
        max_count,
        reveal,
    })
}

fn parse_alerts(t: &Table<'_, '_>) -> R<AlertThresholds> {
    t.check_keys(&["denial_burst", "export_spike"])?;
    let mut out = AlertThresholds::default();
    for (key, slot) in [
        ("denial_burst", &mut out.denial_burst),
        ("export_spike", &mut out.export_spike),
    ] {
        if let Some(v) = t.get(key) {
            let th = t.sub_table(key, v)?;
            th.check_keys(&["count", "window_secs"])?;
            let count = match th.get("count") {
                Some(v) => th.positive("count", v)?,
                None => return Err(th.err(&th.span, "count", "missing field".into())),
            };
            let window_secs = match th.get("window_secs") {
                Some(v) => th.positive("window_secs", v)?,
                None => return Err(th.err(&th.span, "window_secs", "missing field".into())),
            };
            *slot = Some(Threshold { count, window_secs });
        }
    }
    Ok(out)
}

const RULE_KEYS: &[&str] = &[
    "id",
    "effect",
    "actions",
    "kinds",
    "resources",
    "roles",
    "endpoints",
    "jurisdictions",
    "purposes",
    "self_only",
    "max_count",
    "reveal",
    "approval",
    "approval_over",
];

fn parse_rule(
    mut t: Table<'_, '_>,
    approval_section: bool,
    counter: &mut RoleCounter,
    seen: &mut HashMap<Arc<str>, usize>,
) -> R<Rule> {
    // Errors name the rule by its id when it has a usable one, by position otherwise.
    let indexed_path = t.path.clone();
    if let Some(DeValue::String(id)) = t.get("id").map(|v| v.get_ref()) {
        if !id.trim().is_empty() {
            t.path = format!("rule {:?}", id.as_ref());
        }
    }
    t.check_keys(RULE_KEYS)?;
    let id: Arc<str> = match t.get("id") {
        None => {
            return Err(t.err(
                &t.span,
                "id",
                "missing field; every rule needs a unique `id`".into(),
            ));
        }
        Some(v) => {
            let id = match t.non_empty_string("id", v) {
                Ok(id) => id,
                Err(mut e) => {
                    e.field = Some(format!("{indexed_path}.id"));
                    return Err(e);
                }
            };
            let id: Arc<str> = Arc::from(id);
            if let Some(first) = seen.get(&id) {
                return Err(t.err(
                    &v.span(),
                    "id",
                    format!("duplicate rule id `{id}`; it is first used at line {first}"),
                ));
            }
            seen.insert(id.clone(), t.src.line(&v.span()));
            id
        }
    };
    let line = t.src.line(&t.span);

    let effect = match t.get("effect") {
        None => {
            return Err(t.err(
                &t.span,
                "effect",
                "missing field; say `effect = \"allow\"` or `effect = \"deny\"`".into(),
            ));
        }
        Some(v) => match t.string("effect", v)? {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            other => {
                return Err(t.err(
                    &v.span(),
                    "effect",
                    format!("unknown effect `{other}`, expected one of: allow deny"),
                ));
            }
        },
    };
    let actions = match t.get("actions") {
        None => {
            return Err(t.err(
                &t.span,
                "actions",
                "missing field; list the action names or patterns the rule covers, e.g. `actions = [\"clinic::*\"]`".into(),
            ));
        }
        Some(v) => t.globs("actions", v)?,
    };
    let kinds = t.get("kinds").map(|v| t.kinds("kinds", v)).transpose()?;
    let resources = t
        .get("resources")
        .map(|v| t.names("resources", v, false))
        .transpose()?
        .map(|v| v.into_iter().map(|(s, _)| s).collect());
    let roles = match t.get("roles") {
        None => None,
        Some(v) => {
            let names = t.names("roles", v, false)?;
            for (name, span) in &names {
                counter.add(&t, "roles", name, span)?;
            }
            Some(names.into_iter().map(|(s, _)| s).collect())
        }
    };
    let endpoints = t
        .get("endpoints")
        .map(|v| t.closed_set::<Endpoint>("endpoints", v, |e| e.index()))
        .transpose()?;
    let jurisdictions = t
        .get("jurisdictions")
        .map(|v| t.globs("jurisdictions", v))
        .transpose()?;
    let purposes = t
        .get("purposes")
        .map(|v| t.closed_set::<Purpose>("purposes", v, |p| p.index()))
        .transpose()?;
    let self_only = match t.get("self_only") {
        None => false,
        Some(v) => {
            let b = t.boolean("self_only", v)?;
            if b && effect == Effect::Deny {
                return Err(t.err(
                    &v.span(),
                    "self_only",
                    "`self_only` applies to allow rules only; a deny rule cannot say whose records it spares".into(),
                ));
            }
            b
        }
    };
    let max_count = t
        .get("max_count")
        .map(|v| t.unsigned("max_count", v))
        .transpose()?;
    let reveal = match t.get("reveal") {
        None => CategorySet::EMPTY,
        Some(v) => {
            if effect == Effect::Deny {
                return Err(t.err(
                    &v.span(),
                    "reveal",
                    "`reveal` applies to allow rules only; a deny rule reveals nothing".into(),
                ));
            }
            t.categories("reveal", v)?
        }
    };
    let mut approval = RuleApproval::Never;
    if let Some(v) = t.get("approval") {
        if effect == Effect::Deny {
            return Err(t.err(
                &v.span(),
                "approval",
                "`approval` applies to allow rules only; a denied call cannot be approved".into(),
            ));
        }
        match t.string("approval", v)? {
            "always" => approval = RuleApproval::Always,
            other => {
                return Err(t.err(
                    &v.span(),
                    "approval",
                    format!(
                        "unknown approval mode `{other}`, expected `always` (use `approval_over = N` for a count threshold)"
                    ),
                ));
            }
        }
        if !approval_section {
            return Err(t.err(
                &v.span(),
                "approval",
                "the rule needs approval but the policy has no `[approval]` section naming `approver_roles`".into(),
            ));
        }
    }
    if let Some(v) = t.get("approval_over") {
        if effect == Effect::Deny {
            return Err(t.err(
                &v.span(),
                "approval_over",
                "`approval_over` applies to allow rules only; a denied call cannot be approved"
                    .into(),
            ));
        }
        let over = t.unsigned("approval_over", v)?;
        if approval == RuleApproval::Always {
            return Err(t.err(
                &v.span(),
                "approval_over",
                "`approval_over` has no effect when `approval = \"always\"`; keep one of them"
                    .into(),
            ));
        }
        if !approval_section {
            return Err(t.err(
                &v.span(),
                "approval_over",
                "the rule needs approval but the policy has no `[approval]` section naming `approver_roles`".into(),
            ));
        }
        approval = RuleApproval::Over(over);
    }

    Ok(Rule {
        id,
        effect,
        actions: actions.into_boxed_slice(),
        kinds,
        resources,
        roles,
        role_mask: 0,
        endpoints,
        jurisdictions: jurisdictions.map(Vec::into_boxed_slice),
        purposes,
        self_only,
        max_count,
        reveal,
        approval,
        line,
    })
}

/// A TOML table being read, with its place in the document for error messages.
struct Table<'a, 'i> {
    src: &'a Source<'a>,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    /// The field path of this table (`""` at the top, `rule "x"`, `alerts.denial_burst`).
    path: String,
}

fn unknown_category(name: &str, star: bool) -> String {
    format!(
        "unknown PHI category `{name}`, expected {}one of: {}",
        if star { "`*` or " } else { "" },
        Category::NAMES.join(" ")
    )
}

fn article(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Table<'a, 'i> {
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn err(&self, span: &Range<usize>, key: &str, message: String) -> PolicyError {
        self.src.error(span, Some(self.field(key)), message)
    }

    fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    /// Entries in the order they appear in the text (the map itself is sorted by key).
    fn entries_in_order(&self) -> Vec<(&'a Spanned<std::borrow::Cow<'i, str>>, &'a Value<'i>)> {
        let mut entries: Vec<_> = self.table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        entries
    }

    /// Refuses keys not in `allowed` (the first one in the text).
    fn check_keys(&self, allowed: &[&str]) -> R<()> {
        for (key, _) in self.entries_in_order() {
            let name: &str = key.get_ref();
            if !allowed.contains(&name) {
                return Err(self.err(
                    &key.span(),
                    name,
                    format!(
                        "unknown field `{name}`, expected one of: {}",
                        allowed.join(" ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn sub_table(&self, key: &str, v: &'a Value<'i>) -> R<Table<'a, 'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(Table {
                src: self.src,
                table: t,
                span: v.span(),
                path: self.field(key),
            }),
            other => Err(self.err(
                &v.span(),
                key,
                format!("expected a table, found {}", article(other)),
            )),
        }
    }

    fn string(&self, key: &str, v: &'a Value<'i>) -> R<&'a str> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            other => Err(self.err(
                &v.span(),
                key,
                format!("expected a string, found {}", article(other)),
            )),
        }
    }

    fn non_empty_string(&self, key: &str, v: &'a Value<'i>) -> R<&'a str> {
        let s = self.string(key, v)?;
        if s.trim().is_empty() {
            return Err(self.err(&v.span(), key, "must not be empty".into()));
        }
        Ok(s)
    }

    fn boolean(&self, key: &str, v: &Value<'i>) -> R<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.err(
                &v.span(),
                key,
                format!(
                    "expected a boolean (`true` or `false`), found {}",
                    article(other)
                ),
            )),
        }
    }

    fn unsigned(&self, key: &str, v: &Value<'i>) -> R<u64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                if i.as_str().starts_with('-') {
                    return Err(self.err(&v.span(), key, "must not be negative".into()));
                }
                u64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|_| self.err(&v.span(), key, "the number is too large".into()))
            }
            other => Err(self.err(
                &v.span(),
                key,
                format!("expected an integer, found {}", article(other)),
            )),
        }
    }

    fn positive(&self, key: &str, v: &Value<'i>) -> R<u64> {
        let n = self.unsigned(key, v)?;
        if n == 0 {
            return Err(self.err(&v.span(), key, "must be greater than 0".into()));
        }
        Ok(n)
    }

    /// A non-empty array of strings, each with its span.
    fn strings(
        &self,
        key: &str,
        v: &'a Value<'i>,
        allow_empty: bool,
    ) -> R<Vec<(&'a str, Range<usize>)>> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.err(
                &v.span(),
                key,
                format!(
                    "expected an array of strings, found {}",
                    article(v.get_ref())
                ),
            ));
        };
        if items.is_empty() && !allow_empty {
            return Err(self.err(
                &v.span(),
                key,
                "the list is empty and would match nothing; remove the field to match any value"
                    .into(),
            ));
        }
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok((s.as_ref(), item.span())),
                other => Err(self.err(
                    &item.span(),
                    key,
                    format!("expected a string in the list, found {}", article(other)),
                )),
            })
            .collect()
    }

    /// Exact names (roles, resources, sinks).
    fn names(
        &self,
        key: &str,
        v: &'a Value<'i>,
        allow_empty: bool,
    ) -> R<Vec<(Arc<str>, Range<usize>)>> {
        self.strings(key, v, allow_empty)?
            .into_iter()
            .map(|(s, span)| {
                if s.is_empty() {
                    return Err(self.err(&span, key, "a name must not be empty".into()));
                }
                if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(self.err(
                        &span,
                        key,
                        format!("name `{}` contains whitespace", s.escape_debug()),
                    ));
                }
                if s.contains('*') {
                    return Err(self.err(
                        &span,
                        key,
                        format!("`{s}`: `{key}` lists exact names, `*` is not a wildcard here; remove the field to match any"),
                    ));
                }
                Ok((Arc::from(s), span))
            })
            .collect()
    }

    fn globs(&self, key: &str, v: &'a Value<'i>) -> R<Vec<Glob>> {
        self.strings(key, v, false)?
            .into_iter()
            .map(|(s, span)| {
                Glob::new(s).map_err(|m| self.err(&span, key, format!("invalid pattern: {m}")))
            })
            .collect()
    }

    fn kinds(&self, key: &str, v: &'a Value<'i>) -> R<u8> {
        self.closed_set::<ActionKind>(key, v, |k| k.index())
    }

    /// A list of names of a closed set (`kinds`, `endpoints`, `purposes`) as a bitmask.
    fn closed_set<T>(&self, key: &str, v: &'a Value<'i>, index: fn(T) -> usize) -> R<u8>
    where
        T: std::str::FromStr<Err = crate::model::UnknownName>,
    {
        let mut mask = 0u8;
        for (s, span) in self.strings(key, v, false)? {
            let value: T = s
                .parse()
                .map_err(|e: crate::model::UnknownName| self.err(&span, key, e.to_string()))?;
            mask |= 1 << index(value);
        }
        Ok(mask)
    }

    fn categories(&self, key: &str, v: &'a Value<'i>) -> R<CategorySet> {
        let mut set = CategorySet::EMPTY;
        for (s, span) in self.strings(key, v, true)? {
            if s == "*" {
                set = CategorySet::ALL;
                continue;
            }
            let c: Category = s
                .parse()
                .map_err(|_| self.err(&span, key, unknown_category(s, true)))?;
            set = set.union(CategorySet::EMPTY.with(c));
        }
        Ok(set)
    }
}
