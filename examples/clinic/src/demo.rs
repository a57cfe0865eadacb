//! The guided tour: the clinic server (`clinic-server`) on a loopback port, driven as a
//! real HTTP client. Every step prints the request, what the server answered and why.

use std::io::Write;
use std::path::Path;

use clinic_server::{Clinic, RunningServer, ServerConfig};
use guardrail_core::audit::sql::AuditTable;
use guardrail_core::audit::{AuditEvent, EventKind, FileTrail};
use guardrail_core::{ApprovalId, Principal};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the tour ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Events in the durable trail.
    pub events: u64,
    /// Requests the guardrail allowed.
    pub allowed: usize,
    /// Requests the guardrail refused.
    pub denied: usize,
    /// Both trails (file, SQLite) verified.
    pub verified: bool,
}

/// Why the tour could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Writing the output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The policy did not load.
    #[error("policy: {0}")]
    Policy(#[from] guardrail_core::PolicyError),
    /// The server could not start or stop.
    #[error("server: {0}")]
    Server(#[from] clinic_server::ServerError),
    /// An HTTP request failed (no answer at all).
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The audit trail could not be read.
    #[error("audit: {0}")]
    Audit(String),
    /// A step that must succeed failed.
    #[error("step `{0}` failed: {1}")]
    Step(&'static str, String),
}

/// A request of the tour: who sends it, how, and with which extra headers and body.
struct Ask<'a> {
    who: &'a str,
    purpose: &'a str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl<'a> Ask<'a> {
    fn new(who: &'a str, purpose: &'a str, method: Method, path: impl Into<String>) -> Self {
        Ask {
            who,
            purpose,
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// What a step's request got: the allowed body, or the refusal's body.
enum Reply {
    Allowed(Value),
    Refused(Value),
}

/// What the server answered.
struct Answer {
    status: StatusCode,
    body: Value,
}

struct Tour<'o> {
    out: &'o mut dyn Write,
    client: reqwest::Client,
    base: String,
    allowed: usize,
    denied: usize,
}

impl Tour<'_> {
    fn heading(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "\n== {text}")
    }

    async fn send(&mut self, ask: &Ask<'_>) -> Result<Answer, DemoError> {
        let mut req = self
            .client
            .request(ask.method.clone(), format!("{}{}", self.base, ask.path))
            .bearer_auth(format!("demo-{}", ask.who))
            .header("x-purpose-of-use", ask.purpose);
        for (name, value) in &ask.headers {
            req = req.header(*name, value);
        }
        if let Some(body) = &ask.body {
            req = req.json(body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }

    /// Sends `ask`, prints what happened; `expect_allowed` makes a surprise fail the tour.
    /// Returns the body of an allowed request, or the refusal's body.
    async fn step(
        &mut self,
        title: &'static str,
        expect_allowed: bool,
        ask: Ask<'_>,
    ) -> Result<Reply, DemoError> {
        let answer = self.send(&ask).await?;
        let line = format!("{} {}  ->  {}", ask.method, ask.path, answer.status);
        if answer.status.is_success() {
            self.allowed += 1;
            writeln!(self.out, "  ALLOWED  {title}\n           {line}")?;
            if !expect_allowed {
                return Err(DemoError::Step(
                    title,
                    "was allowed but must be refused".into(),
                ));
            }
            return Ok(Reply::Allowed(answer.body));
        }
        let error = answer.body["error"].as_str().unwrap_or_default();
        if answer.status != StatusCode::FORBIDDEN {
            return Err(DemoError::Step(title, format!("{line} {}", answer.body)));
        }
        self.denied += 1;
        let why = match answer.body["reason"].as_str() {
            Some(reason) => format!("{error} (reason `{reason}`)"),
            None => error.to_owned(),
        };
        writeln!(self.out, "  REFUSED  {title}\n           {line} {why}")?;
        if expect_allowed {
            return Err(DemoError::Step(title, format!("{line} {}", answer.body)));
        }
        Ok(Reply::Refused(answer.body))
    }
}

/// The text of a JSON string field (empty if absent).
fn s<'v>(v: &'v Value, field: &str) -> &'v str {
    v[field].as_str().unwrap_or_default()
}

/// Runs the tour with the server's data (trail, database, tokens) in `dir`, printing to
/// `out`. The server runs on `127.0.0.1:0` in this process, on a runtime of its own.
pub fn run(dir: &Path, out: &mut dyn Write) -> Result<Summary, DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_over_http(dir, out))
}

