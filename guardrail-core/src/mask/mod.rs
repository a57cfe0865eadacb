//! Minimum-necessary masking: the strategies a policy picks per category
//! ([`strategy`]), the free-text identifier scanner ([`scanner`]) and, behind the `tracing`
//! feature, a log writer that scrubs identifiers from every formatted line (`logs`).
//!
//! Owns `Redact` and its std impls, `Phi<T>`, the strategies, the scanner and the log
//! scrubbing.
//! May use: model. Nothing else: every room that shows a value may use this one.
//!
//! See `docs/masking.md` for the categories, defaults, patterns and measured numbers.

use std::sync::LazyLock;

use guardrail_audit::AuditKey;

use crate::model::Category;

#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod logs;
mod phi;
mod redact;
pub mod scanner;
pub mod strategy;

pub use phi::Phi;
pub use redact::{Masker, PhiValue, Redact};
pub use scanner::{IdentifierKind, ScanMatch, Scanner, is_blank_text};

/// How a PHI value the caller may not see is masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Replaced by `[REDACTED]`.
    Redact,
    /// Partly shown (the last four digits of an SSN or phone).
    Partial,
    /// Replaced by a keyed token, stable under the key so records can still be joined.
    Tokenize,
    /// Coarsened (a date to its year, a ZIP to three digits, ages over 89 to `90+`).
    Generalize,
    /// Free text: identifiers found inside are masked, the rest kept. Applies to the free-text
    /// categories (`note`, `diagnosis`, `medication`, `lab_result`); any other category is
    /// redacted, since a structured identifier with nothing recognisable inside would
    /// otherwise pass unmasked.
    Scan,
}

impl Strategy {
    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Redact => "redact",
            Strategy::Partial => "partial",
            Strategy::Tokenize => "tokenize",
            Strategy::Generalize => "generalize",
            Strategy::Scan => "scan",
        }
    }

    /// Parses a policy name.
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "redact" => Strategy::Redact,
            "partial" => Strategy::Partial,
            "tokenize" => Strategy::Tokenize,
            "generalize" => Strategy::Generalize,
            "scan" => Strategy::Scan,
            _ => return None,
        })
    }
}

/// The strategy for each category (the policy's `[masking]` table over sensible defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskingConfig {
    strategies: Vec<Strategy>,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        let strategies = Category::ALL.iter().map(|c| default_strategy(*c)).collect();
        MaskingConfig { strategies }
    }
}

impl MaskingConfig {
    /// The strategy for `category`.
    pub fn strategy(&self, category: Category) -> Strategy {
        self.strategies
            .get(category as usize)
            .copied()
            .unwrap_or(Strategy::Redact)
    }

    /// Overrides the strategy for `category`.
    pub fn set(&mut self, category: Category, strategy: Strategy) {
        if let Some(s) = self.strategies.get_mut(category as usize) {
            *s = strategy;
        }
    }
}

/// The default strategy of each category: `partial` for SSN, phone, fax and account numbers,
/// `tokenize` for MRN and health plan numbers (joinable, never readable), `generalize` for
/// ZIP, dates, birth dates and ages (the Safe Harbor forms), `redact` for everything else.
///
/// Clinical notes default to `redact`, not `scan`: the scanner finds identifiers with a
/// pattern (numbers, addresses of mail and web), but not names or street addresses in prose,
/// so scanning alone would let those through. A policy that accepts that opts in with
/// `note = "scan"`.
pub fn default_strategy(category: Category) -> Strategy {
    match category {
        Category::Ssn | Category::Phone | Category::Fax | Category::Account => Strategy::Partial,
        Category::Mrn | Category::HealthPlan => Strategy::Tokenize,
        Category::Zip | Category::Date | Category::BirthDate | Category::Age => {
            Strategy::Generalize
        }
        _ => Strategy::Redact,
    }
}

/// The text a redacted value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Masks `value` of `category` with `strategy` in place.
///
/// ```
/// use guardrail_core::{AuditKey, Category};
/// use guardrail_core::mask::{Strategy, apply};
/// let key = AuditKey::from_bytes(&[7; 32])?;
/// let mut ssn = String::from("123-45-6789");
/// apply(Strategy::Partial, Category::Ssn, &mut ssn, &key);
/// assert_eq!(ssn, "***-**-6789");
/// let mut note = String::from("Call 617-555-0142 re: labs");
/// apply(Strategy::Scan, Category::Note, &mut note, &key);
/// assert_eq!(note, "Call [PHONE] re: labs");
/// # Ok::<(), guardrail_core::audit::KeyTooShort>(())
/// ```
pub fn apply(strategy: Strategy, category: Category, value: &mut String, key: &AuditKey) {
    let masked = match strategy {
        Strategy::Redact => strategy::redact(),
        Strategy::Partial => strategy::partial(category, value),
        Strategy::Tokenize => strategy::tokenize(category, value, key),
        Strategy::Generalize => strategy::generalize(category, value),
        Strategy::Scan if strategy::scan_applies(category) => scrub_text(value),
        Strategy::Scan => strategy::redact(),
    };
    *value = masked;
}

/// The scanner with the built-in patterns, built once.
static DEFAULT_SCANNER: LazyLock<Scanner> = LazyLock::new(Scanner::default);

/// The default scanner (built on first use and shared).
pub fn default_scanner() -> &'static Scanner {
    &DEFAULT_SCANNER
}

/// `text` with every identifier the default scanner finds replaced by a placeholder.
///
/// ```
/// let s = guardrail_core::mask::scrub_text("SSN 123-45-6789, email ada@example.org");
/// assert_eq!(s, "SSN [SSN], email [EMAIL]");
/// ```
pub fn scrub_text(text: &str) -> String {
    DEFAULT_SCANNER.mask(text)
}
