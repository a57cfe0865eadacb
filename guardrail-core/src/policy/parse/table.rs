//! A TOML table being read, with its place in the document, and the checks every section
//! uses (known keys, types, names), each error placed at its key or value.

use super::*;

/// A TOML table being read, with its place in the document for error messages.
pub(super) struct Table<'a, 'i> {
    pub(super) src: &'a Source<'a>,
    pub(super) table: &'a DeTable<'i>,
    pub(super) span: Range<usize>,
    /// The field path of this table (`""` at the top, `rule "x"`, `alerts.denial_burst`).
    pub(super) path: String,
}

pub(super) fn unknown_category(name: &str, star: bool) -> String {
    format!(
        "unknown PHI category `{name}`, expected {}one of: {}",
        if star { "`*` or " } else { "" },
        Category::NAMES.join(" ")
    )
}

pub(super) fn article(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn err(&self, span: &Range<usize>, key: &str, message: String) -> PolicyError {
        self.src.error(span, Some(self.field(key)), message)
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    /// Entries in the order they appear in the text (the map itself is sorted by key).
    pub(super) fn entries_in_order(
        &self,
    ) -> Vec<(&'a Spanned<std::borrow::Cow<'i, str>>, &'a Value<'i>)> {
        let mut entries: Vec<_> = self.table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        entries
    }

    /// Refuses keys not in `allowed` (the first one in the text).
    pub(super) fn check_keys(&self, allowed: &[&str]) -> R<()> {
        for (key, _) in self.entries_in_order() {
            let name: &str = key.get_ref();
            if !allowed.contains(&name) {
                return Err(self.err(
                    &key.span(),
                    name,
                    format!(
                        "unknown field `{name}`, expected one of: {}{}",
                        allowed.join(" "),
                        nearest(name, allowed)
                            .map(|n| format!("; did you mean `{n}`?"))
                            .unwrap_or_default(),
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn sub_table(&self, key: &str, v: &'a Value<'i>) -> R<Table<'a, 'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(Table {
                src: self.src,
                table: t,
                span: v.span(),
                path: self.field(key),
            }),
            other => Err(self.err(
                &v.span(),
                key,
                format!("expected a table, found {}", article(other)),
            )),
        }
    }

    pub(super) fn string(&self, key: &str, v: &'a Value<'i>) -> R<&'a str> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            other => Err(self.err(
                &v.span(),
                key,
                format!("expected a string, found {}", article(other)),
            )),
        }
    }

    pub(super) fn non_empty_string(&self, key: &str, v: &'a Value<'i>) -> R<&'a str> {
        let s = self.string(key, v)?;
        if s.trim().is_empty() {
            return Err(self.err(&v.span(), key, "must not be empty".into()));
        }
        Ok(s)
    }

    pub(super) fn boolean(&self, key: &str, v: &Value<'i>) -> R<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.err(
                &v.span(),
                key,
                format!(
                    "expected a boolean (`true` or `false`), found {}",
                    article(other)
                ),
            )),
        }
    }

    pub(super) fn unsigned(&self, key: &str, v: &Value<'i>) -> R<u64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                if i.as_str().starts_with('-') {
                    return Err(self.err(&v.span(), key, "must not be negative".into()));
                }
                u64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|_| self.err(&v.span(), key, "the number is too large".into()))
            }
            other => Err(self.err(
                &v.span(),
                key,
                format!("expected an integer, found {}", article(other)),
            )),
        }
    }

    pub(super) fn positive(&self, key: &str, v: &Value<'i>) -> R<u64> {
        let n = self.unsigned(key, v)?;
        if n == 0 {
            return Err(self.err(&v.span(), key, "must be greater than 0".into()));
        }
        Ok(n)
    }

    /// A non-empty array of strings, each with its span.
    pub(super) fn strings(
        &self,
        key: &str,
        v: &'a Value<'i>,
        allow_empty: bool,
    ) -> R<Vec<(&'a str, Range<usize>)>> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.err(
                &v.span(),
                key,
                format!(
                    "expected an array of strings, found {}",
                    article(v.get_ref())
                ),
            ));
        };
        if items.is_empty() && !allow_empty {
            return Err(self.err(
                &v.span(),
                key,
                "the list is empty and would match nothing; remove the field to match any value"
                    .into(),
            ));
        }
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok((s.as_ref(), item.span())),
                other => Err(self.err(
                    &item.span(),
                    key,
                    format!("expected a string in the list, found {}", article(other)),
                )),
            })
            .collect()
    }

    /// Exact names (roles, resources, sinks).
    pub(super) fn names(
        &self,
        key: &str,
        v: &'a Value<'i>,
        allow_empty: bool,
    ) -> R<Vec<(Arc<str>, Range<usize>)>> {
        self.strings(key, v, allow_empty)?
            .into_iter()
            .map(|(s, span)| {
                if s.is_empty() {
                    return Err(self.err(&span, key, "a name must not be empty".into()));
                }
                if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(self.err(
                        &span,
                        key,
                        format!("name `{}` contains whitespace", s.escape_debug()),
                    ));
                }
                if s.contains('*') {
                    return Err(self.err(
                        &span,
                        key,
                        format!("`{s}`: `{key}` lists exact names, `*` is not a wildcard here; remove the field to match any"),
                    ));
                }
                Ok((Arc::from(s), span))
            })
            .collect()
    }

    pub(super) fn globs(&self, key: &str, v: &'a Value<'i>) -> R<Vec<Glob>> {
        self.strings(key, v, false)?
            .into_iter()
            .map(|(s, span)| {
                Glob::new(s).map_err(|m| self.err(&span, key, format!("invalid pattern: {m}")))
            })
            .collect()
    }

    pub(super) fn kinds(&self, key: &str, v: &'a Value<'i>) -> R<u8> {
        self.closed_set::<ActionKind>(key, v, |k| k.index())
    }

    /// A list of names of a closed set (`kinds`, `endpoints`, `purposes`) as a bitmask.
    pub(super) fn closed_set<T>(&self, key: &str, v: &'a Value<'i>, index: fn(T) -> usize) -> R<u8>
    where
        T: std::str::FromStr<Err = crate::model::UnknownName>,
    {
        let mut mask = 0u8;
        for (s, span) in self.strings(key, v, false)? {
            let value: T = s
                .parse()
                .map_err(|e: crate::model::UnknownName| self.err(&span, key, e.to_string()))?;
            mask |= 1 << index(value);
        }
        Ok(mask)
    }

    pub(super) fn categories(&self, key: &str, v: &'a Value<'i>) -> R<CategorySet> {
        let mut set = CategorySet::EMPTY;
        for (s, span) in self.strings(key, v, true)? {
            if s == "*" {
                set = CategorySet::ALL;
                continue;
            }
            let c: Category = s
                .parse()
                .map_err(|_| self.err(&span, key, unknown_category(s, true)))?;
            set = set.union(CategorySet::EMPTY.with(c));
        }
        Ok(set)
    }
}