async fn run_over_http(dir: &Path, out: &mut dyn Write) -> Result<Summary, DemoError> {
    // A fresh database, trail and demo token file each time (the tour's principals are the
    // demo tokens'; a file left by an older version could lack one).
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::remove_dir_all(dir.join("audit"));
    for file in [
        "clinic.sqlite",
        "clinic.sqlite-wal",
        "clinic.sqlite-shm",
        "tokens.toml",
    ] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    let server = Clinic::open(ServerConfig::sqlite(dir))
        .await?
        .serve(([127, 0, 0, 1], 0).into())
        .await?;
    let result = drive(&server, dir, out).await;
    let stopped = server.stop().await;
    let (mut tour, trail_dir) = result?;
    stopped?;
    finish(&mut tour, dir, &trail_dir)
}

async fn drive<'o>(
    server: &RunningServer,
    dir: &Path,
    out: &'o mut dyn Write,
) -> Result<(Tour<'o>, std::path::PathBuf), DemoError> {
    let trail_dir = server.clinic().audit_dir();
    let guardrail = server.clinic().guardrail().clone();
    let mut tour = Tour {
        out,
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?,
        base: server.url(),
        allowed: 0,
        denied: 0,
    };
    writeln!(
        tour.out,
        "guardrail clinic tour: clinic-server on {} (SQLite in {}), policy `{}` (sha256 {}…)\n\
         audit trail in {}",
        server.url(),
        dir.display(),
        guardrail.policy().version(),
        &guardrail.policy().sha256()[..12],
        trail_dir.display()
    )?;
    let get = Method::GET;

    tour.heading("a provider treats a patient on their care team")?;
    if let Reply::Allowed(c) = tour
        .step(
            "dr-grey (on p-100's care team) reads p-100's chart for treatment",
            true,
            Ask::new(
                "dr-grey",
                "treatment",
                get.clone(),
                "/provider/patients/p-100/chart",
            ),
        )
        .await?
    {
        writeln!(
            tour.out,
            "           sees diagnosis: {}",
            s(&c, "diagnosis")
        )?;
    }
    tour.step(
        "dr-grey updates p-100's diagnosis (its outcome commits in the same SQLite transaction)",
        true,
        Ask::new(
            "dr-grey",
            "treatment",
            Method::PUT,
            "/provider/patients/p-100/diagnosis",
        )
        .body(json!({ "diagnosis": "Type 2 diabetes, controlled" })),
    )
    .await?;
    let long = "Type 2 diabetes; ".repeat(15);
    let rolled_back = tour
        .send(
            &Ask::new(
                "dr-grey",
                "treatment",
                Method::PUT,
                "/provider/patients/p-100/diagnosis",
            )
            .body(json!({ "diagnosis": long })),
        )
        .await?;
    writeln!(
        tour.out,
        "  ROLLED BACK  dr-grey's 255-character diagnosis: the change log refuses it after the \
         UPDATE ran\n           PUT /provider/patients/p-100/diagnosis  ->  {} {}: change and \
         outcome rolled back together",
        rolled_back.status,
        s(&rolled_back.body, "error")
    )?;

    tour.step(
        "dr-hale (licensed in US-CA, not on p-100's care team) reads p-100's chart",
        false,
        Ask::new(
            "dr-hale",
            "treatment",
            get.clone(),
            "/provider/patients/p-100/chart",
        ),
    )
    .await?;

    tour.heading("minimum necessary: billing sees codes and amounts, not the note")?;
    if let Reply::Allowed(v) = tour
        .step(
            "clerk-ito reads p-100's visit for a claim",
            true,
            Ask::new(
                "clerk-ito",
                "payment",
                get.clone(),
                "/admin/patients/p-100/visit",
            ),
        )
        .await?
    {
        writeln!(
            tour.out,
            "           icd10={} amount={} diagnosis={:?}\n           note={:?}\n           \
             patient_name={:?}",
            s(&v, "icd10"),
            v["amount_cents"],
            s(&v, "diagnosis"),
            s(&v, "note"),
            s(&v, "patient_name")
        )?;
    }
    if let Reply::Allowed(c) = tour
        .step(
            "clerk-ito discloses p-100's claim to the health plan",
            true,
            Ask::new(
                "clerk-ito",
                "payment",
                Method::POST,
                "/admin/patients/p-100/claim",
            ),
        )
        .await?
    {
        writeln!(
            tour.out,
            "           icd10={} amount={} member={} name={}",
            s(&c, "icd10"),
            c["amount_cents"],
            s(&c, "mrn"),
            s(&c, "patient_name")
        )?;
    }

    tour.heading("42 CFR Part 2: a program note needs the patient's consent")?;
    for (title, patient) in [
        (
            "clerk-ito reads p-100's program visit (no Part 2 consent on file)",
            "p-100",
        ),
        (
            "clerk-ito reads p-200's program visit (p-200's Part 2 consent names billing)",
            "p-200",
        ),
    ] {
        if let Reply::Allowed(v) = tour
            .step(
                title,
                true,
                Ask::new(
                    "clerk-ito",
                    "payment",
                    get.clone(),
                    format!("/admin/patients/{patient}/program-visit"),
                ),
            )
            .await?
        {
            writeln!(
                tour.out,
                "           icd10={} program_note={:?}",
                s(&v, "icd10"),
                s(&v, "program_note")
            )?;
        }
    }

    tour.heading("a patient in the portal")?;
    if let Reply::Allowed(c) = tour
        .step(
            "user-alice reads her own chart",
            true,
            Ask::new(
                "user-alice",
                "patient_request",
                get.clone(),
                "/patient/patients/p-100/chart",
            ),
        )
        .await?
    {
        writeln!(
            tour.out,
            "           name={} ssn={}",
            s(&c, "name"),
            s(&c, "ssn")
        )?;
    }
    tour.step(
        "user-alice reads p-200's chart (another patient's record)",
        false,
        Ask::new(
            "user-alice",
            "patient_request",
            get.clone(),
            "/patient/patients/p-200/chart",
        ),
    )
    .await?;
    tour.step(
        "user-alice deletes her record from the portal",
        false,
        Ask::new(
            "user-alice",
            "patient_request",
            Method::DELETE,
            "/patient/patients/p-100",
        ),
    )
    .await?;

    tour.heading("denials: role, endpoint, jurisdiction, purpose, record limit")?;
    tour.step(
        "clerk-ito reads a chart (billing is not a provider)",
        false,
        Ask::new(
            "clerk-ito",
            "payment",
            get.clone(),
            "/provider/patients/p-200/chart",
        ),
    )
    .await?;
    tour.step(
        "dr-grey reads a chart through the patient portal",
        false,
        Ask::new(
            "dr-grey",
            "treatment",
            get.clone(),
            "/patient/patients/p-200/chart",
        ),
    )
    .await?;
    tour.step(
        "dr-ruiz (licensed in US-TX) reads a chart",
        false,
        Ask::new(
            "dr-ruiz",
            "treatment",
            get.clone(),
            "/provider/patients/p-200/chart",
        ),
    )
    .await?;
    tour.step(
        "dr-grey reads a chart for operations, not treatment",
        false,
        Ask::new(
            "dr-grey",
            "operations",
            get.clone(),
            "/provider/patients/p-200/chart",
        ),
    )
    .await?;
    let everyone: Vec<String> = (0..5000).map(|i| format!("p-{i}")).collect();
    tour.step(
        "res-kim exports 5,000 records (limit 1,000)",
        false,
        Ask::new(
            "res-kim",
            "research",
            Method::POST,
            "/system/cohorts/export",
        )
        .body(json!({ "patient_ids": everyone })),
    )
    .await?;

    tour.heading("the database refuses too: PHI read outside any guarded call")?;
    // A reporting script's own connection to the server's database, with guardrail's
    // SQLite authorizer installed (`open_service_db`).
    let policy = guardrail_core::Policy::from_toml_str(crate::POLICY)?;
    let script_db = crate::open_service_db(&dir.join("clinic.sqlite"), &policy)?;
    match forgotten_guard(&script_db, "p-100") {
        Ok(_) => {
            return Err(DemoError::Step(
                "forgotten guard",
                "an unguarded read of patients.ssn was allowed".into(),
            ));
        }
        Err(e) => writeln!(
            tour.out,
            "  REFUSED  a report script without #[phi_action] reads p-100's SSN\n           {e}"
        )?,
    }
    drop(script_db);

    tour.heading("just-in-time approval for a large export")?;
    let cohort: Vec<&str> = (0..150)
        .map(|i| if i % 2 == 0 { "p-100" } else { "p-200" })
        .collect();
    let export = |approval: Option<&str>| {
        let ask = Ask::new(
            "res-kim",
            "research",
            Method::POST,
            "/system/cohorts/export",
        )
        .body(json!({ "patient_ids": cohort }));
        match approval {
            Some(id) => ask.header("x-approval-id", id),
            None => ask,
        }
    };
    let first = tour
        .step("res-kim exports 150 records", false, export(None))
        .await?;
    let request_id = match &first {
        Reply::Refused(body) if body["error"] == "approval_required" => {
            s(body, "approval_id").to_owned()
        }
        _ => {
            return Err(DemoError::Step(
                "approval",
                "no approval was requested".into(),
            ));
        }
    };
    writeln!(
        tour.out,
        "           approval request {request_id} is pending"
    )?;
    // The approvals page mounts on this server later; until then the privacy officer's
    // decision is made in the server's process, through the same guardrail.
    let officer = Principal::new("po-lee").role("privacy_officer");
    match guardrail.approve(&officer, &ApprovalId::new(&request_id)) {
        Ok(_) => writeln!(tour.out, "  GRANTED  po-lee approves {request_id}")?,
        Err(e) => return Err(DemoError::Step("approve", e.to_string())),
    }
    if let Reply::Allowed(rows) = tour
        .step(
            "res-kim retries with the grant",
            true,
            export(Some(&request_id)),
        )
        .await?
    {
        if let Some(r) = rows.as_array().and_then(|rows| rows.first()) {
            writeln!(
                tour.out,
                "           {} rows, e.g. mrn={} birth_date={} diagnosis={}",
                rows.as_array().map_or(0, Vec::len),
                s(r, "mrn"),
                s(r, "birth_date"),
                s(r, "diagnosis")
            )?;
        }
    }
    tour.step(
        "res-kim reuses the same grant",
        false,
        export(Some(&request_id)),
    )
    .await?;

    tour.heading("break-glass in an emergency")?;
    let reason = "unconscious patient in the ER, no consent possible";
    tour.step(
        "dr-hale, not on p-200's care team, declares an emergency and reads p-200's chart",
        true,
        Ask::new(
            "dr-hale",
            "treatment",
            get.clone(),
            "/provider/patients/p-200/chart",
        )
        .header("x-break-glass", reason),
    )
    .await?;
    tour.step(
        "dr-hale tries to delete under break-glass",
        false,
        Ask::new(
            "dr-hale",
            "treatment",
            Method::DELETE,
            "/provider/patients/p-200",
        )
        .header("x-break-glass", reason),
    )
    .await?;
    guardrail.flush_alerts();
    for a in server.clinic().alerts().alerts() {
        writeln!(tour.out, "  ALERT    [{}] {}", a.kind.as_str(), a.message)?;
    }

    tour.heading("metrics (GET /metrics, Prometheus text format)")?;
    let metrics = tour
        .client
        .get(format!("{}/metrics", tour.base))
        .send()
        .await?
        .text()
        .await?;
    for line in metrics.lines().filter(|l| l.starts_with("guardrail_")) {
        writeln!(tour.out, "  {line}")?;
    }
    Ok((tour, trail_dir))
}

