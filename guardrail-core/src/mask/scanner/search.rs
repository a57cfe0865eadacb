//! The search: windows around triggers, bounded spans per automaton, candidates checked.

use super::checks::{
    luhn_digits_valid, nanp_digits_valid, numeric_date_numbers_valid, ssn_digits_valid,
};
use super::*;
use regex_automata::Anchored;
use trigger::Hope;

/// Without the prefilter (custom patterns, or the whole text), the shortest span whose first
/// search is anchored at its start (a shorter one holds at most a short identifier, and the
/// extra search would cost more than it saves).
const ANCHORED_MIN_LEN: usize = 8;
/// The findings a scan makes room for at its first.
const FIRST_CAPACITY: usize = 16;

impl Inner {
    /// Searches `span` of `text`, appending validated matches: at each step the leftmost
    /// validated candidate of either stream (the earlier pattern at the same start), then
    /// on after its end. See [`Hints`] for what the caller knows of the span.
    pub(super) fn search(
        &self,
        text: &str,
        span: Range<usize>,
        hints: Hints,
        out: &mut Vec<ScanMatch>,
        work: &mut ScanWork,
    ) {
        let Hints { open, skip, sure } = hints;
        let end = span.end;
        let mut at = span.start;
        let open_stream = if open { self.open.as_ref() } else { None };
        let mut next = [Lane::new(self.bounded.as_ref()), Lane::new(open_stream)];
        // A window starts where a match most likely starts (a cue, a date, a phone number),
        // and so does the first word after a match (`03/14/1985    MRN: 1234567`): each
        // search is first anchored there (see `Stream::next`). Without the prefilter, only
        // the first search of a span long enough for the identifiers that start there.
        let mut first = true;
        while at < end {
            // Short spans, and what is left of one after a match, that cannot hold a
            // built-in identifier for an automaton (`120/80,`, the `,` after a date, an
            // email's word for the bounded one) are not searched by it.
            // The first test is not needed when the window's digit cluster alone passes it
            // and the open-ended automaton is off anyway.
            let hope = match text.as_bytes().get(at..end) {
                Some(_) if first && sure && !open => Hope::ANY,
                Some(rest) if skip => super::trigger::hope(rest),
                _ => Hope::ANY,
            };
            let [b, o] = &mut next;
            let anchor = if skip {
                Anchor::AfterSpace
            } else if first && end - at >= ANCHORED_MIN_LEN {
                Anchor::At
            } else {
                Anchor::No
            };
            b.refill(self, text, at, end, hope.bounded, anchor, work);
            o.refill(self, text, at, end, hope.open, anchor, work);
            first = false;
            let lane = match (&b.candidate, &o.candidate) {
                (Some(x), Some(y)) if (y.start, y.index) < (x.start, x.index) => o,
                (Some(_), _) => b,
                (None, Some(_)) => o,
                (None, None) => break,
            };
            let Some(c) = lane.candidate.take() else {
                break;
            };
            at = c.end.max(c.start + 1);
            push_finding(out, c.found);
        }
    }

    pub(super) fn accept(
        &self,
        pattern: &Pattern,
        text: &str,
        range: Range<usize>,
    ) -> Option<ScanMatch> {
        let whole = text.get(range.clone())?;
        // The identifier part, without its cue.
        let mut id = range.clone();
        match &pattern.id {
            IdPart::Whole => {}
            IdPart::FromFirstNumeric => {
                let skip = whole
                    .bytes()
                    .position(|b| b.is_ascii_digit() || b == b'(' || b == b'+')
                    .unwrap_or(0);
                id.start += skip;
            }
            IdPart::Group(alone) => {
                if let Some(g) = alone.captures(whole).and_then(|c| c.name("id")) {
                    id = range.start + g.start()..range.start + g.end();
                }
            }
        }
        let s = text.get(id.clone())?;
        let ok = match pattern.check {
            Check::None => true,
            Check::Ssn => valid_ssn(s),
            Check::Nanp => valid_nanp(s),
            Check::NumericDate => valid_numeric_date(s),
            Check::NamedDate => valid_named_date(s),
            Check::Ipv4 => s.parse::<std::net::Ipv4Addr>().is_ok(),
            Check::Ipv6 => s.parse::<std::net::Ipv6Addr>().is_ok(),
            Check::Luhn => valid_luhn(s),
            Check::Url => {
                // Prose puts punctuation after a URL; it is not part of it.
                let trimmed = s.trim_end_matches(|c: char| {
                    u8::try_from(c).is_ok_and(|b| URL_TRAILING.contains(&b))
                });
                id.end = id.start + trimmed.len();
                !trimmed.is_empty()
            }
        };
        ok.then_some(ScanMatch {
            kind: pattern.kind,
            range: id,
        })
    }
}

/// What a window is found to hold without the automaton, by the first of the whole-window
/// shortcuts that decides it (`Some(None)`: nothing), or `None` if none does (search it).
/// Only with the built-in patterns.
pub(super) fn decided(
    text: &str,
    window: &Range<usize>,
    work: &mut ScanWork,
) -> Option<Option<ScanMatch>> {
    if let Some(date) = whole_numeric_date(text, window) {
        work.validations += 1;
        return Some(Some(date));
    }
    if let Some(found) = lone_numeric_word(text, window, work) {
        return Some(found);
    }
    let found = whole_named_date(text, window)
        .or_else(|| whole_cue_window(text, window))
        .or_else(|| whole_email(text, window))
        .or_else(|| whole_url(text, window))?;
    work.validations += 1;
    Some(Some(found))
}

/// The punctuation prose puts after a URL, which its check trims off the match.
const URL_TRAILING: &[u8] = b".,;:!?)'\"";

