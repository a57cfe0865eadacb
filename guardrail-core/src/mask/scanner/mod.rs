//! The free-text PHI scanner: finds identifiers (SSN, phone, fax, email, MRN, dates, IP
//! addresses, URLs, ZIP codes, payment-card-like account numbers) inside text and masks them.
//!
//! # How it is fast
//!
//! Identifiers are sparse in clinical notes, and every pattern the scanner knows needs one of
//! a few cheap *triggers*: a cluster of at least four digits (digits joined by short runs of
//! separators such as `-`, `.`, `/`, `(`, `)`, `,` or a space), an `@`, a `:` next to `:` or
//! `/` or between hex digits, or a `.` after `www`. A byte loop finds the triggers and turns
//! each into a *window*: the trigger's word, forward to whitespace, and back over up to four
//! words within [`LOOKBACK`] bytes (room for a cue such as `Fax:` or `MRN #`), but only as
//! far as a word that may start a match: one holding a cue stem, a month name before a
//! date's year, or a word ending in a state code right before the digits (`MA`, `(MA,`, not
//! the `DC` of `NDC`, which no `\b` precedes); any other built-in match starts in the digits'
//! own word. Short windows
//! (and the rest of a window after a match) that cannot hold an identifier (`120/80,`, the
//! `:` after a date) are not searched at all.
//! Only clusters whose first runs of digits can follow a cue (a first run of 3 to 10 digits, or a
//! second run of 3 or 4: `555-0142`, `02115`, `March 3, 2021`) look back at all; a date such
//! as `3/14/2024` cannot end a cue's match, so its window is its own word. A cluster that
//! starts with a run of four digits (`since 2008.`, `2024-03-14`) or with a day and four
//! digits (`3, 2021`) can only end a named date: it looks back two words at most, and past
//! the first only if that is a month name or holds the day (`3rd March 2021`). Any other
//! cluster that looks back stops at the first word that is neither a cue nor the rest of one
//! (`number`, `no.`, `#:`, `code`, `is`, or several touching: `trigger::CUE_TAILS`), so
//! the prose before a phone number (`reached at`) is read one word deep.
//! Only the windows are searched; the text between windows is never looked at again. A
//! window that is one valid numeric date and nothing else (half the identifiers of clinical
//! notes are dates) is taken as the finding it is without searching it, a shortcut whose
//! reasoning is in `search::whole_numeric_date` and which unit tests check against the
//! search over every near-date shape. So is a window that is one named date and nothing else
//! (`Dec 3, 2006`, `3 Dec 2006`, `03-Mar-2024`: `search::whole_named_date`, read piece by
//! piece as the pattern has it), and a window that is one MRN after its cue or one ZIP code
//! after a state, one fax number or SSN after its cue (`MRN: 0374774`, `NY 81960-4230`,
//! `fax: (617) 555-0142`, `(SSN 123 45 6789`: `search::whole_cue_window`), one email address
//! (`search::whole_email`) and one URL after its scheme (`search::whole_url`). So is a
//! window that is one numeric word of a shape only one pattern can match (`123-45-6789`,
//! `(617) 555-0142`, `+1 617 555 0142`, 16 digits, `10.0.0.1`), or none (`0002-7856-64`, an
//! NDC code): its check alone decides (`search::lone_numeric_word`). On dense clinical notes
//! these shortcuts leave no window to search; the automata are for what they do not know.
//! A span whose digits are too few for any match (fewer than nine, in at most two runs,
//! none of five and not a run of four beside another: `J45.909`, `SpO2 100%`) is not
//! searched, whatever letters it holds (`trigger::hope`); a window that is one digit cluster
//! and nothing else (`120/80,`, `99214`) needs no such reading: the cluster's walk has
//! counted its digits and runs.
//! A window is decided as soon as it is made, not once the next window shows it will not
//! merge with it; one with a finding is handed out at once, and later windows do not look
//! back into it (`trigger::Windows::decide` says why nothing is lost). A numeric date that is
//! its cluster's whole word (`3/14/2024,`) is decided by the walk itself, from the
//! cluster's bytes, before any window is made.
//! One pass over the text before the walk, which the compiler vectorizes, tells whether it
//! is all ASCII (then it needs no normalized view) and whether a `.` follows a `w` anywhere
//! (if not, no `www.` is looked for): `normalize::prescan`.
//! Each search is first anchored where a match most likely starts: the window's start, or
//! the first byte after whitespace once a match is behind (no built-in match starts at
//! whitespace; a unit test checks each pattern's automaton): a match found there needs no
//! reverse pass to find its start.
//! Look-around (`\b`) still sees the bytes outside a window, so a window search finds exactly
//! what a search of the whole text finds; the tests check the two agree on the corpus and on
//! random text.
//!
//! The patterns are compiled into two combined automata (`regex_automata::meta::Regex`,
//! leftmost-first): the *bounded* patterns, whose matches are at most [`MAX_BOUNDED_LEN`]
//! bytes (every pattern with a check, the cue patterns), and the *open-ended* ones (email,
//! URL, unbounded custom MRN patterns). The open-ended automaton only runs in windows that
//! hold an `@`, a `:/` or a `www.`. At each step the leftmost validated candidate of the two
//! wins (at the same start, the pattern listed first).
//!
//! # Linear time
//!
//! A candidate that fails its check is dropped, and the search resumes one byte after its
//! start, so a longer invalid candidate cannot hide a valid identifier inside it. Windows
//! extend to whitespace, so text without whitespace is one window; were each search given
//! the rest of the window, text made of rejected candidates (`999.999.999.999.` repeated)
//! would cost time quadratic in its length. Instead each search is given at most
//! `2 × MAX_BOUNDED_LEN` bytes (bounded automaton) or 4 KiB (open-ended), so a rejected
//! candidate costs a bounded amount of work whatever the input: the scanner is linear in the
//! length of the text. A match found near the end of a cut span sends the search back to
//! `MAX_BOUNDED_LEN` bytes before the cut, so the cut never shortens a bounded match nor
//! hides one that starts before it; an open-ended match longer than 4 KiB
//! is masked on to the next whitespace. `tests/scanner.rs` bounds the bytes searched per
//! input byte ([`Scanner::find_with_work`]) on adversarial and random text.
//!
//! # What a match must also pass
//!
//! - SSN: area not `000`, `666` or `900`–`999`; group not `00`; serial not `0000`.
//! - Phone and fax: a North American number whose area code and exchange start with 2–9.
//! - Dates: a real month and day (either month/day or day/month order for numeric dates).
//! - IP addresses: parse as IPv4 or IPv6.
//! - Account numbers: 13 to 19 digits that pass the Luhn check.
//!
//! Checks are in `checks`, pattern sources in `patterns`, the prefilter in `trigger`.

