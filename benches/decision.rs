//! Decision and guarded-call benchmarks over the 250-action fixture policy (see `lib.rs`).
//!
//! - `decision/allow`: `Policy::decide` for an allowed call (plan and role mask cached), the
//!   owned `Decision` dropped in the loop (three `Arc<str>` reference counts up and down).
//! - `decision/allow_borrowed`: `Policy::evaluate`, the same decision borrowing from the policy.
//! - `decision/deny`: `Policy::decide` for an export over the record limit.
//! - `decision/allow_count_jurisdiction`: `Policy::evaluate` for an allowed export of 10
//!   records: a deny rule with a jurisdiction pattern is checked and passed, then the allow
//!   rule's role, endpoint, `US-*` jurisdiction, purpose and `max_count` conditions.
//! - `context/build`: a `Principal` (id, role, jurisdiction) and its `Context` (endpoint,
//!   purpose, request id), built and dropped, as a service does per request.
//! - `policy/compile_250`: parsing, validating and compiling the fixture policy (a reload).
//! - `call/guarded` vs `call/plain`: a whole guarded call (decide, decision event, body,
//!   outcome event, masking) with the memory sink, next to the same body called plainly.
//!
//! - `relations/without` vs `relations/cached`: `Policy::evaluate` of the same allowed read
//!   of one patient, under the fixture policy and under the same policy whose rule for the
//!   read also requires `relations = ["care_team", "attending"]`, the relation already
//!   looked up for the request (the memo of the `Context`): the cost of a cached relation.
//!
//! Run: `cargo bench -p guardrail-benches --bench decision`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_benches::{
    ENDPOINT, EXPORT, EXPORT_LIMIT, PURPOSE, READ, guardrail, policy, provider, researcher,
};
use guardrail_core::policy::{ContextCache, Request};
use guardrail_core::{Context, DenyReason, Endpoint, GuardError, Principal, Purpose, phi_action};

fn decisions(c: &mut Criterion) {
    let policy = policy();
    assert_eq!(policy.rules().len(), 252);
    let dr = provider();
    let cache = ContextCache::default();
    let allow = Request {
        action: &READ,
        principal: &dr,
        endpoint: Some(ENDPOINT),
        purpose: Some(PURPOSE),
        subject: None,
        count: None,
        break_glass: None,
        agent: None,
        cache: &cache,
    };
    let decision = policy.decide(&allow);
    assert!(decision.is_allowed(), "{decision:?}");

    let r = researcher();
    let research_cache = ContextCache::default();
    let deny = Request {
        action: &EXPORT,
        principal: &r,
        endpoint: Some(Endpoint::Admin),
        purpose: Some(Purpose::Operations),
        subject: None,
        count: Some(EXPORT_LIMIT + 1),
        break_glass: None,
        agent: None,
        cache: &research_cache,
    };
    let decision = policy.decide(&deny);
    assert_eq!(
        decision.reason,
        Some(DenyReason::CountOverLimit {
            count: EXPORT_LIMIT + 1,
            limit: EXPORT_LIMIT
        })
    );

    let mut group = c.benchmark_group("decision");
    group.bench_function("allow", |b| b.iter(|| policy.decide(black_box(&allow))));
    group.bench_function("allow_borrowed", |b| {
        b.iter(|| policy.evaluate(black_box(&allow)).is_allowed())
    });
    group.bench_function("deny", |b| b.iter(|| policy.decide(black_box(&deny))));
    let export_cache = ContextCache::default();
    let counted = Request {
        action: &EXPORT,
        principal: &r,
        endpoint: Some(ENDPOINT),
        purpose: Some(PURPOSE),
        subject: None,
        count: Some(10),
        break_glass: None,
        agent: None,
        cache: &export_cache,
    };
    assert!(policy.evaluate(&counted).is_allowed());
    group.bench_function("allow_count_jurisdiction", |b| {
        b.iter(|| policy.evaluate(black_box(&counted)).is_allowed())
    });
    group.finish();

    // Loading (parse, validate, compile) the whole 250-action policy, as a reload does.
    let text = guardrail_benches::policy_text();
    let mut group = c.benchmark_group("policy");
    group.bench_function("compile_250", |b| {
        b.iter(|| guardrail_core::Policy::from_toml_str(black_box(&text)))
    });
    group.finish();
}

/// The host's relationship table of the `relations` group: dr-grey attends p-100.
struct OneRelation;

