//! Policies: a TOML document parsed with exact error positions (`parse`), compiled once
//! into per-action plans (`compile`) and queried per call (`evaluate`).
//!
//! Owns parsing, compiling, the per-action plan cache, evaluation, the verdict types
//! (`Verdict`, `Decision`, `DenyReason`) and glob patterns.
//! May use: model, mask (the masking section's types), registry. Nothing above it.
//!
//! See `docs/policy.md` for the reference of the format and its semantics.
//!
//! ```
//! use guardrail_core::policy::Policy;
//! let policy = Policy::from_toml_str(r#"
//!     version = "2026-11-01"
//!     [[rule]]
//!     id = "providers-read"
//!     effect = "allow"
//!     actions = ["clinic::*"]
//!     kinds = ["read"]
//!     roles = ["provider"]
//! "#).unwrap();
//! assert_eq!(policy.version(), "2026-11-01");
//! assert_eq!(policy.rules().len(), 1);
//!
//! let err = Policy::from_toml_str("version = \"1\"\n[[rule]]\nid = \"x\"\nefect = \"allow\"\n")
//!     .unwrap_err();
//! assert_eq!((err.line, err.column), (Some(4), Some(1)));
//! assert!(err.to_string().contains("unknown field `efect`"));
//! ```

mod verdict;

pub(crate) use compile::ActionLabels;
use verdict::PlanRef;
pub use verdict::{ApprovalNeed, Decision, DenyReason, Effect, Grounds, Verdict};

mod compile;
mod evaluate;
mod glob;
mod parse;
mod rule;

pub use rule::Rule;
pub(crate) use rule::RuleApproval;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::mask::MaskingConfig;
use crate::model::Category;
use crate::model::{Endpoint, Principal, Purpose};
use crate::registry::ActionDescriptor;
use crate::relation::Lookups;

use compile::{Plan, RoleTable};
use parse::{ApprovalSection, BreakGlassDef};

/// Why a policy could not be loaded. Names the place (file, line, column) and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file, when loaded from one.
    pub path: Option<std::path::PathBuf>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field involved, when known (`rule "x".roles`, `rule[2].id`, `alerts.denial_burst.count`).
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
    /// The name of the agent the principal acts through (`None`: a direct call).
    pub agent: Option<&'a str>,
    /// Per-context cache (role masks per policy generation, the host's relationship and
    /// consent answers). It memoizes facts about `principal`: give each principal its own
    /// cache (a [`crate::Context`] has one).
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

/// Per-context memo of what the policy computed about the principal: the principal's role
/// mask under one policy generation, packed as `(generation << 32) | mask` so that a single
/// atomic load reads a consistent pair even when contexts are shared across threads; and
/// the host's relationship and consent answers for the request ([`Lookups`]).
#[derive(Debug, Default)]
pub struct ContextCache {
    roles: AtomicU64,
    pub(crate) lookups: Lookups,
}

impl ContextCache {
    /// A cache whose relationship and consent questions go to `lookups`' providers (a
    /// `Context` gets one from its guardrail; this is for evaluating a policy by hand).
    pub fn with_lookups(lookups: Lookups) -> ContextCache {
        ContextCache {
            roles: AtomicU64::new(0),
            lookups,
        }
    }

    /// The providers and the answers memoized so far.
    pub fn lookups(&self) -> &Lookups {
        &self.lookups
    }
}

impl Clone for ContextCache {
    fn clone(&self) -> Self {
        ContextCache {
            roles: AtomicU64::new(self.roles.load(Ordering::Relaxed)),
            lookups: self.lookups.clone(),
        }
    }
}

/// Alert thresholds from the policy's `[alerts]` section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertThresholds {
    /// Denials per principal within the window that raise an alert.
    pub denial_burst: Option<Threshold>,
    /// Exported records per principal and action within the window that raise an alert.
    pub export_spike: Option<Threshold>,
}

/// The database schema from the policy's `[schema]` section: which tables and columns hold
/// PHI, and of which category. Read by the source scan
/// (`coverage::scan_sources`, feature `scan`) to recognise SQL literals touching PHI.
///
/// ```toml
/// [schema.patients]          # a table holding PHI
/// ssn = "ssn"                # column = PHI category
/// diagnosis = "diagnosis"
/// ```
///
/// Table and column names are SQL identifiers (`[A-Za-z_][A-Za-z0-9_]*`), compared
/// case-insensitively (stored lowercase).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    tables: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Category>>,
}

impl Schema {
    pub(crate) fn insert(&mut self, table: &str, column: &str, category: Category) {
        self.tables
            .entry(table.to_ascii_lowercase())
            .or_default()
            .insert(column.to_ascii_lowercase(), category);
    }

    /// Adds `table.column` as a PHI column of `category` (a schema built in code, for hosts
    /// that keep it outside the policy).
    ///
    /// ```
    /// use guardrail_core::{Category, policy::Schema};
    /// let schema = Schema::default().with_column("patients", "SSN", Category::Ssn);
    /// assert_eq!(schema.column("PATIENTS", "ssn"), Some(Category::Ssn));
    /// ```
    pub fn with_column(mut self, table: &str, column: &str, category: Category) -> Schema {
        self.insert(table, column, category);
        self
    }

