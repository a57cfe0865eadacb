//! The masking strategies, as pure functions of a value: what a masked field becomes.
//!
//! Every strategy fails closed: a value it cannot handle (a `partial` with too few digits, a
//! `generalize` of something that is not a date, ZIP or age, a category the strategy does
//! not apply to) is redacted whole.

use guardrail_audit::AuditKey;

use crate::model::Category;

use super::REDACTED;

/// The three-digit ZIP prefixes Safe Harbor requires to be replaced by `000` because the
/// area they form holds 20,000 people or fewer (HHS de-identification guidance, from the 2000
/// Census; 67 FR 53182, 53233–53234).
pub const RESTRICTED_ZIP3: [&str; 17] = [
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
    "879", "884", "890", "893",
];

/// Ages above this are shown as [`AGE_90_PLUS`] (Safe Harbor §164.514(b)(2)(i)(C)).
pub const MAX_SHOWN_AGE: u32 = 89;

/// What an age over 89 (or a birth date implying one) becomes.
pub const AGE_90_PLUS: &str = "90+";

/// How many trailing digits `partial` shows.
pub const PARTIAL_SHOWN_DIGITS: usize = 4;

/// `partial` shows the last digits only of values with at least this many digits, so at most
/// half of the digits is ever visible; shorter values are redacted.
pub const PARTIAL_MIN_DIGITS: usize = 8;

/// `redact`: the value becomes [`REDACTED`].
pub fn redact() -> String {
    REDACTED.to_owned()
}

/// True for the categories `partial` can show the last digits of: numbers that identify
/// through all their digits (an SSN, phone, fax, account or other identifying number).
/// Every other category is redacted under `partial`.
pub fn partial_applies(category: Category) -> bool {
    matches!(
        category,
        Category::Ssn
            | Category::Phone
            | Category::Fax
            | Category::Account
            | Category::HealthPlan
            | Category::Mrn
            | Category::License
            | Category::Vehicle
            | Category::Device
            | Category::OtherId
    )
}

/// True for the free-text categories `scan` applies to (`note`, `diagnosis`, `medication`,
/// `lab_result`); under `scan` every other category is redacted.
pub fn scan_applies(category: Category) -> bool {
    matches!(
        category,
        Category::Note | Category::Diagnosis | Category::Medication | Category::LabResult
    )
}

