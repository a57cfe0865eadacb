//! An AI assistant's tool server, guarded by guardrail.
//!
//! A clinician (the *person*, authenticated by the server) works with an AI assistant (the
//! *agent*, `clinic-assistant`). The assistant reaches the clinic's SQLite database only
//! through MCP tools, each wrapping a `#[phi_action]` ([`actions`]): `search_patients`,
//! `read_chart`, `add_note`, `export_cohort` (and `delete_record`, which a rule reserves for
//! a person acting directly, so no agent session is offered it). The server speaks MCP over
//! stdio and over streamable HTTP on loopback ([`serve`]); [`agent`] is a scripted
//! ReAct-style client — a deterministic plan stands in for the model — driving the real rmcp
//! client over the real transport.
//!
//! Every event lands in a file trail (`trail/`), with the person, `via` the agent and the
//! session id; outcome events carry the SHA-256 of the exact JSON the model received.
//! Approvals live in PostgreSQL when a database URL is given (so `guardrail approvals
//! approve` in another process, as another person, can grant them), in memory otherwise.

#![forbid(unsafe_code)]

pub mod actions;
pub mod agent;
pub mod serve;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use guardrail_core::audit::{Durability, FileSink, FileSinkOptions};
use guardrail_core::prelude::*;
use guardrail_core::{
    AgentId, AuditKey, Endpoint, PgApprovalStore, PgApprovalStoreOptions, Purpose,
};
use guardrail_mcp::{Catalogue, SessionConfig, Tool, ToolError};
use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};

/// The assistant's policy.
pub const POLICY: &str = include_str!("../policy.toml");

/// The demo's audit key, as hex (a real service keeps it in a secret store). The CLI takes
/// it with `--key-hex env:VAR` (or `file:PATH`) to account for disclosures.
pub const DEMO_AUDIT_KEY_HEX: &str =
    "617373697374616e742d64656d6f2d61756469742d6b65792d30313233343536";

/// The agent id the policy's rules name.
pub const AGENT: &str = "clinic-assistant";

/// The approvals table of the example in PostgreSQL.
pub const APPROVALS_TABLE: &str = "assistant_approvals";

/// What went wrong in a tool; every message is free of PHI.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The guardrail refused the call.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The database failed.
    #[error("database error")]
    Db(#[from] rusqlite::Error),
    /// No such record.
    #[error("record not found")]
    NotFound,
}

impl From<AppError> for ToolError {
    fn from(e: AppError) -> ToolError {
        match e {
            AppError::Guard(g) => g.into(),
            AppError::Db(_) => ToolError::Failed("the database failed".into()),
            AppError::NotFound => ToolError::Failed("no such record".into()),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The database could not be opened or seeded.
    #[error("the clinic database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The trail could not be opened.
    #[error("the audit trail in `{dir}`: {source}")]
    Trail {
        /// The trail directory.
        dir: String,
        /// Why.
        source: guardrail_core::audit::AuditError,
    },
    /// The approval database could not be reached.
    #[error("the approval store: {0}")]
    Approvals(#[from] guardrail_core::approval::ApprovalError),
    /// The guardrail could not be built.
    #[error("the guardrail: {0}")]
    Build(String),
}

/// The clinic database, shared by the tools of every session.
#[derive(Debug, Clone)]
pub struct Db(Arc<Mutex<Connection>>);

impl Db {
    /// An in-memory clinic database with demo patients.
    pub fn demo() -> Result<Db, rusqlite::Error> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(
            "CREATE TABLE patients (
                id TEXT PRIMARY KEY, mrn TEXT NOT NULL, name TEXT NOT NULL, ssn TEXT NOT NULL,
                birth_date TEXT NOT NULL, diagnosis TEXT NOT NULL);
             CREATE TABLE notes (
                id INTEGER PRIMARY KEY, patient_id TEXT NOT NULL, author TEXT NOT NULL,
                text TEXT NOT NULL);",
        )?;
        let patients = [
            (
                "p-1",
                "MRN-0001001",
                "Ada Hale",
                "123-45-6789",
                "1961-04-12",
                "hypertension",
            ),
            (
                "p-2",
                "MRN-0001002",
                "Ben Okafor",
                "234-56-7890",
                "1975-09-30",
                "type 2 diabetes",
            ),
            (
                "p-3",
                "MRN-0001003",
                "Cleo Hale",
                "345-67-8901",
                "1990-01-05",
                "hypertension",
            ),
            (
                "p-4",
                "MRN-0001004",
                "Dev Rao",
                "456-78-9012",
                "1948-11-21",
                "hypertension",
            ),
            (
                "p-5",
                "MRN-0001005",
                "Eve Lind",
                "567-89-0123",
                "2001-06-17",
                "asthma",
            ),
        ];
        for (id, mrn, name, ssn, dob, dx) in patients {
            conn.execute(
                "INSERT INTO patients VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, mrn, name, ssn, dob, dx],
            )?;
        }
        conn.execute(
            "INSERT INTO notes (patient_id, author, text) VALUES ('p-1', 'dr-grey', ?1)",
            params!["BP 150/95 on lisinopril 10mg. Called back on 555-867-5309; SSN 123-45-6789 verified."],
        )?;
        Ok(Db(Arc::new(Mutex::new(conn))))
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, ToolError> {
        self.0
            .lock()
            .map_err(|_| ToolError::Failed("the database is unavailable".into()))
    }
}

fn str_arg<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("`{name}` must be a string")))
}