    /// Whether the policy names no PHI table.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The PHI tables, lowercase, in order.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// Whether `table` (any case) holds PHI.
    pub fn is_phi_table(&self, table: &str) -> bool {
        self.tables.contains_key(&table.to_ascii_lowercase())
    }

    /// The PHI columns of `table` (any case) with their categories.
    pub fn columns(&self, table: &str) -> impl Iterator<Item = (&str, Category)> {
        self.tables
            .get(&table.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .map(|(c, cat)| (c.as_str(), *cat))
    }

    /// The category of `table.column` (any case), if it is a PHI column.
    pub fn column(&self, table: &str, column: &str) -> Option<Category> {
        self.tables
            .get(&table.to_ascii_lowercase())?
            .get(&column.to_ascii_lowercase())
            .copied()
    }
}

/// A sliding-window threshold: more than `count` within `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// How many events (or records) the window tolerates.
    pub count: u64,
    /// The window length in seconds.
    pub window_secs: u64,
}

/// The source of unique policy generations (see [`Policy::generation`]).
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

fn next_generation() -> u32 {
    let n = GENERATIONS.fetch_add(1, Ordering::Relaxed);
    // 1..=u32::MAX: 0 marks an empty cache slot.
    (n % u64::from(u32::MAX)) as u32 + 1
}

/// A loaded, validated and compiled policy. Cheap to clone.
///
/// Compiling resolves every registered action to a plan of the rules that can apply to it;
/// each [`ActionDescriptor`] caches the index of its plan for the current generation, so a
/// decision does no string hashing.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    generation: u32,
    version: Arc<str>,
    hash: Arc<str>,
    masking: MaskingConfig,
    required: Vec<Arc<str>>,
    approval: Option<ApprovalSection>,
    break_glass: Option<BreakGlass>,
    alerts: AlertThresholds,
    schema: Schema,
    rules: Box<[Rule]>,
    roles: RoleTable,
    /// Plans of `registry::actions()`, index for index.
    registered: Box<[Plan]>,
    /// Plans of descriptors outside the registry, by descriptor address; append-only.
    adhoc: RwLock<Vec<(usize, Arc<Plan>)>>,
}

