//! Recognising SQL in a string literal, and the tables and columns it names.
//!
//! A string is SQL when, after whitespace and SQL comments, its first word is a statement
//! keyword (`SELECT`, `INSERT`, `UPDATE`, `DELETE`, `WITH`, `REPLACE`, `MERGE`, `UPSERT`),
//! case-insensitively. It is then tokenised: quoted strings and comments are skipped,
//! identifiers (bare, `"quoted"`, `` `quoted` ``, `[quoted]`) are kept, dotted names are
//! joined. Tables are the names after `FROM`, `JOIN`, `INTO`, `UPDATE` (and the comma-separated
//! list after `FROM`), each optionally followed by an alias. Single pass, linear in the text.

use crate::policy::Schema;

const STATEMENTS: &[&str] = &[
    "select", "insert", "update", "delete", "with", "replace", "merge", "upsert",
];

/// Words after which a name is a table.
const TABLE_INTRODUCERS: &[&str] = &["from", "join", "into", "update"];

/// Words that end a table list or cannot be an alias.
const KEYWORDS: &[&str] = &[
    "select",
    "insert",
    "update",
    "delete",
    "with",
    "from",
    "join",
    "into",
    "where",
    "set",
    "values",
    "on",
    "using",
    "as",
    "inner",
    "left",
    "right",
    "full",
    "outer",
    "cross",
    "natural",
    "group",
    "order",
    "by",
    "having",
    "limit",
    "offset",
    "returning",
    "union",
    "all",
    "and",
    "or",
    "not",
    "null",
    "is",
    "in",
    "exists",
    "lateral",
    "only",
    "default",
    "conflict",
    "do",
    "nothing",
    "window",
    "fetch",
    "for",
    "distinct",
    "case",
    "when",
    "then",
    "else",
    "end",
];

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    /// A possibly dotted name, lowercase, in parts.
    Name(Vec<String>),
    Comma,
    Star,
    Other,
}

/// What one SQL literal does to PHI: the statement keyword and each PHI table with the PHI
/// columns it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlHit {
    pub(crate) statement: String,
    pub(crate) tables: Vec<(String, Vec<String>)>,
}

/// The first word of `text` after whitespace and comments, lowercase, if it is a statement
/// keyword.
fn statement(text: &str) -> Option<String> {
    let toks = tokens(text, 1);
    match toks.first() {
        Some(Tok::Name(parts)) if parts.len() == 1 && STATEMENTS.contains(&parts[0].as_str()) => {
            Some(parts[0].clone())
        }
        _ => None,
    }
}

/// Tokenises at most `limit` tokens.
fn tokens(text: &str, limit: usize) -> Vec<Tok> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() && out.len() < limit {
        let b = bytes[i];
        match b {
            b if b.is_ascii_whitespace() => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Other);
            }
            b'"' | b'`' | b'[' => {
                let close = match b {
                    b'[' => b']',
                    other => other,
                };
                let start = i + 1;
                i = start;
                while i < bytes.len() && bytes[i] != close {
                    i += 1;
                }
                let name = text
                    .get(start..i.min(bytes.len()))
                    .unwrap_or("")
                    .to_lowercase();
                i += 1;
                push_name(&mut out, name);
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b'*' => {
                out.push(Tok::Star);
                i += 1;
            }
            b'.' => {
                // Joins `a` `.` `b`: handled by marking the previous name as open.
                i += 1;
                if let Some(Tok::Name(parts)) = out.last_mut() {
                    parts.push(String::new());
                } else {
                    out.push(Tok::Other);
                }
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
                {
                    i += 1;
                }
                let name = text.get(start..i).unwrap_or("").to_ascii_lowercase();
                push_name(&mut out, name);
            }
            _ => {
                // Skip one whole UTF-8 character.
                i += 1;
                while i < bytes.len() && !text.is_char_boundary(i) {
                    i += 1;
                }
                out.push(Tok::Other);
            }
        }
    }
    out
}

/// Pushes a name, completing a dotted name left open by `.`.
fn push_name(out: &mut Vec<Tok>, name: String) {
    if let Some(Tok::Name(parts)) = out.last_mut()
        && parts.last().is_some_and(String::is_empty)
    {
        if let Some(last) = parts.last_mut() {
            *last = name;
        }
        return;
    }
    out.push(Tok::Name(vec![name]));
}

