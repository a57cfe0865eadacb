//! The SQLite authorizer (`guardrail_core::sqlite::enforce`): PHI columns are readable only
//! inside a guarded call, and only the categories the call declared; refusals are recorded.

use std::sync::{LazyLock, Mutex, MutexGuard};

use guardrail_core::audit::EventKind;
use guardrail_core::audit::sql::sqlite::rusqlite::Connection;
use guardrail_core::policy::Schema;
use guardrail_core::prelude::*;

struct Fixture {
    guardrail: Guardrail,
    sink: MemorySink,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let sink = MemorySink::new();
    let guardrail = Guardrail::builder()
        .policy(
            Policy::from_toml_str(
                "version = \"1\"\n[[rule]]\nid = \"p\"\neffect = \"allow\"\nactions = [\"db::*\"]\nroles = [\"provider\"]\n",
            )
            .unwrap(),
        )
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"sqlite-enforce-key-0123").unwrap())
        .build()
        .unwrap();
    guardrail.install_tripwire();
    Fixture { guardrail, sink }
});

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE patients (id TEXT PRIMARY KEY, ssn TEXT, diagnosis TEXT, room INTEGER);
         INSERT INTO patients VALUES ('p-100', '123-45-6789', 'E11.9', 7);
         CREATE TABLE wards (name TEXT); INSERT INTO wards VALUES ('north');",
    )
    .unwrap();
    let schema = Schema::default()
        .with_column("patients", "ssn", Category::Ssn)
        .with_column("patients", "diagnosis", Category::Diagnosis);
    guardrail_core::sqlite::enforce(&conn, &schema);
    conn
}

fn refusals() -> usize {
    FIXTURE
        .sink
        .events()
        .iter()
        .filter(|e| e.record.kind == EventKind::UnguardedAccess)
        .count()
}

#[derive(Debug)]
enum AppError {
    #[expect(dead_code, reason = "the tests only tell the variants apart")]
    Guard(GuardError),
    Db(String),
}
impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        AppError::Guard(e)
    }
}

#[phi_action(kind = "read", role = "provider", phi = ["diagnosis"], name = "db::diagnosis")]
fn read_diagnosis(ctx: &Context, conn: &Connection, sql: &str) -> Result<String, AppError> {
    conn.query_row(sql, [], |r| r.get::<_, String>(0))
        .map_err(|e| AppError::Db(e.to_string()))
}

fn ctx() -> Context {
    FIXTURE
        .guardrail
        .context(Principal::new("dr-grey").role("provider"))
}

#[test]
fn an_unguarded_query_of_a_phi_column_is_refused_and_recorded() {
    let _turn = serial();
    let conn = db();
    let before = refusals();
    let err = conn
        .query_row("SELECT diagnosis FROM patients", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("patients.diagnosis"),
        "the error names the column: {err}"
    );
    assert_eq!(refusals(), before + 1);
    // Tables and columns without PHI stay open.
    let ward: String = conn
        .query_row("SELECT name FROM wards", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ward, "north");
    let room: i64 = conn
        .query_row("SELECT room FROM patients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(room, 7);
    // Writing PHI outside a call is refused too.
    assert!(
        conn.execute("UPDATE patients SET ssn = 'x'", []).is_err(),
        "an unguarded update of a PHI column"
    );
    assert!(conn.execute("DELETE FROM patients", []).is_err());
}

#[test]
fn a_guarded_call_reads_only_what_it_declared() {
    let _turn = serial();
    let conn = db();
    let dx = read_diagnosis(&ctx(), &conn, "SELECT diagnosis FROM patients").unwrap();
    assert_eq!(dx, "E11.9");
    let before = refusals();
    let err = read_diagnosis(&ctx(), &conn, "SELECT * FROM patients").unwrap_err();
    match err {
        AppError::Db(message) => assert!(message.contains("patients.ssn"), "{message}"),
        other => panic!("expected the database to refuse: {other:?}"),
    }
    assert_eq!(refusals(), before + 1);
    let refusal = FIXTURE
        .sink
        .events()
        .into_iter()
        .rev()
        .find(|e| e.record.kind == EventKind::UnguardedAccess)
        .unwrap();
    assert_eq!(refusal.record.action.as_deref(), Some("db::diagnosis"));
    assert_eq!(
        refusal.record.detail.get("category").map(String::as_str),
        Some("ssn")
    );
}
