//! The PHI category names `#[phi(..)]` and `phi = [..]` accept: exactly
//! `guardrail_core::Category::NAMES`, in the same order. Part of [`crate::vocabulary`] (which
//! declares this file with `#[path]`): the array stays in this file because
//! `tests/masking.rs` reads it; `tests/vocabulary.rs` compares it through
//! `guardrail_macros::__category_names!()`. A proc-macro crate cannot depend on
//! `guardrail_core`, hence the copy.

/// Every category name, as `guardrail_core::Category::NAMES`.
pub(crate) const NAMES: &[&str] = &[
    "name",
    "address",
    "zip",
    "date",
    "birth_date",
    "age",
    "phone",
    "fax",
    "email",
    "ssn",
    "mrn",
    "health_plan",
    "account",
    "license",
    "vehicle",
    "device",
    "url",
    "ip",
    "biometric",
    "photo",
    "other_id",
    "diagnosis",
    "medication",
    "lab_result",
    "note",
    "substance_use",
    "psychotherapy_note",
    "hiv_status",
    "reproductive_health",
];