use std::ops::Range;
use std::sync::Arc;

use regex_automata::Input;
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;

mod checks;
mod normalize;
mod patterns;
mod trigger;

pub use normalize::is_blank_text;

use checks::{Check, valid_luhn, valid_named_date, valid_nanp, valid_numeric_date, valid_ssn};
use patterns::{
    CARD, DATE_NUMERIC, EMAIL, IPV4, IPV6, SSN, SSN_CUE, URL, ZIP_CUE, date_named_pattern,
    fax_pattern, phone_pattern, zip_state_pattern,
};
mod builder;
mod search;

pub use builder::ScannerBuilder;
use search::Hints;
use trigger::{Asked, Windows};
#[cfg(test)]
use trigger::{may_hold_trigger, next_www};

/// How far before a trigger a match may start (room for the longest cue, e.g.
/// `Medical record number #: `). Custom patterns whose cue is longer than this are only found
/// when the prefilter is off (see [`ScannerBuilder::prefilter`]).
pub const LOOKBACK: usize = 64;

/// The longest match a pattern of the bounded automaton may have; patterns that may match
/// more go to the open-ended one.
pub const MAX_BOUNDED_LEN: usize = 128;
/// The most bytes one search of the bounded automaton is given.
const BOUNDED_SPAN: usize = 2 * MAX_BOUNDED_LEN;
/// The most bytes one search of the open-ended automaton is given.
const OPEN_SPAN: usize = 4096;

/// The default MRN pattern: a cue (`MRN`, `MR#`, `medical record number`…) and 6 to 10
/// digits. The digits are the finding; the cue stays readable.
pub const DEFAULT_MRN_PATTERN: &str = r"(?i:mrn|mr#|med(?:ical)? rec(?:ord)?(?: number| no\.?| num)?)[ \t]?[:#]{0,2}[ \t]{0,3}(?P<id>[0-9]{6,10})\b";

