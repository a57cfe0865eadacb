//! The clinic server over HTTP on loopback, with a real client (reqwest), against SQLite
//! always and PostgreSQL when `GUARDRAIL_TEST_DATABASE_URL` is set: every route × principal
//! × endpoint (allowed, or refused with its status and code), the masked bodies, each kind
//! of denial by its reason code, the approval flow, break-glass, forced rollbacks, and after
//! each run the agreement check between committed changes and `ok` outcomes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod support;

use guardrail_core::audit::{EventKind, Outcome};
use guardrail_core::{ApprovalId, Principal};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Harness, on_each_backend};

/// The seeded values of p-100 that some role must never see.
const SSN: &str = "512-44-8231";
const NAME: &str = "Alice Moreno";
const MRN: &str = "MRN 0048213";
const BIRTH: &str = "1961-07-14";
const PHONE: &str = "555-0142";
const DIAGNOSIS: &str = "Type 2 diabetes mellitus";
/// p-100's program note (Part 2; p-100 gave no consent) and p-200's (consent names billing).
const PROGRAM_100: &str = "Alcohol use disorder";
const PROGRAM_200: &str = "buprenorphine 8 mg daily";

const PRINCIPALS: [&str; 8] = [
    "dr-grey",
    "dr-hale",
    "dr-ruiz",
    "clerk-ito",
    "user-alice",
    "res-kim",
    "adm-ray",
    "po-lee",
];
const ENDPOINTS: [&str; 4] = ["provider", "patient", "admin", "system"];

/// One route of the clinic, with a request body where it takes one.
#[derive(Clone, Copy, Debug)]
enum Route {
    Chart,
    Diagnosis,
    Visit,
    ProgramVisit,
    Claim,
    Delete,
    Export,
}

impl Route {
    const ALL: [Route; 7] = [
        Route::Chart,
        Route::Visit,
        Route::ProgramVisit,
        Route::Claim,
        Route::Export,
        // After the reads, which check the seeded diagnosis.
        Route::Diagnosis,
        // Last: the one allowed deletion removes p-200.
        Route::Delete,
    ];

    fn request(self) -> (Method, &'static str, Option<serde_json::Value>) {
        match self {
            Route::Chart => (Method::GET, "/patients/p-100/chart", None),
            Route::Diagnosis => (
                Method::PUT,
                "/patients/p-100/diagnosis",
                Some(json!({ "diagnosis": "Type 2 diabetes, controlled" })),
            ),
            Route::Visit => (Method::GET, "/patients/p-100/visit", None),
            Route::ProgramVisit => (Method::GET, "/patients/p-100/program-visit", None),
            Route::Claim => (Method::POST, "/patients/p-100/claim", None),
            Route::Delete => (Method::DELETE, "/patients/p-200", None),
            Route::Export => (
                Method::POST,
                "/cohorts/export",
                Some(json!({ "patient_ids": ["p-100"] })),
            ),
        }
    }

    /// The one (principal, endpoint) pair per route the clinic's policy allows (with each
    /// principal's own purpose): written out here, independently of the policy file.
    fn allowed(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Route::Chart => &[("dr-grey", "provider"), ("user-alice", "patient")],
            Route::Diagnosis => &[("dr-grey", "provider")],
            Route::Visit | Route::ProgramVisit | Route::Claim => &[("clerk-ito", "admin")],
            Route::Delete => &[("adm-ray", "admin")],
            Route::Export => &[("res-kim", "system")],
        }
    }
}

