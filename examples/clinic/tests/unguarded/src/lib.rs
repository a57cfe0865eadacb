//! A test-only module, scanned (never compiled) by `tests/coverage.rs`: a deliberately
//! unguarded function reading PHI must be caught.

/// Reads an SSN without `#[phi_action]`.
pub fn ssn_for_billing(db: &rusqlite::Connection, id: &str) -> rusqlite::Result<String> {
    db.query_row("SELECT ssn FROM patients WHERE id = ?1", [id], |r| r.get(0))
}

/// Not PHI: the number of audit events (`guardrail_audit` is not in the `[schema]`).
pub fn audit_event_count(db: &rusqlite::Connection) -> rusqlite::Result<i64> {
    db.query_row("SELECT count(*) FROM guardrail_audit", [], |r| r.get(0))
}
