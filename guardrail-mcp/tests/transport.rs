//! The real rmcp client talking to [`GuardedServer`] over an in-process duplex transport.

#![allow(clippy::unwrap_used, missing_docs)]

use guardrail_core::audit::EventKind;
use guardrail_core::prelude::*;
use guardrail_core::{AuditKey, Endpoint, Purpose};
use guardrail_mcp::{APPROVAL_ARGUMENT, Catalogue, GuardedServer, SessionConfig, Tool};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use serde_json::{Value, json};

const POLICY: &str = r#"
version = "mcp-transport-1"

[approval]
approver_roles = ["privacy_officer"]

[[rule]]
id = "read-via-assistant"
effect = "allow"
actions = ["mcp_transport.read"]
roles = ["provider"]
agents = ["clinic-assistant"]

[[rule]]
id = "export-approved"
effect = "allow"
actions = ["mcp_transport.export"]
roles = ["provider"]
approval = "always"
"#;

#[phi_action(kind = "read", role = "provider", name = "mcp_transport.read", subject = id)]
fn read(ctx: &Context, id: &str) -> Result<String, GuardError> {
    Ok(format!("{id}: SSN 123-45-6789"))
}

#[phi_action(kind = "export", role = "provider", name = "mcp_transport.export")]
fn export(ctx: &Context) -> Result<u64, GuardError> {
    Ok(2)
}

fn text(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_rmcp_client_sees_only_offered_tools_scrubbed_results_and_approval_ids() {
    let sink = MemorySink::new();
    let g = Guardrail::builder()
        .policy(Policy::from_toml_str(POLICY).unwrap())
        .audit(sink.clone())
        .audit_key(AuditKey::from_bytes(b"mcp-transport-key-0123456789abc").unwrap())
        .build()
        .unwrap();
    let catalogue = Catalogue::new()
        .tool(Tool::new(
            "read_chart",
            "mcp_transport.read",
            "read",
            |ctx, a| {
                let id = a.get("patient_id").and_then(Value::as_str).unwrap_or("");
                Ok(json!(read(ctx, id)?))
            },
        ))
        .tool(Tool::new(
            "export_cohort",
            "mcp_transport.export",
            "export",
            |ctx, _| Ok(json!(export(ctx)?)),
        ));
    let config = SessionConfig {
        principal: Principal::new("dr-grey").role("provider"),
        endpoint: Some(Endpoint::Provider),
        purpose: Some(Purpose::Treatment),
        agent: None,
        break_glass: None,
    };
    let server = GuardedServer::new(g.clone(), catalogue, config);
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let served = server.clone();
    tokio::spawn(async move {
        if let Ok(running) = served.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("clinic-assistant", "0.1"),
    )
    .serve(client_io)
    .await
    .unwrap();

    let tools = client.list_tools(None).await.unwrap();
    let names: Vec<&str> = tools.tools.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["read_chart", "export_cohort"]);

    let args = json!({"patient_id": "p-100", "purpose": "research", "role": "admin"});
    let r = client
        .call_tool(
            CallToolRequestParams::new("read_chart")
                .with_arguments(args.as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false));
    assert!(!text(&r).contains("123-45-6789"), "{}", text(&r));

    let r = client
        .call_tool(CallToolRequestParams::new("export_cohort"))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let message = text(&r);
    let id = message.split('`').nth(1).unwrap().to_owned();
    g.approve(
        &Principal::new("po-1").role("privacy_officer"),
        &guardrail_core::approval::ApprovalId::new(&id),
    )
    .unwrap();
    let retry = json!({ APPROVAL_ARGUMENT: id });
    let r = client
        .call_tool(
            CallToolRequestParams::new("export_cohort")
                .with_arguments(retry.as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(text(&r), "2");

    let session = server.session_id().unwrap().to_owned();
    let calls: Vec<_> = sink
        .events()
        .into_iter()
        .filter(|e| matches!(e.record.kind, EventKind::Decision | EventKind::Outcome))
        .collect();
    // read: decision + outcome; export: approval decision; retry: decision + outcome.
    assert_eq!(calls.len(), 5);
    for e in &calls {
        assert_eq!(e.record.session.as_deref(), Some(&*session));
        assert_eq!(e.record.via.as_deref(), Some("clinic-assistant/0.1"));
    }
    let _ = client.cancel().await;
}