/// Asserts what an allowed body shows and hides, per route and principal.
fn assert_masked(route: Route, who: &str, text: &str) {
    let shows = |raw: &str, must: bool| {
        assert_eq!(
            text.contains(raw),
            must,
            "{route:?} by {who}: `{raw}` must {}be in the body: {text}",
            if must { "" } else { "not " }
        );
    };
    match (route, who) {
        // providers-treat reveals everything.
        (Route::Chart, "dr-grey") => {
            shows(SSN, true);
            shows(NAME, true);
        }
        // patients-own-chart: all but the SSN.
        (Route::Chart, _) => {
            shows(SSN, false);
            shows(NAME, true);
            shows(MRN, true);
        }
        // billing-visits: the diagnosis only; the note is scanned.
        (Route::Visit, _) => {
            shows(DIAGNOSIS, true);
            shows(NAME, false);
            shows(PHONE, false);
            assert!(text.contains("\"icd10\":\"E11.9\""), "{text}");
        }
        // billing-program-visits: the diagnosis; the Part 2 note needs a consent p-100 never
        // gave.
        (Route::ProgramVisit, _) => {
            shows(DIAGNOSIS, true);
            shows(PROGRAM_100, false);
        }
        // billing-claims: the name, not the record number.
        (Route::Claim, _) => {
            shows(NAME, true);
            shows(MRN, false);
        }
        // research-export: the diagnosis; record number tokenized, birth date generalized.
        (Route::Export, _) => {
            shows(DIAGNOSIS, true);
            shows(MRN, false);
            shows(BIRTH, false);
        }
        (Route::Diagnosis | Route::Delete, _) => assert!(text.is_empty(), "{text}"),
    }
}

#[test]
fn every_route_role_and_endpoint_is_decided_by_the_policy() {
    on_each_backend("every_route_role_and_endpoint", |backend, url| async move {
        let h = Harness::start(backend, url.as_deref()).await;
        let mut allowed = 0;
        for route in Route::ALL {
            for who in PRINCIPALS {
                for endpoint in ENDPOINTS {
                    let (method, path, body) = route.request();
                    let r = h
                        .send(method, &format!("/{endpoint}{path}"), Some(who), &[], body)
                        .await;
                    let expect = route.allowed().contains(&(who, endpoint));
                    if expect {
                        allowed += 1;
                        assert!(
                            r.status.is_success(),
                            "{backend:?} {route:?} by {who} at {endpoint}: {} {}",
                            r.status,
                            r.text
                        );
                        assert_masked(route, who, &r.text);
                    } else {
                        assert_eq!(
                            r.status,
                            StatusCode::FORBIDDEN,
                            "{backend:?} {route:?} by {who} at {endpoint}: {}",
                            r.text
                        );
                        let (error, reason) = r.refusal();
                        assert_eq!(error, "denied", "{}", r.text);
                        assert!(!reason.is_empty(), "a denial names its reason: {}", r.text);
                    }
                    // No seeded identifier in any refusal.
                    if !r.status.is_success() {
                        for raw in [SSN, NAME, MRN, BIRTH, PHONE, DIAGNOSIS, "p-100", "p-200"] {
                            assert!(!r.text.contains(raw), "`{raw}` in a refusal: {}", r.text);
                        }
                    }
                }
            }
        }
        assert_eq!(allowed, 8);
        assert_eq!(
            h.diagnosis("p-100").await.as_deref(),
            Some("Type 2 diabetes, controlled")
        );
        assert_eq!(
            h.diagnosis("p-200").await,
            None,
            "the admin's deletion committed"
        );
        // Every decision of the run is in the durable trail, under the client's request id.
        let decisions = h
            .file_events()
            .into_iter()
            .filter(|e| e.record.kind == EventKind::Decision)
            .count();
        assert_eq!(
            decisions,
            Route::ALL.len() * PRINCIPALS.len() * ENDPOINTS.len()
        );
        assert_eq!(h.finish().await, 2, "two changes committed");
    });
}

/// What is tried, the path, who, extra headers, and the reason code expected.
type DenialCase<'a> = (
    &'a str,
    String,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    &'a str,
);