/// The allowed name closest to a misspelt `name` (at most two edits, and fewer than half its
/// length), for "did you mean" hints. Linear in the names, quadratic only in their (short,
/// capped) lengths.
pub(super) fn nearest<'n>(name: &str, allowed: &[&'n str]) -> Option<&'n str> {
    const MAX_LEN: usize = 64;
    if name.len() > MAX_LEN {
        return None;
    }
    let limit = 2.min(name.chars().count().saturating_sub(1) / 2).max(1);
    allowed
        .iter()
        .filter(|a| a.len() <= MAX_LEN)
        .map(|a| (edit_distance(name, a), *a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance over characters (names are at most 64 bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row[j + 1] = substitute.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn typos_suggest_the_nearest_field() {
        let keys = [
            "id",
            "effect",
            "actions",
            "kinds",
            "roles",
            "reveal",
            "max_count",
        ];
        assert_eq!(nearest("efect", &keys), Some("effect"));
        assert_eq!(nearest("role", &keys), Some("roles"));
        assert_eq!(nearest("max-count", &keys), Some("max_count"));
        assert_eq!(nearest("revael", &keys), Some("reveal"));
        assert_eq!(nearest("zzz", &keys), None, "nothing close: no guess");
        assert_eq!(nearest("ix", &keys), Some("id"));
        assert_eq!(nearest(&"x".repeat(10_000), &keys), None);
    }
}
