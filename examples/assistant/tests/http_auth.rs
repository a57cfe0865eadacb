//! Streamable HTTP authenticates every request by its bearer token (the server's
//! configuration maps each token to a person): without a known token nothing reaches the
//! MCP service (401, fail closed); each person gets their own session; a session never
//! changes hands, even to a request authenticated as someone else.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod support;

use std::net::SocketAddr;

use assistant::serve::{HttpServer, Server, Tokens};
use assistant::{Db, catalogue, clinician_session, guardrail, session_for};
use guardrail_core::Principal;
use guardrail_core::audit::{EventKind, FileSink};
use serde_json::json;
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const GREY: &str = "token-of-dr-grey-0123456789";
const BLUE: &str = "token-of-dr-blue-9876543210";

struct Setup {
    dir: tempfile::TempDir,
    server: Server,
    http: HttpServer,
    sink: Arc<FileSink>,
}

async fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (g, sink) = guardrail(&dir.path().join("trail"), None, None).unwrap();
    let db = Db::demo().unwrap();
    let tokens = Tokens::new().token(GREY, clinician_session()).token(
        BLUE,
        session_for(Principal::new("dr-blue").role("provider")),
    );
    let server = Server::new(g, catalogue(&db), clinician_session()).tokens(tokens);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = server.serve_http(listener).unwrap();
    Setup {
        dir,
        server,
        http,
        sink,
    }
}

impl Setup {
    fn addr(&self) -> SocketAddr {
        self.http
            .url()
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .parse()
            .unwrap()
    }

    async fn stop(self) -> Vec<guardrail_core::audit::AuditEvent> {
        self.http.shutdown().await.unwrap();
        self.sink.close().unwrap();
        support::read_trail(&self.dir.path().join("trail"))
    }
}

/// One HTTP/1.1 POST to `/mcp` over a fresh loopback connection: status, headers (lower-case
/// names) and body.
async fn post(
    addr: SocketAddr,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> (u16, Vec<(String, String)>, String) {
    let body = body.to_string();
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        addr.port(),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("the server did not answer in time")
    .unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn initialize() -> serde_json::Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw-client", "version": "1"}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_known_bearer_token_is_refused_with_401() {
    let s = start().await;
    let addr = s.addr();
    for auth in [
        None,
        Some("Bearer token-nobody-was-given-00000".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {GREY}")),
        Some(format!("Bearer {GREY}x")),
    ] {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let (status, headers, body) = post(addr, &headers, &initialize()).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert!(
            headers
                .iter()
                .any(|(n, v)| n == "www-authenticate" && v == "Bearer"),
            "{headers:?}"
        );
        assert!(!body.contains("mcp-session-id") && !body.contains("serverInfo"));
    }
    // The real rmcp client cannot even open a session without a known token.
    assert!(
        support::connect(&s.http.url(), None, "no-token")
            .await
            .is_err()
    );
    assert!(
        support::connect(&s.http.url(), Some("token-nobody-was-given-00000"), "x")
            .await
            .is_err()
    );
    assert!(s.server.session_ids().is_empty());
    // With the token, the same client works.
    let client = support::connect(&s.http.url(), Some(GREY), "with-token")
        .await
        .unwrap();
    let o = assistant::agent::call(client.peer(), "read_chart", json!({"patient_id": "p-1"}))
        .await
        .unwrap();
    assert!(!o.is_error, "{}", o.text);
    let _ = client.cancel().await;
    let events = s.stop().await;
    // Only the authenticated call reached a tool.
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.record.principal.as_deref() == Some("dr-grey"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_is_its_own_person_and_session() {
    let s = start().await;
    let grey = support::connect(&s.http.url(), Some(GREY), "assistant-a")
        .await
        .unwrap();
    let blue = support::connect(&s.http.url(), Some(BLUE), "assistant-b")
        .await
        .unwrap();
    for (client, patient) in [(&grey, "p-1"), (&blue, "p-2"), (&grey, "p-3")] {
        let o = assistant::agent::call(client.peer(), "read_chart", json!({"patient_id": patient}))
            .await
            .unwrap();
        assert!(!o.is_error, "{}", o.text);
    }
    let _ = grey.cancel().await;
    let _ = blue.cancel().await;
    let ids = s.server.session_ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let events = s.stop().await;
    let who: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.record.kind == EventKind::Decision)
        .map(|e| {
            (
                e.record.principal.as_deref().unwrap(),
                e.record.session.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("dr-grey", ids[0].as_str()),
            ("dr-blue", ids[1].as_str()),
            ("dr-grey", ids[0].as_str()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_refuses_a_request_authenticated_as_another_person() {
    let s = start().await;
    let addr = s.addr();
    let grey = format!("Bearer {GREY}");
    let blue = format!("Bearer {BLUE}");
    // Dr. Grey opens a session.
    let (status, headers, body) = post(addr, &[("Authorization", &grey)], &initialize()).await;
    assert_eq!(status, 200, "{body}");
    let session = headers
        .iter()
        .find(|(n, _)| n == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .expect("a session id");
    let in_session = |auth: &str| {
        vec![
            ("Authorization", auth.to_owned()),
            ("Mcp-Session-Id", session.clone()),
            ("MCP-Protocol-Version", "2025-11-25".to_owned()),
        ]
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let h = in_session(&grey);
    let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, _, body) = post(addr, &h, &initialized).await;
    assert!(status == 202 || status == 200, "{status}: {body}");
    let call = |id: u64| {
        json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "read_chart", "arguments": {"patient_id": "p-1"}}
        })
    };
    // Dr. Blue, with a valid token of their own, presents Dr. Grey's session: refused.
    let h = in_session(&blue);
    let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (_, _, body) = post(addr, &h, &call(2)).await;
    assert!(body.contains("another person"), "{body}");
    assert!(!body.contains("Ada Hale"), "{body}");
    // Dr. Grey's own request in the same session works.
    let h = in_session(&grey);
    let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, _, body) = post(addr, &h, &call(3)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Ada Hale"), "{body}");
    let events = s.stop().await;
    // One call ran, Dr. Grey's; Dr. Blue's never reached the guard.
    let principals: Vec<&str> = events
        .iter()
        .map(|e| e.record.principal.as_deref().unwrap())
        .collect();
    assert_eq!(principals, ["dr-grey", "dr-grey"]);
}
