//! The guided tour: every step prints what happened and why.

use std::io::Write;
use std::path::Path;

use guardrail_core::audit::sql::AuditTable;
use guardrail_core::audit::{AuditEvent, EventKind};
use guardrail_core::prelude::*;
use guardrail_core::{ApprovalId, MemoryAlertSink};

use crate::actions::directory::ClinicDirectory;
use crate::actions::{admin, billing, chart, claims, research};
use crate::{AppError, PatientSeed, open_service_db, seed_database};

/// What the tour ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Events in the durable trail.
    pub events: u64,
    /// Calls that ran.
    pub allowed: usize,
    /// Calls that were refused.
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
    /// The guardrail could not be built.
    #[error("guardrail: {0}")]
    Build(#[from] guardrail_core::BuildError),
    /// The audit trail could not be opened or read.
    #[error("audit: {0}")]
    Audit(String),
    /// A step that must succeed failed.
    #[error("step `{0}` failed: {1}")]
    Step(&'static str, String),
}

const PATIENTS: &[PatientSeed<'static>] = &[
    PatientSeed {
        id: "p-100",
        mrn: "MRN 0048213",
        name: "Alice Moreno",
        ssn: "512-44-8231",
        birth_date: "1961-07-14",
        diagnosis: "Type 2 diabetes mellitus",
        note: "Seen 2026-11-20. Call back at (415) 555-0142 re: A1c 7.9%. Metformin 500 mg BID.",
        icd10: "E11.9",
    },
    PatientSeed {
        id: "p-200",
        mrn: "MRN 0051977",
        name: "Bruno Okafor",
        ssn: "623-10-4417",
        birth_date: "1934-02-02",
        diagnosis: "Hypertension",
        note: "BP 152/94. Email bruno.okafor@example.org the home-monitoring sheet.",
        icd10: "I10",
    },
];

struct Tour<'o> {
    out: &'o mut dyn Write,
    allowed: usize,
    denied: usize,
}

impl Tour<'_> {
    fn heading(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "\n== {text}")
    }

    /// Prints a step's result; `expect_allowed` makes a surprise fail the tour.
    fn step<T: std::fmt::Debug>(
        &mut self,
        title: &'static str,
        expect_allowed: bool,
        result: Result<T, AppError>,
    ) -> Result<Option<T>, DemoError> {
        match result {
            Ok(v) => {
                self.allowed += 1;
                writeln!(self.out, "  ALLOWED  {title}")?;
                if !expect_allowed {
                    return Err(DemoError::Step(
                        title,
                        "was allowed but must be denied".into(),
                    ));
                }
                Ok(Some(v))
            }
            Err(AppError::Guard(e)) => {
                self.denied += 1;
                writeln!(self.out, "  REFUSED  {title}\n           {e}")?;
                if expect_allowed {
                    return Err(DemoError::Step(title, e.to_string()));
                }
                Ok(None)
            }
            Err(e) => Err(DemoError::Step(title, e.to_string())),
        }
    }
}

