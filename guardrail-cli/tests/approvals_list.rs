//! `guardrail approvals list --db URL`: the pending requests of a PostgreSQL approval store,
//! oldest first, with what each grant would be bound to, escaped; decided and expired ones
//! left out. Needs `GUARDRAIL_TEST_DATABASE_URL` (skips with a notice outside CI).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::process::{Command, Output};
use std::sync::Arc;

use guardrail_audit::sql::postgres::sqlx;
use guardrail_core::approval::{ApprovalBinding, CallScope};
use guardrail_core::audit::Timestamp;
use guardrail_core::{
    ApprovalId, ApprovalRequest, ApprovalState, ApprovalStore, PgApprovalStore,
    PgApprovalStoreOptions,
};

#[path = "../../tests/support/pg.rs"]
#[allow(unreachable_pub, dead_code)]
mod pg;

fn guardrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const SECOND: u64 = 1_000_000_000;

/// A pending request made `ago` seconds before now, expiring `ttl` seconds after it was made.
fn request(id: &str, principal: &str, ago: u64, ttl: u64) -> ApprovalRequest {
    let now = Timestamp::now().0;
    let at = now - ago * SECOND;
    let action: Arc<str> = Arc::from("clinic.export_cohort");
    ApprovalRequest {
        id: ApprovalId::new(id),
        action: action.clone(),
        binding: ApprovalBinding {
            action,
            principal: Arc::from(principal),
            subject: Some(Arc::from("hmac-sha256:5eed")),
            count: Some(150),
            scope: CallScope {
                purpose: Some(Arc::from("research")),
                endpoint: Some(Arc::from("system")),
                agent: None,
                session: None,
                rule: Some(Arc::from("research-export")),
                reveal: Arc::from("diagnosis"),
                arguments: Some(Arc::from("hmac-sha256:a4f0")),
                policy_hash: Arc::from("c0ffee00"),
            },
        },
        requested_at: Timestamp(at),
        expires_at: Timestamp(at + ttl * SECOND),
        state: ApprovalState::Pending,
    }
}

#[test]
fn list_shows_pending_requests_oldest_first_with_their_binding() {
    let Some(url) = pg::database_url("list_shows_pending_requests_oldest_first_with_their_binding")
    else {
        return;
    };
    let table = format!("cli_approvals_list_{}", std::process::id());
    let store =
        PgApprovalStore::connect(&url, PgApprovalStoreOptions::new().table(&table)).unwrap();
    store.ensure_schema().unwrap();
    let args = ["approvals", "list", "--db", &url, "--table", &table];

    let (code, out, err) = text(&guardrail(&args));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no pending approval request"), "{out}");

    // Two pending (the older by a requester whose id holds an escape sequence), one
    // expired, one decided.
    let newer = request("apr-newer", "rae", 10, 900);
    let older = request("apr-older", "eve\u{1b}[2J", 20, 900);
    let expired = request("apr-expired", "rae", 1000, 900);
    let decided = request("apr-decided", "rae", 30, 900);
    for r in [&newer, &older, &expired, &decided] {
        store.insert(r).unwrap();
    }
    store
        .settle(&decided.id, "po-kim", true, Timestamp::now())
        .unwrap();

    let (code, out, err) = text(&guardrail(&args));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("2 pending approval request(s)"), "{out}");
    let (older_at, newer_at) = (
        out.find("request apr-older: pending").unwrap(),
        out.find("request apr-newer: pending").unwrap(),
    );
    assert!(older_at < newer_at, "oldest first: {out}");
    assert!(
        !out.contains("apr-expired") && !out.contains("apr-decided"),
        "{out}"
    );
    for bound in [
        "action: clinic.export_cohort",
        "purpose: research",
        "endpoint: system",
        "rule: research-export",
        "reveals: diagnosis",
        "patient (token): hmac-sha256:5eed",
        "records: 150",
        "recorded arguments: hmac-sha256:a4f0",
        "policy sha256: c0ffee00",
    ] {
        assert_eq!(out.matches(bound).count(), 2, "`{bound}` in {out}");
    }
    assert!(
        out.contains("requested by: eve\\u{1b}[2J"),
        "escaped: {out}"
    );
    assert!(!out.contains('\u{1b}'), "a raw escape reached the terminal");
    assert!(!out.contains(&url), "the URL is echoed: {out}");

    let (code, out, err) = text(&guardrail(&[
        "approvals",
        "list",
        "--db",
        &url,
        "--table",
        &table,
        "--limit",
        "1",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("apr-older") && !out.contains("apr-newer"),
        "{out}"
    );
    assert!(out.contains("raise --limit"), "{out}");

    let (code, _, _) = text(&guardrail(&[
        "approvals",
        "list",
        "--db",
        &url,
        "--table",
        &table,
        "--limit",
        "0",
    ]));
    assert_eq!(code, 2, "a zero limit is a usage error");

    drop(store);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(&pool)
            .await
            .unwrap();
    });
}

#[test]
fn list_fails_closed_on_an_unreachable_store() {
    let (code, out, err) = text(&guardrail(&[
        "approvals",
        "list",
        "--db",
        "postgres://u:s3cret@127.0.0.1:1/none",
    ]));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.is_empty(),
        "an unreachable store is not an empty queue: {out}"
    );
    assert!(err.contains("approval store"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}