/// The kind of identifier a [`ScanMatch`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum IdentifierKind {
    /// A Social Security number (`123-45-6789`, `123 45 6789`, or 9 digits after an `SSN` cue).
    Ssn,
    /// A North American phone number.
    Phone,
    /// A phone-like number after a fax cue (`Fax:`, `facsimile`).
    Fax,
    /// An email address.
    Email,
    /// A medical record number (configurable patterns).
    Mrn,
    /// A date with a month and day (numeric or with a month name).
    Date,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A URL with a scheme (`https://`) or a `www.` host.
    Url,
    /// A ZIP code after a cue (`ZIP`, `postal code`) or a state abbreviation.
    Zip,
    /// A payment-card-like account number (13 to 19 digits, Luhn-checked).
    Account,
    /// Text the scanner could not examine (its patterns failed to compile), masked whole.
    Unscanned,
}

impl IdentifierKind {
    /// Every kind.
    pub const ALL: &'static [IdentifierKind] = &[
        IdentifierKind::Ssn,
        IdentifierKind::Phone,
        IdentifierKind::Fax,
        IdentifierKind::Email,
        IdentifierKind::Mrn,
        IdentifierKind::Date,
        IdentifierKind::Ip,
        IdentifierKind::Url,
        IdentifierKind::Zip,
        IdentifierKind::Account,
    ];

    /// The PHI category this kind of identifier belongs to.
    pub fn category(self) -> crate::Category {
        use crate::Category;
        match self {
            IdentifierKind::Ssn => Category::Ssn,
            IdentifierKind::Phone => Category::Phone,
            IdentifierKind::Fax => Category::Fax,
            IdentifierKind::Email => Category::Email,
            IdentifierKind::Mrn => Category::Mrn,
            IdentifierKind::Date => Category::Date,
            IdentifierKind::Ip => Category::Ip,
            IdentifierKind::Url => Category::Url,
            IdentifierKind::Zip => Category::Zip,
            IdentifierKind::Account => Category::Account,
            IdentifierKind::Unscanned => Category::Note,
        }
    }

    /// The placeholder the identifier is replaced with (`[SSN]`, `[PHONE]`…).
    pub fn placeholder(self) -> &'static str {
        match self {
            IdentifierKind::Ssn => "[SSN]",
            IdentifierKind::Phone => "[PHONE]",
            IdentifierKind::Fax => "[FAX]",
            IdentifierKind::Email => "[EMAIL]",
            IdentifierKind::Mrn => "[MRN]",
            IdentifierKind::Date => "[DATE]",
            IdentifierKind::Ip => "[IP]",
            IdentifierKind::Url => "[URL]",
            IdentifierKind::Zip => "[ZIP]",
            IdentifierKind::Account => "[ACCOUNT]",
            IdentifierKind::Unscanned => "[REDACTED]",
        }
    }
}

/// One identifier found in a text: what it is and its byte range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScanMatch {
    /// What kind of identifier.
    pub kind: IdentifierKind,
    /// Its byte range in the scanned text (always on character boundaries).
    pub range: Range<usize>,
}

/// The work one [`Scanner::find_with_work`] call did: regex searches started, the bytes of
/// the spans they were given (an upper bound on the bytes the automaton read), and candidate
/// matches run through a validity check.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanWork {
    /// Regex searches started.
    pub searches: u64,
    /// The total length of the spans those searches were given.
    pub bytes_searched: u64,
    /// Candidates checked (SSA rules, NANP, calendar, Luhn…).
    pub validations: u64,
}

/// Why a scanner could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScannerError {
    /// A configured pattern does not compile.
    #[error("invalid {what} pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// Which pattern list (`MRN`, or `built-in` for the scanner's own).
        what: &'static str,
        /// The pattern as given.
        pattern: String,
        /// What the regex compiler said.
        reason: String,
    },
}

/// Finds identifiers in free text and masks them.
///
/// ```
/// use guardrail_core::mask::scanner::{IdentifierKind, Scanner};
/// let scanner = Scanner::default();
/// let note = "Pt seen 03/14/2024, SSN 123-45-6789, call (617) 555-0142. Metformin 500 mg.";
/// let kinds: Vec<_> = scanner.find(note).into_iter().map(|f| f.kind).collect();
/// assert_eq!(kinds, [IdentifierKind::Date, IdentifierKind::Ssn, IdentifierKind::Phone]);
/// assert_eq!(
///     scanner.mask(note),
///     "Pt seen [DATE], SSN [SSN], call [PHONE]. Metformin 500 mg."
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Scanner {
    /// `None` only if the built-in patterns failed to compile: then the whole text is one
    /// [`IdentifierKind::Unscanned`] match.
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    /// The patterns with a match of at most [`MAX_BOUNDED_LEN`] bytes.
    bounded: Option<Stream>,
    /// The others (emails, URLs, unbounded custom patterns).
    open: Option<Stream>,
    /// True if `open` holds only the built-in email and URL patterns, which need an `@`, a
    /// `:/` or a `www.` in the window (see `trigger::Window::open`).
    open_needs_trigger: bool,
    patterns: Vec<Pattern>,
    prefilter: bool,
    /// True if an MRN pattern is not the default one: the prefilter then looks back over
    /// whole words for a cue it does not know (see `trigger::Windows`).
    custom_mrn: bool,
}

