//! The sections besides the rules: `[schema]`, `[masking]`, `[approval]`, `[break_glass]`,
//! `[alerts]`.

use super::*;

/// `[schema.<table>]` tables of `column = "<category>"`.
pub(super) fn parse_schema(t: &Table<'_, '_>) -> R<Schema> {
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

pub(super) fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn parse_masking(t: &Table<'_, '_>) -> R<MaskingConfig> {
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

pub(super) fn parse_approval(t: &Table<'_, '_>) -> R<ApprovalSection> {
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

pub(super) fn parse_break_glass(t: &Table<'_, '_>, counter: &mut RoleCounter) -> R<BreakGlassDef> {
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

pub(super) fn parse_alerts(t: &Table<'_, '_>) -> R<AlertThresholds> {
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