/// The longest window [`whole_url`] reads (a longer one is searched).
const URL_WINDOW: usize = 512;

/// The bytes [`URL`]'s path class takes.
fn is_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// A window that is one URL and nothing else (`https://portal.example.org/msg/54073`),
/// the finding its search would make, found without the automaton; `None` for any other
/// window (search it). Only with the built-in patterns.
///
/// The window (which starts at a word's start) must start with a scheme [`URL`] takes
/// (`http://`, `https://`, `ftp://`, `sftp://`, any case) and hold nothing but the bytes of
/// its path class after it, at least one. Then the search finds exactly that URL, less the punctuation
/// its check trims off the end: it starts at the window's start, so it is the leftmost
/// match, and no pattern listed before the URL's matches there (the cue patterns need
/// `fax`, `facsimile`, `telefax`, `ssn`, `ss#`, `soc`, `mrn`, `mr#`, `med`, `zip` or
/// `postal`, and an email's local part cannot hold the scheme's `:`); the path class takes
/// every byte to the window's end; the check keeps what is left after trimming, which the
/// scheme makes non-empty; and the bytes trimmed off (`.` `,` `;` `:` `!` `?` `)` `'` `"`)
/// hold no identifier. A `www.` window is left to the search (an email may start there).
pub(super) fn whole_url(text: &str, window: &Range<usize>) -> Option<ScanMatch> {
    let w = word_window(text, window, 7..=URL_WINDOW)?;
    let scheme = [&b"http://"[..], b"https://", b"ftp://", b"sftp://"]
        .into_iter()
        .find(|s| w.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)))?;
    // `[…]+`: at least one byte after the scheme, and every one of the path class.
    let path = w.get(scheme.len()..)?;
    if path.is_empty() || !path.iter().all(|&b| is_url_byte(b)) {
        return None;
    }
    let kept = w
        .iter()
        .rposition(|b| !URL_TRAILING.contains(b))
        .map_or(0, |p| p + 1);
    Some(ScanMatch {
        kind: IdentifierKind::Url,
        range: window.start..window.start + kept,
    })
}

/// The longest window [`whole_email`] reads (a longer one is searched).
const EMAIL_WINDOW: usize = 254;

/// A window that is one email address and nothing else (`kofi.sousa@example.co.uk.`), the
/// finding its search would make, found without the automaton; `None` for any other window
/// (search it). Only with the built-in patterns.
///
/// The window (which starts at a word's start) must be a match of [`EMAIL`] from its first
/// byte on, then at most one of `,` `.` `;` `:` `)`: a local part of its bytes that starts
/// with a letter or digit (so `\b` holds before it), an `@`, then two or more labels joined
/// by `.`, the last of two to 24 letters. Then the search finds exactly that address: it
/// starts at the window's start, so it is the leftmost match, and of the patterns listed
/// before the email's only the cue patterns could match there too, which the local part
/// rules out by not starting with a cue (`fa`, `tel`, `ss`, `soc`, `mr`, `med`, `zip`,
/// `post`); the regex takes the local part up to the `@` (its class holds no `@`), every
/// label but the last in its `(?:\.[A-Za-z0-9\-]+)*`, and the last as the top-level domain
/// (the first way through, giving back one label, that ends at a `\b`); and the byte left
/// after it holds nothing. The email pattern has no check.
pub(super) fn whole_email(text: &str, window: &Range<usize>) -> Option<ScanMatch> {
    let w = word_window(text, window, 6..=EMAIL_WINDOW)?;
    let body = without_tail(w);
    let at = body.iter().position(|&b| b == b'@')?;
    let (local, domain) = (body.get(..at)?, body.get(at + 1..)?);
    let local_byte = |b: &u8| b.is_ascii_alphanumeric() || b"._%+-".contains(b);
    if !local.first()?.is_ascii_alphanumeric() || !local.iter().all(local_byte) {
        return None;
    }
    let cues: [&[u8]; 8] = [b"fa", b"tel", b"ss", b"soc", b"mr", b"med", b"zip", b"post"];
    if cues.iter().any(|cue| {
        local
            .get(..cue.len())
            .is_some_and(|l| l.eq_ignore_ascii_case(cue))
    }) {
        return None;
    }
    let label_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-';
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || !label.iter().all(label_byte) {
            return None;
        }
        labels += 1;
        last = label;
    }
    let top_level = (2..=24).contains(&last.len()) && last.iter().all(u8::is_ascii_alphabetic);
    (labels >= 2 && top_level).then(|| ScanMatch {
        kind: IdentifierKind::Email,
        range: window.start..window.start + body.len(),
    })
}

/// Appends a finding, making room for the identifiers of a typical note at the first one:
/// one allocation rather than three growths (and none for text without any).
pub(super) fn push_finding(out: &mut Vec<ScanMatch>, found: ScanMatch) {
    if out.capacity() == 0 {
        out.reserve(FIRST_CAPACITY);
    }
    out.push(found);
}

/// True if what is left of a window after an identifier cannot hold or extend one: nothing,
/// or one of `,` `.` `;` `:` `)` (none a word byte, so `\b` holds before it).
fn is_tail(rest: &[u8]) -> bool {
    match rest {
        [] => true,
        [b] => is_tail_byte(*b),
        _ => false,
    }
}

/// A byte [`is_tail`] allows after an identifier: `,` `.` `;` `:` `)`.
fn is_tail_byte(b: u8) -> bool {
    matches!(b, b',' | b'.' | b';' | b':' | b')')
}

/// `w` without its last byte if that is one [`is_tail`] allows: what a whole-window
/// shortcut reads as the identifier.
fn without_tail(w: &[u8]) -> &[u8] {
    match w.split_last() {
        Some((&last, body)) if is_tail_byte(last) => body,
        _ => w,
    }
}