/// Runs the tour with its audit trail and database in `dir`, printing to `out`.
pub fn run(dir: &Path, out: &mut dyn Write) -> Result<Summary, DemoError> {
    std::fs::create_dir_all(dir)?;
    let metrics = crate::metrics::install();
    let db_path = dir.join("clinic.sqlite");
    let _ = std::fs::remove_file(&db_path);
    // Deployment step: schema and fixtures, on their own connection.
    seed_database(&db_path, PATIENTS)?;
    let policy = Policy::from_toml_str(crate::POLICY)?;
    // The service's connection: PHI columns only inside guarded calls.
    let mut db = open_service_db(&db_path, &policy)?;
    guardrail_core::audit::sql::sqlite::ensure_schema(&db, &AuditTable::default())
        .map_err(|e| DemoError::Audit(e.to_string()))?;

    let trail_dir = dir.join("audit");
    let _ = std::fs::remove_dir_all(&trail_dir);
    let file_sink = crate::trail::open(&trail_dir).map_err(|e| DemoError::Audit(e.to_string()))?;
    let alerts = MemoryAlertSink::new();
    let guardrail = Guardrail::builder()
        .policy(policy)
        .audit(file_sink.clone())
        .audit_key(crate::demo_key())
        .alerts(alerts.clone())
        .relationships(ClinicDirectory)
        .consents(ClinicDirectory)
        .build()?;
    // Refusals of the tripwire and of the database go to this guardrail's trail.
    guardrail.install_tripwire();

    let mut tour = Tour {
        out,
        allowed: 0,
        denied: 0,
    };
    writeln!(
        tour.out,
        "guardrail clinic tour: policy `{}` (sha256 {}…), audit trail in {}",
        guardrail.policy().version(),
        &guardrail.policy().sha256()[..12],
        trail_dir.display()
    )?;

    let grey = guardrail
        .context(
            Principal::new("dr-grey")
                .role("provider")
                .jurisdiction("US-CA"),
        )
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    let hale = Principal::new("dr-hale")
        .role("provider")
        .jurisdiction("US-TX");
    let billing_clerk = guardrail
        .context(
            Principal::new("clerk-ito")
                .role("billing")
                .jurisdiction("US-CA"),
        )
        .endpoint(Endpoint::Admin)
        .purpose(Purpose::Payment);
    let alice = guardrail
        .context(
            Principal::new("user-alice")
                .role("patient")
                .patient("p-100"),
        )
        .endpoint(Endpoint::Patient)
        .purpose(Purpose::PatientRequest);
    let researcher = Principal::new("res-kim").role("researcher");
    let research_ctx = |g: &Guardrail| {
        g.context(researcher.clone())
            .endpoint(Endpoint::System)
            .purpose(Purpose::Research)
    };

    tour.heading("a provider treats a patient")?;
    if let Some(c) = tour.step(
        "dr-grey reads p-100's chart for treatment",
        true,
        chart::read_chart(&grey, &db, "p-100"),
    )? {
        writeln!(tour.out, "           sees diagnosis: {}", c.diagnosis)?;
    }
    {
        let mut tx = db.transaction()?;
        let r = chart::update_diagnosis(&grey, &mut tx, "p-100", "Type 2 diabetes, controlled");
        let ok = r.is_ok();
        tour.step(
            "dr-grey updates p-100's diagnosis (same SQLite transaction)",
            true,
            r,
        )?;
        if ok {
            tx.commit()?;
        }
    }

    tour.heading("minimum necessary: billing sees codes and amounts, not the note")?;
    if let Some(v) = tour.step(
        "clerk-ito reads p-100's visit for a claim",
        true,
        billing::read_visit(&billing_clerk, &db, "p-100"),
    )? {
        writeln!(
            tour.out,
            "           icd10={} amount={} diagnosis={:?}\n           note={:?}\n           patient_name={:?}",
            v.icd10, v.amount_cents, v.diagnosis, v.note, v.patient_name
        )?;
    }

    if let Some(c) = tour.step(
        "clerk-ito discloses p-100's claim to the health plan",
        true,
        claims::disclose_to_payer(&billing_clerk, &db, "p-100"),
    )? {
        writeln!(
            tour.out,
            "           icd10={} amount={} member={} name={}",
            c.icd10, c.amount_cents, c.mrn, c.patient_name
        )?;
    }

    tour.heading("a patient in the portal")?;
    if let Some(c) = tour.step(
        "user-alice reads her own chart",
        true,
        chart::read_chart(&alice, &db, "p-100"),
    )? {
        writeln!(tour.out, "           name={} ssn={}", c.name, c.ssn)?;
    }
    tour.step(
        "user-alice reads p-200's chart (another patient's record)",
        false,
        chart::read_chart(&alice, &db, "p-200"),
    )?;
    tour.step(
        "user-alice deletes her record from the portal",
        false,
        admin::delete_record(&alice, &db, "p-100"),
    )?;

    tour.heading("denials: role, endpoint, jurisdiction, purpose, record limit")?;
    tour.step(
        "clerk-ito reads a chart (billing is not a provider)",
        false,
        chart::read_chart(&billing_clerk, &db, "p-200"),
    )?;
    let grey_portal = grey.clone().endpoint(Endpoint::Patient);
    tour.step(
        "dr-grey reads a chart through the patient portal",
        false,
        chart::read_chart(&grey_portal, &db, "p-200"),
    )?;
    let hale_ctx = guardrail
        .context(hale.clone())
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    tour.step(
        "dr-hale (licensed in US-TX) reads a chart",
        false,
        chart::read_chart(&hale_ctx, &db, "p-200"),
    )?;
    let grey_marketing = guardrail
        .context(
            Principal::new("dr-grey")
                .role("provider")
                .jurisdiction("US-CA"),
        )
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Operations);
    tour.step(
        "dr-grey reads a chart for operations, not treatment",
        false,
        chart::read_chart(&grey_marketing, &db, "p-200"),
    )?;
    let everyone: Vec<String> = (0..5000).map(|i| format!("p-{i}")).collect();
    tour.step(
        "res-kim exports 5,000 records (limit 1,000)",
        false,
        research::export_cohort(&research_ctx(&guardrail), &db, &everyone),
    )?;

    tour.heading("the database refuses too: PHI read outside any guarded call")?;
    match forgotten_guard(&db, "p-100") {
        Ok(_) => {
            return Err(DemoError::Step(
                "forgotten guard",
                "an unguarded read of patients.ssn was allowed".into(),
            ));
        }
        Err(e) => writeln!(
            tour.out,
            "  REFUSED  a handler without #[phi_action] reads p-100's SSN\n           {e}"
        )?,
    }

    tour.heading("just-in-time approval for a large export")?;
    let cohort: Vec<String> = (0..150)
        .map(|i| if i % 2 == 0 { "p-100" } else { "p-200" }.to_owned())
        .collect();
    let first = research::export_cohort(&research_ctx(&guardrail), &db, &cohort);
    let request_id: Option<ApprovalId> = match &first {
        Err(AppError::Guard(GuardError::ApprovalRequired { request })) => Some(request.id.clone()),
        _ => None,
    };
    tour.step("res-kim exports 150 records", false, first)?;
    let Some(request_id) = request_id else {
        return Err(DemoError::Step(
            "approval",
            "no approval was requested".into(),
        ));
    };
    let officer = Principal::new("po-lee").role("privacy_officer");
    match guardrail.approve(&officer, &request_id) {
        Ok(_) => writeln!(tour.out, "  GRANTED  po-lee approves {request_id}")?,
        Err(e) => return Err(DemoError::Step("approve", e.to_string())),
    }
    if let Some(rows) = tour.step(
        "res-kim retries with the grant",
        true,
        research::export_cohort(
            &research_ctx(&guardrail).approval(request_id.clone()),
            &db,
            &cohort,
        ),
    )? {
        if let Some(r) = rows.first() {
            writeln!(
                tour.out,
                "           {} rows, e.g. mrn={} birth_date={} diagnosis={}",
                rows.len(),
                r.mrn,
                r.birth_date,
                r.diagnosis
            )?;
        }
    }
    tour.step(
        "res-kim reuses the same grant",
        false,
        research::export_cohort(&research_ctx(&guardrail).approval(request_id), &db, &cohort),
    )?;

    care_team(&mut tour, &guardrail, &db, &billing_clerk)?;

    tour.heading("break-glass in an emergency")?;
    let er = guardrail
        .context(hale)
        .endpoint(Endpoint::Provider)
        .break_glass("unconscious patient in the ER, no consent possible");
    tour.step(
        "dr-hale declares an emergency and reads p-200's chart",
        true,
        chart::read_chart(&er, &db, "p-200"),
    )?;
    tour.step(
        "dr-hale tries to delete under break-glass",
        false,
        admin::delete_record(&er, &db, "p-200"),
    )?;
    guardrail.flush_alerts();
    for a in alerts.alerts() {
        writeln!(tour.out, "  ALERT    [{}] {}", a.kind.as_str(), a.message)?;
    }

    // The trail.
    file_sink
        .flush()
        .map_err(|e| DemoError::Audit(e.to_string()))?;
    let events = crate::trail::read(&trail_dir).map_err(|e| DemoError::Audit(e.to_string()))?;
    tour.heading("the audit trail")?;
    print_trail(tour.out, &events)?;
    let report = crate::trail::verify(&trail_dir);
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

    if let Some(handle) = metrics {
        tour.heading("metrics (Prometheus text format)")?;
        for line in handle
            .render()
            .lines()
            .filter(|l| l.starts_with("guardrail_"))
        {
            writeln!(tour.out, "  {line}")?;
        }
    }

    writeln!(
        tour.out,
        "\n{} calls allowed, {} refused, {} events in the trail",
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

/// Who may see this patient: a provider off the care team needs break-glass; a Part 2 note
/// stays masked for billing until the patient's consent is on file.
fn care_team(
    tour: &mut Tour<'_>,
    guardrail: &Guardrail,
    db: &rusqlite::Connection,
    billing_clerk: &Context,
) -> Result<(), DemoError> {
    tour.heading("who may see this patient: the care team, break-glass, a Part 2 note")?;
    let hale_ca = Principal::new("dr-hale")
        .role("provider")
        .jurisdiction("US-CA");
    let ctx = guardrail
        .context(hale_ca.clone())
        .endpoint(Endpoint::Provider)
        .purpose(Purpose::Treatment);
    tour.step(
        "dr-hale (not on p-100's care team) reads p-100's chart",
        false,
        chart::read_chart(&ctx, db, "p-100"),
    )?;
    let er = guardrail
        .context(hale_ca)
        .endpoint(Endpoint::Provider)
        .break_glass("covering the ER, patient crashing");
    tour.step(
        "dr-hale declares an emergency and reads p-100's chart",
        true,
        chart::read_chart(&er, db, "p-100"),
    )?;
    if let Some(v) = tour.step(
        "clerk-ito reads p-100's program visit (no Part 2 consent)",
        true,
        billing::read_program_visit(billing_clerk, db, "p-100"),
    )? {
        writeln!(tour.out, "           icd10={} note={:?}", v.icd10, v.note)?;
    }
    if let Some(v) = tour.step(
        "clerk-ito reads p-200's program visit (Part 2 consent on file)",
        true,
        billing::read_program_visit(billing_clerk, db, "p-200"),
    )? {
        writeln!(
            tour.out,
            "           icd10={} note revealed ({} characters)",
            v.icd10,
            v.note.chars().count()
        )?;
    }
    Ok(())
}

/// A handler whose author forgot `#[phi_action]`: the service connection's authorizer
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
        writeln!(
            out,
            "  {:>4}  {:<10} {:<36} {:<11} {:<18} {}{}",
            e.seq,
            kind,
            r.action.as_deref().unwrap_or("-"),
            r.principal.as_deref().unwrap_or("-"),
            what,
            why,
            if r.break_glass { "  [BREAK-GLASS]" } else { "" }
        )?;
    }
    Ok(())
}