/// Prints and verifies both trails once the server has stopped.
fn finish(tour: &mut Tour<'_>, dir: &Path, trail_dir: &Path) -> Result<Summary, DemoError> {
    let events: Vec<AuditEvent> = FileTrail::open(trail_dir)
        .and_then(|t| t.events().collect())
        .map_err(|e| DemoError::Audit(e.to_string()))?;
    tour.heading("the audit trail")?;
    print_trail(tour.out, &events)?;
    let report = crate::trail::verify(trail_dir);
    let db = rusqlite::Connection::open(dir.join("clinic.sqlite"))?;
    let sql_report = guardrail_core::audit::sql::sqlite::verify_sqlite(&db, &AuditTable::default());
    let verified = report.is_ok() && sql_report.is_ok();
    match &report {
        Ok(n) => writeln!(tour.out, "  file trail verified: {n} events, chain intact")?,
        Err(e) => writeln!(tour.out, "  file trail FAILED verification: {e}")?,
    }
    match &sql_report {
        Ok(r) => writeln!(
            tour.out,
            "  SQLite trail (outcomes written inside transactions) verified: {} events",
            r.events
        )?,
        Err(e) => writeln!(tour.out, "  SQLite trail FAILED verification: {e}")?,
    }
    writeln!(
        tour.out,
        "  verify it yourself: cargo run -p guardrail-cli -- audit verify {}",
        trail_dir.display()
    )?;
    writeln!(
        tour.out,
        "  serve it yourself:  cargo run -p clinic-server -- --listen 127.0.0.1:8080 --data {}",
        dir.display()
    )?;
    writeln!(
        tour.out,
        "\n{} requests allowed, {} refused, {} events in the trail",
        tour.allowed,
        tour.denied,
        events.len()
    )?;
    Ok(Summary {
        events: events.len() as u64,
        allowed: tour.allowed,
        denied: tour.denied,
        verified,
    })
}

