//! Accounting of disclosures (HIPAA §164.528): every read, export and disclosure of one
//! patient's PHI in a time range, with who, why, what was decided and how the call ended.
//!
//! The trail holds no raw patient ids, only [`AuditKey`] tokens, so the accounting needs the
//! key: the raw id is tokenized exactly as the runtime tokenizes subjects
//! (`key.token("subject", id)`), and events are matched on the token. The accounting itself
//! carries only the token, never the raw id.
//!
//! ```
//! use guardrail_audit::{AuditKey, Chain, EventKind, Record, Timestamp};
//! use guardrail_audit::disclosure::{TimeRange, account_disclosures};
//!
//! let key = AuditKey::from_bytes(b"a key of at least sixteen bytes!").unwrap();
//! let mut chain = Chain::new();
//! let mut r = Record::at(EventKind::Decision, Timestamp(1_000));
//! r.action = Some("clinic::read_chart".into());
//! r.action_kind = Some("read".into());
//! r.principal = Some("dr-grey".into());
//! r.decision = Some("allow".into());
//! r.subject = Some(key.token("subject", "patient-42").into());
//! let events = vec![chain.link(r).unwrap()];
//!
//! let report = account_disclosures(&events, &key, "patient-42", TimeRange::all());
//! assert_eq!(report.rows.len(), 1);
//! assert_eq!(report.rows[0].principal.as_deref(), Some("dr-grey"));
//! assert!(!report.to_json().unwrap().contains("patient-42"));
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::event::{AuditEvent, EventKind, Outcome, Text, Timestamp};
use crate::key::AuditKey;

/// The action kinds an accounting lists: PHI leaving its record (read, export, disclose).
pub const ACCOUNTED_KINDS: &[&str] = &["read", "export", "disclose"];

/// A half-open time range `[since, until)`; an absent bound is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// First instant included.
    pub since: Option<Timestamp>,
    /// First instant excluded.
    pub until: Option<Timestamp>,
}

impl TimeRange {
    /// The whole trail.
    pub const fn all() -> TimeRange {
        TimeRange {
            since: None,
            until: None,
        }
    }

    /// `[since, until)`.
    pub const fn between(since: Timestamp, until: Timestamp) -> TimeRange {
        TimeRange {
            since: Some(since),
            until: Some(until),
        }
    }

    /// True if `t` lies in the range.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// One access to the patient's PHI, as an auditor reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disclosure {
    /// When the decision was taken.
    pub time: Timestamp,
    /// Sequence number of the decision event in the trail (to find it again).
    pub seq: u64,
    /// Who acted (principal id).
    pub principal: Option<Text>,
    /// The software agent (an AI assistant) the principal acted through, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Text>,
    /// The principal's roles at the time.
    pub roles: Vec<Text>,
    /// Declared purpose of use (`treatment`, `emergency_treatment`, …).
    pub purpose: Option<Text>,
    /// The guarded action's name.
    pub action: Option<Text>,
    /// read, export or disclose.
    pub action_kind: Text,
    /// The resource type touched.
    pub resource: Option<Text>,
    /// How many records the call touched, when declared.
    pub count: Option<u64>,
    /// allow, deny, break_glass or approval_required.
    pub decision: Option<Text>,
    /// The access used emergency (break-glass) override.
    pub break_glass: bool,
    /// How the call ended, when an outcome event for it follows in the trail.
    pub outcome: Option<Outcome>,
    /// Correlates the decision with its outcome.
    pub request_id: Option<Text>,
}

/// The accounting for one patient and time range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DisclosureReport {
    /// The patient's keyed token (never the raw id).
    pub subject: String,
    /// The range asked for.
    #[serde(serialize_with = "ser_opt_ts")]
    pub since: Option<Timestamp>,
    /// The range asked for.
    #[serde(serialize_with = "ser_opt_ts")]
    pub until: Option<Timestamp>,
    /// The accesses, in trail order.
    pub rows: Vec<Disclosure>,
}

fn ser_opt_ts<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(t),
        None => s.serialize_none(),
    }
}