/// The bytes of `window` if its length is in `lengths` and a `\b` may hold at its start
/// (the byte before it, if any, is no word byte): what each whole-window shortcut needs
/// first.
fn word_window<'t>(
    text: &'t str,
    window: &Range<usize>,
    lengths: std::ops::RangeInclusive<usize>,
) -> Option<&'t [u8]> {
    let bytes = text.as_bytes();
    let w = bytes.get(window.clone())?;
    if !lengths.contains(&w.len()) {
        return None;
    }
    if window.start > 0 && super::patterns::is_word_byte(*bytes.get(window.start - 1)?) {
        return None;
    }
    Some(w)
}

/// A window that is a numeric date and nothing else, the finding its search would make,
/// found without the automaton; `None` for any other window (search it).
///
/// The window (which starts at a word's start) must be a valid numeric date in one of
/// [`DATE_NUMERIC`]'s three forms (`3/14/2024`, `14-3-24`, `2024-03-14`, `14.03.2024`),
/// then at most one of `,` `.` `;` `:` `)`. Then the search, with the built-in patterns
/// only, finds exactly that date: no pattern listed before the numeric date matches at the
/// window's start (the cue patterns and the email and URL patterns need letters, an `@` or a
/// `:/` there; SSN and phone numbers need a run of three digits first, or a `1` and then
/// one), the date's own pattern matches it whole (the byte before the window is not a word
/// byte, and whitespace or the text's end follows it), the date is the leftmost match, and
/// the one byte after it holds nothing. Half the identifiers of clinical notes are dates;
/// most stand alone in their window like this. An invalid date is left to the search.
pub(super) fn whole_numeric_date(text: &str, window: &Range<usize>) -> Option<ScanMatch> {
    // `1/2/34` to `2024-03-14)`; most windows fail here (a cue, a longer cluster).
    let w = word_window(text, window, 6..=11)?;
    let len = numeric_date_len(w)?;
    Some(ScanMatch {
        kind: IdentifierKind::Date,
        range: window.start..window.start + len,
    })
}

/// The length of the date `w` starts with, if `w` is a valid numeric date in one of
/// [`DATE_NUMERIC`]'s forms and then at most one of `,` `.` `;` `:` `)`: what
/// [`whole_numeric_date`] asks of a window, and `trigger::Windows::own_date` of a cluster's
/// word. One pass reads the three runs of digits, the byte after each of the first two,
/// and the runs' values, which the check (`checks::numeric_date_numbers_valid`) then reads.
pub(super) fn numeric_date_len(w: &[u8]) -> Option<usize> {
    let mut values = [0u32; 3];
    let mut lengths = [0usize; 3];
    let mut separators = [0u8; 2];
    let mut i = 0;
    for k in 0..3 {
        let run = i;
        while let Some(&b) = w.get(i).filter(|b| b.is_ascii_digit()) {
            values[k] = values[k]
                .saturating_mul(10)
                .saturating_add(u32::from(b - b'0'));
            i += 1;
        }
        lengths[k] = i - run;
        if let Some(separator) = separators.get_mut(k) {
            *separator = *w.get(i)?;
            i += 1;
        }
    }
    let short = |n: usize| n == 1 || n == 2;
    let [a, b, c] = lengths;
    let shape = match separators {
        [b'.', b'.'] => short(a) && short(b) && c == 4,
        [b'/' | b'-', b'/' | b'-'] => {
            (short(a) && short(b) && (c == 2 || c == 4)) || (a == 4 && short(b) && short(c))
        }
        _ => false,
    };
    (shape && is_tail(w.get(i..)?) && numeric_date_numbers_valid(a == 4, values)).then_some(i)
}

/// A window that is one named date and nothing else (`Dec 3, 2006`, `March 3rd, 2021`,
/// `Sept. 3 2021`, `3 Dec 2006`, `03-Mar-2024`), the finding its search would make, found
/// without the automaton; `None` for any other window (search it).
///
/// The window (which starts at a word's start) must be a match of the named-date pattern
/// (`patterns::date_named_pattern`) from its first byte on, then at most one of `,` `.` `;`
/// `:` `)`, and the day must pass the check. Then the search, with the built-in patterns
/// only, finds exactly that date: no pattern listed before the named date matches at the
/// window's start (the cue patterns need a cue there, `fax`, `ssn`, `soc`, `mrn`, `mr#`,
/// `med`, `zip` or `postal`, and no month name starts with one; the email and URL patterns
/// need an `@`, a `:/` or a `www.`, which the window does not hold; the SSN, phone and
/// numeric-date patterns need three digits, or one or two digits and then a separator and a
/// digit or a `(`, where a day is followed by an ordinal, a space, a tab or a `-` and then a
/// month's letters), the date's own pattern matches it whole (each of its pieces is one
/// maximal run of its bytes here, so there is no other way to match: a month name that is
/// not whole, a day of three digits, a year of five are no named date), the byte before the
/// window is not a word byte and the byte after the year is none either, and the one byte
/// after it holds nothing. A date whose day fails the check is left to the search.
pub(super) fn whole_named_date(text: &str, window: &Range<usize>) -> Option<ScanMatch> {
    // `May 3 2006` to `September. 31st,  2006)`; most windows fail here or at the first
    // piece.
    let w = word_window(text, window, 10..=24)?;
    let first = *w.first()?;
    let mut p = Cursor { w, at: 0 };
    let whole = if first.is_ascii_alphabetic() {
        // The first letters of the month names: most cue words are not one.
        if !matches!(
            first | 0x20,
            b'j' | b'f' | b'm' | b'a' | b's' | b'o' | b'n' | b'd'
        ) {
            return None;
        }
        // `(?i:MONTHS)\.?[ \t]{1,2}[0-9]{1,2}(?i:st|nd|rd|th)?,?[ \t]{1,2}[0-9]{4}`
        p.month()
            && p.optional(b'.')
            && p.run(|b| matches!(b, b' ' | b'\t'), 1, 2)
            && p.run(|b| b.is_ascii_digit(), 1, 2)
            && p.ordinal()
            && p.optional(b',')
            && p.run(|b| matches!(b, b' ' | b'\t'), 1, 2)
            && p.run(|b| b.is_ascii_digit(), 4, 4)
    } else {
        // `[0-9]{1,2}(?i:st|nd|rd|th)?[ \t\-]{1,2}(?i:MONTHS)\.?[ \t\-,]{1,2}[0-9]{4}`
        p.run(|b| b.is_ascii_digit(), 1, 2)
            && p.ordinal()
            && p.run(|b| matches!(b, b' ' | b'\t' | b'-'), 1, 2)
            && p.month()
            && p.optional(b'.')
            && p.run(|b| matches!(b, b' ' | b'\t' | b'-' | b','), 1, 2)
            && p.run(|b| b.is_ascii_digit(), 4, 4)
    };
    if !whole || !p.ends_window() {
        return None;
    }
    let range = window.start..window.start + p.at;
    valid_named_date(text.get(range.clone())?).then_some(ScanMatch {
        kind: IdentifierKind::Date,
        range,
    })
}

