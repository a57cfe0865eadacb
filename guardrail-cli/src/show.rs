//! `guardrail audit show --request ID TRAIL.. [--sql sqlite:PATH|postgres://…]`: one
//! request's events, joined across the file trail and the SQL audit table.
//!
//! A guarded call with `tx = ..` leaves its decision in the guardrail's sinks (the file
//! trail) and, when the body succeeded, its `ok` outcome in the SQL table of the caller's
//! transaction; an `error`, `panic` or `cancelled` outcome goes to the file trail. This
//! command verifies the file trail whole (with `--checkpoints` also against its signatures)
//! and the table whole (every row, the head row; `SqliteEvents` / `PgEvents` of the audit
//! crate), takes the events of one request id from both, and checks that every outcome names
//! (`decision_seq`) a decision of the same request, action, principal and subject in the file
//! trail. An outcome whose link is missing or points elsewhere is tampering (exit 1): an
//! outcome row was forged or moved, or the decision was removed. An allowed decision without
//! an outcome is shown, not refused: the transaction may have rolled back (and with it the
//! change), or the call may still be running.
//!
//! Shown for each event: when, who (principal and roles), what (action, resource, subject
//! token), why (purpose, endpoint, rule, reason), whether it was allowed, the outcome; every
//! string escaped like the rest of the command. The trail holds no raw PHI, so neither does
//! the output.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use guardrail_audit::sql::{AuditTable, TableVerifyError};
use guardrail_audit::{AuditEvent, EventKind};
use serde_json::{Value, json};

use crate::read::{self, Failure};
use crate::sqltrail::SqlTrail;
use crate::{TableFormat, TrailArgs, escape};

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The request id (the `request_id` of its events, e.g. from `x-request-id`).
    #[arg(long = "request", value_name = "ID")]
    request: String,
    #[command(flatten)]
    trail: TrailArgs,
    /// The audit table the outcomes of `tx = ..` calls were written to: `sqlite:PATH` or a
    /// `postgres://…` URL (read only).
    #[arg(long, value_name = "TABLE_TRAIL")]
    sql: Option<PathBuf>,
    /// The name of that audit table.
    #[arg(long, value_name = "NAME", default_value = AuditTable::DEFAULT)]
    table: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    format: TableFormat,
    #[command(flatten)]
    checkpoints: crate::CheckpointArgs,
}

/// Where an event was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    File,
    Table,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Table => "table",
        }
    }
}

/// The events of the request read from the table, and how many rows were verified.
struct TableRead {
    events: Vec<AuditEvent>,
    verified: u64,
    describe: String,
}

fn table_failure(e: TableVerifyError) -> Failure {
    match e {
        TableVerifyError::Database { .. } => Failure::Usage(e.to_string()),
        e => Failure::Tampered(e.to_string()),
    }
}

fn read_table(spec: &Path, table: &AuditTable, id: &str) -> Result<TableRead, Failure> {
    let Some(trail) = SqlTrail::parse(spec) else {
        return Err(Failure::Usage(format!(
            "`--sql {}` is not a table: give `sqlite:PATH` or a `postgres://…` URL",
            spec.display()
        )));
    };
    let describe = trail.describe();
    let (events, verified) = match &trail {
        SqlTrail::Sqlite(path) => {
            use guardrail_audit::sql::SqliteEvents;
            use rusqlite::{Connection, OpenFlags};
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| Failure::Usage(format!("cannot open {describe}: {e}")))?;
            let mut events = SqliteEvents::new(&conn, table).request_id(id);
            let mut out = Vec::new();
            for e in events.by_ref() {
                out.push(e.map_err(table_failure)?);
            }
            (out, events.verified().next_seq)
        }
        SqlTrail::Postgres(url) => {
            use guardrail_audit::sql::PgEvents;
            crate::sqltrail::on_postgres(url, Failure::Usage, async |pool| {
                let mut events = PgEvents::new(pool, table).request_id(id);
                let mut out = Vec::new();
                let mut failed = None;
                while let Some(e) = events.next().await {
                    match e {
                        Ok(e) => out.push(e),
                        Err(e) => {
                            failed = Some(table_failure(e));
                            break;
                        }
                    }
                }
                let verified = events.verified().next_seq;
                match failed {
                    Some(f) => Err(f),
                    None => Ok((out, verified)),
                }
            })?
        }
    };
    Ok(TableRead {
        events,
        verified,
        describe: format!("table `{}` of {describe}", table.events()),
    })
}