#[test]
fn each_denial_answers_403_with_its_reason_code() {
    on_each_backend("each_denial_answers_403", |backend, url| async move {
        let h = Harness::start(backend, url.as_deref()).await;
        let chart = |p: &str| format!("/provider/patients/{p}/chart");
        let cases: Vec<DenialCase<'_>> = vec![
            (
                "billing is not a provider",
                chart("p-100"),
                Some("clerk-ito"),
                vec![],
                "role",
            ),
            (
                "a provider through the portal",
                "/patient/patients/p-100/chart".into(),
                Some("dr-grey"),
                vec![("x-purpose-of-use", "treatment")],
                "endpoint",
            ),
            (
                "licensed in another state",
                chart("p-100"),
                Some("dr-ruiz"),
                vec![],
                "jurisdiction",
            ),
            (
                "not on the patient's care team",
                chart("p-100"),
                Some("dr-hale"),
                vec![],
                "no_relationship",
            ),
            (
                "operations is not treatment",
                chart("p-100"),
                Some("dr-grey"),
                vec![("x-purpose-of-use", "operations")],
                "purpose",
            ),
            (
                "another patient's chart",
                "/patient/patients/p-200/chart".into(),
                Some("user-alice"),
                vec![],
                "not_own_subject",
            ),
            (
                "deleting from the portal",
                "/patient/patients/p-100".into(),
                Some("adm-ray"),
                vec![],
                "deny_rule",
            ),
        ];
        for (what, path, who, headers, code) in cases {
            let method = if what.starts_with("deleting") {
                Method::DELETE
            } else {
                Method::GET
            };
            let r = h.send(method, &path, who, &headers, None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text);
            assert_eq!(
                r.refusal(),
                (String::from("denied"), code.to_owned()),
                "{what}: {}",
                r.text
            );
        }
        // Over the export limit (1,000).
        let ids: Vec<String> = (0..1500).map(|i| format!("p-{i}")).collect();
        let r = h
            .send(
                Method::POST,
                "/system/cohorts/export",
                Some("res-kim"),
                &[],
                Some(json!({ "patient_ids": ids })),
            )
            .await;
        assert_eq!(
            r.refusal(),
            (String::from("denied"), String::from("count")),
            "{}",
            r.text
        );

        // Not the policy's refusals: authentication and headers.
        let r = h.send(Method::GET, &chart("p-100"), None, &[], None).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
        );
        let r = h
            .send(
                Method::GET,
                &chart("p-100"),
                None,
                &[("authorization", "Bearer demo-nobody")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        let r = h
            .send(
                Method::GET,
                &chart("p-100"),
                Some("dr-grey"),
                &[("x-purpose-of-use", "golf")],
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.body["header"].as_str()),
            (StatusCode::BAD_REQUEST, Some("x-purpose-of-use")),
            "{}",
            r.text
        );
        // A context without a purpose is refused before the policy allows anything.
        let r = h
            .client
            .get(format!("{}{}", h.server.url(), chart("p-100")))
            .bearer_auth("demo-dr-grey")
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_client_error(), "{status} {text}");
        assert!(!text.contains(SSN), "{text}");
        h.finish().await;
    });
}

