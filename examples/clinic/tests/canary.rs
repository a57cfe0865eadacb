//! Canary test over HTTP: the clinic server holds a patient whose every field is a
//! PHI-looking canary; every route is called by allowed and refused principals through a
//! real client. The canaries reach a response body exactly where the deciding rule reveals
//! their category, and never the durable file trail, the database's audit table, an error
//! body, or the server's (scrubbed) logs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use clinic_server::db::audit_lines;
use clinic_server::{Clinic, ServerConfig};
use guardrail_core::audit::FileTrail;
use reqwest::Method;
use serde_json::{Value, json};

const PATIENT_ID: &str = "pt-canary-4471";
const NAME: &str = "Zebulon Canarywing";
const SSN: &str = "219-09-9999";
const DIAGNOSIS: &str = "Canaryitis fulminans";
const MRN: &str = "MRN 7734412";
const PHONE: &str = "(503) 555-0199";
const BIRTH: &str = "1950-03-03";
const PROGRAM_NOTE: &str = "Canarycaine use disorder, program week 3";
// Long enough that no hex token can contain one by chance.
const CANARIES: &[&str] = &[
    PATIENT_ID, NAME, SSN, DIAGNOSIS, MRN, PHONE, "9-9999", "Canary",
];

const TOKENS: &str = r#"
[[token]]
token = "tok-provider"
principal = "dr-grey"
roles = ["provider"]
jurisdiction = "US-CA"
[[token]]
token = "tok-wrong-state"
principal = "dr-hale"
roles = ["provider"]
jurisdiction = "US-TX"
[[token]]
token = "tok-billing"
principal = "clerk-ito"
roles = ["billing"]
[[token]]
token = "tok-patient"
principal = "user-z"
roles = ["patient"]
patient = "pt-canary-4471"
[[token]]
token = "tok-other-patient"
principal = "user-y"
roles = ["patient"]
patient = "someone-else"
[[token]]
token = "tok-researcher"
principal = "res-kim"
roles = ["researcher"]
[[token]]
token = "tok-admin"
principal = "adm-ray"
roles = ["admin"]
"#;

