//! `guardrail audit session ID TRAIL..`: one recorded session (e.g. an MCP session of an AI
//! assistant), in chain order, after the whole trail is verified.
//!
//! For every event of the session: when, who (the principal), via which agent, what (the
//! action), why (purpose, rule, reason), the decision (allow, deny, approval_required,
//! break_glass) or the outcome, the approval involved, and the digest of the masked result
//! the agent received (`detail.result_digest` of outcome events). Nothing is shown that the
//! trail does not hold, and the trail holds no raw PHI.

use std::io::{self, Write};

use clap::Args;
use guardrail_audit::{AuditEvent, EventKind};
use serde_json::{Value, json};

use crate::read::{self, Failure};
use crate::{TableFormat, TrailArgs};

/// The `detail` key holding the digest of a delivered result.
const RESULT_DIGEST: &str = "result_digest";

#[derive(Debug, Args)]
pub(crate) struct SessionArgs {
    /// The session id (the `session` field of its events).
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    trail: TrailArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    format: TableFormat,
    #[command(flatten)]
    checkpoints: crate::CheckpointArgs,
}

/// One line of the replay.
fn step(e: &AuditEvent) -> Value {
    let r = &e.record;
    let what = match r.kind {
        EventKind::Decision => r.decision.as_deref().unwrap_or("decision").to_owned(),
        EventKind::Outcome => format!("outcome:{}", r.outcome.map_or("unknown", |o| o.as_str())),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "event".into()),
    };
    json!({
        "seq": e.seq,
        "time": r.time.to_string(),
        "principal": r.principal.as_deref(),
        "via": r.via.as_deref(),
        "action": r.action.as_deref(),
        "event": what,
        "purpose": r.purpose.as_deref(),
        "rule": r.rule.as_deref(),
        "reason": r.reason.as_deref(),
        "break_glass": r.break_glass,
        "approval": r.approval.as_deref(),
        "request_id": r.request_id.as_deref(),
        "result_digest": r.detail.get(RESULT_DIGEST),
        "result": r.detail.get("result"),
    })
}

fn cell(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".into(),
    }
}

fn table(id: &str, events: u64, steps: &[Value]) -> String {
    let mut out = format!(
        "session {id}: {} event(s); trail verified ({events} events)\n",
        steps.len()
    );
    for s in steps {
        let mut line = format!(
            "#{} {} {} via {} {} {}",
            cell(s, "seq"),
            cell(s, "time"),
            cell(s, "principal"),
            cell(s, "via"),
            cell(s, "event"),
            cell(s, "action"),
        );
        for (label, key) in [
            ("purpose", "purpose"),
            ("rule", "rule"),
            ("reason", "reason"),
            ("approval", "approval"),
            ("result_sha256", "result_digest"),
            ("result", "result"),
        ] {
            if s.get(key).is_some_and(|v| !v.is_null()) {
                line.push_str(&format!(" {label}={}", cell(s, key)));
            }
        }
        if s.get("break_glass") == Some(&Value::Bool(true)) {
            line.push_str(" BREAK-GLASS");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

pub(crate) fn run(a: &SessionArgs) -> Result<(), Failure> {
    if a.id.trim().is_empty() {
        return Err(Failure::Usage("the session id is empty".into()));
    }
    let cps = crate::checkpoint_pair(&a.checkpoints)?;
    let mut p = crate::progress(&a.trail);
    let report = read::verify(&a.trail.files, cps.as_ref(), &mut p)?;
    let mut steps = Vec::new();
    read::for_each_event(&report, |e| {
        if e.record.session.as_deref() == Some(a.id.as_str()) {
            steps.push(step(&e));
        }
        Ok(())
    })?;
    if steps.is_empty() {
        return Err(Failure::Usage(format!(
            "no event of session `{}` in the trail ({} events verified)",
            a.id, report.events
        )));
    }
    let text = match a.format {
        TableFormat::Table => table(&a.id, report.events, &steps),
        TableFormat::Json => {
            let mut j = serde_json::to_string_pretty(&json!({
                "session": a.id,
                "trail_events": report.events,
                "steps": steps,
            }))
            .map_err(|e| Failure::Usage(format!("cannot encode the session: {e}")))?;
            j.push('\n');
            j
        }
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Usage(format!("cannot write the session: {e}")))
}