/// Reads the pieces of an identifier off the front of a window as its pattern has them,
/// each piece one maximal run of its bytes (false if a piece is not there).
struct Cursor<'w> {
    w: &'w [u8],
    at: usize,
}

impl Cursor<'_> {
    /// `bytes` (in this case) if they are next.
    fn exact(&mut self, bytes: &[u8]) -> bool {
        let found = self.w.get(self.at..self.at + bytes.len()) == Some(bytes);
        if found {
            self.at += bytes.len();
        }
        found
    }

    /// `word` (any case) if it is next.
    fn word(&mut self, word: &[u8]) -> bool {
        let next = self.w.get(self.at..self.at + word.len());
        let found = next.is_some_and(|next| next.eq_ignore_ascii_case(word));
        if found {
            self.at += word.len();
        }
        found
    }

    /// At the end of the identifier: true if `\b` holds here (the next byte, if any, is no
    /// word byte) and what is left of the window is at most one of `,` `.` `;` `:` `)`.
    fn ends_window(&self) -> bool {
        self.w.get(self.at..).is_some_and(is_tail)
    }

    /// The length of the maximal run of bytes `class` holds, read past.
    fn take(&mut self, class: impl Fn(u8) -> bool) -> usize {
        let rest = self.w.get(self.at..).unwrap_or_default();
        let len = rest.iter().take_while(|&&b| class(b)).count();
        self.at += len;
        len
    }

    /// A maximal run of bytes `class` holds, `min` to `max` long.
    fn run(&mut self, class: impl Fn(u8) -> bool, min: usize, max: usize) -> bool {
        (min..=max).contains(&self.take(class))
    }

    /// The byte `b` if it is next (always true: the piece is optional).
    fn optional(&mut self, b: u8) -> bool {
        if self.w.get(self.at) == Some(&b) {
            self.at += 1;
        }
        true
    }

    /// One byte of `class` if it is next (always true: the piece is optional).
    fn optional_of(&mut self, class: impl Fn(u8) -> bool) -> bool {
        if self.w.get(self.at).is_some_and(|&b| class(b)) {
            self.at += 1;
        }
        true
    }

    /// Exactly `n` bytes of `class` next (whatever follows them), read past.
    fn exactly(&mut self, n: usize, class: impl Fn(u8) -> bool) -> bool {
        let found = self
            .w
            .get(self.at..self.at + n)
            .is_some_and(|next| next.iter().all(|&b| class(b)));
        if found {
            self.at += n;
        }
        found
    }

    /// True if `\b` holds before the next byte, which is a word byte: the byte before it
    /// is none (the window starts at a word's start, so there the text's byte before is
    /// none either).
    fn word_starts(&self) -> bool {
        self.at == 0
            || !self
                .w
                .get(self.at - 1)
                .is_some_and(|&b| super::patterns::is_word_byte(b))
    }

    /// True if `\b` holds after the last byte read, a word byte: the next byte is none.
    fn word_ends(&self) -> bool {
        !self
            .w
            .get(self.at)
            .is_some_and(|&b| super::patterns::is_word_byte(b))
    }

    /// An ordinal suffix (`st`, `nd`, `rd`, `th`, any case) if it is next (always true).
    fn ordinal(&mut self) -> bool {
        if let Some(pair) = self.w.get(self.at..self.at + 2)
            && [b"st", b"nd", b"rd", b"th"]
                .iter()
                .any(|s| pair.eq_ignore_ascii_case(&s[..]))
        {
            self.at += 2;
        }
        true
    }

    /// A whole month name or abbreviation of the pattern (any case): a maximal run of
    /// letters equal to one of them.
    fn month(&mut self) -> bool {
        let start = self.at;
        if !self.run(|b| b.is_ascii_alphabetic(), 3, 9) {
            return false;
        }
        let word = self.w.get(start..self.at).unwrap_or_default();
        // Lower case once (at most nine letters), then plain comparisons.
        let mut lower = [0u8; 9];
        for (to, from) in lower.iter_mut().zip(word) {
            *to = from.to_ascii_lowercase();
        }
        let lower = lower.get(..word.len()).unwrap_or_default();
        super::patterns::is_month_name(lower)
    }
}

