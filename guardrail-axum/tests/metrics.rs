//! `/metrics` serves the installed recorder's Prometheus text, guardrail's counters included.

use axum::Router;
use guardrail_core::prelude::*;
use metrics_exporter_prometheus::PrometheusBuilder;

#[phi_action(name = "metrics.chart.read", kind = "read", role = "provider")]
fn read(ctx: &Context) -> Result<(), GuardError> {
    Ok(())
}

#[tokio::test]
async fn metrics_route_serves_prometheus_text() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    guardrail_core::telemetry::describe();
    let policy = Policy::from_toml_str(
        "version = \"m\"\n[[rule]]\nid = \"p\"\neffect = \"allow\"\nactions = [\"metrics.*\"]\nroles = [\"provider\"]\n",
    )
    .expect("policy");
    let guardrail = Guardrail::builder()
        .policy(policy)
        .audit(MemorySink::new())
        .audit_key(AuditKey::from_bytes(b"metrics-test-key-0123456789").expect("key"))
        .build()
        .expect("guardrail");
    read(&guardrail.context(Principal::new("dr-grey").role("provider"))).expect("allowed");
    read(&guardrail.context(Principal::new("eve").role("billing"))).expect_err("denied");

    let app: Router = guardrail_axum::metrics_router(handle);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.expect("body");
    assert!(text.contains("# HELP guardrail_decisions_total"), "{text}");
    assert!(
        text.contains(r#"guardrail_decisions_total{action="metrics.chart.read",result="allow"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"guardrail_decisions_total{action="metrics.chart.read",result="deny"} 1"#),
        "{text}"
    );
}