/// One automaton over some of the patterns, searched in spans of at most `span` bytes.
#[derive(Debug)]
struct Stream {
    regex: Regex,
    /// The index in `Inner::patterns` of each of the automaton's patterns.
    ids: Vec<usize>,
    /// The most bytes one search is given.
    span: usize,
    /// A match found starting closer than this to the end of a cut span is searched again
    /// from this far before the cut (the cut may have shortened it, hidden a preferred
    /// alternative, or hidden a match that starts before it and ends past the cut).
    margin: usize,
}

/// A validated match of one stream, not yet chosen.
#[derive(Debug)]
struct Candidate {
    found: ScanMatch,
    /// The pattern's index (priority: lower wins at the same start).
    index: usize,
    /// The whole match (cue included).
    start: usize,
    end: usize,
}

#[derive(Debug)]
struct Pattern {
    /// The longest match the pattern can have, if bounded.
    max_len: Option<usize>,
    kind: IdentifierKind,
    check: Check,
    source: String,
    id: IdPart,
}

/// Which part of a match is the identifier (the rest is a cue, left readable).
#[derive(Debug)]
enum IdPart {
    /// All of it.
    Whole,
    /// From the first digit, `(` or `+` on: the built-in cue patterns, whose cues hold none
    /// of those (a byte scan instead of a capture search on every cue match).
    FromFirstNumeric,
    /// The `id` group of a custom pattern, found by running it alone with captures.
    Group(regex::Regex),
}

struct PatternSpec {
    kind: IdentifierKind,
    check: Check,
    source: String,
    what: &'static str,
}

/// True for the built-in patterns (as opposed to configured MRN patterns).
const BUILT_IN: &str = "built-in";

impl Default for Scanner {
    /// The scanner with the built-in patterns.
    ///
    /// The built-in patterns are tested to compile; were they ever not to, this scanner
    /// fails closed: it reports the whole text as one identifier, so everything is masked.
    fn default() -> Self {
        Scanner::builder()
            .build()
            .unwrap_or(Scanner { inner: None })
    }
}

