//! PHI categories: the 18 HIPAA Safe Harbor identifiers (§164.514(b)(2)), clinical content,
//! and the sensitive segments a consent guards (42 CFR Part 2, psychotherapy notes, HIV
//! status, reproductive health; see `relation::Consent`).

use std::fmt;
use std::str::FromStr;

use crate::model::UnknownName;

macro_rules! categories {
    ($( $(#[$m:meta])* $variant:ident = $wire:literal ),+ $(,)?) => {
        /// A kind of protected health information a field or an action holds.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Category {
            $( $(#[$m])* $variant ),+
        }

        impl Category {
            /// Every category, in declaration order.
            pub const ALL: &'static [Category] = &[$(Category::$variant),+];
            /// Every category name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($wire),+];

            /// The name used in `#[phi(..)]`, policies and events.
            pub const fn as_str(self) -> &'static str {
                match self { $(Category::$variant => $wire),+ }
            }
        }

        impl FromStr for Category {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Category, UnknownName> {
                match s {
                    $($wire => Ok(Category::$variant),)+
                    _ => Err(UnknownName {
                        what: "PHI category",
                        value: s.to_owned(),
                        expected: concat!($($wire, " "),+),
                    }),
                }
            }
        }
    };
}

categories! {
    /// (A) Names.
    Name = "name",
    /// (B) Street address, city, county, precinct and other subdivisions smaller than a state.
    Address = "address",
    /// (B) ZIP code (generalized to its first three digits, or `000`).
    Zip = "zip",
    /// (C) Dates (other than the year) directly related to an individual.
    Date = "date",
    /// (C) Birth date.
    BirthDate = "birth_date",
    /// (C) Age (over 89 generalized to `90+`).
    Age = "age",
    /// (D) Telephone numbers.
    Phone = "phone",
    /// (E) Fax numbers.
    Fax = "fax",
    /// (F) Email addresses.
    Email = "email",
    /// (G) Social Security numbers.
    Ssn = "ssn",
    /// (H) Medical record numbers.
    Mrn = "mrn",
    /// (I) Health plan beneficiary numbers.
    HealthPlan = "health_plan",
    /// (J) Account numbers.
    Account = "account",
    /// (K) Certificate or license numbers.
    License = "license",
    /// (L) Vehicle identifiers and serial numbers, including license plates.
    Vehicle = "vehicle",
    /// (M) Device identifiers and serial numbers.
    Device = "device",
    /// (N) Web URLs.
    Url = "url",
    /// (O) IP addresses.
    Ip = "ip",
    /// (P) Biometric identifiers, including finger and voice prints.
    Biometric = "biometric",
    /// (Q) Full-face photographs and comparable images.
    Photo = "photo",
    /// (R) Any other unique identifying number, characteristic or code.
    OtherId = "other_id",
    /// Diagnoses and problem-list entries.
    Diagnosis = "diagnosis",
    /// Medications.
    Medication = "medication",
    /// Laboratory results.
    LabResult = "lab_result",
    /// Free-text clinical notes (masked by scanning for identifiers).
    Note = "note",
    /// Sensitive segment: substance use disorder treatment records (42 CFR Part 2); revealed
    /// under a rule with `consent = ["part2"]` only while the patient's consent is on file.
    SubstanceUse = "substance_use",
    /// Sensitive segment: psychotherapy notes (§164.508(a)(2)); consent `psychotherapy`.
    PsychotherapyNote = "psychotherapy_note",
    /// Sensitive segment: HIV status and test results; consent `hiv`.
    HivStatus = "hiv_status",
    /// Sensitive segment: reproductive health care; consent `reproductive`.
    ReproductiveHealth = "reproductive_health",
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of categories (a bitset: copying and testing cost nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CategorySet(u32);

impl CategorySet {
    /// No category.
    pub const EMPTY: CategorySet = CategorySet(0);
    /// Every category.
    pub const ALL: CategorySet = CategorySet(u32::MAX);

    /// Adds `c`.
    pub const fn with(self, c: Category) -> CategorySet {
        CategorySet(self.0 | (1 << c as u32))
    }

    /// True if `c` is in the set.
    pub const fn contains(self, c: Category) -> bool {
        self.0 & (1 << c as u32) != 0
    }

    /// Union.
    pub const fn union(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 | other.0)
    }

    /// The categories of `self` that are not in `other`.
    ///
    /// ```
    /// use guardrail_core::{Category, CategorySet};
    /// let shown = CategorySet::EMPTY.with(Category::Name).with(Category::SubstanceUse);
    /// let withheld = CategorySet::EMPTY.with(Category::SubstanceUse);
    /// assert_eq!(shown.without(withheld).names(), "name");
    /// ```
    pub const fn without(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & !other.0)
    }

    /// The categories in both sets.
    pub const fn intersection(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & other.0)
    }

    /// True if empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The categories in the set, by name, comma-separated in declaration order.
    ///
    /// ```
    /// use guardrail_core::{Category, CategorySet};
    /// let set = CategorySet::EMPTY.with(Category::Ssn).with(Category::Diagnosis);
    /// assert_eq!(set.names(), "ssn,diagnosis");
    /// ```
    pub fn names(self) -> String {
        let names: Vec<&str> = Category::ALL
            .iter()
            .filter(|c| self.contains(**c))
            .map(|c| c.as_str())
            .collect();
        names.join(",")
    }
}

impl FromIterator<Category> for CategorySet {
    fn from_iter<I: IntoIterator<Item = Category>>(iter: I) -> Self {
        iter.into_iter().fold(CategorySet::EMPTY, CategorySet::with)
    }
}