/// If `text` is SQL naming a PHI table of `schema`, what it touches.
pub(crate) fn analyse(text: &str, schema: &Schema) -> Option<SqlHit> {
    if schema.is_empty() {
        return None;
    }
    let statement = statement(text)?;
    let toks = tokens(text, usize::MAX);
    // Tables (with aliases) in order of appearance.
    let mut tables: Vec<(String, Option<String>)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if let Tok::Name(parts) = &toks[i]
            && parts.len() == 1
            && TABLE_INTRODUCERS.contains(&parts[0].as_str())
        {
            let from = parts[0] == "from";
            i += 1;
            while let Some(Tok::Name(table)) = toks.get(i) {
                let Some(name) = table.last().cloned() else {
                    break;
                };
                if table.len() == 1 && KEYWORDS.contains(&name.as_str()) {
                    break;
                }
                i += 1;
                let mut alias = None;
                if let Some(Tok::Name(a)) = toks.get(i)
                    && a.len() == 1
                {
                    if a[0] == "as" {
                        if let Some(Tok::Name(b)) = toks.get(i + 1) {
                            alias = b.first().cloned();
                            i += 2;
                        }
                    } else if !KEYWORDS.contains(&a[0].as_str()) {
                        alias = Some(a[0].clone());
                        i += 1;
                    }
                }
                tables.push((name, alias));
                if from && toks.get(i) == Some(&Tok::Comma) {
                    i += 1;
                    continue;
                }
                break;
            }
            continue;
        }
        i += 1;
    }
    let phi_tables: Vec<&(String, Option<String>)> = tables
        .iter()
        .filter(|(t, _)| schema.is_phi_table(t))
        .collect();
    if phi_tables.is_empty() {
        return None;
    }
    let mut hit = SqlHit {
        statement,
        tables: Vec::new(),
    };
    for (table, _) in &phi_tables {
        if hit.tables.iter().any(|(t, _)| t == table) {
            continue;
        }
        let mut columns: Vec<String> = Vec::new();
        for tok in &toks {
            let named = match tok {
                Tok::Star => None,
                Tok::Name(parts) => match parts.as_slice() {
                    [column] => Some(column.as_str()),
                    [.., qualifier, column]
                        if qualifier == table
                            || phi_tables.iter().any(|(t, a)| {
                                t == table && a.as_deref() == Some(qualifier.as_str())
                            }) =>
                    {
                        Some(column.as_str())
                    }
                    _ => continue,
                },
                _ => continue,
            };
            let found: Vec<String> = match named {
                // `*` (or `t.*`): every PHI column of the table.
                None | Some("") => schema.columns(table).map(|(c, _)| c.to_owned()).collect(),
                Some(c) => schema
                    .column(table, c)
                    .map(|_| vec![c.to_owned()])
                    .unwrap_or_default(),
            };
            for c in found {
                if !columns.contains(&c) {
                    columns.push(c);
                }
            }
        }
        hit.tables.push((table.clone(), columns));
    }
    Some(hit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Category;

    fn schema() -> Schema {
        let mut s = Schema::default();
        s.insert("patients", "ssn", Category::Ssn);
        s.insert("patients", "diagnosis", Category::Diagnosis);
        s
    }

    #[test]
    fn statements_and_tables() {
        let s = schema();
        let hit = analyse("  select p.ssn, name FROM Patients p WHERE id = ?", &s);
        assert_eq!(
            hit.map(|h| (h.statement, h.tables)),
            Some((
                "select".into(),
                vec![("patients".into(), vec!["ssn".into()])]
            ))
        );
        let hit = analyse("UPDATE patients SET diagnosis = ?1", &s);
        assert_eq!(
            hit.map(|h| h.tables),
            Some(vec![("patients".into(), vec!["diagnosis".into()])])
        );
        let hit = analyse("-- note\nselect * from \"patients\"", &s);
        assert_eq!(hit.map(|h| h.tables[0].1.len()), Some(2));
        assert!(analyse("SELECT name FROM clinics", &s).is_none());
        assert!(analyse("patients: {}", &s).is_none());
        assert!(analyse("select the patients you want", &s).is_none());
        assert!(analyse("SELECT 'from patients' FROM visits", &s).is_none());
        assert!(analyse("SELECT id FROM visits, patients", &s).is_some());
        assert!(analyse("", &s).is_none());
        assert!(analyse("/* unterminated", &s).is_none());
        assert!(analyse("select \"", &s).is_none());
        assert!(analyse("sélect é from patients", &s).is_none());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "(?s).{0,200}", sqlish in "(select|update|insert into|delete from) [a-z_.,*\"'` ()\\[\\]-]{0,80}") {
            let s = schema();
            let _ = analyse(&text, &s);
            let _ = analyse(&sqlish, &s);
            let _ = analyse(&format!("{sqlish} patients"), &s);
        }
    }
}
