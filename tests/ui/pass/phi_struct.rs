//! Named, tuple and unit structs; a category on a field masks it, `skip` leaves it, and an
//! unannotated field is recursed into.
#![forbid(unsafe_code)]
#![deny(warnings)]

use guardrail_core::mask::MaskingConfig;
use guardrail_core::{AuditKey, Category, CategorySet, Masker, Phi, Redact};

/// A type from elsewhere without `Redact`: fine behind `#[phi(skip)]`.
#[derive(Debug, PartialEq)]
pub struct Foreign(pub String);

#[derive(Phi, Debug)]
pub struct Patient {
    #[phi(name)]
    pub name: String,
    #[phi(ssn)]
    pub ssn: String,
    #[phi(skip)]
    pub handle: Foreign,
    pub visits: u32,
    pub address: Address,
}

#[derive(Phi, Debug)]
pub struct Address {
    #[phi(address)]
    pub street: String,
    #[phi(zip)]
    pub zip: String,
}

#[derive(Phi, Debug)]
pub struct Mrn(#[phi(mrn)] pub String, pub u8);

#[derive(Phi, Debug)]
pub struct Nothing;

fn main() {
    let key = AuditKey::from_bytes(&[1; 32]).unwrap();
    let config = MaskingConfig::default();
    let masker = Masker::new(CategorySet::EMPTY.with(Category::Zip), &config, &key);
    let mut p = Patient {
        name: "Ada Lovelace".into(),
        ssn: "123-45-6789".into(),
        handle: Foreign("ada".into()),
        visits: 3,
        address: Address {
            street: "12 Analytical Way".into(),
            zip: "02139".into(),
        },
    };
    p.redact(&masker);
    assert_eq!(p.name, "[REDACTED]");
    assert_eq!(p.ssn, "***-**-6789");
    assert_eq!(p.handle, Foreign("ada".into()));
    assert_eq!(p.visits, 3);
    assert_eq!(p.address.street, "[REDACTED]");
    assert_eq!(p.address.zip, "02139", "zip is revealed");

    let mut m = Mrn("00123456".into(), 7);
    m.redact(&masker);
    assert!(m.0.starts_with("hmac-sha256:"), "{}", m.0);
    assert_eq!(m.1, 7);

    Nothing.redact(&masker);
    let _ = Phi::new(1);
}
