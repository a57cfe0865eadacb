//! Who may see this patient: the host's answers about a principal and a patient, which the
//! policy decides on (`relations = [..]`, `vip`, `restricted`, `consent = [..]`, and
//! `self_only` for personal representatives).
//!
//! Owns the provider traits the host implements ([`Relationships`], [`Consents`], and their
//! async forms for sqlx hosts), the answers ([`Relations`], [`PatientFlags`],
//! [`ConsentSet`]), the closed vocabulary of consents ([`Consent`], each guarding sensitive
//! PHI categories) and the per-request memo of the answers ([`Lookups`], held by each
//! `Context`).
//! May use: model. Nothing above it (the policy asks through the memo).
//!
//! A lookup is made at most once per request per (principal, subject): a `Context` has one
//! principal and memoizes each subject's answers, failures included, so every decision of
//! one request sees the same answers. A failed lookup denies (fails closed), and the denial
//! names the provider, never the host's error text (which may carry PHI).
//!
//! ```
//! use guardrail_core::relation::{LookupError, PatientFlags, Relations, Relationships};
//! use guardrail_core::Principal;
//!
//! struct CareTeams;
//! impl Relationships for CareTeams {
//!     fn relations(&self, principal: &Principal, subject: &str) -> Result<Relations, LookupError> {
//!         Ok(match (principal.id(), subject) {
//!             ("dr-grey", "p-100") => Relations::new().with(Relations::CARE_TEAM),
//!             _ => Relations::new(),
//!         })
//!     }
//!     fn patient(&self, subject: &str) -> Result<PatientFlags, LookupError> {
//!         Ok(if subject == "p-900" { PatientFlags::new().vip() } else { PatientFlags::new() })
//!     }
//! }
//! ```

mod cache;

pub use cache::Lookups;
pub(crate) use cache::{LookupFailure, display_equals};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use crate::model::{Category, CategorySet, Principal, UnknownName};

/// A future returned by the async providers.
pub type LookupFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LookupError>> + Send + 'a>>;

/// Why the host could not answer a lookup. Shown to the host only (returned by
/// [`Context::preload`](crate::Context::preload)); a denial and its audit event name the
/// provider that failed, never this text. Still, write no PHI into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LookupError {
    message: String,
}

impl LookupError {
    /// An error with `message` (no PHI).
    pub fn new(message: impl Into<String>) -> LookupError {
        LookupError {
            message: message.into(),
        }
    }
}

/// The relations a principal has to one patient, by name: the well-known ones
/// ([`Relations::CARE_TEAM`], …) or any name the host defines. Rules compare names exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relations {
    names: Vec<Arc<str>>,
}

impl Relations {
    /// A member of the patient's care team.
    pub const CARE_TEAM: &'static str = "care_team";
    /// The patient's attending physician.
    pub const ATTENDING: &'static str = "attending";
    /// A guardian, proxy or other personal representative (§164.502(g)); makes `self_only`
    /// rules hold for the represented patient.
    pub const PERSONAL_REPRESENTATIVE: &'static str = "personal_representative";
    /// A case assigned to the principal (a case manager, a billing specialist).
    pub const ASSIGNED_CASE: &'static str = "assigned_case";

    /// No relation.
    pub fn new() -> Relations {
        Relations::default()
    }

    /// Adds the relation `name`.
    pub fn with(mut self, name: impl AsRef<str>) -> Relations {
        let name = name.as_ref();
        if !self.contains(name) {
            self.names.push(Arc::from(name));
        }
        self
    }

    /// True if the principal has the relation `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| &**n == name)
    }

    /// The relation names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// True if the principal has no relation to the patient.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Relations {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        iter.into_iter().fold(Relations::new(), Relations::with)
    }
}

/// What the host knows about one patient that restricts access (§164.522(a) restrictions
/// the covered entity agreed to; VIP charts). Read by deny rules with `vip = true` or
/// `restricted = true`; every access to a VIP's record raises an alert, allowed or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientFlags {
    vip: bool,
    principals: Vec<Arc<str>>,
    roles: Vec<Arc<str>>,
}

impl PatientFlags {
    /// No flag.
    pub fn new() -> PatientFlags {
        PatientFlags::default()
    }

    /// Marks the patient as a VIP (a public figure, an employee).
    pub fn vip(mut self) -> PatientFlags {
        self.vip = true;
        self
    }

    /// Restricts the patient's record from the principal with id `id`.
    pub fn restrict_principal(mut self, id: impl AsRef<str>) -> PatientFlags {
        self.principals.push(Arc::from(id.as_ref()));
        self
    }

    /// Restricts the patient's record from every principal holding `role`.
    pub fn restrict_role(mut self, role: impl AsRef<str>) -> PatientFlags {
        self.roles.push(Arc::from(role.as_ref()));
        self
    }

    /// True if the patient is a VIP.
    pub fn is_vip(&self) -> bool {
        self.vip
    }

    /// True if a restriction names `principal` or one of its roles.
    pub fn restricts(&self, principal: &Principal) -> bool {
        self.principals.iter().any(|p| **p == *principal.id())
            || self.roles.iter().any(|r| principal.has_role(r))
    }
}