/// `[break_glass]`, compiled.
#[derive(Debug)]
pub(crate) struct BreakGlass {
    pub(crate) def: BreakGlassDef,
    pub(crate) role_mask: u64,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.inner.version)
            .field("sha256", &self.inner.hash)
            .field("generation", &self.inner.generation)
            .field("rules", &self.inner.rules.len())
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Parses, validates and compiles a policy. Errors name the line, column and field.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let doc = parse::parse(text)?;
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        let actions = crate::registry::actions();
        let mut rules = doc.rules;
        let roles = RoleTable::build(&rules, doc.break_glass.as_ref(), actions);
        for rule in &mut rules {
            rule.role_mask = roles.mask(rule.roles.iter().flatten().map(|r| &**r));
        }
        let break_glass = doc.break_glass.map(|def| BreakGlass {
            role_mask: roles.mask(def.roles.iter().map(|r| &**r)),
            def,
        });
        let registered = actions
            .iter()
            .map(|a| compile::plan_for(&rules, &roles, a))
            .collect();
        Ok(Policy {
            inner: Arc::new(Inner {
                generation: next_generation(),
                version: doc.version,
                hash: Arc::from(hash),
                masking: doc.masking,
                required: doc.required,
                approval: doc.approval,
                break_glass,
                alerts: doc.alerts,
                schema: doc.schema,
                rules: rules.into_boxed_slice(),
                roles,
                registered,
                adhoc: RwLock::new(Vec::new()),
            }),
        })
    }

    /// The `[schema]` section: the PHI tables and columns (empty when absent).
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
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
        &self.inner.version
    }

    pub(crate) fn version_arc(&self) -> Arc<str> {
        self.inner.version.clone()
    }

    /// SHA-256 (hex) of the policy text.
    pub fn sha256(&self) -> &str {
        &self.inner.hash
    }

    pub(crate) fn hash_arc(&self) -> Arc<str> {
        self.inner.hash.clone()
    }

    /// A number unique to this compiled policy within the process (clones share it). Caches
    /// keyed by it never confuse two policies, even two compiled from the same text.
    pub fn generation(&self) -> u32 {
        self.inner.generation
    }

    /// Decides one call. Never panics on any request; see `docs/policy.md` for the rules.
    ///
    /// This is [`Policy::evaluate`] made owned (three reference counts taken); the hot path
    /// of a guarded call can use `evaluate` and move only what it keeps.
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        self.evaluate(request).to_decision()
    }

    /// Decides one call, borrowing from the policy: an allow neither allocates nor touches
    /// a reference count. The [`Verdict`] also carries the action's names as shared strings
    /// for the audit events.
    #[inline]
    pub fn evaluate(&self, request: &Request<'_>) -> Verdict<'_> {
        evaluate::evaluate(self, self.plan(request.action), request)
    }

    /// A denial decided outside the rules (the evaluation itself failed): fails closed.
    pub(crate) fn fault(
        &self,
        action: &'static ActionDescriptor,
        reason: DenyReason,
    ) -> Verdict<'_> {
        let plan = compile::plan_for(&[], &self.inner.roles, action);
        Verdict::from_ruling(
            self,
            PlanRef::Owned(Arc::new(plan)),
            verdict::Ruling::Deny { rule: None, reason },
        )
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// The masking strategies per category (`[masking]` over the defaults).
    pub fn masking(&self) -> &MaskingConfig {
        &self.inner.masking
    }

    /// Sinks named in `[audit] required` (empty: every sink is required).
    pub fn required_sinks(&self) -> &[Arc<str>] {
        &self.inner.required
    }

    /// True if a failure of sink `name` must deny the call.
    pub fn sink_required(&self, name: &str) -> bool {
        self.inner.required.is_empty() || self.inner.required.iter().any(|r| &**r == name)
    }

    /// Roles that may approve requests (`[approval] approver_roles`; empty without the section).
    pub fn approver_roles(&self) -> &[Arc<str>] {
        self.inner
            .approval
            .as_ref()
            .map(|a| a.approver_roles.as_slice())
            .unwrap_or_default()
    }

    /// Lifetime of approval grants in seconds (`[approval] ttl_secs`, default 900).
    pub fn approval_ttl_secs(&self) -> u64 {
        self.inner
            .approval
            .as_ref()
            .map_or(parse::DEFAULT_APPROVAL_TTL_SECS, |a| a.ttl_secs)
    }

    /// Alert thresholds (`[alerts]`).
    pub fn alert_thresholds(&self) -> &AlertThresholds {
        &self.inner.alerts
    }

    /// True if the policy has a `[break_glass]` section (otherwise break-glass is never
    /// permitted).
    pub fn break_glass_enabled(&self) -> bool {
        self.inner.break_glass.is_some()
    }

    /// The plan of `action` under this policy: from the descriptor's slot when it was
    /// resolved for this generation, otherwise resolved now and cached in the slot.
    #[inline]
    fn plan(&self, action: &'static ActionDescriptor) -> PlanRef<'_> {
        let inner = &*self.inner;
        let slot = action.slot();
        if (slot >> 32) as u32 == inner.generation {
            let index = (slot & 0xffff_ffff) as usize;
            if let Some(plan) = index.checked_sub(1).and_then(|i| inner.registered.get(i)) {
                return PlanRef::Shared(plan);
            }
            if let Some(plan) = self.adhoc_at(index.wrapping_sub(1 + inner.registered.len())) {
                return PlanRef::Owned(plan);
            }
        }
        self.resolve_plan(action)
    }

    fn adhoc_at(&self, i: usize) -> Option<Arc<Plan>> {
        let adhoc = self.inner.adhoc.read().unwrap_or_else(|e| e.into_inner());
        adhoc.get(i).map(|(_, p)| p.clone())
    }

    #[cold]
    fn resolve_plan(&self, action: &'static ActionDescriptor) -> PlanRef<'_> {
        let inner = &*self.inner;
        let registered = crate::registry::actions();
        if let Ok(i) = registered.binary_search_by(|d| d.name.cmp(action.name)) {
            if registered.get(i).is_some_and(|d| std::ptr::eq(*d, action)) {
                if let Some(plan) = inner.registered.get(i) {
                    action.set_slot(slot_value(inner.generation, i));
                    return PlanRef::Shared(plan);
                }
            }
        }
        // A descriptor outside the registry (a duplicate name, or made by hand).
        let address = std::ptr::from_ref(action) as usize;
        let found = {
            let adhoc = inner.adhoc.read().unwrap_or_else(|e| e.into_inner());
            adhoc
                .iter()
                .position(|(a, _)| *a == address)
                .and_then(|i| adhoc.get(i).map(|(_, p)| (i, p.clone())))
        };
        let (i, plan) = match found {
            Some(found) => found,
            None => {
                let plan = Arc::new(compile::plan_for(&inner.rules, &inner.roles, action));
                let mut adhoc = inner.adhoc.write().unwrap_or_else(|e| e.into_inner());
                match adhoc.iter().position(|(a, _)| *a == address) {
                    Some(i) => (i, adhoc.get(i).map_or(plan, |(_, p)| p.clone())),
                    None => {
                        adhoc.push((address, plan.clone()));
                        (adhoc.len() - 1, plan)
                    }
                }
            }
        };
        action.set_slot(slot_value(inner.generation, inner.registered.len() + i));
        PlanRef::Owned(plan)
    }
}

/// `(generation << 32) | (index + 1)`, or 0 (no cache) when the index does not fit.
fn slot_value(generation: u32, index: usize) -> u64 {
    match u32::try_from(index + 1) {
        Ok(i) => (u64::from(generation) << 32) | u64::from(i),
        Err(_) => 0,
    }
}
