//! The privacy officer's approvals page, end to end on loopback: first in a real headless
//! Chromium driven over WebDriver (a requester's call opens a request, the officer sees
//! what the grant is bound to and approves it, the retry succeeds once; the requester cannot
//! approve their own request; a forged POST is refused), then over plain HTTP (reqwest) for
//! every refusal: authentication, CSRF, the approver role, separation of duties, escaping.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use guardrail_core::ApprovalState;
use guardrail_core::audit::EventKind;
use support::webdriver::{Browser, artifacts_dir, chromedriver_or_skip};
use support::{App, PATIENT_ID, SCRIPT_ID, start};

/// The decision events the page caused for `id`: (kind, decision, principal).
fn decided(app: &App, id: &guardrail_core::ApprovalId) -> Vec<(EventKind, String, String)> {
    [EventKind::ApprovalGranted, EventKind::ApprovalRejected]
        .into_iter()
        .flat_map(|k| app.steps(id, k))
        .map(|e| {
            (
                e.record.kind,
                e.record.decision.as_deref().unwrap_or("").to_owned(),
                e.record.principal.as_deref().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// In a real browser.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_approves_in_a_headless_browser_and_the_retry_runs_once() {
    let Some(chromedriver) = chromedriver_or_skip("approvals_page::browser") else {
        return;
    };
    // `Secure` on, as in production: Chromium treats loopback as a secure context.
    let app = start(true).await;
    let browser = Browser::start(&chromedriver).await;
    let page = format!("{}/approvals", app.base);

    // dr-lee, a researcher who is also a privacy officer, asks for 50 records.
    let id = app.open_request("tok-lee", 50).await;
    let sel = |field: &str| format!("[data-request=\"{id}\"] [data-field=\"{field}\"]");

    // Not signed in: the page refuses.
    browser.goto(&page).await;
    assert!(browser.text("#refused").await.contains("Sign-in required"));

    // dr-lee signs in, sees the request (marked as their own) and tries to approve it.
    browser.add_cookie("demo_session", "tok-lee").await;
    browser.goto(&page).await;
    assert_eq!(browser.text(&sel("principal")).await, "dr-lee");
    let own = browser.text(&format!("#request-{id} .own")).await;
    assert!(own.contains("another approver"), "{own}");
    browser.click(&format!("#approve-{id}")).await;
    let refused = browser.text("#refused").await;
    assert!(
        refused.contains("cannot decide your own request"),
        "{refused}"
    );
    assert_eq!(app.state(&id), ApprovalState::Pending);

    // Officer kim signs in instead.
    browser.clear_cookies().await;
    browser.add_cookie("demo_session", "tok-kim").await;
    browser.goto(&page).await;
    assert_eq!(browser.text("#viewer").await, "po-kim");
    let csrf = browser
        .cookie(guardrail_axum::CSRF_COOKIE)
        .await
        .expect("the browser keeps the CSRF cookie");
    assert_eq!(csrf["httpOnly"], true);
    assert_eq!(csrf["sameSite"], "Strict");
    assert_eq!(csrf["secure"], true);

    // Everything the grant will be bound to, as labels and tokens.
    let request = app.guardrail.approval_request(&id).unwrap().unwrap();
    let expect = [
        ("action", "page.research.export".to_owned()),
        ("principal", "dr-lee".to_owned()),
        ("purpose", "research".to_owned()),
        ("endpoint", "system".to_owned()),
        ("rule", "research-export".to_owned()),
        ("reveal", "diagnosis".to_owned()),
        ("count", "50".to_owned()),
        (
            "subject",
            request.binding.subject.as_deref().unwrap().to_owned(),
        ),
        ("policy", request.binding.scope.policy_hash.to_string()),
        ("expires", request.expires_at.to_string()),
    ];
    for (field, value) in &expect {
        assert_eq!(&browser.text(&sel(field)).await, value, "field {field}");
    }
    assert!(
        browser
            .text(&sel("subject"))
            .await
            .starts_with("hmac-sha256:"),
        "the patient appears as a keyed token"
    );
    assert!(!browser.source().await.contains(PATIENT_ID));
    browser
        .screenshot(&artifacts_dir().join("approvals-page.png"))
        .await;

    // A forged submission: the same form without its token (as a page on another site
    // would send it) is refused, nothing changes, and the attempt is recorded.
    browser
        .execute(&format!(
            "document.querySelector('#request-{id} form input[name=csrf]').remove();"
        ))
        .await;
    browser.click(&format!("#approve-{id}")).await;
    let forged = browser.text("#refused").await;
    assert!(forged.contains("Form check failed"), "{forged}");
    assert_eq!(app.state(&id), ApprovalState::Pending);

    // The real approval.
    browser.goto(&page).await;
    browser.click(&format!("#approve-{id}")).await;
    assert_eq!(browser.text("#state").await, "granted by po-kim");
    assert!(
        matches!(app.state(&id), ApprovalState::Granted { approver, .. } if &*approver == "po-kim")
    );
    assert_eq!(
        decided(&app, &id),
        vec![
            (
                EventKind::ApprovalGranted,
                "refused".into(),
                "dr-lee".into()
            ),
            (
                EventKind::ApprovalGranted,
                "refused".into(),
                "po-kim".into()
            ),
            (
                EventKind::ApprovalGranted,
                "granted".into(),
                "po-kim".into()
            ),
        ],
        "the page records the same steps as the CLI, the refusals (the forged form's too) \
         included"
    );
    // The queue is empty now.
    browser.click("#back").await;
    assert!(browser.text("#empty").await.contains("No request"));

    // The requester's retry runs once.
    let (status, body) = app.export("tok-lee", 50, Some(&id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "50");
    let (status, body) = app.export("tok-lee", 50, Some(&id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("\"reason\":\"approval\""),
        "a used grant: {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Over plain HTTP.

#[tokio::test]
async fn without_a_principal_every_route_is_401_and_nothing_changes() {
    let app = start(false).await;
    let id = app.open_request("tok-rae", 10).await;
    let page = app.page(None, None).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.text);
    assert!(page.text.contains("Sign-in required"));
    assert_eq!(page.set_cookie, None, "no CSRF cookie for nobody");
    // A valid cookie and token of kim's do not help without kim's authentication.
    let kim = app.page(Some("tok-kim"), None).await;
    let (nonce, token) = (kim.nonce(), kim.token());
    for verb in ["approve", "reject"] {
        let a = app
            .decide(None, id.as_str(), verb, Some(&nonce), Some(&token))
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{verb}: {}", a.text);
    }
    assert_eq!(app.state(&id), ApprovalState::Pending);
    assert!(decided(&app, &id).is_empty());
}

#[tokio::test]
async fn a_post_without_the_right_csrf_token_is_refused_and_nothing_changes() {
    let app = start(false).await;
    let id = app.open_request("tok-rae", 10).await;
    let kim = app.page(Some("tok-kim"), None).await;
    assert_eq!(kim.status, StatusCode::OK, "{}", kim.text);
    let cookie = kim.set_cookie.clone().unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/approvals"), "{cookie}");
    let (nonce, token) = (kim.nonce(), kim.token());
    // dr-lee's own page gives lee a valid pair, but for lee, not for kim.
    let lee = app.page(Some("tok-lee"), None).await;
    let (lee_nonce, lee_token) = (lee.nonce(), lee.token());
    assert_ne!(lee_token, token);
    let other_nonce = "0".repeat(64);
    let forged: [(&str, Option<&str>, Option<&str>); 6] = [
        ("no token", Some(&nonce), None),
        ("no cookie", None, Some(&token)),
        ("neither", None, None),
        ("another browser's cookie", Some(&other_nonce), Some(&token)),
        (
            "another approver's pair",
            Some(&lee_nonce),
            Some(&lee_token),
        ),
        ("a garbled token", Some(&nonce), Some("zz<script>")),
    ];
    for (what, cookie, csrf) in forged {
        for verb in ["approve", "reject"] {
            let a = app
                .decide(Some("tok-kim"), id.as_str(), verb, cookie, csrf)
                .await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{what} {verb}: {}", a.text);
            assert!(a.text.contains("Form check failed"), "{what}: {}", a.text);
            assert!(!a.text.contains("zz<script>"), "the input is never echoed");
        }
    }
    assert_eq!(app.state(&id), ApprovalState::Pending);
    // Nothing was granted or rejected, and every forged attempt is in the trail: a `refused`
    // step of the request, in kim's name (the browser it came through), with the fixed
    // reason and never the forged input.
    let forged_steps: Vec<_> = [EventKind::ApprovalGranted, EventKind::ApprovalRejected]
        .into_iter()
        .flat_map(|k| app.steps(&id, k))
        .collect();
    assert_eq!(forged_steps.len(), 12, "one refused step per forged POST");
    for e in &forged_steps {
        assert_eq!(e.record.decision.as_deref(), Some("refused"));
        assert_eq!(e.record.principal.as_deref(), Some("po-kim"));
        assert_eq!(e.record.approval.as_deref(), Some(id.as_str()));
        let reason = e.record.reason.as_deref().unwrap_or("");
        assert!(reason.contains("CSRF check failed"), "{reason}");
        assert!(
            !e.line().contains("zz<script>"),
            "the input is never recorded"
        );
    }
    assert_eq!(
        forged_steps
            .iter()
            .filter(|e| e.record.kind == EventKind::ApprovalGranted)
            .count(),
        6,
        "each verb's attempts under its own step"
    );
    // kim's own pair works.
    let a = app
        .decide(
            Some("tok-kim"),
            id.as_str(),
            "reject",
            Some(&nonce),
            Some(&token),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(a.text.contains("rejected by po-kim"), "{}", a.text);
    assert_eq!(
        decided(&app, &id)
            .into_iter()
            .filter(|(_, decision, _)| decision != "refused")
            .collect::<Vec<_>>(),
        vec![(
            EventKind::ApprovalRejected,
            "rejected".into(),
            "po-kim".into()
        )]
    );
    // A rejected request stays rejected: the requester's retry is refused.
    let (status, body) = app.export("tok-rae", 10, Some(&id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn the_page_keeps_the_browsers_nonce_and_answers_with_security_headers() {
    let app = start(false).await;
    app.open_request("tok-rae", 10).await;
    let first = app.page(Some("tok-kim"), None).await;
    let nonce = first.nonce();
    let again = app.page(Some("tok-kim"), Some(&nonce)).await;
    assert_eq!(again.set_cookie, None, "a browser keeps its nonce");
    assert_eq!(
        again.token(),
        first.token(),
        "same approver, same browser, same token"
    );
    assert_eq!(
        again.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = again.csp.unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(!csp.contains("script-src"), "no script is allowed: {csp}");
}

#[tokio::test]
async fn only_approvers_see_the_queue_and_roles_are_checked_again_on_post() {
    let app = start(false).await;
    let id = app.open_request("tok-rae", 10).await;
    let clerk = app.page(Some("tok-clerk"), None).await;
    assert_eq!(clerk.status, StatusCode::FORBIDDEN, "{}", clerk.text);
    assert!(clerk.text.contains("Not an approver"));
    assert!(
        !clerk.text.contains(id.as_str()),
        "a refused page lists nothing"
    );
    // kim loads the page, then loses the role before clicking.
    let kim = app.page(Some("tok-kim"), None).await;
    let a = app
        .decide(
            Some("tok-kim-demoted"),
            id.as_str(),
            "approve",
            Some(&kim.nonce()),
            Some(&kim.token()),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert!(a.text.contains("Not an approver"), "{}", a.text);
    assert_eq!(app.state(&id), ApprovalState::Pending);
    assert_eq!(
        decided(&app, &id),
        vec![(
            EventKind::ApprovalGranted,
            "refused".into(),
            "po-kim".into()
        )],
        "the refused attempt is recorded by the approval flow"
    );
}

#[tokio::test]
async fn the_requester_cannot_decide_their_own_request() {
    let app = start(false).await;
    let id = app.open_request("tok-lee", 10).await;
    let lee = app.page(Some("tok-lee"), None).await;
    assert_eq!(lee.status, StatusCode::OK, "{}", lee.text);
    for verb in ["approve", "reject"] {
        let a = app
            .decide(
                Some("tok-lee"),
                id.as_str(),
                verb,
                Some(&lee.nonce()),
                Some(&lee.token()),
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{verb}: {}", a.text);
        assert!(a.text.contains("Separation of duties"), "{}", a.text);
    }
    assert_eq!(app.state(&id), ApprovalState::Pending);
    let (status, _) = app.export("tok-lee", 10, Some(&id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nothing was granted");
}

#[tokio::test]
async fn a_decided_unknown_or_unusable_request_is_refused_with_its_status() {
    let app = start(false).await;
    let id = app.open_request("tok-rae", 10).await;
    let kim = app.page(Some("tok-kim"), None).await;
    let (nonce, token) = (kim.nonce(), kim.token());
    let app_ref = &app;
    let post = move |id: String, verb: &'static str| {
        let (nonce, token) = (nonce.clone(), token.clone());
        async move {
            app_ref
                .decide(Some("tok-kim"), &id, verb, Some(&nonce), Some(&token))
                .await
        }
    };
    let a = post(id.to_string(), "approve").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(a.text.contains("granted by po-kim"), "{}", a.text);
    let a = post(id.to_string(), "reject").await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert!(a.text.contains("Already decided"), "{}", a.text);
    assert!(matches!(app.state(&id), ApprovalState::Granted { .. }));
    let a = post("apr-000000000000000000000000".into(), "approve").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    let a = post("apr%3Cscript%3E".into(), "approve").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(!a.text.contains("<script>"), "{}", a.text);
}

#[tokio::test]
async fn when_the_trail_cannot_record_the_step_nothing_is_granted() {
    let app = start(false).await;
    let id = app.open_request("tok-rae", 10).await;
    let kim = app.page(Some("tok-kim"), None).await;
    app.sink.fail_with(Some("disk full at /var/lib/p-4711"));
    let a = app
        .decide(
            Some("tok-kim"),
            id.as_str(),
            "approve",
            Some(&kim.nonce()),
            Some(&kim.token()),
        )
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert!(
        !a.text.contains("disk full"),
        "no inner error text: {}",
        a.text
    );
    assert_eq!(app.state(&id), ApprovalState::Pending);
}

#[tokio::test]
async fn every_value_is_escaped() {
    let app = start(false).await;
    let id = app.open_request("tok-xss", 10).await;
    let kim = app.page(Some("tok-kim"), None).await;
    assert_eq!(kim.status, StatusCode::OK, "{}", kim.text);
    assert!(kim.text.contains(id.as_str()));
    assert!(
        kim.text
            .contains("&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;"),
        "{}",
        kim.text
    );
    assert!(!kim.text.contains(SCRIPT_ID), "raw markup on the page");
    assert!(!kim.text.contains("<script"), "{}", kim.text);
    // Granting it shows the same escaped requester.
    let a = app
        .decide(
            Some("tok-kim"),
            id.as_str(),
            "approve",
            Some(&kim.nonce()),
            Some(&kim.token()),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(!a.text.contains("<script"), "{}", a.text);
    assert!(a.text.contains("&lt;script&gt;"), "{}", a.text);
}
