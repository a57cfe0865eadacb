//! The approval suite of `approvals.rs`, against a real PostgreSQL server: every replica is
//! its own [`PgApprovalStore`] (worker thread, connection pool) on a shared table.
//!
//! Needs `GUARDRAIL_TEST_DATABASE_URL`: without it every test here fails under CI (`CI` set)
//! and otherwise skips with a notice on the terminal (`guardrail_tests::pg`).

#[macro_use]
mod approval_suite;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use approval_suite::Backend;
use guardrail_core::{ApprovalError, ApprovalStore, PgApprovalStore, PgApprovalStoreOptions};

static TABLES: AtomicU32 = AtomicU32::new(0);

/// A fresh table per test (unique per process and test), dropped at the end.
struct Pg {
    url: String,
    table: Mutex<Option<String>>,
    tables: Mutex<Vec<String>>,
}

impl Pg {
    /// The backend for `test`; `None` (with a notice) without a database outside CI.
    fn new(test: &str) -> Option<Pg> {
        Some(Pg {
            url: guardrail_tests::pg::database_url(test)?,
            table: Mutex::new(None),
            tables: Mutex::new(Vec::new()),
        })
    }

    fn connect(&self, table: &str) -> PgApprovalStore {
        PgApprovalStore::connect(&self.url, PgApprovalStoreOptions::new().table(table))
            .expect("connect to the test database")
    }
}

impl Backend for Pg {
    type Store = PgApprovalStore;

    fn store(&self) -> PgApprovalStore {
        let table = format!(
            "guardrail_apr_test_{}_{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::SeqCst)
        );
        let store = self.connect(&table);
        store.ensure_schema().expect("create the approvals table");
        // Idempotent: a second replica starting up runs it again.
        store.ensure_schema().expect("ensure_schema twice");
        *self.table.lock().unwrap() = Some(table.clone());
        self.tables.lock().unwrap().push(table);
        store
    }

    fn replica(&self) -> PgApprovalStore {
        let table = self.table.lock().unwrap().clone().expect("store() first");
        self.connect(&table)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let tables = std::mem::take(&mut *self.tables.lock().unwrap());
        if tables.is_empty() {
            return;
        }
        let url = self.url.clone();
        // On a thread of its own: the test may be running inside a tokio runtime.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                for t in tables {
                    sqlx::query(&format!("DROP TABLE IF EXISTS {t}"))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                }
            });
        });
        cleanup.join().unwrap();
    }
}

approval_suite!(Pg::new);

#[test]
fn invalid_table_names_are_refused_before_connecting() {
    for bad in ["approvals; DROP TABLE x", "Approvals", "a.b.c", "", "1x"] {
        let err = PgApprovalStore::connect(
            "postgres://127.0.0.1:1/none",
            PgApprovalStoreOptions::new().table(bad),
        )
        .unwrap_err();
        assert!(
            matches!(&err, ApprovalError::Store(m) if m.contains("invalid approval table name")),
            "{bad}: {err}"
        );
    }
}

#[test]
fn an_unreachable_database_is_an_error_not_a_hang() {
    // Port 1 on loopback refuses connections.
    let err = PgApprovalStore::connect(
        "postgres://postgres@127.0.0.1:1/none",
        PgApprovalStoreOptions::new().timeout(std::time::Duration::from_secs(3)),
    )
    .unwrap_err();
    assert!(matches!(err, ApprovalError::Store(_)), "{err}");
}

#[test]
fn a_missing_table_fails_closed() {
    let Some(url) = guardrail_tests::pg::database_url("a_missing_table_fails_closed") else {
        return;
    };
    let store = PgApprovalStore::connect(
        &url,
        PgApprovalStoreOptions::new().table("guardrail_apr_never_created"),
    )
    .unwrap();
    let err = store.pending().unwrap_err();
    assert!(matches!(err, ApprovalError::Store(_)), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_store_is_usable_from_inside_a_current_thread_runtime() {
    // A guarded call on a current-thread runtime calls the synchronous store; a store that
    // did `block_on` on the caller's runtime would panic or deadlock here.
    let Some(backend) = Pg::new("the_store_is_usable_from_inside_a_current_thread_runtime") else {
        return;
    };
    let clock = guardrail_core::ManualClock::at_unix_secs(1_800_000_000);
    let r = approval_suite::replica(backend.store(), &clock);
    let other = approval_suite::replica(backend.replica(), &clock);
    let ana = approval_suite::analyst("ana");
    let req = approval_suite::request(&r, &ana, "p-1", 150);
    other
        .guardrail
        .approve(&approval_suite::officer("olga"), &req.id)
        .unwrap();
    tokio::task::yield_now().await;
    let ran = std::sync::atomic::AtomicUsize::new(0);
    let ctx = r.guardrail.context(ana).approval(req.id.clone());
    assert_eq!(approval_suite::export(&ctx, "p-1", 150, &ran).unwrap(), 150);
    assert_eq!(r.guardrail.approval_store().pending().unwrap(), 0);
}