fn kind_name(kind: EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "event".into())
}

/// One event as shown (the JSON form; the table form prints the same fields).
fn shown(e: &AuditEvent, source: Source, table: &str) -> Value {
    let r = &e.record;
    json!({
        "seq": e.seq,
        "source": source.label(),
        "table": (source == Source::Table).then_some(table),
        "kind": kind_name(r.kind),
        "time": r.time.to_string(),
        "principal": r.principal.as_deref(),
        "roles": r.roles.iter().map(|s| &**s).collect::<Vec<_>>(),
        "via": r.via.as_deref(),
        "action": r.action.as_deref(),
        "action_kind": r.action_kind.as_deref(),
        "resource": r.resource.as_deref(),
        "subject": r.subject.as_deref(),
        "subjects": r.subjects.len(),
        "count": r.count,
        "purpose": r.purpose.as_deref(),
        "endpoint": r.endpoint.as_deref(),
        "rule": r.rule.as_deref(),
        "decision": r.decision.as_deref(),
        "reason": r.reason.as_deref(),
        "break_glass": r.break_glass,
        "approval": r.approval.as_deref(),
        "outcome": r.outcome.map(|o| o.as_str()),
        "decision_seq": r.decision_seq,
    })
}

/// Checks every outcome's link to its decision; the error names the outcome and why.
fn check_links(
    id: &str,
    decisions: &BTreeMap<u64, &AuditEvent>,
    outcomes: &[(Source, &AuditEvent)],
    table: &str,
) -> Result<(), Failure> {
    for (source, o) in outcomes {
        let at = match source {
            Source::File => format!("outcome seq {} in the file trail", o.seq),
            Source::Table => format!("outcome seq {} in {table}", o.seq),
        };
        let Some(dseq) = o.record.decision_seq else {
            return Err(Failure::Tampered(format!(
                "{at} (request `{id}`) names no decision (`decision_seq` is missing)"
            )));
        };
        let Some(d) = decisions.get(&dseq) else {
            return Err(Failure::Tampered(format!(
                "{at} (request `{id}`) names decision seq {dseq}, which is not a decision of \
                 this request in the file trail (removed, or the outcome was forged or moved; \
                 give the trail of the guardrail's first sink)"
            )));
        };
        let (dr, or) = (&d.record, &o.record);
        let differs = [
            ("action", dr.action != or.action),
            ("principal", dr.principal != or.principal),
            ("subject", dr.subject != or.subject),
            ("subjects", dr.subjects != or.subjects),
        ]
        .into_iter()
        .find_map(|(field, differs)| differs.then_some(field));
        if let Some(field) = differs {
            return Err(Failure::Tampered(format!(
                "{at} (request `{id}`) names decision seq {dseq}, but their `{field}` differ"
            )));
        }
        if dr.decision.as_deref() == Some("deny") {
            return Err(Failure::Tampered(format!(
                "{at} (request `{id}`) names decision seq {dseq}, which denied the call: a \
                 denied call has no outcome"
            )));
        }
    }
    Ok(())
}

fn cell(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => escape::text(s).into_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|s| escape::text(s.as_str().unwrap_or("?")).into_owned())
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

fn line(v: &Value) -> String {
    let mut out = format!(
        "#{} [{}] {} {}",
        cell(v, "seq"),
        cell(v, "source"),
        cell(v, "time"),
        cell(v, "kind")
    );
    for (label, key) in [
        ("who", "principal"),
        ("roles", "roles"),
        ("via", "via"),
        ("what", "action"),
        ("kind", "action_kind"),
        ("resource", "resource"),
        ("subject", "subject"),
        ("count", "count"),
        ("why", "purpose"),
        ("endpoint", "endpoint"),
        ("rule", "rule"),
        ("decision", "decision"),
        ("reason", "reason"),
        ("approval", "approval"),
        ("outcome", "outcome"),
        ("decision_seq", "decision_seq"),
    ] {
        if cell(v, key) != "-" {
            out.push_str(&format!(" {label}={}", cell(v, key)));
        }
    }
    if v.get("break_glass") == Some(&Value::Bool(true)) {
        out.push_str(" BREAK-GLASS");
    }
    out
}

