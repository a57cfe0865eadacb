//! One `[[rule]]`: its keys, each checked and placed.

use super::*;

pub(super) const RULE_KEYS: &[&str] = &[
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
    "agents",
    "direct_only",
    "max_count",
    "relations",
    "consent",
    "vip",
    "restricted",
    "reveal",
    "approval",
    "approval_over",
];

pub(super) fn parse_rule(
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
    let agents: Option<Vec<Arc<str>>> = t
        .get("agents")
        .map(|v| t.names("agents", v, false))
        .transpose()?
        .map(|v| v.into_iter().map(|(s, _)| s).collect());
    let direct_only = match t.get("direct_only") {
        None => false,
        Some(v) => {
            let b = t.boolean("direct_only", v)?;
            if b && effect == Effect::Deny {
                return Err(t.err(
                    &v.span(),
                    "direct_only",
                    "`direct_only` applies to allow rules only; to refuse agents write a deny rule with `agents = [..]`".into(),
                ));
            }
            if b && agents.is_some() {
                return Err(t.err(
                    &v.span(),
                    "direct_only",
                    "`direct_only` refuses every agent, so `agents` can never hold; keep one of them".into(),
                ));
            }
            b
        }
    };
    let max_count = t
        .get("max_count")
        .map(|v| t.unsigned("max_count", v))
        .transpose()?;
    let relations: Option<Box<[Arc<str>]>> = t
        .get("relations")
        .map(|v| t.names("relations", v, false))
        .transpose()?
        .map(|v| v.into_iter().map(|(s, _)| s).collect());
    let consent = t
        .get("consent")
        .map(|v| t.closed_set::<Consent>("consent", v, |c| c as usize))
        .transpose()?
        .map_or(ConsentSet::EMPTY, ConsentSet::from_bits);
    let vip = deny_only_flag(
        &t,
        "vip",
        effect,
        "`vip` applies to deny rules only; every access to a VIP's record already raises an alert",
    )?;
    let restricted = deny_only_flag(
        &t,
        "restricted",
        effect,
        "`restricted` applies to deny rules only; a restriction can only take access away",
    )?;
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
        agents,
        direct_only,
        max_count,
        relations,
        consent,
        vip,
        restricted,
        reveal,
        approval,
        line,
    })
}

/// A boolean condition only deny rules may use (`vip`, `restricted`).
fn deny_only_flag(t: &Table<'_, '_>, key: &str, effect: Effect, why: &str) -> R<bool> {
    match t.get(key) {
        None => Ok(false),
        Some(v) => {
            let b = t.boolean(key, v)?;
            if b && effect == Effect::Allow {
                return Err(t.err(&v.span(), key, why.into()));
            }
            Ok(b)
        }
    }
}
