//! Nesting through Option, Vec, Box, maps, tuples and `Phi<T>`.
#![forbid(unsafe_code)]
#![deny(warnings)]

use std::collections::HashMap;

use guardrail_core::mask::{MaskingConfig, Strategy};
use guardrail_core::{AuditKey, Category, CategorySet, Masker, Phi, Redact};

#[derive(guardrail_core::Phi, Debug, Clone)]
pub struct Visit {
    pub code: String,
    pub amount_cents: u64,
    #[phi(note)]
    pub note: String,
    #[phi(date)]
    pub seen: Option<String>,
    #[phi(age)]
    pub age: u8,
    #[phi(ssn)]
    pub ssn: Phi<String>,
}

#[derive(guardrail_core::Phi, Debug)]
pub struct Chart {
    pub visits: Vec<Visit>,
    pub latest: Option<Box<Visit>>,
    pub by_code: HashMap<String, Visit>,
    pub pair: (Visit, u32),
}

fn main() {
    let key = AuditKey::from_bytes(&[4; 32]).unwrap();
    let mut config = MaskingConfig::default();
    config.set(Category::Note, Strategy::Scan);
    let visit = Visit {
        code: "99213".into(),
        amount_cents: 12_500,
        note: "called 617-555-0142 on 03/14/2024".into(),
        seen: Some("2024-03-14".into()),
        age: 93,
        ssn: Phi::new("123-45-6789".into()),
    };
    let mut chart = Chart {
        visits: vec![visit.clone()],
        latest: Some(Box::new(visit.clone())),
        by_code: HashMap::from([("99213".to_owned(), visit.clone())]),
        pair: (visit, 1),
    };
    chart.redact(&Masker::new(
        CategorySet::EMPTY.with(Category::Ssn),
        &config,
        &key,
    ));
    let all = [
        &chart.visits[0],
        chart.latest.as_deref().unwrap(),
        &chart.by_code["99213"],
        &chart.pair.0,
    ];
    for v in all {
        assert_eq!(v.code, "99213");
        assert_eq!(v.amount_cents, 12_500);
        assert_eq!(v.note, "called [PHONE] on [DATE]");
        assert_eq!(v.seen.as_deref(), Some("2024"));
        assert_eq!(v.age, 90);
        assert_eq!(v.ssn.expose(), "123-45-6789", "ssn is revealed");
    }
}