#[test]
fn a_large_export_waits_for_a_privacy_officer_and_the_grant_opens_it_once() {
    on_each_backend("approval_flow", |backend, url| async move {
        let h = Harness::start(backend, url.as_deref()).await;
        let ids: Vec<&str> = (0..150)
            .map(|i| if i % 2 == 0 { "p-100" } else { "p-200" })
            .collect();
        let body = json!({ "patient_ids": ids });
        let export = |headers: Vec<(&'static str, String)>| {
            let h = &h;
            let body = body.clone();
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                h.send(
                    Method::POST,
                    "/system/cohorts/export",
                    Some("res-kim"),
                    &headers,
                    Some(body),
                )
                .await
            }
        };
        let first = export(vec![]).await;
        assert_eq!(first.status, StatusCode::FORBIDDEN, "{}", first.text);
        assert_eq!(first.body["error"], "approval_required", "{}", first.text);
        let id = first.body["approval_id"].as_str().unwrap().to_owned();

        // Not yet granted: the id does not open the call.
        let early = export(vec![("x-approval-id", id.clone())]).await;
        assert_eq!(early.status, StatusCode::FORBIDDEN, "{}", early.text);
        // The privacy officer's page lists the request with what the grant is bound to; the
        // requester may not see it, and nobody unauthenticated.
        let page = h
            .send(Method::GET, "/approvals", Some("po-lee"), &[], None)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert!(page.text.contains(&id), "{}", page.text);
        assert!(page.text.contains("research"), "{}", page.text);
        assert!(
            !page.text.contains(MRN) && !page.text.contains(BIRTH),
            "{}",
            page.text
        );
        let requester = h
            .send(Method::GET, "/approvals", Some("res-kim"), &[], None)
            .await;
        assert_eq!(
            requester.status,
            StatusCode::FORBIDDEN,
            "{}",
            requester.text
        );
        let anonymous = h.send(Method::GET, "/approvals", None, &[], None).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{}",
            anonymous.text
        );
        // Only the policy's approver role approves: not the researcher; the privacy officer does.
        let g = h.clinic().guardrail();
        let approval = ApprovalId::new(&id);
        assert!(
            g.approve(&Principal::new("res-kim").role("researcher"), &approval)
                .is_err()
        );
        g.approve(&Principal::new("po-lee").role("privacy_officer"), &approval)
            .unwrap();

        let granted = export(vec![("x-approval-id", id.clone())]).await;
        assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
        let rows = granted.body.as_array().unwrap();
        assert_eq!(rows.len(), 150);
        assert!(
            !granted.text.contains(MRN) && !granted.text.contains(BIRTH),
            "{}",
            granted.text
        );
        let again = export(vec![("x-approval-id", id.clone())]).await;
        assert_eq!(
            again.status,
            StatusCode::FORBIDDEN,
            "a grant opens one call: {}",
            again.text
        );

        let kinds: Vec<EventKind> = h.file_events().iter().map(|e| e.record.kind).collect();
        assert!(kinds.contains(&EventKind::ApprovalGranted), "{kinds:?}");
        assert!(kinds.contains(&EventKind::ApprovalConsumed), "{kinds:?}");
        h.finish().await;
    });
}

#[test]
fn break_glass_opens_an_emergency_read_alerts_and_opens_nothing_else() {
    on_each_backend("break_glass", |backend, url| async move {
        let h = Harness::start(backend, url.as_deref()).await;
        // The reason quotes an identifier: it is recorded scrubbed.
        let reason = "unconscious patient, SSN 623-10-4417 on the wristband";
        let glass = [("x-break-glass", reason)];
        let r = h
            .send(
                Method::GET,
                "/provider/patients/p-200/chart",
                Some("dr-hale"),
                &glass,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.text.contains("Bruno Okafor"), "{}", r.text);
        let emergency_read = r.request_id.clone();

        for (what, method, path, who) in [
            (
                "delete under break-glass",
                Method::DELETE,
                "/admin/patients/p-200",
                "dr-hale",
            ),
            (
                "billing declares an emergency",
                Method::GET,
                "/provider/patients/p-200/chart",
                "clerk-ito",
            ),
            (
                "an update is not a read",
                Method::PUT,
                "/provider/patients/p-200/diagnosis",
                "dr-hale",
            ),
        ] {
            let body = (method == Method::PUT).then(|| json!({ "diagnosis": "x" }));
            let r = h.send(method, path, Some(who), &glass, body).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text);
            assert_eq!(r.body["error"], "denied", "{what}: {}", r.text);
        }
        let r = h
            .send(
                Method::GET,
                "/provider/patients/p-200/chart",
                Some("dr-hale"),
                &[("x-break-glass", " ")],
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.body["header"].as_str()),
            (StatusCode::BAD_REQUEST, Some("x-break-glass")),
            "{}",
            r.text
        );

        let events = h.file_events();
        let decision = events
            .iter()
            .find(|e| {
                e.record.kind == EventKind::Decision
                    && e.record.request_id.as_deref() == Some(emergency_read.as_str())
            })
            .unwrap();
        assert!(decision.record.break_glass);
        let recorded = decision.record.detail.get("break_glass_reason").unwrap();
        assert!(recorded.contains("unconscious"), "{recorded}");
        let all: String = events.iter().map(|e| e.line().to_owned()).collect();
        assert!(!all.contains("623-10-4417"), "the reason was scrubbed");
        h.clinic().guardrail().flush_alerts();
        let alerts = h.clinic().alerts().alerts();
        assert!(
            alerts.iter().any(|a| a.kind.as_str() == "break_glass"),
            "{alerts:?}"
        );
        h.finish().await;
    });
}