pub(crate) fn run(a: &ShowArgs) -> Result<(), Failure> {
    if a.request.trim().is_empty() {
        return Err(Failure::Usage("the request id is empty".into()));
    }
    if a.trail.files.iter().any(|f| SqlTrail::parse(f).is_some()) {
        return Err(Failure::Usage(
            "give the file trail as TRAIL and the audit table with `--sql`".into(),
        ));
    }
    let table = AuditTable::new(&a.table).map_err(|e| Failure::Usage(e.to_string()))?;
    let cps = crate::checkpoint_pair(&a.checkpoints)?;
    let mut p = crate::progress(&a.trail);
    let report = read::verify(&a.trail.files, cps.as_ref(), &mut p)?;
    let mut file_events = Vec::new();
    read::for_each_event(&report, |e| {
        if e.record.request_id.as_deref() == Some(a.request.as_str()) {
            file_events.push(e);
        }
        Ok(())
    })?;
    let sql = match &a.sql {
        Some(spec) => Some(read_table(spec, &table, &a.request)?),
        None => None,
    };
    let table_name = sql
        .as_ref()
        .map_or_else(String::new, |s| s.describe.clone());
    let table_events = sql.as_ref().map_or(&[][..], |s| &s.events[..]);
    if file_events.is_empty() && table_events.is_empty() {
        return Err(Failure::Usage(format!(
            "no event of request `{}` in the trail ({} events verified{})",
            a.request,
            report.events,
            sql.as_ref().map_or_else(String::new, |s| format!(
                ", nor in the {} ({} events verified)",
                s.describe, s.verified
            ))
        )));
    }

    let decisions: BTreeMap<u64, &AuditEvent> = file_events
        .iter()
        .filter(|e| e.record.kind == EventKind::Decision)
        .map(|e| (e.seq, e))
        .collect();
    let outcomes: Vec<(Source, &AuditEvent)> = file_events
        .iter()
        .map(|e| (Source::File, e))
        .chain(table_events.iter().map(|e| (Source::Table, e)))
        .filter(|(_, e)| e.record.kind == EventKind::Outcome)
        .collect();
    check_links(&a.request, &decisions, &outcomes, &table_name)?;

    // Each decision, then the outcomes naming it; other events of the request in chain order.
    let mut groups = Vec::new();
    for (seq, d) in &decisions {
        let linked: Vec<Value> = outcomes
            .iter()
            .filter(|(_, o)| o.record.decision_seq == Some(*seq))
            .map(|(s, o)| shown(o, *s, &table_name))
            .collect();
        groups.push((shown(d, Source::File, &table_name), linked));
    }
    let others: Vec<Value> = file_events
        .iter()
        .filter(|e| !matches!(e.record.kind, EventKind::Decision | EventKind::Outcome))
        .map(|e| shown(e, Source::File, &table_name))
        .collect();

    let text = match a.format {
        TableFormat::Table => {
            let mut out = format!(
                "request {}: {} decision(s), {} outcome(s); file trail verified ({} events)",
                escape::text(&a.request),
                decisions.len(),
                outcomes.len(),
                report.events
            );
            if let Some(s) = &sql {
                out.push_str(&format!(
                    "; {} verified ({} events)",
                    escape::text(&s.describe),
                    s.verified
                ));
            }
            out.push_str("; every outcome links to its decision\n");
            for (d, linked) in &groups {
                out.push_str(&line(d));
                out.push('\n');
                let allowed = d.get("decision").and_then(Value::as_str) != Some("deny")
                    && d.get("decision").and_then(Value::as_str) != Some("approval_required");
                if linked.is_empty() && allowed {
                    out.push_str(
                        "  no outcome recorded (rolled back with its transaction, still \
                         running, or its table not given)\n",
                    );
                }
                for o in linked {
                    out.push_str("  ");
                    out.push_str(&line(o));
                    out.push('\n');
                }
            }
            for e in &others {
                out.push_str(&line(e));
                out.push('\n');
            }
            out
        }
        TableFormat::Json => {
            let j = json!({
                "request_id": a.request,
                "file_events_verified": report.events,
                "table": sql.as_ref().map(|s| &s.describe),
                "table_events_verified": sql.as_ref().map(|s| s.verified),
                "calls": groups.iter().map(|(d, o)| json!({"decision": d, "outcomes": o})).collect::<Vec<_>>(),
                "other_events": others,
            });
            let text = serde_json::to_string_pretty(&j)
                .map_err(|e| Failure::Usage(format!("cannot encode the request: {e}")))?;
            let mut text = escape::json(&text).into_owned();
            text.push('\n');
            text
        }
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Usage(format!("cannot write the request: {e}")))
}