/// Builds the accounting of disclosures of `patient_id` over `events` (in trail order).
///
/// Lists every decision event on the patient whose action kind is read, export or disclose
/// and whose time lies in `range`, whatever was decided (denials included: an attempted access
/// is something the auditor wants to see). An allowed decision takes its outcome from the
/// first later outcome event with the same request id, action and subject (the oldest waiting
/// decision first); when an outcome's `decision_seq` names one of the waiting decisions, that
/// one wins, so concurrent calls sharing a request id are not confused. Denied decisions never
/// get an outcome: their body never ran.
pub fn account_disclosures<I>(
    events: I,
    key: &AuditKey,
    patient_id: &str,
    range: TimeRange,
) -> DisclosureReport
where
    I: IntoIterator,
    I::Item: Borrow<AuditEvent>,
{
    let token = key.token(AuditKey::SUBJECT_DOMAIN, patient_id);
    let mut acc = DisclosureAccumulator::new(token, range);
    for event in events {
        acc.push(event.borrow());
    }
    acc.finish()
}

/// Streaming form of [`account_disclosures`]: feed events one at a time (the CLI does, while
/// it verifies the trail) and take the report at the end.
#[derive(Debug)]
pub struct DisclosureAccumulator {
    token: String,
    range: TimeRange,
    rows: Vec<Disclosure>,
    /// (request_id, action) → indices of rows still waiting for their outcome, oldest first.
    pending: HashMap<(Text, Text), Vec<usize>>,
}

impl DisclosureAccumulator {
    /// Starts an accounting for the subject `token` (already tokenized).
    pub fn new(token: String, range: TimeRange) -> DisclosureAccumulator {
        DisclosureAccumulator {
            token,
            range,
            rows: Vec::new(),
            pending: HashMap::new(),
        }
    }

    /// Starts an accounting for a raw patient id, tokenized with `key`.
    pub fn for_patient(key: &AuditKey, patient_id: &str, range: TimeRange) -> Self {
        DisclosureAccumulator::new(key.token(AuditKey::SUBJECT_DOMAIN, patient_id), range)
    }

    /// Takes the next event of the trail.
    pub fn push(&mut self, event: &AuditEvent) {
        let r = &event.record;
        let token = self.token.as_str();
        let concerns =
            r.subject.as_deref() == Some(token) || r.subjects.iter().any(|s| &**s == token);
        if !concerns {
            return;
        }
        let Some(kind) = r.action_kind.as_ref() else {
            return;
        };
        if !ACCOUNTED_KINDS.contains(&&**kind) {
            return;
        }
        match r.kind {
            EventKind::Decision if self.range.contains(r.time) => {
                let index = self.rows.len();
                self.rows.push(Disclosure {
                    time: r.time,
                    seq: event.seq,
                    principal: r.principal.clone(),
                    via: r.via.clone(),
                    roles: r.roles.to_vec(),
                    purpose: r.purpose.clone(),
                    action: r.action.clone(),
                    action_kind: kind.clone(),
                    resource: r.resource.clone(),
                    count: r.count,
                    decision: r.decision.clone(),
                    break_glass: r.break_glass,
                    outcome: None,
                    request_id: r.request_id.clone(),
                });
                // Only an allowed call runs its body and so gets an outcome; a denied one
                // must never pick up the outcome of a later call with the same request id.
                let runs = matches!(r.decision.as_deref(), Some("allow" | "break_glass"));
                if let (true, Some(req), Some(action)) = (runs, &r.request_id, &r.action) {
                    self.pending
                        .entry((req.clone(), action.clone()))
                        .or_default()
                        .push(index);
                }
            }
            EventKind::Outcome => {
                let (Some(req), Some(action)) = (&r.request_id, &r.action) else {
                    return;
                };
                let Some(waiting) = self.pending.get_mut(&(req.clone(), action.clone())) else {
                    return;
                };
                let by_seq = r
                    .decision_seq
                    .and_then(|seq| waiting.iter().position(|&i| self.rows[i].seq == seq));
                let at = by_seq.unwrap_or(0);
                if at < waiting.len() {
                    let row = waiting.remove(at);
                    self.rows[row].outcome = r.outcome;
                }
            }
            _ => {}
        }
    }