#[test]
fn a_handler_error_after_the_write_rolls_back_the_change_and_its_outcome() {
    on_each_backend("forced_rollback", |backend, url| async move {
        let h = Harness::start(backend, url.as_deref()).await;
        // The change log refuses a detail over 200 characters after the UPDATE ran.
        let long = "x".repeat(300);
        let r = h
            .send(
                Method::PUT,
                "/provider/patients/p-100/diagnosis",
                Some("dr-grey"),
                &[],
                Some(json!({ "diagnosis": long })),
            )
            .await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("constraint")),
            "{}",
            r.text
        );
        assert_eq!(
            h.diagnosis("p-100").await.as_deref(),
            Some(DIAGNOSIS),
            "the UPDATE rolled back"
        );
        let failed = r.request_id.clone();
        // Deleting a record that does not exist: the visits DELETE ran, then not found.
        let r = h
            .send(
                Method::DELETE,
                "/admin/patients/p-404",
                Some("adm-ray"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let missing = r.request_id.clone();
        // A change that commits, for contrast.
        let r = h
            .send(
                Method::PUT,
                "/provider/patients/p-100/diagnosis",
                Some("dr-grey"),
                &[],
                Some(json!({ "diagnosis": "controlled" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

        assert!(h.table_events().await.iter().all(|e| {
            let rid = e.record.request_id.as_deref();
            rid != Some(failed.as_str()) && rid != Some(missing.as_str())
        }));
        // Their `error` outcomes are in the durable trail.
        for rid in [&failed, &missing] {
            let outcome = h
                .file_events()
                .into_iter()
                .find(|e| {
                    e.record.kind == EventKind::Outcome
                        && e.record.request_id.as_deref() == Some(rid.as_str())
                })
                .unwrap_or_else(|| panic!("no outcome for `{rid}`"));
            assert_eq!(outcome.record.outcome, Some(Outcome::Error));
        }
        assert_eq!(h.finish().await, 1);
    });
}

#[test]
fn metrics_are_served_as_prometheus_text() {
    on_each_backend("metrics", |backend, url| async move {
        if backend != support::Backend::Sqlite {
            return;
        }
        let h = Harness::start(backend, url.as_deref()).await;
        h.send(
            Method::GET,
            "/provider/patients/p-100/chart",
            Some("dr-grey"),
            &[],
            None,
        )
        .await;
        let r = h.send(Method::GET, "/metrics", None, &[], None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("guardrail_decisions_total"), "{}", r.text);
        assert!(!r.text.contains("p-100"), "{}", r.text);
        h.finish().await;
    });
}

/// The decision event of the request `rid`.
fn decision_of(h: &Harness, rid: &str) -> guardrail_core::audit::AuditEvent {
    h.file_events()
        .into_iter()
        .find(|e| {
            e.record.kind == EventKind::Decision && e.record.request_id.as_deref() == Some(rid)
        })
        .unwrap_or_else(|| panic!("no decision for `{rid}`"))
}

#[test]
fn care_teams_and_part2_consents_come_from_the_clinics_tables() {
    on_each_backend("care_teams_and_consents", |backend, url| async move {
        let h = Harness::start(backend, url.as_deref()).await;
        // dr-grey treats p-100 (care team) and p-200 (attending): the decision says which.
        for (patient, relation) in [("p-100", "care_team"), ("p-200", "attending")] {
            let r = h
                .send(
                    Method::GET,
                    &format!("/provider/patients/{patient}/chart"),
                    Some("dr-grey"),
                    &[],
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let d = decision_of(&h, &r.request_id);
            assert_eq!(
                d.record.detail.get("relation").map(String::as_str),
                Some(relation)
            );
        }
        // dr-hale, licensed in the same state, treats neither.
        let r = h
            .send(
                Method::GET,
                "/provider/patients/p-200/chart",
                Some("dr-hale"),
                &[],
                None,
            )
            .await;
        assert_eq!(
            r.refusal(),
            (String::from("denied"), String::from("no_relationship")),
            "{}",
            r.text
        );
        // A care-team row added while the server runs counts from the next request on.
        h.execute(
            "INSERT INTO care_team (clinician, patient_id, relation)
             VALUES ('dr-hale', 'p-200', 'care_team')",
        )
        .await;
        let r = h
            .send(
                Method::GET,
                "/provider/patients/p-200/chart",
                Some("dr-hale"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        // Part 2: p-100 gave no consent, so billing's view withholds the program note and
        // the decision says why; p-200's consent names billing.
        let r = h
            .send(
                Method::GET,
                "/admin/patients/p-100/program-visit",
                Some("clerk-ito"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(!r.text.contains(PROGRAM_100), "{}", r.text);
        assert!(r.text.contains(DIAGNOSIS), "{}", r.text);
        let d = decision_of(&h, &r.request_id);
        assert_eq!(
            d.record.detail.get("consent_missing").map(String::as_str),
            Some("part2")
        );
        assert_eq!(
            d.record.detail.get("withheld").map(String::as_str),
            Some("substance_use")
        );
        let r = h
            .send(
                Method::GET,
                "/admin/patients/p-200/program-visit",
                Some("clerk-ito"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.text.contains(PROGRAM_200), "{}", r.text);
        let d = decision_of(&h, &r.request_id);
        assert_eq!(d.record.detail.get("consent_missing"), None);
        // No program note reaches the trail.
        let all: String = h
            .file_events()
            .iter()
            .map(|e| e.line().to_owned())
            .collect();
        assert!(!all.contains(PROGRAM_100) && !all.contains(PROGRAM_200));
        h.finish().await;
    });
}

#[test]
fn a_directory_that_cannot_answer_denies_and_the_denial_is_recorded() {
    on_each_backend("directory_fails_closed", |backend, url| async move {
        let h = Harness::start(backend, url.as_deref()).await;
        h.execute("DROP TABLE care_team").await;
        let r = h
            .send(
                Method::GET,
                "/provider/patients/p-100/chart",
                Some("dr-grey"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(
            r.refusal(),
            (String::from("denied"), String::from("lookup")),
            "{}",
            r.text
        );
        assert!(
            !r.text.contains(SSN) && !r.text.contains("p-100"),
            "{}",
            r.text
        );
        // Break-glass does not open a lookup that failed.
        let r = h
            .send(
                Method::GET,
                "/provider/patients/p-100/chart",
                Some("dr-grey"),
                &[("x-break-glass", "patient crashing")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        let d = decision_of(&h, &r.request_id);
        assert_eq!(
            d.record.reason.as_deref(),
            Some("the `relationships` lookup gave no answer (failed); failing closed"),
            "{}",
            d.line()
        );
        assert!(!d.record.break_glass, "{}", d.line());
        h.finish().await;
    });
}