/// `partial`: the last four digits stay, every other letter or digit becomes `*`, spaces and
/// ASCII punctuation keep the layout (`123-45-6789` → `***-**-6789`).
///
/// A value with fewer than [`PARTIAL_MIN_DIGITS`] digits, or of a category `partial` does not
/// apply to ([`partial_applies`]), is redacted.
///
/// ```
/// use guardrail_core::Category;
/// use guardrail_core::mask::strategy::partial;
/// assert_eq!(partial(Category::Ssn, "123-45-6789"), "***-**-6789");
/// assert_eq!(partial(Category::Phone, "(617) 555-0142"), "(***) ***-0142");
/// assert_eq!(partial(Category::Ssn, "12345"), "[REDACTED]");
/// assert_eq!(partial(Category::Name, "Ada Lovelace"), "[REDACTED]");
/// ```
pub fn partial(category: Category, value: &str) -> String {
    let total = value.bytes().filter(u8::is_ascii_digit).count();
    if !partial_applies(category) || total < PARTIAL_MIN_DIGITS {
        return redact();
    }
    let hidden_digits = total - PARTIAL_SHOWN_DIGITS;
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen > hidden_digits { c } else { '*' }
            } else if c == ' ' || c.is_ascii_punctuation() {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// `tokenize`: the keyed token of the value in the domain `mask:<category>`
/// (`hmac-sha256:<hex>`): equal values give equal tokens under one key, so records can still
/// be joined, and different keys give unrelated tokens.
pub fn tokenize(category: Category, value: &str, key: &AuditKey) -> String {
    let mut domain = String::with_capacity(5 + category.as_str().len());
    domain.push_str("mask:");
    domain.push_str(category.as_str());
    key.token(&domain, value)
}

/// `generalize` at the current date. See [`generalize_at`].
pub fn generalize(category: Category, value: &str) -> String {
    generalize_at(category, value, current_year())
}

/// `generalize`, with the current year given (for birth dates):
///
/// - `date`: the year only (`2024-03-14`, `03/14/2024`, `14.03.2024`, `March 14, 2024`,
///   `14 Mar 2024`, `14-Mar-2024`, `20240314` → `2024`);
/// - `birth_date`: the year, or `90+` when the year is 90 or more years before `current_year`
///   (the person may be over 89, and Safe Harbor aggregates those ages);
/// - `zip`: the first three digits (`02139-4307` → `021`), or `000` for the areas in
///   [`RESTRICTED_ZIP3`];
/// - `age`: ages up to 89 stay (as the number), above become `90+`;
/// - anything else, or a value that does not parse: redacted.
///
/// ```
/// use guardrail_core::Category;
/// use guardrail_core::mask::strategy::generalize_at;
/// assert_eq!(generalize_at(Category::Date, "03/14/2024", 2026), "2024");
/// assert_eq!(generalize_at(Category::BirthDate, "1931-01-02", 2026), "90+");
/// assert_eq!(generalize_at(Category::Zip, "02139-4307", 2026), "021");
/// assert_eq!(generalize_at(Category::Zip, "03601", 2026), "000");
/// assert_eq!(generalize_at(Category::Age, "93", 2026), "90+");
/// assert_eq!(generalize_at(Category::Age, "about ninety", 2026), "[REDACTED]");
/// ```
pub fn generalize_at(category: Category, value: &str, current_year: i64) -> String {
    let out = match category {
        Category::Date => date_year(value).map(|y| y.to_string()),
        Category::BirthDate => date_year(value).map(|y| {
            if current_year - i64::from(y) >= 90 {
                AGE_90_PLUS.to_owned()
            } else {
                y.to_string()
            }
        }),
        Category::Zip => zip3(value).map(str::to_owned),
        Category::Age => age(value).map(generalize_age),
        _ => None,
    };
    out.unwrap_or_else(redact)
}

/// An age as Safe Harbor allows it: itself up to 89, `90+` above.
pub fn generalize_age(age: u32) -> String {
    if age > MAX_SHOWN_AGE {
        AGE_90_PLUS.to_owned()
    } else {
        age.to_string()
    }
}

/// The three-digit ZIP prefix Safe Harbor allows for a 5-digit or ZIP+4 code: its first
/// three digits, or `000` for a restricted area. `None` if `value` is not a ZIP code.
pub fn zip3(value: &str) -> Option<&str> {
    let v = value.trim();
    let b = v.as_bytes();
    let five = b.len() >= 5 && b[..5].iter().all(u8::is_ascii_digit);
    let rest_ok = match &b.get(5..).unwrap_or_default() {
        [] => true,
        [b'-' | b' ', tail @ ..] => tail.len() == 4 && tail.iter().all(u8::is_ascii_digit),
        tail => tail.len() == 4 && tail.iter().all(u8::is_ascii_digit),
    };
    if !five || !rest_ok {
        return None;
    }
    let prefix = v.get(..3)?;
    Some(if RESTRICTED_ZIP3.contains(&prefix) {
        "000"
    } else {
        prefix
    })
}

/// An age written as a number, optionally followed by `y`, `yo`, `yr(s)`, `year(s)` or
/// `years old`.
fn age(value: &str) -> Option<u32> {
    let v = value.trim();
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    if digits_end == 0 || digits_end > 3 {
        return None;
    }
    let n: u32 = v.get(..digits_end)?.parse().ok()?;
    let unit = v.get(digits_end..)?.trim().to_ascii_lowercase();
    let ok = matches!(
        unit.as_str(),
        "" | "y" | "yo" | "y.o." | "yr" | "yrs" | "year" | "years" | "years old" | "year old"
    );
    ok.then_some(n)
}

const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The month of an English month name or its abbreviation (`Mar`, `Sept`, `Sep.`).
fn month_of(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTH_NAMES
        .iter()
        .position(|m| *m == w || (w.len() <= 4 && m.starts_with(&w)))
        .and_then(|i| u32::try_from(i + 1).ok())
}

fn valid_day(month: u32, day: u32) -> bool {
    let max = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => 29,
        _ => return false,
    };
    (1..=max).contains(&day)
}

fn plausible_year(y: u32) -> bool {
    (1000..=2999).contains(&y)
}