    /// The accounting.
    pub fn finish(self) -> DisclosureReport {
        DisclosureReport {
            subject: self.token,
            since: self.range.since,
            until: self.range.until,
            rows: self.rows,
        }
    }
}

impl DisclosureReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// The report as a plain-text table (one row per access, aligned columns).
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_table(&mut out);
        out
    }

    fn write_table(&self, out: &mut String) -> fmt::Result {
        const HEADERS: [&str; 9] = [
            "TIME", "WHO", "ROLES", "PURPOSE", "ACTION", "KIND", "COUNT", "DECISION", "OUTCOME",
        ];
        let dash = || "-".to_owned();
        let cells: Vec<[String; 9]> = self
            .rows
            .iter()
            .map(|d| {
                [
                    d.time.to_string(),
                    match (d.principal.as_deref(), d.via.as_deref()) {
                        (Some(p), Some(via)) => format!("{p} via {via}"),
                        (p, _) => p.map_or_else(dash, str::to_owned),
                    },
                    if d.roles.is_empty() {
                        dash()
                    } else {
                        d.roles.join(",")
                    },
                    d.purpose.as_deref().map_or_else(dash, str::to_owned),
                    d.action.as_deref().map_or_else(dash, str::to_owned),
                    d.action_kind.to_string(),
                    d.count.map_or_else(dash, |c| c.to_string()),
                    d.decision.as_deref().map_or_else(dash, str::to_owned),
                    d.outcome.map_or_else(dash, |o| o.as_str().to_owned()),
                ]
            })
            .collect();
        let mut widths = HEADERS.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        writeln!(
            out,
            "Accounting of disclosures for subject {}",
            self.subject
        )?;
        let bound = |t: Option<Timestamp>| t.map_or_else(|| "(open)".to_owned(), |t| t.to_string());
        writeln!(
            out,
            "Range: {} .. {} (since inclusive, until exclusive)",
            bound(self.since),
            bound(self.until)
        )?;
        writeln!(out, "Accesses: {}", self.rows.len())?;
        writeln!(out)?;
        let write_row = |out: &mut String, row: &[&str]| -> fmt::Result {
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    writeln!(out, "{cell}")?;
                } else {
                    write!(out, "{cell:<w$}  ")?;
                }
            }
            Ok(())
        };
        write_row(out, &HEADERS)?;
        for row in &cells {
            let refs: Vec<&str> = row.iter().map(String::as_str).collect();
            write_row(out, &refs)?;
        }
        Ok(())
    }
}

impl fmt::Display for DisclosureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_table())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Chain;
    use crate::event::Record;

    fn call(
        kind: EventKind,
        decision: Option<&str>,
        outcome: Option<Outcome>,
        key: &AuditKey,
    ) -> Record {
        let mut r = Record::at(kind, Timestamp(10));
        r.request_id = Some("req-1".into());
        r.action = Some("clinic::read_chart".into());
        r.action_kind = Some("read".into());
        r.subject = Some(key.token("subject", "p-1").into());
        r.decision = decision.map(Into::into);
        r.outcome = outcome;
        r
    }

    #[test]
    fn a_denied_decision_never_takes_the_outcome_of_a_later_call() {
        let key = AuditKey::from_bytes(b"0123456789abcdef0123").unwrap();
        let mut chain = Chain::new();
        // Same request id and action: denied first, then allowed and failed. The outcome
        // carries no `decision_seq` (as when this trail is not the guardrail's first sink).
        let events: Vec<AuditEvent> = [
            call(EventKind::Decision, Some("deny"), None, &key),
            call(EventKind::Decision, Some("allow"), None, &key),
            call(EventKind::Outcome, None, Some(Outcome::Error), &key),
        ]
        .into_iter()
        .map(|r| chain.link(r).unwrap())
        .collect();
        let report = account_disclosures(&events, &key, "p-1", TimeRange::all());
        let got: Vec<_> = report
            .rows
            .iter()
            .map(|r| (r.decision.as_deref(), r.outcome))
            .collect();
        assert_eq!(
            got,
            vec![(Some("deny"), None), (Some("allow"), Some(Outcome::Error))]
        );
    }
}
