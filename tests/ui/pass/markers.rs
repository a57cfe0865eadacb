//! `#[phi_exempt]` and `#[phi_source]` expand to the item unchanged: functions, methods and
//! async functions keep working, with no warning.
#![deny(warnings)]

use guardrail_core::prelude::*;

#[phi_source]
fn load_diagnosis(id: u32) -> String {
    format!("dx-{id}")
}

#[phi_exempt(reason = "counts only, no identifiers leave the process")]
fn count_charts(ids: &[u32]) -> usize {
    ids.iter().map(|id| load_diagnosis(*id)).count()
}

struct Repo;

impl Repo {
    #[phi_source]
    fn chart(&self) -> &'static str {
        "chart"
    }

    #[phi_exempt(reason = "internal health check",)]
    async fn ping(&self) -> usize {
        self.chart().len()
    }
}

fn main() {
    assert_eq!(count_charts(&[1, 2]), 2);
    let _ = Repo.ping();
}
