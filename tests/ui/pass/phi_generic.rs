//! Generic types: parameters are bounded only where a masked or recursed field uses them.
#![forbid(unsafe_code)]
#![deny(warnings)]

use std::collections::BTreeMap;
use std::marker::PhantomData;

use guardrail_core::mask::MaskingConfig;
use guardrail_core::{AuditKey, CategorySet, Masker, PhiValue, Redact};

/// No `Redact` and no `PhiValue`.
pub struct Opaque;

#[derive(guardrail_core::Phi)]
pub struct Envelope<'a, T, V, S, U, const N: usize>
where
    T: Clone,
{
    pub body: T,
    #[phi(diagnosis)]
    pub coded: Vec<V>,
    #[phi(skip)]
    pub meta: S,
    pub marker: PhantomData<U>,
    pub label: &'static str,
    pub slots: [u8; N],
    #[phi(skip)]
    pub borrowed: &'a str,
}

/// A recursive generic type: bounds on parameters, not on field types, keep this finite.
#[derive(guardrail_core::Phi)]
pub struct Tree<T> {
    #[phi(lab_result)]
    pub value: T,
    pub kids: Vec<Tree<T>>,
}

/// An associated type is bounded as a whole.
#[derive(guardrail_core::Phi)]
pub struct Batch<I: Iterator> {
    #[phi(note)]
    pub current: Option<I::Item>,
}

#[derive(guardrail_core::Phi)]
pub struct Labs {
    #[phi(lab_result)]
    pub by_test: BTreeMap<String, String>,
}

fn needs_redact<T: Redact>() {}
fn needs_phi_value<T: PhiValue>() {}

fn main() {
    // `S = Opaque` and `U = Opaque` need nothing: skip and PhantomData.
    needs_redact::<Envelope<'static, String, String, Opaque, Opaque, 2>>();
    needs_redact::<Tree<String>>();
    needs_redact::<Batch<std::vec::IntoIter<String>>>();
    needs_phi_value::<String>();

    let key = AuditKey::from_bytes(&[3; 32]).unwrap();
    let config = MaskingConfig::default();
    let masker = Masker::new(CategorySet::EMPTY, &config, &key);
    let mut t = Tree {
        value: String::from("K 5.9"),
        kids: vec![Tree {
            value: String::from("Na 121"),
            kids: vec![],
        }],
    };
    t.redact(&masker);
    assert_eq!(t.value, "[REDACTED]");
    assert_eq!(t.kids[0].value, "[REDACTED]");

    let mut e = Envelope::<String, String, Opaque, Opaque, 1> {
        body: String::from("kept"),
        coded: vec![String::from("E11.9")],
        meta: Opaque,
        marker: PhantomData,
        label: "x",
        slots: [9],
        borrowed: "b",
    };
    e.redact(&masker);
    assert_eq!(e.body, "kept");
    assert_eq!(e.coded, ["[REDACTED]"]);

    let mut labs = Labs {
        by_test: BTreeMap::from([("K".to_owned(), "5.9".to_owned())]),
    };
    labs.redact(&masker);
    assert_eq!(labs.by_test["K"], "[REDACTED]");
}