/// A window that is one MRN after its cue (the default pattern, [`DEFAULT_MRN_PATTERN`]:
/// `MRN: 0374774`, `MR# 0374774`, `Medical record number: 0374774`), one ZIP code after a
/// state (`NY 81960-4230`), one fax number after its cue (`fax: (617) 555-0142`) or one SSN
/// after its cue (`(SSN 123 45 6789`, `Social security number: 123-45-6789`), and nothing
/// else, the finding its search would make, found without the automaton; `None` for any
/// other window (search it). Only with the built-in patterns.
///
/// The window (which starts at a word's start) must be a match of that pattern from its
/// first byte on (after a `(` for an SSN cue), then at most one of `,` `.` `;` `:` `)`. Then
/// the search finds exactly that match: at the window's start no other pattern matches (the
/// fax cue is the first pattern; the SSN cue is the second and the fax cue starts `fax`,
/// `facsimile` or `telefax`; no pattern starts at a `(` before letters; the MRN cues and
/// state codes start none of the fax and SSN cues, nor do the patterns after the MRN's: an
/// email needs an `@`, a URL `:/` or `www.`, a named date a month name, the rest a digit, `(`
/// or `+`), the pattern matches the whole window (its pieces are read the way the regex
/// prefers them, each optional piece taken if it is there, each alternative tried in the
/// regex's order; the first way that matches is the one the leftmost-first search takes),
/// the check passes where the pattern has one (a number that fails it is left to the
/// search), and the byte left after it holds nothing.
pub(super) fn whole_cue_window(text: &str, window: &Range<usize>) -> Option<ScanMatch> {
    // `MA 02115` to `Social security number #:   123 45 6789.`.
    let w = word_window(text, window, 8..=48)?;
    let mut c = Cursor { w, at: 0 };
    let kind = match w {
        [a, b, ..] if super::patterns::is_state(*a, *b) => {
            c.at = 2;
            c.optional(b',');
            let zip = c.run(|b| matches!(b, b' ' | b'\t'), 1, 2)
                && c.run(|b| b.is_ascii_digit(), 5, 5)
                && {
                    // `(?:-[0-9]{4})?\b`: the four digits only if `\b` follows them.
                    let plus4 =
                        c.w.get(c.at..c.at + 5)
                            .is_some_and(|p| p[0] == b'-' && p[1..].iter().all(u8::is_ascii_digit))
                            && c.w
                                .get(c.at + 5)
                                .is_none_or(|&b| !super::patterns::is_word_byte(b));
                    if plus4 {
                        c.at += 5;
                    }
                    true
                };
            if !zip {
                return None;
            }
            IdentifierKind::Zip
        }
        [b'm' | b'M', ..] => {
            // `(?i:mrn|mr#|med(?:ical)? rec(?:ord)?(?: number| no\.?| num)?)`
            let cue = if c.word(b"mrn") || c.word(b"mr#") {
                true
            } else if c.word(b"med") {
                c.word(b"ical");
                let rec = c.word(b" rec");
                if rec {
                    c.word(b"ord");
                    if !c.word(b" number") {
                        if c.word(b" no") {
                            c.optional(b'.');
                        } else {
                            c.word(b" num");
                        }
                    }
                }
                rec
            } else {
                false
            };
            // `[ \t]?[:#]{0,2}[ \t]{0,3}`: blanks, `:` or `#`, blanks.
            let blank = |b: u8| matches!(b, b' ' | b'\t');
            let blanks = c.take(blank);
            let marks = c.take(|b| matches!(b, b':' | b'#'));
            let after = c.take(blank);
            let gap = if marks == 0 {
                blanks <= 4
            } else {
                marks <= 2 && blanks <= 1 && after <= 3
            };
            if !(cue && gap && c.run(|b| b.is_ascii_digit(), 6, 10)) {
                return None;
            }
            IdentifierKind::Mrn
        }
        [b'f' | b'F' | b't' | b'T', ..] => {
            if !(fax_cue(&mut c) && phone_core(&mut c)) {
                return None;
            }
            IdentifierKind::Fax
        }
        [b's' | b'S', ..] | [b'(', b's' | b'S', ..] => {
            // `(SSN 123-45-6789`: no pattern matches at the `(` (a phone number's
            // `(` needs three digits after it), so the search's match starts after it.
            c.optional(b'(');
            if !(ssn_cue(&mut c) && ssn_digits(&mut c)) {
                return None;
            }
            IdentifierKind::Ssn
        }
        _ => return None,
    };
    if !c.ends_window() {
        return None;
    }
    // The identifier: from the first digit, `(` or `+` after the cue on (what the search
    // takes of a built-in pattern's match, `IdPart::FromFirstNumeric`; no cue, state or
    // `(` before an SSN cue holds one).
    let cue = usize::from(w.first() == Some(&b'('));
    let first = cue
        + w.get(cue..)?
            .iter()
            .position(|&b| b.is_ascii_digit() || b == b'(' || b == b'+')?;
    let range = window.start + first..window.start + c.at;
    // The fax and SSN patterns have a check: a number that fails it is left to the search.
    let id = text.get(range.clone())?;
    let valid = match kind {
        IdentifierKind::Fax => valid_nanp(id),
        IdentifierKind::Ssn => valid_ssn(id),
        _ => true,
    };
    valid.then_some(ScanMatch { kind, range })
}