/// The server's tools over `db`.
pub fn catalogue(db: &Db) -> Catalogue {
    let (d1, d2, d3, d4, d5) = (db.clone(), db.clone(), db.clone(), db.clone(), db.clone());
    Catalogue::new()
        .tool(Tool::new(
            "search_patients",
            "assistant.search_patients",
            "Find patients whose name contains `query`. Returns ids and names.",
            move |ctx, a| {
                let hits = actions::search_patients(ctx, &*d1.lock()?, str_arg(a, "query")?)?;
                Ok(json!(hits))
            },
        ))
        .tool(Tool::new(
            "read_chart",
            "assistant.read_chart",
            "Read the chart of patient `patient_id`.",
            move |ctx, a| {
                let chart = actions::read_chart(ctx, &*d2.lock()?, str_arg(a, "patient_id")?)?;
                Ok(json!(chart))
            },
        ))
        .tool(Tool::new(
            "add_note",
            "assistant.add_note",
            "Append note `text` to the chart of patient `patient_id`.",
            move |ctx, a| {
                let id = actions::add_note(
                    ctx,
                    &*d3.lock()?,
                    str_arg(a, "patient_id")?,
                    str_arg(a, "text")?,
                )?;
                Ok(json!({ "note": id }))
            },
        ))
        .tool(Tool::new(
            "export_cohort",
            "assistant.export_cohort",
            "Export every patient with `diagnosis` (needs a privacy officer's approval).",
            move |ctx, a| {
                let db = d4.lock()?;
                let diagnosis = str_arg(a, "diagnosis")?;
                let members = actions::cohort_members(&db, diagnosis)?;
                let rows = actions::export_cohort(ctx, &db, diagnosis, &members)?;
                Ok(json!({ "rows": rows }))
            },
        ))
        .tool(Tool::new(
            "delete_record",
            "assistant.delete_record",
            "Delete the record of patient `patient_id`.",
            move |ctx, a| {
                actions::delete_record(ctx, &*d5.lock()?, str_arg(a, "patient_id")?)?;
                Ok(json!("deleted"))
            },
        ))
}

/// The session of the demo's clinician: Dr. Grey, a provider, treating patients, through
/// the clinic's assistant (fixed by configuration, whatever the client calls itself).
pub fn clinician_session() -> SessionConfig {
    session_for(Principal::new("dr-grey").role("provider"))
}

/// The session the server gives an authenticated person: the provider endpoint, treatment,
/// through the clinic's assistant.
pub fn session_for(person: Principal) -> SessionConfig {
    SessionConfig::new(person)
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment)
        .agent(AgentId::new(AGENT))
}

/// The demo's audit key.
pub fn audit_key() -> Result<AuditKey, SetupError> {
    let bytes =
        hex_decode(DEMO_AUDIT_KEY_HEX).ok_or_else(|| SetupError::Build("bad key".into()))?;
    AuditKey::from_bytes(&bytes).map_err(|e| SetupError::Build(e.to_string()))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// The assistant's guardrail: the policy, a file trail in `trail_dir` (every event on disk
/// before the call proceeds), the demo key, and approvals in PostgreSQL at `approvals_url`
/// (table [`APPROVALS_TABLE`]) or in memory.
pub fn guardrail(
    trail_dir: &Path,
    approvals_url: Option<&str>,
    extra_policy: Option<&str>,
) -> Result<(Guardrail, Arc<FileSink>), SetupError> {
    let text = match extra_policy {
        Some(extra) => format!("{POLICY}\n{extra}"),
        None => POLICY.to_owned(),
    };
    let policy = Policy::from_toml_str(&text).map_err(|e| SetupError::Build(e.to_string()))?;
    let sink = Arc::new(
        FileSink::open(
            trail_dir,
            FileSinkOptions {
                durability: Durability::Fsync,
                ..Default::default()
            },
        )
        .map_err(|source| SetupError::Trail {
            dir: trail_dir.display().to_string(),
            source,
        })?,
    );
    let mut builder = Guardrail::builder()
        .policy(policy)
        .audit_arc(sink.clone())
        .audit_key(audit_key()?);
    if let Some(url) = approvals_url {
        let store =
            PgApprovalStore::connect(url, PgApprovalStoreOptions::new().table(APPROVALS_TABLE))?;
        store.ensure_schema()?;
        builder = builder.approvals(store);
    }
    let g = builder
        .build()
        .map_err(|e| SetupError::Build(e.to_string()))?;
    Ok((g, sink))
}
