//! What the unguarded-access layers cost.
//!
//! - `tripwire/enter_leave`: the marker a guarded call sets around its body and clears after
//!   (`Call::enter`, what `#[phi_action]` expands to), the whole per-call cost of the
//!   tripwire on a synchronous call.
//! - `tripwire/require_guarded`: one `require_guarded(&[Diagnosis])` inside the call.
//! - `sqlite/prepare_plain` vs `sqlite/prepare_enforced`: preparing a query of two PHI
//!   columns and one other, without and with the authorizer (inside a guarded call that
//!   declared both categories, so it is allowed).
//!
//! Run: `cargo bench -p guardrail-benches --bench tripwire`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use guardrail_benches::{READ, guardrail, provider};
use guardrail_core::__private::{CountArg, begin};
use guardrail_core::audit::sql::sqlite::rusqlite::Connection;
use guardrail_core::policy::Schema;
use guardrail_core::{Category, require_guarded};

fn tripwire(c: &mut Criterion) {
    let (guardrail, sink) = guardrail();
    let ctx = guardrail
        .context(provider())
        .endpoint(guardrail_benches::ENDPOINT)
        .purpose(guardrail_benches::PURPOSE);
    let call = match begin(&READ, &ctx, None, CountArg::Absent, &[]) {
        Ok(call) => call,
        Err(e) => panic!("the fixture read is allowed: {e}"),
    };
    let mut group = c.benchmark_group("tripwire");
    group.bench_function("enter_leave", |b| {
        b.iter(|| {
            let scope = black_box(&call).enter();
            drop(black_box(scope));
        })
    });
    {
        let _inside = call.enter();
        group.bench_function("require_guarded", |b| {
            b.iter(|| require_guarded(black_box(&[Category::Diagnosis])).is_ok())
        });
    }
    group.finish();

    let plain = database();
    let enforced = database();
    let schema = Schema::default()
        .with_column("patients", "name", Category::Name)
        .with_column("patients", "diagnosis", Category::Diagnosis);
    guardrail_core::sqlite::enforce(&enforced, &schema);
    const SQL: &str = "SELECT name, diagnosis, room FROM patients WHERE id = ?1";
    let _inside = call.enter();
    let mut group = c.benchmark_group("sqlite");
    group.bench_function("prepare_plain", |b| {
        b.iter(|| plain.prepare(black_box(SQL)).map(|s| s.column_count()))
    });
    group.bench_function("prepare_enforced", |b| {
        b.iter(|| enforced.prepare(black_box(SQL)).map(|s| s.column_count()))
    });
    group.finish();
    sink.clear();
}

fn database() -> Connection {
    let conn = match Connection::open_in_memory() {
        Ok(c) => c,
        Err(e) => panic!("in-memory database: {e}"),
    };
    if let Err(e) = conn.execute_batch(
        "CREATE TABLE patients (id TEXT PRIMARY KEY, name TEXT, diagnosis TEXT, room INTEGER)",
    ) {
        panic!("schema: {e}");
    }
    conn
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = tripwire
}
criterion_main!(benches);
