//! Name patterns of policies (`clinic::*`, `US-*`): `*` matches any run of characters,
//! everything else matches itself. Patterns are compiled once, so a match is a few `memcmp`s.

use std::fmt;

/// A compiled pattern.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    source: Box<str>,
    shape: Shape,
}

#[derive(Clone, PartialEq, Eq)]
enum Shape {
    /// `*`
    Any,
    /// No wildcard.
    Exact,
    /// `abc*`
    Prefix(Box<str>),
    /// `*abc`
    Suffix(Box<str>),
    /// Anything else: the literal parts between the stars, with whether the pattern is
    /// anchored at its start and end.
    Parts {
        first: Box<str>,
        middle: Box<[Box<str>]>,
        last: Box<str>,
    },
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl Glob {
    /// Compiles `pattern`; the error says what is wrong with it.
    pub(crate) fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("an empty pattern matches nothing".into());
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "pattern `{}` contains the whitespace or control character {c:?}",
                pattern.escape_debug()
            ));
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| matches!(c, '?' | '[' | ']' | '{' | '}'))
        {
            return Err(format!(
                "pattern `{pattern}` uses `{c}`, which is reserved; only `*` is a wildcard"
            ));
        }
        if pattern.contains("**") {
            return Err(format!(
                "pattern `{pattern}` has `**`; a single `*` already matches any run of characters"
            ));
        }
        let stars = pattern.matches('*').count();
        let shape = match stars {
            0 => Shape::Exact,
            _ if pattern == "*" => Shape::Any,
            1 if pattern.ends_with('*') => Shape::Prefix(pattern[..pattern.len() - 1].into()),
            1 if pattern.starts_with('*') => Shape::Suffix(pattern[1..].into()),
            _ => {
                let mut parts: Vec<&str> = pattern.split('*').collect();
                // `split` yields the text before the first star and after the last one
                // (possibly empty, meaning "unanchored").
                let last = parts.pop().unwrap_or_default();
                let first = if parts.is_empty() {
                    ""
                } else {
                    parts.remove(0)
                };
                Shape::Parts {
                    first: first.into(),
                    middle: parts.into_iter().map(Box::from).collect(),
                    last: last.into(),
                }
            }
        };
        Ok(Glob {
            source: pattern.into(),
            shape,
        })
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// True if `text` matches the whole pattern.
    #[inline]
    pub(crate) fn matches(&self, text: &str) -> bool {
        match &self.shape {
            Shape::Any => true,
            Shape::Exact => *self.source == *text,
            Shape::Prefix(p) => text.starts_with(&**p),
            Shape::Suffix(s) => text.ends_with(&**s),
            Shape::Parts {
                first,
                middle,
                last,
            } => {
                if text.len() < first.len() + last.len()
                    || !text.starts_with(&**first)
                    || !text.ends_with(&**last)
                {
                    return false;
                }
                // The middle parts must appear in order between the anchored ends; taking
                // the leftmost occurrence of each is optimal for `*`-only patterns.
                let mut rest = &text[first.len()..text.len() - last.len()];
                for part in middle.iter() {
                    match rest.find(&**part) {
                        Some(at) => rest = &rest[at + part.len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p).unwrap().matches(t)
    }

    #[test]
    fn shapes_match_what_they_should() {
        assert!(m("*", ""));
        assert!(m("*", "a::b"));
        assert!(m("clinic::chart", "clinic::chart"));
        assert!(!m("clinic::chart", "clinic::chart2"));
        assert!(m("clinic::*", "clinic::chart::read"));
        assert!(!m("clinic::*", "clinicx::chart"));
        assert!(m("US-*", "US-CA"));
        assert!(m("US-*", "US-"));
        assert!(!m("US-*", "CA-US"));
        assert!(m("*::read", "a::b::read"));
        assert!(!m("*::read", "a::b::reads"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "a-b-b-c"));
        assert!(!m("a*b*c", "a-c-b"));
        assert!(m("*chart*", "clinic::chart::x"));
        assert!(!m("*chart*", "clinic::cart"));
        assert!(m("a*a", "aa"));
        assert!(!m("a*a", "a"));
        assert!(m("*.read.*", "patients.read.all"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "a b", "a?", "a[b]", "a**", "x{y}", "a\tb"] {
            assert!(Glob::new(bad).is_err(), "{bad:?}");
        }
    }
}
