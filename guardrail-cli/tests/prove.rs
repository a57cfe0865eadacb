//! `guardrail audit verify postgres://…` over many chains and tree heads, `guardrail audit
//! prove` and `guardrail audit verify-proof`: a bundle verifies offline, one altered byte of
//! an event or a proof exits 1, another key exits 2. PostgreSQL when
//! `GUARDRAIL_TEST_DATABASE_URL` is set.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::path::Path;
use std::process::{Command, Output};

use guardrail_audit::merkle::ChainId;
use guardrail_audit::sql::postgres::{ChainWriter, ensure_schema, sqlx, tree_checkpoint};
use guardrail_audit::sql::{AsyncTxAppend, AuditTable};
use guardrail_audit::{CheckpointSigner, EventKind, Record, Timestamp};

#[path = "../../tests/support/pg.rs"]
#[allow(unreachable_pub, dead_code)]
mod pg;

const SECRET: [u8; 32] = [5; 32];
const SUBJECT: &str =
    "hmac-sha256:0000000000000000000000000000000000000000000000000000000000000abc";

fn key_file(dir: &Path, secret: &[u8]) -> String {
    let path = dir.join(format!("key-{}", secret[0]));
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, format!("hmac-sha256:{hex}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

fn guardrail(args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn record(i: u64, subject: bool) -> Record {
    let mut r = Record::at(
        EventKind::Decision,
        Timestamp(1_793_491_200_000_000_000 + i),
    );
    r.action = Some("clinic::read_chart".into());
    r.request_id = Some(format!("req-{i}").into());
    if subject {
        r.subject = Some(SUBJECT.into());
    }
    r
}

/// Flips one character inside the `n`th occurrence of `needle`'s value in `text`.
fn alter_after(text: &str, needle: &str, skip: usize) -> String {
    let at = text.find(needle).unwrap() + needle.len() + skip;
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_bundle_verifies_offline_and_one_altered_byte_exits_1() {
    let Some(url) = pg::database_url("a_bundle_verifies_offline_and_one_altered_byte_exits_1")
    else {
        return;
    };
    let name = format!("cli_prove_{}", std::process::id());
    let table = AuditTable::new(&name).unwrap();
    let signer = CheckpointSigner::hmac_sha256(&SECRET).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        ensure_schema(&pool, &table).await.unwrap();
        for chain in ["r1", "r2", "r3"] {
            let w = ChainWriter::new(table.clone(), ChainId::new(chain).unwrap());
            for i in 0..5u64 {
                let mut tx = pool.begin().await.unwrap();
                w.on(&mut tx)
                    .append_in_tx(record(i, chain == "r2" || i == 0))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            tree_checkpoint(&pool, &table, &signer)
                .await
                .unwrap()
                .unwrap();
        }
        pool
    });
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &SECRET);
    let other = key_file(dir.path(), &[6; 32]);
    let bundle = dir.path().join("bundle.json");
    let bundle_s = bundle.to_str().unwrap();

    let (code, out, err) = guardrail(&[
        "audit",
        "verify",
        &url,
        "--table",
        &name,
        "--checkpoint-key",
        &key,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        // Three writers and the (empty) default chain.
        out.contains("4 chain(s) with 15 events") && out.contains("3 signed tree head(s)"),
        "{out}"
    );

    let (code, _, err) = guardrail(&[
        "audit",
        "prove",
        "--subject",
        SUBJECT,
        "--checkpoint-key",
        &key,
        "--table",
        &name,
        "--out",
        bundle_s,
        &url,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("7 event(s) proven"), "{err}");
    let (code, out, err) =
        guardrail(&["audit", "verify-proof", bundle_s, "--checkpoint-key", &key]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: 7 event(s)") && out.contains("size 15"),
        "{out}"
    );

    let original = std::fs::read_to_string(&bundle).unwrap();
    // One byte of an event (a digit of its time), then one of a proof hash.
    for altered in [
        alter_after(&original, "\"line\": \"{\\\"seq\\\":", 0),
        alter_after(&original, "\"proof\": [\n        \"", 5),
        alter_after(&original, "\"leaf_index\": ", 0),
    ] {
        assert_ne!(altered, original);
        std::fs::write(&bundle, &altered).unwrap();
        let (code, _, err) =
            guardrail(&["audit", "verify-proof", bundle_s, "--checkpoint-key", &key]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("tampering detected"), "{err}");
    }
    std::fs::write(&bundle, &original).unwrap();
    let (code, _, err) = guardrail(&[
        "audit",
        "verify-proof",
        bundle_s,
        "--checkpoint-key",
        &other,
    ]);
    assert_eq!(code, 2, "{err}");

    // A chain's tail cut and its head moved back: exit 1 naming chain, seq and tree size.
    rt.block_on(async {
        let hash: String = sqlx::query_scalar(&format!(
            "SELECT hash FROM {name} WHERE chain = 'r2' AND seq = 2"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        sqlx::raw_sql(&format!(
            "DELETE FROM {name} WHERE chain = 'r2' AND seq > 2;
             UPDATE {name}_chains SET next_seq = 3, head = '{hash}' WHERE chain = 'r2';"
        ))
        .execute(&pool)
        .await
        .unwrap();
    });
    let (code, _, err) = guardrail(&[
        "audit",
        "verify",
        &url,
        "--table",
        &name,
        "--checkpoint-key",
        &key,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("chain `r2` ends before seq 3") && err.contains("size 10"),
        "{err}"
    );
    rt.block_on(async {
        sqlx::raw_sql(&format!(
            "DROP TABLE {name}, {name}_head, {name}_checkpoint, {name}_chains, {name}_tree"
        ))
        .execute(&pool)
        .await
        .unwrap();
    });
}