/// A fax cue as [`fax_pattern`] has it, then the gap before the number:
/// `(?i:fax|facsimile|telefax)(?:[ \t]?(?:no\.?|number|num|#))?[ \t]?[:#]?[ \t]{0,3}` (the
/// suffix in lower case only, as the pattern has it). Each
/// piece is taken as the regex prefers it (an optional piece if it is there, the first
/// alternative that is there, as many blanks as allowed); no other way through these
/// pieces reaches a byte a phone number can start with (`+`, `(`, a digit), so if the number
/// follows, this is the way the search takes.
fn fax_cue(c: &mut Cursor<'_>) -> bool {
    if !(c.word(b"fax") || c.word(b"facsimile") || c.word(b"telefax")) {
        return false;
    }
    let before_suffix = c.at;
    c.optional_of(is_blank);
    // The suffix is outside the pattern's `(?i:…)`: lower case only (`Fax NO. 617…` is no
    // fax cue; its number is a phone number's match).
    let suffix = if c.exact(b"no") {
        c.optional(b'.')
    } else {
        c.exact(b"number") || c.exact(b"num") || c.exact(b"#")
    };
    if !suffix {
        c.at = before_suffix;
    }
    c.optional_of(is_blank);
    c.optional_of(|b| matches!(b, b':' | b'#'));
    let blanks = c.take(is_blank);
    blanks <= 3
}

/// A North American number as [`PHONE_CORE`](super::patterns::PHONE_CORE) has it, the way the regex prefers: first with
/// the `+1` or `1` in front if it is there (then perhaps a separator), else without.
fn phone_core(c: &mut Cursor<'_>) -> bool {
    let start = c.at;
    if c.word(b"+1") || (c.word_starts() && c.word(b"1")) {
        c.optional_of(is_phone_separator);
        if phone_rest(c) {
            return true;
        }
        c.at = start;
    }
    phone_rest(c)
}

/// `(?:\([0-9]{3}\)[ ]?|\b[0-9]{3}[\-. ])[0-9]{3}[\-. ][0-9]{4}\b`.
fn phone_rest(c: &mut Cursor<'_>) -> bool {
    let digit = |b: u8| b.is_ascii_digit();
    let area = if c.word(b"(") {
        c.exactly(3, digit) && c.word(b")") && c.optional(b' ')
    } else {
        c.word_starts() && c.exactly(3, digit) && c.exactly(1, is_phone_separator)
    };
    area && c.exactly(3, digit)
        && c.exactly(1, is_phone_separator)
        && c.exactly(4, digit)
        && c.word_ends()
}

/// An SSN cue as [`SSN_CUE`] has it, then the gap before the digits, the way the regex
/// prefers (as in [`fax_cue`]): `(?i:ssn|ss#|soc(?:ial)?[ \t]?sec(?:urity)?(?:[ \t]?
/// (?:number|num|nbr|no\.?|#))?)(?:[ \t]{0,3}(?:[:#=]{1,2}|(?i:is|was)\b))?[ \t]{0,3}`.
fn ssn_cue(c: &mut Cursor<'_>) -> bool {
    if !(c.word(b"ssn") || c.word(b"ss#")) {
        if !c.word(b"soc") {
            return false;
        }
        c.word(b"ial");
        c.optional_of(is_blank);
        if !c.word(b"sec") {
            return false;
        }
        c.word(b"urity");
        let before_suffix = c.at;
        c.optional_of(is_blank);
        let suffix = c.word(b"number") || c.word(b"num") || c.word(b"nbr") || {
            if c.word(b"no") {
                c.optional(b'.')
            } else {
                c.word(b"#")
            }
        };
        if !suffix {
            c.at = before_suffix;
        }
    }
    // `(?:[ \t]{0,3}(?:[:#=]{1,2}|(?i:is|was)\b))?`
    let before_mark = c.at;
    let blanks = c.take(is_blank);
    let marks = c.take(|b| matches!(b, b':' | b'#' | b'='));
    let mark = blanks <= 3
        && match marks {
            0 => (c.word(b"is") || c.word(b"was")) && c.word_ends(),
            1 | 2 => true,
            _ => false,
        };
    if !mark {
        c.at = before_mark;
    }
    c.take(is_blank) <= 3
}

/// The nine digits of [`SSN_CUE`]'s `id`, the way the regex prefers:
/// `[0-9]{3}[\-. ]?[0-9]{2}[\-. ]?[0-9]{4}`, else `[0-9]{3} [0-9]{3} [0-9]{3}`; then `\b`.
fn ssn_digits(c: &mut Cursor<'_>) -> bool {
    let digit = |b: u8| b.is_ascii_digit();
    let sep = |b: u8| matches!(b, b'-' | b'.' | b' ');
    let start = c.at;
    if c.exactly(3, digit)
        && c.optional_of(sep)
        && c.exactly(2, digit)
        && c.optional_of(sep)
        && c.exactly(4, digit)
        && c.word_ends()
    {
        return true;
    }
    c.at = start;
    c.exactly(3, digit)
        && c.word(b" ")
        && c.exactly(3, digit)
        && c.word(b" ")
        && c.exactly(3, digit)
        && c.word_ends()
}

/// A blank of the patterns' `[ \t]`.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// A separator of [`PHONE_CORE`](super::patterns::PHONE_CORE)'s `[\-. ]`.
fn is_phone_separator(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b' ')
}