/// The year of a date in one of the common formats; `None` if it is not one (a two-digit
/// year is ambiguous about its century, so it is not one either).
pub fn date_year(value: &str) -> Option<u32> {
    let v = value.trim();
    // ISO 8601 with a time: the date part decides.
    let v = match v.find(['T', 't']) {
        Some(i) if i == 10 && v.as_bytes().get(4) == Some(&b'-') => v.get(..10)?,
        _ => v,
    };
    if v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) {
        // YYYYMMDD
        let y: u32 = v.get(..4)?.parse().ok()?;
        let m: u32 = v.get(4..6)?.parse().ok()?;
        let d: u32 = v.get(6..)?.parse().ok()?;
        return (plausible_year(y) && valid_day(m, d)).then_some(y);
    }
    if v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit()) {
        // A year alone is already what Safe Harbor allows.
        let y: u32 = v.parse().ok()?;
        return plausible_year(y).then_some(y);
    }
    let tokens: Vec<&str> = v
        .split(['-', '/', '.', ',', ' '])
        .filter(|t| !t.is_empty())
        .collect();
    let num = |t: &str| -> Option<(u32, usize)> {
        // `3rd` counts as `3`.
        let trimmed = ["st", "nd", "rd", "th"]
            .iter()
            .find_map(|suffix| t.strip_suffix(suffix))
            .unwrap_or(t);
        if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((trimmed.parse().ok()?, trimmed.len()))
    };
    match tokens.as_slice() {
        [a, b, c] => {
            match (num(a), num(b), num(c)) {
                // YYYY-MM-DD, YYYY/MM/DD
                (Some((y, 4)), Some((m, 1..=2)), Some((d, 1..=2))) => {
                    (plausible_year(y) && valid_day(m, d)).then_some(y)
                }
                // MM/DD/YYYY, DD/MM/YYYY, DD.MM.YYYY
                (Some((a, 1..=2)), Some((b, 1..=2)), Some((y, 4))) => {
                    (plausible_year(y) && (valid_day(a, b) || valid_day(b, a))).then_some(y)
                }
                // 14 Mar 2024, 14-Mar-2024
                (Some((d, 1..=2)), None, Some((y, 4))) => {
                    let m = month_of(b)?;
                    (plausible_year(y) && valid_day(m, d)).then_some(y)
                }
                // March 14, 2024
                (None, Some((d, 1..=2)), Some((y, 4))) => {
                    let m = month_of(a)?;
                    (plausible_year(y) && valid_day(m, d)).then_some(y)
                }
                _ => None,
            }
        }
        // March 2024
        [a, b] => match (num(a), num(b)) {
            (None, Some((y, 4))) => {
                month_of(a)?;
                plausible_year(y).then_some(y)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The current year (UTC) from the system clock.
pub fn current_year() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    year_of_unix_days(secs.div_euclid(86_400))
}

/// The proleptic Gregorian year of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn year_of_unix_days(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_years() {
        assert_eq!(year_of_unix_days(0), 1970);
        assert_eq!(year_of_unix_days(364), 1970);
        assert_eq!(year_of_unix_days(365), 1971);
        // 2000-03-01 and 2024-12-31.
        assert_eq!(year_of_unix_days(11_017), 2000);
        assert_eq!(year_of_unix_days(20_088), 2024);
        assert_eq!(year_of_unix_days(20_089), 2025);
        assert_eq!(year_of_unix_days(-1), 1969);
    }

    #[test]
    fn date_formats() {
        for (v, y) in [
            ("2024-03-14", Some(2024)),
            ("2024-03-14T10:22:00Z", Some(2024)),
            ("2024/3/4", Some(2024)),
            ("03/14/2024", Some(2024)),
            ("3/4/1999", Some(1999)),
            ("14.03.2024", Some(2024)),
            ("03-14-2024", Some(2024)),
            ("March 14, 2024", Some(2024)),
            ("Mar. 14 2024", Some(2024)),
            ("Sept 3rd, 2021", Some(2021)),
            ("14 Mar 2024", Some(2024)),
            ("14-Mar-2024", Some(2024)),
            ("20240314", Some(2024)),
            ("March 2024", Some(2024)),
            ("1950", Some(1950)),
            ("13/13/2024", None),
            ("02/30/2024", None),
            ("03/14/24", None),
            ("yesterday", None),
            ("Mayday 3, 2024", None),
            ("2024-03-14 and SSN 123-45-6789", None),
        ] {
            assert_eq!(date_year(v), y, "{v}");
        }
    }

    #[test]
    fn zips() {
        assert_eq!(zip3("02139"), Some("021"));
        assert_eq!(zip3(" 02139-4307 "), Some("021"));
        assert_eq!(zip3("021394307"), Some("021"));
        assert_eq!(zip3("89012"), Some("000"));
        assert_eq!(zip3("2139"), None);
        assert_eq!(zip3("02139-43"), None);
        assert_eq!(zip3("ZIP 02139"), None);
    }

    #[test]
    fn partial_never_shows_more_than_four() {
        assert_eq!(
            partial(Category::Account, "4111 1111 1111 1111"),
            "**** **** **** 1111"
        );
        assert_eq!(partial(Category::Ssn, "123456789"), "*****6789");
        assert_eq!(
            partial(Category::Phone, "+1 617 555 0142 ext 12"),
            "+* *** *** **42 *** 12"
        );
        assert_eq!(partial(Category::Phone, "555-0142"), REDACTED);
        assert_eq!(partial(Category::Date, "2024-03-14"), REDACTED);
    }

    #[test]
    fn ages() {
        assert_eq!(generalize_at(Category::Age, "89", 2026), "89");
        assert_eq!(generalize_at(Category::Age, "90", 2026), "90+");
        assert_eq!(generalize_at(Category::Age, "104 years old", 2026), "90+");
        assert_eq!(generalize_at(Category::Age, "-3", 2026), REDACTED);
        assert_eq!(generalize_at(Category::Age, "1234", 2026), REDACTED);
        assert_eq!(
            generalize_at(Category::BirthDate, "1937-05-01", 2026),
            "1937"
        );
        assert_eq!(
            generalize_at(Category::BirthDate, "1936-05-01", 2026),
            "90+"
        );
        assert_eq!(generalize_at(Category::Name, "Ada", 2026), REDACTED);
    }
}
