//! The PHI category names `#[phi(..)]` and `phi = [..]` accept: exactly
//! `guardrail_core::Category::NAMES`, in the same order (a test in `tests/masking.rs` reads
//! this file and compares). A proc-macro crate cannot depend on `guardrail_core`, hence the
//! copy, kept once for both macros.

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
];

/// The `Category` variant of a name: `birth_date` → `BirthDate`.
pub(crate) fn variant(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The closest known name to a misspelt one, if close enough to be a likely typo.
pub(crate) fn suggest(unknown: &str) -> Option<&'static str> {
    NAMES
        .iter()
        .map(|n| (edit_distance(unknown, n), *n))
        .filter(|(d, n)| *d <= 2 && *d < n.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}
