//! [`ScannerBuilder`]: which patterns, compiled into the automata a scan runs.

use super::*;

/// Builds a [`Scanner`] with custom MRN patterns.
///
/// ```
/// use guardrail_core::mask::scanner::{IdentifierKind, Scanner};
/// let scanner = Scanner::builder()
///     .mrn_patterns([r"(?i:chart)[ :#]{0,3}(?P<id>CH-[0-9]{6})\b"])
///     .build()?;
/// let found = scanner.find("chart: CH-123456 reviewed");
/// assert_eq!(found[0].kind, IdentifierKind::Mrn);
/// assert_eq!(&"chart: CH-123456 reviewed"[found[0].range.clone()], "CH-123456");
/// # Ok::<(), guardrail_core::mask::scanner::ScannerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ScannerBuilder {
    pub(super) mrn: Vec<String>,
    pub(super) prefilter: Option<bool>,
}

impl ScannerBuilder {
    /// Replaces the MRN patterns (default: [`DEFAULT_MRN_PATTERN`]). A pattern is a `regex`
    /// pattern matched ASCII-only; a group named `id` marks the part that is the identifier
    /// (the rest, a cue, is left readable).
    ///
    /// Setting custom patterns turns the prefilter off unless [`ScannerBuilder::prefilter`]
    /// turns it back on: the prefilter only finds an MRN that contains a run of at least four
    /// digits and whose cue is at most [`LOOKBACK`] bytes long, which the scanner cannot
    /// check for an arbitrary pattern, and a missed identifier is worse than a slower scan.
    pub fn mrn_patterns<I, S>(mut self, patterns: I) -> ScannerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mrn = patterns.into_iter().map(Into::into).collect();
        if self.prefilter.is_none() {
            self.prefilter = Some(false);
        }
        self
    }

    /// Forces the trigger prefilter on or off. On is the default with the built-in patterns.
    pub fn prefilter(mut self, on: bool) -> ScannerBuilder {
        self.prefilter = Some(on);
        self
    }

    /// Compiles the scanner.
    pub fn build(self) -> Result<Scanner, ScannerError> {
        let mut specs: Vec<PatternSpec> = Vec::new();
        let mut push = |kind, check, source: String, what| {
            specs.push(PatternSpec {
                kind,
                check,
                source,
                what,
            })
        };
        // Order matters where two patterns match at the same start: earlier wins. Cue
        // patterns start at their cue, so they win over the bare forms anyway.
        push(IdentifierKind::Fax, Check::Nanp, fax_pattern(), BUILT_IN);
        push(IdentifierKind::Ssn, Check::Ssn, SSN_CUE.into(), BUILT_IN);
        let custom_mrn = self.mrn.iter().any(|p| p != DEFAULT_MRN_PATTERN);
        for p in self.mrn {
            // The default MRN pattern's cue has no digit either.
            let what = if p == DEFAULT_MRN_PATTERN {
                BUILT_IN
            } else {
                "MRN"
            };
            push(IdentifierKind::Mrn, Check::None, p, what);
        }
        push(IdentifierKind::Zip, Check::None, ZIP_CUE.into(), BUILT_IN);
        push(IdentifierKind::Email, Check::None, EMAIL.into(), BUILT_IN);
        push(IdentifierKind::Url, Check::Url, URL.into(), BUILT_IN);
        push(IdentifierKind::Ssn, Check::Ssn, SSN.into(), BUILT_IN);
        push(
            IdentifierKind::Phone,
            Check::Nanp,
            phone_pattern(),
            "built-in",
        );
        push(
            IdentifierKind::Date,
            Check::NumericDate,
            DATE_NUMERIC.into(),
            "built-in",
        );
        push(
            IdentifierKind::Date,
            Check::NamedDate,
            date_named_pattern(),
            "built-in",
        );
        push(IdentifierKind::Ip, Check::Ipv4, IPV4.into(), BUILT_IN);
        push(IdentifierKind::Ip, Check::Ipv6, IPV6.into(), BUILT_IN);
        push(
            IdentifierKind::Account,
            Check::Luhn,
            CARD.into(),
            "built-in",
        );
        push(
            IdentifierKind::Zip,
            Check::None,
            zip_state_pattern(),
            "built-in",
        );

        let invalid = |spec: &PatternSpec, reason: String| ScannerError::InvalidPattern {
            what: spec.what,
            pattern: spec.source.clone(),
            reason,
        };
        let mut patterns = Vec::with_capacity(specs.len());
        for spec in &specs {
            // Each pattern alone, with its capture groups, to find the `id` part of a match
            // (rare, so the slower captures search is fine there).
            let alone = regex::RegexBuilder::new(&spec.source)
                .unicode(false)
                .build()
                .map_err(|e| invalid(spec, e.to_string()))?;
            let has_id = alone.capture_names().any(|n| n == Some("id"));
            let id = match (has_id, spec.what == BUILT_IN) {
                (false, _) => IdPart::Whole,
                (true, true) => IdPart::FromFirstNumeric,
                (true, false) => IdPart::Group(alone),
            };
            let max_len = syntax::parse_with(&spec.source, &syntax_config())
                .ok()
                .and_then(|h| h.properties().maximum_len());
            patterns.push(Pattern {
                max_len,
                kind: spec.kind,
                check: spec.check,
                source: spec.source.clone(),
                id,
            });
        }
        // Two automata: the patterns whose matches have a short maximum length (every one a
        // check may reject), and the open-ended rest (emails, URLs, custom MRN patterns
        // without a bound). See "Linear time" in the module docs.
        let mut bounded = Vec::new();
        let mut open = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let hir = syntax::parse_with(&spec.source, &syntax_config())
                .map_err(|e| invalid(spec, e.to_string()))?;
            match hir.properties().maximum_len() {
                Some(len) if len <= MAX_BOUNDED_LEN => bounded.push(index),
                _ => open.push(index),
            }
        }
        let open_needs_trigger = specs
            .iter()
            .enumerate()
            .filter(|(i, _)| open.contains(i))
            .all(|(_, s)| matches!(s.kind, IdentifierKind::Email | IdentifierKind::Url));
        let stream = |ids: Vec<usize>, span: usize, margin: usize| {
            if ids.is_empty() {
                return Ok(None);
            }
            let sources: Vec<&str> = ids.iter().map(|&i| specs[i].source.as_str()).collect();
            let regex = Regex::builder()
                .syntax(syntax_config())
                .configure(meta::Config::new().match_kind(regex_automata::MatchKind::LeftmostFirst))
                .build_many(&sources)
                .map_err(|e| ScannerError::InvalidPattern {
                    what: "combined",
                    pattern: sources.join(" | "),
                    reason: e.to_string(),
                })?;
            Ok(Some(Stream {
                regex,
                ids,
                span,
                margin,
            }))
        };
        Ok(Scanner {
            inner: Some(Arc::new(Inner {
                bounded: stream(bounded, BOUNDED_SPAN, MAX_BOUNDED_LEN)?,
                open: stream(open, OPEN_SPAN, OPEN_SPAN / 2)?,
                open_needs_trigger,
                patterns,
                prefilter: self.prefilter.unwrap_or(true),
                custom_mrn,
            })),
        })
    }
}

pub(super) fn syntax_config() -> syntax::Config {
    syntax::Config::new().unicode(false)
}