/// What a window that is one numeric word of a known shape holds, found without the
/// automaton: `Some(Some(finding))`, `Some(None)` for nothing, `None` for any other window
/// (search it).
///
/// The window (at a word's start, after whitespace or at the text's start) must be digit
/// runs joined by single separators in one of these shapes, then at most one of `,` `.`
/// `;` `:` `)`:
///
/// | shape | the one pattern that can match in it |
/// |---|---|
/// | `123-45-6789`, `123 45 6789` | SSN |
/// | `617-555-0142` (each separator `-`, `.` or a space), `(617) 555-0142`, `(617)555-0142`, `1-617-555-0142`, `+1 617 555 0142` | phone |
/// | 13 to 19 digits, `4111 1111 1111 1111`, `4111-1111-1111-1111` | account |
/// | `10.0.0.1` (four runs of one to three digits joined by `.`) | IPv4 |
/// | `0002-7856-64` (an NDC code) | none |
///
/// Why only that pattern, and only at the window's start: with no letter, `#`, `@` or
/// `::` in the window, only the SSN, phone, numeric date, IPv4 and account patterns can
/// match there, each starting at the start of a run of digits (or at the `+` or `(` of a
/// phone number). A numeric date needs three runs, the first or last of one or two digits
/// and the middle one of one or two, or a run of four and then two short ones; IPv4 four
/// runs joined by dots; an SSN nine digits as 3-2-4; a phone number ten digits as 3-3-4
/// (after an optional `1` or `+1`); an account 13 to 19. Each shape above fits exactly one
/// of these at its start and, from any later run, none: so the search's first candidate is
/// that pattern's match of the whole shape, and if its check fails, the search finds
/// nothing after it (a phone number's later runs hold the same ten digits, so the same
/// check fails; the other shapes hold no shorter fit: an address's later runs are fewer
/// than four, and with no run of four digits and no `-`, `/` or space, no date, SSN, phone
/// number or account fits it). The tail byte cannot extend any
/// match, and `\b` holds at both ends. Unit tests check each shape, with digits that pass
/// and fail the checks, against the search of the whole text.
pub(super) fn lone_numeric_word(
    text: &str,
    window: &Range<usize>,
    work: &mut ScanWork,
) -> Option<Option<ScanMatch>> {
    let bytes = text.as_bytes();
    let w = bytes.get(window.clone())?;
    // `1.2.3.4` to `4111 1111 1111 1111.`, starting with a digit, `(` or `+`; most windows
    // fail here.
    if !(7..=20).contains(&w.len()) || !matches!(w[0], b'0'..=b'9' | b'(' | b'+') {
        return None;
    }
    if window.start > 0 && !bytes.get(window.start - 1)?.is_ascii_whitespace() {
        return None;
    }
    let body = without_tail(w);
    let (lead, rest) = match body.split_first()? {
        (b'+', rest) => (Some(b'+'), rest),
        (b'(', rest) => (Some(b'('), rest),
        _ => (None, body),
    };
    // Up to four runs of digits and the one or two bytes between each two, and the digits
    // (at most 20: the window's length).
    let mut runs = [0usize; 4];
    let mut seps = [[0u8; 2]; 3];
    let mut digits = [0u8; 20];
    let mut count = 0;
    let mut n = 0;
    let mut i = 0;
    loop {
        let run_start = i;
        while let Some(&b) = rest.get(i).filter(|b| b.is_ascii_digit()) {
            *digits.get_mut(count)? = b - b'0';
            count += 1;
            i += 1;
        }
        let run = i - run_start;
        if run == 0 {
            return None;
        }
        *runs.get_mut(n)? = run;
        n += 1;
        if i == rest.len() {
            break;
        }
        let gap_start = i;
        while rest.get(i).is_some_and(|b| !b.is_ascii_digit()) {
            i += 1;
        }
        // One byte (`[b, 0]`: no shape's separator is a NUL), or the `) ` of `(617) 555`.
        *seps.get_mut(n - 1)? = match rest.get(gap_start..i)? {
            [b] => [*b, 0],
            [b')', b' '] => [b')', b' '],
            _ => return None,
        };
    }
    let first_is_one = rest.first() == Some(&b'1');
    let phone_sep = |s: [u8; 2]| matches!(s, [b'-' | b'.' | b' ', 0]);
    let card_sep = |s: [u8; 2]| matches!(s, [b'-' | b' ', 0]);
    let [s1, s2, s3] = seps;
    let kind = match (lead, &runs[..n]) {
        (None, [3, 2, 4]) if s1 == s2 && matches!(s1, [b'-' | b' ', 0]) => IdentifierKind::Ssn,
        (None, [3, 3, 4]) if phone_sep(s1) && phone_sep(s2) => IdentifierKind::Phone,
        (Some(b'('), [3, 3, 4]) if matches!(s1, [b')', 0 | b' ']) && phone_sep(s2) => {
            IdentifierKind::Phone
        }
        (None | Some(b'+'), [1, 3, 3, 4])
            if first_is_one && phone_sep(s1) && phone_sep(s2) && phone_sep(s3) =>
        {
            IdentifierKind::Phone
        }
        (None, [13..=19]) => IdentifierKind::Account,
        (None, [4, 4, 4, 4]) if card_sep(s1) && card_sep(s2) && card_sep(s3) => {
            IdentifierKind::Account
        }
        (None, [1..=3, 1..=3, 1..=3, 1..=3]) if [s1, s2, s3] == [[b'.', 0]; 3] => {
            IdentifierKind::Ip
        }
        (None, [4, 4, 2]) if s1 == [b'-', 0] && s2 == [b'-', 0] => return Some(None),
        _ => return None,
    };
    // The check reads the digits the loop above kept, not the text again.
    let digits = digits.get(..count)?;
    work.validations += 1;
    let valid = match kind {
        IdentifierKind::Ssn => ssn_digits_valid(digits),
        IdentifierKind::Phone => nanp_digits_valid(digits),
        IdentifierKind::Ip => {
            std::str::from_utf8(body).is_ok_and(|s| s.parse::<std::net::Ipv4Addr>().is_ok())
        }
        _ => luhn_digits_valid(digits),
    };
    let range = window.start..window.start + body.len();
    Some(valid.then_some(ScanMatch { kind, range }))
}

