//! Enums with unit, tuple and struct variants, and an empty enum.
#![forbid(unsafe_code)]
#![deny(warnings)]

use guardrail_core::mask::MaskingConfig;
use guardrail_core::{AuditKey, CategorySet, Masker, Redact};

#[derive(guardrail_core::Phi, Debug, PartialEq)]
pub enum Contact {
    None,
    Phone(#[phi(phone)] String, #[phi(skip)] String),
    Email {
        #[phi(email)]
        address: String,
        verified: bool,
    },
    Both(Box<Contact>, Vec<Contact>),
}

#[derive(guardrail_core::Phi)]
pub enum Never {}

fn main() {
    let key = AuditKey::from_bytes(&[2; 32]).unwrap();
    let config = MaskingConfig::default();
    let masker = Masker::new(CategorySet::EMPTY, &config, &key);

    let mut c = Contact::Both(
        Box::new(Contact::Phone("617-555-0142".into(), "mobile".into())),
        vec![
            Contact::Email {
                address: "ada@example.org".into(),
                verified: true,
            },
            Contact::None,
        ],
    );
    c.redact(&masker);
    assert_eq!(
        c,
        Contact::Both(
            Box::new(Contact::Phone("***-***-0142".into(), "mobile".into())),
            vec![
                Contact::Email {
                    address: "[REDACTED]".into(),
                    verified: true
                },
                Contact::None,
            ],
        )
    );
    let _ = |n: &mut Never| n.redact(&masker);
}
