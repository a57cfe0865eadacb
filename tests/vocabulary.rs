//! The proc-macro crate cannot depend on `guardrail_core`, so it keeps copies of the action
//! kinds and PHI category names; these tests fail when a copy drifts from core's enums.

use guardrail_core::{ActionKind, Category};

#[test]
fn macro_action_kinds_are_core_action_kinds_in_order() {
    let macro_kinds: &[&str] = guardrail_core::__private::__action_kinds!();
    let core_kinds: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(macro_kinds, core_kinds.as_slice());
}

#[test]
fn macro_category_names_are_core_category_names_in_order() {
    let macro_names: &[&str] = guardrail_core::__private::__category_names!();
    assert_eq!(macro_names, Category::NAMES);
}