impl Scanner {
    /// A builder, to set MRN patterns.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder {
            mrn: vec![DEFAULT_MRN_PATTERN.to_owned()],
            prefilter: None,
        }
    }

    /// The patterns in search order, as `(kind, regex source)`: for baselines and reviews.
    pub fn patterns(&self) -> impl Iterator<Item = (IdentifierKind, &str)> {
        self.inner
            .iter()
            .flat_map(|i| i.patterns.iter())
            .map(|p| (p.kind, p.source.as_str()))
    }

    /// True if a match of pattern number `index` (in [`Scanner::patterns`] order) at `range`
    /// of `text` passes that pattern's validity check; the finding it becomes, if any.
    /// For baselines that run each pattern's regex on its own.
    pub fn validate(&self, index: usize, text: &str, range: Range<usize>) -> Option<ScanMatch> {
        let inner = self.inner.as_ref()?;
        let pattern = inner.patterns.get(index)?;
        inner.accept(pattern, text, range)
    }

    /// Every identifier in `text`, in order, not overlapping.
    pub fn find(&self, text: &str) -> Vec<ScanMatch> {
        self.find_with_work(text).0
    }

    /// Like [`Scanner::find`], and how much work the search took: for the tests that bound
    /// the work per input byte (linear time on any input). Not a stable API.
    #[doc(hidden)]
    pub fn find_with_work(&self, text: &str) -> (Vec<ScanMatch>, ScanWork) {
        let mut work = ScanWork::default();
        let found = self.find_normalized(text, true, &mut work);
        (found, work)
    }

    /// Like [`Scanner::find`] but searching the whole text without the prefilter: the
    /// reference the prefilter is tested against.
    pub fn find_unfiltered(&self, text: &str) -> Vec<ScanMatch> {
        self.find_normalized(text, false, &mut ScanWork::default())
    }

    /// Searches the normalized view of `text` (look-alike dashes, digits and spaces folded
    /// to ASCII, invisible characters dropped) and maps what it finds back to `text`.
    fn find_normalized(&self, text: &str, prefilter: bool, work: &mut ScanWork) -> Vec<ScanMatch> {
        let prescan = normalize::prescan(text.as_bytes());
        let view = if prescan.ascii {
            None
        } else {
            normalize::Normalized::of(text)
        };
        let Some(view) = view else {
            return self.find_in(text, prefilter, prescan.w_dot, work);
        };
        // Folding may make a `www.` (a fullwidth `.` after `www`): look for one.
        self.find_in(&view.text, prefilter, true, work)
            .into_iter()
            .map(|m| ScanMatch {
                kind: m.kind,
                // Never empty, so always mapped; were it not, mask everything (fail closed).
                range: view.original(&m.range).unwrap_or(0..text.len()),
            })
            .collect()
    }

    /// The identifiers of `text`; `w_dot` false if no `.` follows a `w` or `W` in it (so it
    /// holds no `www.`).
    fn find_in(
        &self,
        text: &str,
        prefilter: bool,
        w_dot: bool,
        work: &mut ScanWork,
    ) -> Vec<ScanMatch> {
        let mut out = Vec::new();
        match &self.inner {
            Some(inner) if prefilter && inner.prefilter => {
                let mut windows = Windows::new(text, inner.custom_mrn, w_dot);
                while let Some(window) = windows.next_window(&mut out) {
                    let open = window.open || !inner.open_needs_trigger;
                    // Short windows, and what is left of one after a match, that cannot hold
                    // a built-in identifier (`120/80,`, the `,` after a date) are not searched
                    // (custom MRN patterns may match anything).
                    let skip = !inner.custom_mrn;
                    let decided = match window.asked {
                        Asked::No if skip => search::decided(text, &window.range, work),
                        Asked::No | Asked::Search => None,
                        Asked::Nothing => Some(None),
                    };
                    if let Some(found) = decided {
                        if let Some(found) = found {
                            search::push_finding(&mut out, found);
                        }
                        continue;
                    }
                    let hints = Hints {
                        open,
                        skip,
                        sure: window.sure,
                    };
                    inner.search(text, window.range, hints, &mut out, work);
                }
                work.validations += windows.validations;
            }
            Some(inner) => {
                let hints = Hints {
                    open: true,
                    skip: false,
                    sure: false,
                };
                inner.search(text, 0..text.len(), hints, &mut out, work)
            }
            None => unscanned(text, &mut out),
        }
        out
    }

    /// True if `text` holds at least one identifier.
    pub fn contains_identifier(&self, text: &str) -> bool {
        !self.find(text).is_empty()
    }

    /// `text` with every identifier replaced by its placeholder (`[SSN]`, `[PHONE]`…).
    ///
    /// A placeholder changes what is next to it (`0https://x` holds no URL, but `[IP]https://x`
    /// does), so the masked text is scanned again until nothing more is found: the result
    /// never holds an identifier the scanner would find. Text with no identifier costs one
    /// scan; after [`MASK_PASSES`] passes that still find something, the text is redacted
    /// whole (fail closed).
    pub fn mask(&self, text: &str) -> String {
        let mut current = std::borrow::Cow::Borrowed(text);
        for _ in 0..MASK_PASSES {
            let findings = self.find(&current);
            if findings.is_empty() {
                return current.into_owned();
            }
            current = std::borrow::Cow::Owned(replace(&current, &findings));
        }
        if self.find(&current).is_empty() {
            current.into_owned()
        } else {
            IdentifierKind::Unscanned.placeholder().to_owned()
        }
    }
}

/// How many times [`Scanner::mask`] scans its own output before redacting it whole.
pub const MASK_PASSES: usize = 4;

/// `text` with each of `findings` (ordered, disjoint) replaced by its placeholder.
fn replace(text: &str, findings: &[ScanMatch]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        out.push_str(text.get(at..f.range.start).unwrap_or_default());
        out.push_str(f.kind.placeholder());
        at = f.range.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// Fail closed: text that could not be scanned is one finding, masked whole.
fn unscanned(text: &str, out: &mut Vec<ScanMatch>) {
    if !text.is_empty() {
        out.push(ScanMatch {
            kind: IdentifierKind::Unscanned,
            range: 0..text.len(),
        });
    }
}

#[cfg(test)]
mod tests;