/// What the caller of [`Inner::search`] knows of a span.
#[derive(Clone, Copy, Debug)]
pub(super) struct Hints {
    /// False when the open-ended patterns cannot match in the span.
    pub(super) open: bool,
    /// A short rest of the span that cannot hold a built-in identifier may go unsearched by
    /// an automaton ([`trigger::hope`]).
    pub(super) skip: bool,
    /// The span holds a digit cluster that alone makes [`trigger::hope`] true for the
    /// bounded automaton on it (`trigger::Window::sure`).
    pub(super) sure: bool,
}

/// Where a stream's search for its next candidate is first anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Anchor {
    /// Nowhere: unanchored searches only.
    No,
    /// At the position the search starts from.
    At,
    /// At the first byte from there that is not ASCII whitespace: no built-in pattern's
    /// match starts at whitespace, so the bytes before it are skipped. Only with the
    /// built-in patterns (a custom MRN pattern may start anywhere).
    AfterSpace,
}

/// One stream's next validated candidate at or after some position.
pub(super) struct Lane<'s> {
    stream: Option<&'s Stream>,
    candidate: Option<Candidate>,
    /// The stream has no validated candidate at or after this position.
    exhausted_from: Option<usize>,
}

impl<'s> Lane<'s> {
    fn new(stream: Option<&'s Stream>) -> Lane<'s> {
        Lane {
            stream,
            candidate: None,
            exhausted_from: None,
        }
    }

    /// Makes `candidate` the stream's first validated candidate starting at or after `at`
    /// (kept if it already is: which match starts where does not depend on where a search
    /// began, so an earlier search's answer stands).
    /// `hope` false: the stream cannot match in `at..end`, so it is not searched; `anchor`
    /// as in [`Stream::next`].
    #[expect(
        clippy::too_many_arguments,
        reason = "the search loop's state, passed down one level"
    )]
    fn refill(
        &mut self,
        inner: &Inner,
        text: &str,
        at: usize,
        end: usize,
        hope: bool,
        anchor: Anchor,
        work: &mut ScanWork,
    ) {
        let Some(stream) = self.stream else {
            return;
        };
        if self.candidate.as_ref().is_some_and(|c| c.start >= at)
            || self.exhausted_from.is_some_and(|from| from <= at)
        {
            return;
        }
        if !hope {
            self.candidate = None;
            self.exhausted_from = Some(at);
            return;
        }
        self.candidate = stream.next(inner, text, at, end, anchor, work);
        if self.candidate.is_none() {
            self.exhausted_from = Some(at);
        }
    }
}

impl Stream {
    /// The first validated candidate of this stream starting in `from..end`.
    ///
    /// Each search is given at most `span` bytes, so a rejected candidate (the search then
    /// resumes one byte after its start, since a valid identifier may hide inside) costs at
    /// most `span` bytes however long the window: linear time overall.
    ///
    /// `anchor`: where a match most likely starts (`from`, or the first byte after
    /// whitespace there), so the first search is anchored there. An anchored search that finds a match needs no second, reverse pass to find
    /// where the match starts (an unanchored one does); one that finds none has cost one
    /// search and moves on one character, as a rejected candidate does.
    fn next(
        &self,
        inner: &Inner,
        text: &str,
        from: usize,
        end: usize,
        anchor: Anchor,
        work: &mut ScanWork,
    ) -> Option<Candidate> {
        let mut at = from;
        if anchor == Anchor::AfterSpace {
            let rest = text.as_bytes().get(from..end).unwrap_or_default();
            at += rest
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(rest.len());
        }
        let mut anchored = anchor != Anchor::No;
        while at < end {
            let cut = end.min(at.saturating_add(self.span));
            work.searches += 1;
            work.bytes_searched += (cut - at) as u64;
            let mode = if anchored {
                Anchored::Yes
            } else {
                Anchored::No
            };
            let found = self
                .regex
                .search(&Input::new(text).span(at..cut).anchored(mode));
            let Some(m) = found else {
                if anchored {
                    // Nothing starts at `at`; the leftmost match starts later, if anywhere.
                    anchored = false;
                    at = next_char(text, at);
                    continue;
                }
                if cut == end {
                    return None;
                }
                // No match starts before `cut - margin` (one would have fit in the span).
                at = (cut - self.margin).max(at + 1);
                continue;
            };
            anchored = false;
            let start = m.start();
            if cut < end && cut - start < self.margin {
                // The cut may have shortened this match, or hidden one that starts before
                // it but only matches with bytes past the cut (`456-000-12-3456-001-12`, an
                // account number, cut after `-00` leaves `000-12-3456` leftmost): search
                // again from `cut - margin`, where every match fits in the new span.
                // `margin` is under half the span, so this moves on, as a search that
                // finds nothing does.
                at = cut - self.margin;
                continue;
            }
            let index = *self.ids.get(m.pattern().as_usize())?;
            let pattern = inner.patterns.get(index)?;
            let mut range = m.range();
            if cut < end && m.end() == cut && pattern.max_len.is_none_or(|l| l > m.len()) {
                // Longer than a whole span (a URL of kilobytes): mask on to whitespace.
                let rest = text.as_bytes().get(cut..end).unwrap_or_default();
                let extra = rest
                    .iter()
                    .position(|b| b.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                work.bytes_searched += extra as u64;
                range.end = cut + extra;
            }
            work.validations += 1;
            match inner.accept(pattern, text, range.clone()) {
                Some(found) => {
                    return Some(Candidate {
                        found,
                        index,
                        start,
                        end: range.end,
                    });
                }
                None => at = next_char(text, start),
            }
        }
        None
    }
}

pub(super) fn next_char(text: &str, at: usize) -> usize {
    let mut i = at + 1;
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}