/// A route's label, method, path, body, and who may call it.
type Call<'a> = (&'a str, Method, &'a str, Option<Value>, &'a [&'a str]);

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(place: &str, text: &str) {
    for canary in CANARIES {
        assert!(
            !text.contains(canary),
            "canary `{canary}` leaked into {place}:\n{text}"
        );
    }
}

/// A returned field shows the canary `raw` exactly when its category is revealed; a hidden
/// field holds neither `raw` nor any canary fragment.
fn shown(what: &str, body: &Value, field: &str, raw: &str, revealed: bool) {
    let value = body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no `{field}` in {body}"));
    if revealed {
        assert_eq!(value, raw, "{what}: `{field}` is revealed by the rule");
    } else {
        assert!(
            !value.contains(raw),
            "{what}: `{field}` is hidden, yet shows `{value}`"
        );
        assert_clean(what, value);
    }
}

#[test]
fn canary_values_never_reach_the_trails_error_bodies_or_logs() {
    let logs = Captured::default();
    let writer = {
        let logs = logs.clone();
        guardrail_core::mask::logs::ScrubbingWriter::new(move || logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    // The server's handlers run on the runtime's worker threads: a global subscriber.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, TOKENS).unwrap();
    let mut config = ServerConfig::sqlite(dir.path().join("data"));
    config.tokens = Some(tokens);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = Clinic::open(config).await.unwrap().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
        let note = format!("{NAME} ({SSN}) seen for {DIAGNOSIS}; call {PHONE}; {MRN}.");
        let mut tx = server.clinic().db().begin().await.unwrap();
        tx.execute(
            "INSERT INTO patients (id, mrn, name, ssn, birth_date, diagnosis, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[PATIENT_ID, MRN, NAME, SSN, BIRTH, DIAGNOSIS, &note],
        )
        .await
        .unwrap();
        tx.execute(
            "INSERT INTO visits (patient_id, icd10, amount_cents, note, program_note)
             VALUES ($1, 'E11.9', 18500, $2, $3)",
            &[PATIENT_ID, &note, PROGRAM_NOTE],
        )
        .await
        .unwrap();
        // The provider treats the canary patient; no Part 2 consent is on file.
        tx.execute(
            "INSERT INTO care_team (clinician, patient_id, relation) VALUES ('dr-grey', $1, 'care_team')",
            &[PATIENT_ID],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let client = reqwest::Client::new();
        let base = server.url();
        let mut bodies: Vec<(String, Value)> = Vec::new();
        let mut errors = String::new();
        let purpose = |who: &str| match who {
            "provider" | "wrong-state" => "treatment",
            "billing" => "payment",
            "patient" | "other-patient" => "patient_request",
            "researcher" => "research",
            _ => "operations",
        };
        let endpoint = |who: &str| match who {
            "provider" | "wrong-state" => "provider",
            "patient" | "other-patient" => "patient",
            "researcher" => "system",
            _ => "admin",
        };
        let chart = format!("/patients/{PATIENT_ID}/chart");
        let visit = format!("/patients/{PATIENT_ID}/visit");
        let program = format!("/patients/{PATIENT_ID}/program-visit");
        let claim = format!("/patients/{PATIENT_ID}/claim");
        let dx = format!("/patients/{PATIENT_ID}/diagnosis");
        let record = format!("/patients/{PATIENT_ID}");
        let calls: Vec<Call<'_>> = vec![
            ("chart", Method::GET, chart.as_str(), None, &["provider", "patient"][..]),
            ("visit", Method::GET, visit.as_str(), None, &["billing"][..]),
            ("program visit", Method::GET, program.as_str(), None, &["billing"][..]),
            ("claim", Method::POST, claim.as_str(), None, &["billing"][..]),
            ("export", Method::POST, "/cohorts/export", Some(json!({ "patient_ids": [PATIENT_ID] })), &["researcher"][..]),
            ("diagnosis", Method::PUT, dx.as_str(), Some(json!({ "diagnosis": DIAGNOSIS })), &["provider"][..]),
            ("delete", Method::DELETE, record.as_str(), None, &["admin"][..]),
        ];
        let everyone = ["provider", "wrong-state", "billing", "patient", "other-patient", "researcher", "admin"];
        for (route, method, path, body, allowed) in &calls {
            for who in everyone {
                let mut req = client
                    .request(method.clone(), format!("{base}/{}{path}", endpoint(who)))
                    .bearer_auth(format!("tok-{who}"))
                    .header("x-purpose-of-use", purpose(who));
                if let Some(b) = body {
                    req = req.json(b);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status();
                let text = resp.text().await.unwrap();
                let must_pass = allowed.contains(&who);
                assert_eq!(status.is_success(), must_pass, "{route} by {who}: {status} {text}");
                if must_pass {
                    bodies.push((format!("{route} by {who}"), serde_json::from_str(&text).unwrap_or(Value::Null)));
                } else {
                    errors.push_str(&text);
                    errors.push('\n');
                }
            }
        }
        let body = |label: &str| bodies.iter().find(|(l, _)| l == label).map(|(_, b)| b.clone()).unwrap();
        // providers-treat reveals everything; patients-own-chart all but the SSN.
        let c = body("chart by provider");
        shown("provider's chart", &c, "ssn", SSN, true);
        shown("provider's chart", &c, "name", NAME, true);
        let c = body("chart by patient");
        shown("patient's chart", &c, "ssn", SSN, false);
        shown("patient's chart", &c, "name", NAME, true);
        shown("patient's chart", &c, "mrn", MRN, true);
        // billing-visits reveals the diagnosis only; the note is scanned.
        let v = body("visit by billing");
        shown("billing's visit", &v, "diagnosis", DIAGNOSIS, true);
        shown("billing's visit", &v, "patient_name", NAME, false);
        let scanned = v["note"].as_str().unwrap();
        for identifier in [SSN, "9-9999", PHONE, MRN] {
            assert!(!scanned.contains(identifier), "`{identifier}` in the scanned note: {scanned}");
        }
        // billing-program-visits reveals the Part 2 note only with a consent: none is on file.
        let v = body("program visit by billing");
        shown("billing's program visit", &v, "diagnosis", DIAGNOSIS, true);
        shown("billing's program visit", &v, "program_note", PROGRAM_NOTE, false);
        // billing-claims reveals the name only.
        let c = body("claim by billing");
        shown("the claim", &c, "patient_name", NAME, true);
        shown("the claim", &c, "mrn", MRN, false);
        // research-export reveals the diagnosis only.
        let rows = body("export by researcher");
        let row = &rows[0];
        shown("the cohort", row, "diagnosis", DIAGNOSIS, true);
        shown("the cohort", row, "mrn", MRN, false);
        shown("the cohort", row, "birth_date", BIRTH, false);
        assert!(!errors.is_empty(), "some calls must have been refused");

        let table = audit_lines(server.clinic().db()).await.unwrap();
        assert!(!table.is_empty(), "the in-transaction outcomes were recorded");
        let audit_dir = server.clinic().audit_dir();
        server.stop().await.unwrap();
        let lines: Vec<String> = FileTrail::open(&audit_dir)
            .unwrap()
            .events()
            .map(|e| e.unwrap().line().to_owned())
            .collect();
        assert!(lines.len() >= 40, "the calls were recorded: {}", lines.len());
        let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(
            log_text.contains("chart MRN [MRN] loaded"),
            "the careless log line was written, scrubbed: {log_text}"
        );
        assert_clean("the file trail", &lines.join("\n"));
        assert_clean("the database's audit table", &table.join("\n"));
        assert_clean("error bodies", &errors);
        assert_clean("the logs", &log_text);
    });
}
