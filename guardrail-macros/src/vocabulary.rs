//! The closed vocabularies both macros accept, kept once: PHI category names, action kinds,
//! and the enum variant behind a wire name. A proc-macro crate cannot depend on
//! `guardrail_core`, so these are copies of `Category::NAMES` and `ActionKind::ALL`;
//! `tests/vocabulary.rs` compares them through the hidden `__category_names!()` and
//! `__action_kinds!()` macros, so a drift fails the tests.

#[path = "categories.rs"]
mod categories;

pub(crate) use categories::NAMES as CATEGORIES;

/// The action kinds, as `guardrail_core::ActionKind` names them, in its order.
pub(crate) const KINDS: &[&str] = &["create", "read", "update", "delete", "export", "disclose"];

/// Whether `name` is a PHI category name.
pub(crate) fn is_category(name: &str) -> bool {
    CATEGORIES.contains(&name)
}

/// Whether `name` is an action kind.
pub(crate) fn is_kind(name: &str) -> bool {
    KINDS.contains(&name)
}

/// The enum variant behind a wire name (of a `Category` or an `ActionKind`):
/// `birth_date` → `BirthDate`.
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

/// The closest category name to a misspelt one, if close enough to be a likely typo.
pub(crate) fn suggest_category(unknown: &str) -> Option<&'static str> {
    CATEGORIES
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        assert_eq!(variant("birth_date"), "BirthDate");
        assert_eq!(variant("read"), "Read");
        assert_eq!(variant("other_id"), "OtherId");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest_category("diagnosys"), Some("diagnosis"));
        assert_eq!(suggest_category("zzzzzzzz"), None);
        assert!(is_kind("disclose") && !is_kind("Read"));
        assert!(is_category("lab_result") && !is_category("labs"));
    }
}