/// A report script whose author forgot `#[phi_action]`: the connection's authorizer
/// refuses its statement (`access to patients.ssn is prohibited`).
#[guardrail_core::phi_exempt(
    reason = "the tour's forgotten guard: shows the database refusing an unguarded read"
)]
fn forgotten_guard(db: &rusqlite::Connection, patient_id: &str) -> rusqlite::Result<String> {
    db.query_row(
        "SELECT ssn FROM patients WHERE id = ?1",
        [patient_id],
        |r| r.get(0),
    )
}

fn print_trail(out: &mut dyn Write, events: &[AuditEvent]) -> std::io::Result<()> {
    writeln!(
        out,
        "   seq  event      action                               principal   \
         decision/outcome   rule / reason"
    )?;
    for e in events {
        let r = &e.record;
        let kind = match r.kind {
            EventKind::Decision => "decision",
            EventKind::Outcome => "outcome",
            EventKind::ApprovalGranted => "granted",
            EventKind::ApprovalRejected => "rejected",
            EventKind::ApprovalConsumed => "consumed",
            EventKind::PolicyReload => "reload",
            EventKind::Recovered => "recovered",
            EventKind::UnguardedAccess => "unguarded",
            _ => "other",
        };
        let what = match (&r.decision, r.outcome) {
            (Some(d), _) => d.to_string(),
            (None, Some(o)) => o.as_str().to_owned(),
            _ => String::new(),
        };
        let why = r
            .reason
            .as_deref()
            .or(r.rule.as_deref())
            .unwrap_or_default();
        // The relationship or consent the decision rested on.
        let grounds: String = ["relation", "consent_missing"]
            .iter()
            .filter_map(|k| r.detail.get(*k).map(|v| format!("  {k}={v}")))
            .collect();
        writeln!(
            out,
            "  {:>4}  {:<10} {:<36} {:<11} {:<18} {}{}{}",
            e.seq,
            kind,
            r.action.as_deref().unwrap_or("-"),
            r.principal.as_deref().unwrap_or("-"),
            what,
            why,
            grounds,
            if r.break_glass { "  [BREAK-GLASS]" } else { "" }
        )?;
    }
    Ok(())
}
