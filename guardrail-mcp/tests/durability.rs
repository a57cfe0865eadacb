//! An async tool call awaits the trail's durability instead of waiting for it on the thread:
//! the events are queued in the sink and the call goes on only once the sink says they are
//! durable. The sink here never lets anything wait on a thread (its `append` and its
//! blocking `wait` panic) and makes events durable only when the test says so.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use guardrail_core::audit::{
    AuditError, AuditSink, Durable, EventKind, Pending, Receipt, Record, Submitted,
};
use guardrail_core::prelude::*;
use guardrail_core::{AgentId, AuditKey};
use guardrail_mcp::{
    Catalogue, GuardedServer, RESULT_DIGEST, Session, SessionConfig, Tool, ToolError,
};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use serde_json::{Map, Value, json};

const POLICY: &str = r#"
version = "mcp-durability-1"

[[rule]]
id = "read"
effect = "allow"
actions = ["mcp_durability.read"]
roles = ["provider"]
"#;

#[phi_action(kind = "read", role = "provider", name = "mcp_durability.read", subject = id)]
async fn read(ctx: &Context, id: &str) -> Result<String, GuardError> {
    Ok(format!("note of {id}: SSN 123-45-6789"))
}

fn catalogue() -> Catalogue {
    Catalogue::new().tool(Tool::new_async(
        "read_note",
        "mcp_durability.read",
        "read a note",
        |ctx, args| async move {
            let id = args
                .get("patient_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            Ok(json!(read(&ctx, &id).await?))
        },
    ))
}

#[derive(Debug, Default)]
struct GateState {
    submitted: Vec<Record>,
    /// Events `0..durable` are durable.
    durable: usize,
    /// Every event not yet durable fails.
    failed: bool,
    wakers: Vec<Waker>,
}

/// A sink whose events become durable only when [`Gate::open`] says so.
#[derive(Debug, Clone, Default)]
struct Gate(Arc<Mutex<GateState>>);

impl Gate {
    fn open(&self, durable: usize) {
        let mut s = self.0.lock().unwrap();
        s.durable = durable;
        s.wakers.drain(..).for_each(Waker::wake);
    }

    fn fail(&self) {
        let mut s = self.0.lock().unwrap();
        s.failed = true;
        s.wakers.drain(..).for_each(Waker::wake);
    }

    fn submitted(&self) -> Vec<Record> {
        self.0.lock().unwrap().submitted.clone()
    }
}

#[derive(Debug)]
struct Event {
    gate: Gate,
    seq: usize,
}

impl Durable for Event {
    fn poll_durable(&self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), AuditError>> {
        let mut s = self.gate.0.lock().unwrap();
        if self.seq < s.durable {
            Poll::Ready(Ok(()))
        } else if s.failed {
            Poll::Ready(Err(AuditError::Io(std::io::Error::other(
                "the disk is gone",
            ))))
        } else {
            s.wakers.push(cx.waker().clone());
            Poll::Pending
        }
    }

    fn wait(&self) -> Result<(), AuditError> {
        panic!("a thread waited for durability");
    }
}

impl AuditSink for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    fn append(&self, _record: Record) -> Result<Receipt, AuditError> {
        panic!("a thread appended and waited for durability");
    }

    fn submit(&self, record: Record) -> Result<Submitted, AuditError> {
        let mut s = self.0.lock().unwrap();
        let seq = s.submitted.len();
        s.submitted.push(record);
        Ok(Submitted {
            receipt: Receipt { seq: seq as u64 },
            pending: Some(Pending::new(Event {
                gate: self.clone(),
                seq,
            })),
        })
    }
}

fn guardrail(sink: impl AuditSink + 'static) -> Guardrail {
    Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink)
        .audit_key(AuditKey::from_bytes(b"mcp-durability-key-0123456789ab").unwrap())
        .build()
        .unwrap()
}

fn session(g: &Guardrail) -> Session {
    let config = SessionConfig::new(Principal::new("dr-grey").role("provider"));
    Session::open(g, &catalogue(), config, AgentId::new("test-agent"))
}

fn args() -> Map<String, Value> {
    json!({"patient_id": "p-7"}).as_object().cloned().unwrap()
}

/// Lets every other task on this (current-thread) runtime run until it waits.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_tool_waits_for_its_decision_and_its_outcome_to_be_durable() {
    let gate = Gate::default();
    let session = session(&guardrail(gate.clone()));
    let id = session.id().to_owned();
    let running = session.clone();
    let call = tokio::spawn(async move { running.call_async("read_note", &args(), None).await });

    settle().await;
    // The decision is queued, not durable: the body has not run, nothing is delivered.
    assert!(!call.is_finished());
    assert_eq!(gate.submitted().len(), 1);
    assert_eq!(gate.submitted()[0].kind, EventKind::Decision);

    gate.open(1);
    settle().await;
    // The body ran and the outcome is queued with the digest, but is not durable yet.
    assert!(!call.is_finished());
    let events = gate.submitted();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, EventKind::Outcome);

    gate.open(2);
    let delivered = call.await.unwrap().unwrap();
    assert!(
        !delivered.text().contains("123-45-6789"),
        "{}",
        delivered.text()
    );
    assert_eq!(
        events[1].detail.get(RESULT_DIGEST).map(String::as_str),
        Some(delivered.digest())
    );
    assert_eq!(
        guardrail_mcp::result_digest(delivered.text()),
        delivered.digest()
    );
    for e in &events {
        assert_eq!(e.session.as_deref(), Some(&*id));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_result_whose_outcome_cannot_be_made_durable_is_withheld() {
    let gate = Gate::default();
    let session = session(&guardrail(gate.clone()));
    let running = session.clone();
    let call = tokio::spawn(async move { running.call_async("read_note", &args(), None).await });
    settle().await;
    gate.open(1);
    settle().await;
    assert_eq!(gate.submitted().len(), 2);
    gate.fail();
    let refused = call.await.unwrap().unwrap_err();
    assert_eq!(
        refused,
        ToolError::Failed("the audit trail is unavailable".into())
    );
}

#[test]
fn a_sync_call_refuses_an_async_tool_before_anything_is_decided() {
    let sink = MemorySink::new();
    let session = session(&guardrail(sink.clone()));
    let refused = session.call("read_note", &args(), None).unwrap_err();
    assert!(matches!(refused, ToolError::Failed(_)), "{refused:?}");
    assert!(sink.events().is_empty());
}

#[tokio::test]
async fn the_server_runs_async_tools_and_records_what_it_delivered() {
    let sink = MemorySink::new();
    let g = guardrail(sink.clone());
    let config = SessionConfig::new(Principal::new("dr-grey").role("provider"));
    let server = GuardedServer::new(g, catalogue(), config);
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("test-agent", "1"),
    )
    .serve(client_io)
    .await
    .unwrap();
    let r = client
        .call_tool(CallToolRequestParams::new("read_note").with_arguments(args()))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false), "{r:?}");
    let text = r.content[0].as_text().unwrap().text.clone();
    assert!(!text.contains("123-45-6789"), "{text}");
    let events = sink.events();
    let outcome = events
        .iter()
        .find(|e| e.record.kind == EventKind::Outcome)
        .unwrap();
    assert_eq!(
        outcome.record.detail.get(RESULT_DIGEST),
        Some(&guardrail_mcp::result_digest(&text))
    );
    let _ = client.cancel().await;
}