impl guardrail_core::relation::Relationships for OneRelation {
    fn relations(
        &self,
        principal: &Principal,
        subject: &str,
    ) -> Result<guardrail_core::relation::Relations, guardrail_core::relation::LookupError> {
        let mut relations = guardrail_core::relation::Relations::new();
        if principal.id() == "dr-grey" && subject == "p-100" {
            relations = relations.with("attending");
        }
        Ok(relations)
    }
}

fn relations(c: &mut Criterion) {
    let plain = policy();
    let text = guardrail_benches::policy_text();
    let marker = "id = \"r07-read\"\neffect = \"allow\"\n";
    assert!(text.contains(marker));
    let related = guardrail_core::Policy::from_toml_str(&text.replace(
        marker,
        &format!("{marker}relations = [\"care_team\", \"attending\"]\n"),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let dr = provider();
    let subject: &dyn std::fmt::Display = &"p-100";
    let request = |cache| Request {
        action: &READ,
        principal: &dr,
        endpoint: Some(ENDPOINT),
        purpose: Some(PURPOSE),
        subject: Some(subject),
        count: None,
        break_glass: None,
        agent: None,
        cache,
    };
    let plain_cache = ContextCache::default();
    let without = request(&plain_cache);
    assert!(plain.evaluate(&without).is_allowed());
    let lookups =
        guardrail_core::relation::Lookups::new().relationships(std::sync::Arc::new(OneRelation));
    let related_cache = ContextCache::with_lookups(lookups);
    let cached = request(&related_cache);
    // The first decision of the request looks the relation up; the measured ones reuse it.
    let first = related.evaluate(&cached);
    assert!(first.is_allowed(), "{first:?}");
    assert_eq!(first.grounds.relation.as_deref(), Some("attending"));
    drop(first);

    let mut group = c.benchmark_group("relations");
    group.bench_function("without", |b| {
        b.iter(|| plain.evaluate(black_box(&without)).is_allowed())
    });
    group.bench_function("cached", |b| {
        b.iter(|| related.evaluate(black_box(&cached)).is_allowed())
    });
    group.finish();
}

/// The body both variants run: a little arithmetic the optimizer cannot drop.
#[inline(never)]
fn body(patient: &str) -> u64 {
    patient
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// The host's error type, as a service would have one.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "the benchmark only counts the error, never reads it"
)]
enum AppError {
    Guard(GuardError),
}

impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        AppError::Guard(e)
    }
}

/// The function without a guard.
#[inline(never)]
fn plain_update(_ctx: &Context, patient: &str) -> Result<u64, AppError> {
    Ok(body(patient))
}

/// The same function, guarded.
#[phi_action(
    kind = "update",
    roles = ["provider", "nurse"],
    resource = "r07",
    name = "bench::r07::update",
    subject = patient
)]
#[inline(never)]
fn guarded_update(ctx: &Context, patient: &str) -> Result<u64, AppError> {
    Ok(body(patient))
}

fn calls(c: &mut Criterion) {
    let (guardrail, sink) = guardrail();
    let ctx = guardrail
        .context(provider())
        .endpoint(ENDPOINT)
        .purpose(PURPOSE);
    assert!(guarded_update(&ctx, "p-100").is_ok());
    assert_eq!(sink.len(), 2, "a decision and an outcome event per call");

    let mut group = c.benchmark_group("context");
    group.bench_function("build", |b| {
        b.iter(|| {
            guardrail
                .context(
                    Principal::new(black_box("dr-grey"))
                        .role(black_box("provider"))
                        .jurisdiction(black_box("US-CA")),
                )
                .endpoint(ENDPOINT)
                .purpose(PURPOSE)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("call");
    group.bench_function("guarded", |b| {
        b.iter_custom(|iters| {
            // The memory trail is emptied every 1024 calls, inside the timing: dropping the
            // records is part of the cost, but the trail stays small and hot instead of
            // growing by gigabytes (page faults would then dominate).
            sink.clear();
            let start = Instant::now();
            for i in 0..iters {
                let _ = black_box(guarded_update(black_box(&ctx), black_box("p-100")));
                if i % 1024 == 1023 {
                    sink.clear();
                }
            }
            start.elapsed()
        })
    });
    group.bench_function("plain", |b| {
        b.iter(|| plain_update(black_box(&ctx), black_box("p-100")))
    });
    group.finish();
    sink.clear();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = decisions, relations, calls
}
criterion_main!(benches);