macro_rules! consents {
    ($( $(#[$m:meta])* $variant:ident = $wire:literal => [$($cat:ident),+] ),+ $(,)?) => {
        /// A consent a patient gives for a sensitive segment of their record. Each guards
        /// PHI categories ([`Consent::categories`]); a rule names them in `consent = [..]`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Consent {
            $( $(#[$m])* $variant ),+
        }

        impl Consent {
            /// Every consent, in declaration order.
            pub const ALL: &'static [Consent] = &[$(Consent::$variant),+];

            /// The name used in policies and events (`part2`).
            pub const fn as_str(self) -> &'static str {
                match self { $(Consent::$variant => $wire),+ }
            }

            /// The PHI categories this consent guards.
            pub const fn categories(self) -> CategorySet {
                match self {
                    $(Consent::$variant => CategorySet::EMPTY$(.with(Category::$cat))+),+
                }
            }
        }

        impl FromStr for Consent {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Consent, UnknownName> {
                match s {
                    $($wire => Ok(Consent::$variant),)+
                    _ => Err(UnknownName {
                        what: "consent",
                        value: s.to_owned(),
                        expected: concat!($($wire, " "),+),
                    }),
                }
            }
        }
    };
}

consents! {
    /// 42 CFR Part 2: substance use disorder treatment records.
    Part2 = "part2" => [SubstanceUse],
    /// §164.508(a)(2): psychotherapy notes.
    Psychotherapy = "psychotherapy" => [PsychotherapyNote],
    /// HIV status and test results (state law).
    Hiv = "hiv" => [HivStatus],
    /// Reproductive health care.
    Reproductive = "reproductive" => [ReproductiveHealth],
}

impl fmt::Display for Consent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of consents (a bitset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConsentSet(u8);

impl ConsentSet {
    /// No consent.
    pub const EMPTY: ConsentSet = ConsentSet(0);

    /// The set of bits `mask` (bit i = `Consent::ALL[i]`).
    pub(crate) const fn from_bits(mask: u8) -> ConsentSet {
        ConsentSet(mask)
    }

    /// Adds `c`.
    pub const fn with(self, c: Consent) -> ConsentSet {
        ConsentSet(self.0 | (1 << c as u8))
    }

    /// True if `c` is in the set.
    pub const fn contains(self, c: Consent) -> bool {
        self.0 & (1 << c as u8) != 0
    }

    /// The consents of `self` not in `other`.
    pub const fn without(self, other: ConsentSet) -> ConsentSet {
        ConsentSet(self.0 & !other.0)
    }

    /// True if empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The consents in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Consent> {
        Consent::ALL
            .iter()
            .copied()
            .filter(move |c| self.contains(*c))
    }

    /// The first consent in the set, if any.
    pub fn first(self) -> Option<Consent> {
        self.iter().next()
    }

    /// The categories the consents of the set guard.
    pub fn categories(self) -> CategorySet {
        self.iter()
            .fold(CategorySet::EMPTY, |s, c| s.union(c.categories()))
    }

    /// The names, comma-separated (`part2,hiv`).
    pub fn names(self) -> String {
        let names: Vec<&str> = self.iter().map(Consent::as_str).collect();
        names.join(",")
    }
}

impl FromIterator<Consent> for ConsentSet {
    fn from_iter<I: IntoIterator<Item = Consent>>(iter: I) -> Self {
        iter.into_iter().fold(ConsentSet::EMPTY, ConsentSet::with)
    }
}

/// The host's answer to "which relations does this principal have to this patient", and
/// what flags the patient's record carries. Implement it over the host's own tables (care
/// team assignments, proxies, restrictions); it is asked at most once per request per
/// subject.
pub trait Relationships: Send + Sync {
    /// The relations `principal` has to the patient `subject` (the subject as the guarded
    /// call formats it). An error denies the call.
    fn relations(&self, principal: &Principal, subject: &str) -> Result<Relations, LookupError>;

    /// The patient's flags (VIP, restrictions). Asked for every guarded call with a single
    /// subject once a provider is configured; the default has none.
    fn patient(&self, subject: &str) -> Result<PatientFlags, LookupError> {
        let _ = subject;
        Ok(PatientFlags::new())
    }
}

impl<T: Relationships + ?Sized> Relationships for Arc<T> {
    fn relations(&self, principal: &Principal, subject: &str) -> Result<Relations, LookupError> {
        (**self).relations(principal, subject)
    }

    fn patient(&self, subject: &str) -> Result<PatientFlags, LookupError> {
        (**self).patient(subject)
    }
}

/// The host's answer to "which consents cover this principal's access to this patient's
/// sensitive records" (a Part 2 consent names its recipients, so the principal is given).
pub trait Consents: Send + Sync {
    /// The consents on file for `principal` reading `subject`'s record. An error denies.
    fn consents(&self, principal: &Principal, subject: &str) -> Result<ConsentSet, LookupError>;
}

impl<T: Consents + ?Sized> Consents for Arc<T> {
    fn consents(&self, principal: &Principal, subject: &str) -> Result<ConsentSet, LookupError> {
        (**self).consents(principal, subject)
    }
}

/// [`Relationships`] for hosts whose tables are reached asynchronously (sqlx). The
/// decision itself is synchronous, so an async host loads the answers before the guarded
/// call with [`Context::preload`](crate::Context::preload); a decision that needs an answer
/// that was not preloaded denies (the provider is named as not preloaded).
pub trait AsyncRelationships: Send + Sync {
    /// As [`Relationships::relations`].
    fn relations<'a>(
        &'a self,
        principal: &'a Principal,
        subject: &'a str,
    ) -> LookupFuture<'a, Relations>;

    /// As [`Relationships::patient`].
    fn patient<'a>(&'a self, subject: &'a str) -> LookupFuture<'a, PatientFlags> {
        let _ = subject;
        Box::pin(std::future::ready(Ok(PatientFlags::new())))
    }
}

/// [`Consents`] for async hosts; see [`AsyncRelationships`].
pub trait AsyncConsents: Send + Sync {
    /// As [`Consents::consents`].
    fn consents<'a>(
        &'a self,
        principal: &'a Principal,
        subject: &'a str,
    ) -> LookupFuture<'a, ConsentSet>;
}
