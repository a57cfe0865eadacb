//! The trigger prefilter: a byte loop that finds the few places an identifier can be (a digit
//! cluster, an `@`, a `:` of a URL or IPv6 address, a `www.`) and turns each into a window of
//! text worth searching. No regex here; the windows are searched in `mod.rs`.

use std::ops::Range;

use super::patterns::ends_in_state;
use super::{IdentifierKind, LOOKBACK, ScanMatch};

/// True if any byte of `w` may be a trigger byte (a digit, `:` or `@`).
#[cfg(test)]
pub(super) fn may_hold_trigger(w: u64) -> bool {
    trigger_mask(w) != 0
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` (eight text bytes, little-endian) that may be a trigger
/// byte: a digit, a `:` or an `@`. A branch-free test of eight bytes at once. Prose is full
/// of `.` (sentences, decimals) and `/` (`mg/dL`), which start no trigger of their own, so
/// they do not stop the scan; the `.` of a `www.` is found apart ([`next_www`]). Bytes at or
/// above 0x80 are tested by their low seven bits, which only adds false alarms (the byte
/// loop then looks closer), never hides a trigger.
fn trigger_mask(w: u64) -> u64 {
    let x = w & !HI;
    // Each byte is at most 0x7F, so adding at most 0x50 never carries into the next byte.
    let at_least_zero = x.wrapping_add(LO * (0x80 - 0x30));
    let above_colon = x.wrapping_add(LO * (0x80 - 0x3B));
    // `@` is 0x40: at least 0x40 and not above it.
    let at_least_at = x.wrapping_add(LO * (0x80 - 0x40));
    let above_at = x.wrapping_add(LO * (0x80 - 0x41));
    ((at_least_zero & !above_colon) | (at_least_at & !above_at)) & HI
}

/// True if byte `i` of `bytes` is the `.` of a `www.` (any case).
fn is_www_dot(bytes: &[u8], i: usize) -> bool {
    i >= 3 && bytes[i] == b'.' && bytes[i - 3..i].eq_ignore_ascii_case(b"www")
}

/// Below this many bytes from the start, [`next_www`] reads the bytes one by one.
const SHORT_WWW_SCAN: usize = 64;

/// Searchers for `w.` and `W.`, built once (a searcher costs more to build than most notes
/// take to search).
static W_DOT: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 2]> =
    std::sync::LazyLock::new(|| {
        [
            memchr::memmem::Finder::new(b"w."),
            memchr::memmem::Finder::new(b"W."),
        ]
    });

/// The position of the `.` of the first `www.` (any case) whose `.` is at or after `from`,
/// or the length of `bytes` if there is none.
pub(super) fn next_www(bytes: &[u8], from: usize) -> usize {
    if bytes.len().saturating_sub(from) < SHORT_WWW_SCAN {
        // A short text (a field of a tool's result) is read directly: cheaper than setting
        // two searchers off.
        return (from..bytes.len())
            .find(|&i| is_www_dot(bytes, i))
            .unwrap_or(bytes.len());
    }
    // The `.` of a `www.` follows a `w` or a `W`: look for `w.` and `W.` (rare in prose,
    // where `w` is not), then at the two bytes before. `next` holds the next `w.` and `W.`
    // at or after `at` (the length of the text if there is none).
    let find = |finder: &memchr::memmem::Finder<'static>, at: usize| {
        bytes
            .get(at..)
            .and_then(|rest| finder.find(rest))
            .map_or(bytes.len(), |p| at + p)
    };
    let finders: &[memchr::memmem::Finder<'static>; 2] = &W_DOT;
    // A `.` at or after `from` follows a `w` at or after `from - 1`.
    let mut at = from.saturating_sub(1);
    let mut next = [find(&finders[0], at), find(&finders[1], at)];
    loop {
        let w = next[0].min(next[1]);
        if w >= bytes.len() {
            return bytes.len();
        }
        if w >= 2 && bytes[w - 2..w].eq_ignore_ascii_case(b"ww") {
            return w + 1;
        }
        at = w + 1;
        for (slot, finder) in next.iter_mut().zip(finders) {
            if *slot < at {
                *slot = find(finder, at);
            }
        }
    }
}

/// Bytes that may sit between the digits of one identifier (`(617) 555-0142`, `3/14/2024`,
/// `March 3, 2024`, `10.0.0.1`).
const fn is_digit_separator(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b',' | b'+' | b'\t'
    )
}

/// At most this many separator bytes in a row inside one digit cluster.
const MAX_SEPARATOR_RUN: usize = 3;
/// A cluster with fewer digits than this cannot be (part of) any built-in identifier.
const MIN_CLUSTER_DIGITS: usize = 4;
/// A cluster with a cue-led match holds a run of at least this many digits…
const MIN_CUE_LED_RUN: usize = 4;
/// …or at least this many digits in all.
const MIN_CUE_LED_DIGITS: usize = 9;
/// True if a cluster whose first two runs of digits are this long (0: no second run) may
/// hold the digits of a match that starts before it, by the digits each built-in pattern
/// with a cue, month name or state before its digits may have there:
/// - a ZIP code (`ZIP`, `MA`): 5 then 4; an MRN: 6 to 10; an SSN after its cue: 9, or 3
///   then 2 or 3 or 6, or 5 then 4; a fax number: 3 then 3, or 1 then 3;
/// - a named date: the year (4) after a month name (`Dec 2006`, `5th, 2020`), or the day
///   then the year (`March 3, 2021`: 1 or 2, then 4).
///
/// So a first run of 3 to 10 digits, or a second run of 3 or 4.
const fn cue_led_start(leading: [usize; 2]) -> bool {
    let [first, second] = leading;
    (first >= 3 && first <= 10) || second == 3 || second == 4
}

/// Whole words a cue may take before the digits: `Social security no. #:`, `Medical record
/// number #:` are the longest built-in cues.
const CUE_WORDS: usize = 4;

/// How far before a trigger a match that reaches it may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LookBack {
    /// In the trigger's own word.
    Own,
    /// Up to [`CUE_WORDS`] words before it (a cue, a state).
    Cue,
    /// A cluster that can only end a named date, with the built-in patterns (its first run
    /// is the year: `3 Dec 2006`, `March 3rd, 2021`, `3 Dec 2006-01`; or the day and year:
    /// `March 3, 2021`): the month and day take at most the two words before it, and the
    /// word right before must be the month or hold the day.
    Year,
}

impl LookBack {
    /// The most whole words to look back over.
    const fn words(self) -> usize {
        match self {
            LookBack::Own => 0,
            LookBack::Cue => CUE_WORDS,
            LookBack::Year => 2,
        }
    }
}

fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace()
}

/// The pieces that may follow the first word of a built-in cue before its digits: the rest
/// of `soc sec`, `social security number`, `SSN is`, `fax no.`, `med rec num`, `medical
/// record number`, `zip code`, `postal code` (see `patterns`), and the `:`, `#`, `=`, `.`
/// between them and the digits. The patterns let some of them touch with no blank between
/// (`soc secIs 123 456 789`, `social securitynumber: …`), so a word may hold several.
const CUE_TAILS: &[&[u8]] = &[
    b"sec",
    b"security",
    b"number",
    b"num",
    b"nbr",
    b"no",
    b"rec",
    b"record",
    b"code",
    b"is",
    b"was",
    b":",
    b"#",
    b"=",
    b".",
];

/// For each byte, the [`CUE_TAILS`] that start with it (either case), as bits by index.
static TAILS_BY_FIRST: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut k = 0;
    while k < CUE_TAILS.len() {
        let first = CUE_TAILS[k][0];
        t[first as usize] |= 1 << k;
        t[first.to_ascii_uppercase() as usize] |= 1 << k;
        k += 1;
    }
    t
};

/// The longest word [`is_cue_tail`] reads: longer than any run of touching pieces a
/// pattern allows (`securitynumberwas:`).
const MAX_TAIL_WORD: usize = 32;

/// True if `word` may sit between the first word of a built-in cue and its digits: pieces
/// of [`CUE_TAILS`] (any case), one after another (`no.:`, `#:`, `secIs`,
/// `securitynumber`). A word of other pieces too is not.
fn is_cue_tail(word: &[u8]) -> bool {
    // Most words a look back reads start no piece (`at`, `file:`, `lot`).
    match word.first() {
        None => return true,
        Some(&b) if TAILS_BY_FIRST[usize::from(b)] == 0 || word.len() > MAX_TAIL_WORD => {
            return false;
        }
        Some(_) => {}
    }
    // Bit `i`: the first `i` bytes are pieces one after another.
    let mut ends: u64 = 1;
    for (i, &b) in word.iter().enumerate() {
        if ends >> i & 1 == 0 {
            continue;
        }
        // Only the pieces that start with this byte (most words' first byte starts none).
        let mut pieces = TAILS_BY_FIRST[usize::from(b)];
        while pieces != 0 {
            let tail = CUE_TAILS[pieces.trailing_zeros() as usize];
            pieces &= pieces - 1;
            if word
                .get(i..i + tail.len())
                .is_some_and(|next| next.eq_ignore_ascii_case(tail))
            {
                ends |= 1 << (i + tail.len());
            }
        }
    }
    ends >> word.len() & 1 == 1
}

/// What a word before a digit cluster may start: a match of a cue pattern, or a named date.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cues {
    /// A cue (`Fax`, `SSN`, `social`, `MRN`, `medical`, `ZIP`, `postal`): a cue pattern's
    /// match may start in this word.
    word: bool,
    /// A month name (`March`, `Sept.`): a date may start here or in the word before
    /// (`3rd March 2021`).
    month: bool,
}

/// The cues a word holds: whether a built-in cue pattern may start in it, and whether it
/// holds a month name. Case-insensitive; every built-in cue and month name holds one of
/// these three- or four-letter stems (`telefax` holds `fax`, `facsimile` `facs`, `social`
/// `soc`, `medical` `med`, `postal` `post`, `September` and `sept` `sep`).
fn cue_in(word: &[u8]) -> Cues {
    let mut found = Cues::default();
    for (i, &b) in word.iter().enumerate() {
        // Most letters start no stem: one table test of the letter and the next.
        let next = word.get(i + 1).copied().unwrap_or(0);
        if CUE_PAIRS[usize::from(b)] & pair_bit(next) != 0 {
            stem_at(word.get(i..).unwrap_or_default(), &mut found);
        }
    }
    found
}

/// Notes in `found` the stem `rest` starts with, if any (its first two bytes are a pair of
/// [`CUE_PAIRS`]).
fn stem_at(rest: &[u8], found: &mut Cues) {
    let lower = |i: usize| rest.get(i).map_or(0, u8::to_ascii_lowercase);
    // The three bytes from here, lower case, as one number (a missing byte is 0).
    match stem_key([lower(0), lower(1), lower(2)]) {
        FAX | SSN | SS_HASH | SOC | MRN | MR_HASH | MED | ZIP => found.word = true,
        FAC if lower(3) == b's' => found.word = true,
        POS if lower(3) == b't' => found.word = true,
        JAN | JUN | JUL | FEB | MAR | MAY | APR | AUG | SEP | OCT | NOV | DEC => {
            found.month = true;
        }
        _ => {}
    }
}

/// Three bytes as one number, for [`cue_in`]'s comparisons.
const fn stem_key(s: [u8; 3]) -> u32 {
    u32::from_le_bytes([s[0], s[1], s[2], 0])
}

const FAX: u32 = stem_key(*b"fax");
/// `facs` (`facsimile`): the fourth letter is tested apart.
const FAC: u32 = stem_key(*b"fac");
const SSN: u32 = stem_key(*b"ssn");
const SS_HASH: u32 = stem_key(*b"ss#");
const SOC: u32 = stem_key(*b"soc");
const MRN: u32 = stem_key(*b"mrn");
const MR_HASH: u32 = stem_key(*b"mr#");
const MED: u32 = stem_key(*b"med");
const ZIP: u32 = stem_key(*b"zip");
/// `post` (`postal`): the fourth letter is tested apart.
const POS: u32 = stem_key(*b"pos");
const JAN: u32 = stem_key(*b"jan");
const JUN: u32 = stem_key(*b"jun");
const JUL: u32 = stem_key(*b"jul");
const FEB: u32 = stem_key(*b"feb");
const MAR: u32 = stem_key(*b"mar");
const MAY: u32 = stem_key(*b"may");
const APR: u32 = stem_key(*b"apr");
const AUG: u32 = stem_key(*b"aug");
const SEP: u32 = stem_key(*b"sep");
const OCT: u32 = stem_key(*b"oct");
const NOV: u32 = stem_key(*b"nov");
const DEC: u32 = stem_key(*b"dec");

/// The stems [`cue_in`] looks for (lower case).
const CUE_STEMS: &[&[u8]] = &[
    b"fax", b"facs", b"ssn", b"ss#", b"soc", b"mrn", b"mr#", b"med", b"zip", b"post", b"jan",
    b"jun", b"jul", b"feb", b"mar", b"may", b"apr", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// The bit of a stem's second letter in [`CUE_PAIRS`] (every stem's second byte is a
/// letter; other bytes may share a bit, which only costs a closer look).
const fn pair_bit(b: u8) -> u32 {
    1 << ((b | 0x20).wrapping_sub(b'a') & 31)
}

/// For each byte, the second letters that make it the start of a stem (either case).
static CUE_PAIRS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < CUE_STEMS.len() {
        let stem = CUE_STEMS[i];
        let bit = pair_bit(stem[1]);
        t[stem[0] as usize] |= bit;
        t[stem[0].to_ascii_uppercase() as usize] |= bit;
        i += 1;
    }
    t
};

/// [`WORD_CLASS`]: the byte is ASCII whitespace (it ends a word).
const SPACE_BIT: u32 = 1 << 31;
/// [`WORD_CLASS`] and [`PAIR_BIT`]: the byte is a digit (always set in [`PAIR_BIT`], so
/// `WORD_CLASS[b] & PAIR_BIT[next]` keeps it).
const DIGIT_BIT: u32 = 1 << 30;
/// The [`PAIR_BIT`] of the end of a word: no stem's second letter.
const WORD_ENDS: u32 = DIGIT_BIT;

/// For each byte: its [`CUE_PAIRS`] bits (the second letters that make it the start of a
/// stem), [`SPACE_BIT`], [`DIGIT_BIT`]. One load per byte of a word read backwards.
static WORD_CLASS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        t[b] = CUE_PAIRS[b];
        if byte.is_ascii_whitespace() {
            t[b] |= SPACE_BIT;
        }
        if byte.is_ascii_digit() {
            t[b] |= DIGIT_BIT;
        }
        b += 1;
    }
    t
};

/// For each byte: [`pair_bit`] (its bit as the second letter of a stem) and [`DIGIT_BIT`].
static PAIR_BIT: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (pair_bit(b as u8) & !(SPACE_BIT | DIGIT_BIT)) | DIGIT_BIT;
        b += 1;
    }
    t
};

/// The longest slice [`hope`] looks at (a longer one may hold anything): the test must
/// cost a bounded amount per search it saves, however long a window is.
pub(super) const SHORT_SLICE: usize = 64;

/// Which automata may find a built-in identifier in a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Hope {
    /// The bounded automaton (every pattern but email and URL).
    pub(super) bounded: bool,
    /// The open-ended one (email, URL).
    pub(super) open: bool,
}

impl Hope {
    /// Anything may match.
    pub(super) const ANY: Hope = Hope {
        bounded: true,
        open: true,
    };
}

/// Which automata may match in `slice` (at most [`SHORT_SLICE`] bytes, else [`Hope::ANY`]),
/// with the built-in patterns. Every bounded pattern's match holds a `:` right after a hex
/// digit or another `:` (IPv6, whose match starts with a hex digit) or at least four digits
/// (IPv4, numeric and named dates, ZIP, MRN, phone, SSN, account), and each of the latter
/// also needs a letter, a `#`, three digit runs (dates, IPv4) or at least nine digits: so
/// not `120/80,`, `99213`, `2015.` (only digits and separators, at most five digits in at
/// most two runs), nor the `:` left after a date (`03/14/2024:`). An email needs an `@`, a
/// URL a `:/` or `www.`.
///
/// The digits alone also decide: each of those matches holds nine digits (SSN, phone, fax,
/// account), three runs of digits (numeric dates, IPv4), a run of five or more (ZIP, MRN)
/// or a run of four and another run (a named date's day and year). A slice with none of
/// these cannot hold one whatever its letters: not `J45.909`, `M54.50` or `SpO2 100%`.
/// (A match's runs lie in distinct runs of any slice holding it, so the slice has at least
/// as many digits and runs, and as long a longest run, as the match.)
pub(super) fn hope(slice: &[u8]) -> Hope {
    if slice.len() > SHORT_SLICE {
        return Hope::ANY;
    }
    // Branch-free: one table load per byte, the classes seen or-ed together.
    let mut digits = 0usize;
    let mut runs = 0usize;
    let mut run = 0usize;
    let mut longest_run = 0usize;
    let mut previous = 0u8;
    let mut seen = 0u8;
    for &b in slice {
        let class = HOPE_CLASS[usize::from(b)];
        let digit = class & HOPE_DIGIT;
        digits += usize::from(digit);
        runs += usize::from(digit & !previous);
        // Branch-free: the current run grows by a digit and falls to 0 at anything else.
        run = (run + 1) * usize::from(digit);
        longest_run = longest_run.max(run);
        previous = digit;
        seen |= class;
    }
    // A `:` after a hex digit or a `:` (IPv6), a `:/` (a URL's scheme); only looked for
    // when the slice has a `:`.
    let (ipv6_colon, colon_slash) = if seen & HOPE_COLON == 0 {
        (false, false)
    } else {
        slice.windows(2).fold((false, false), |(ipv6, url), pair| {
            let (before, next) = (HOPE_CLASS[usize::from(pair[0])], pair[1]);
            (
                ipv6 || (next == b':' && before & (HOPE_HEX | HOPE_COLON) != 0),
                url || (before & HOPE_COLON != 0 && next == b'/'),
            )
        })
    };
    // A `.` after `www` (any case); only looked for when the slice has both.
    let www = seen & (HOPE_DOT | HOPE_W) == HOPE_DOT | HOPE_W
        && slice
            .windows(4)
            .any(|w| w[3] == b'.' && w[..3].eq_ignore_ascii_case(b"www"));
    let only_numeric = seen & HOPE_OTHER == 0;
    Hope {
        bounded: ipv6_colon
            || (digits >= 4
                && !(only_numeric && digits <= 5 && runs <= 2)
                && enough_digits(digits, runs, longest_run)),
        open: seen & HOPE_AT != 0 || www || colon_slash,
    }
}

/// True if digits counted in a span (`digits` in all, in `runs` runs, the longest
/// `longest_run` long) are enough for a bounded pattern's match other than IPv6's (see
/// [`hope`]): nine digits, three runs, a run of five, or a run of four and another run.
pub(super) fn enough_digits(digits: usize, runs: usize, longest_run: usize) -> bool {
    digits >= 9 || runs >= 3 || longest_run >= 5 || (longest_run >= 4 && runs >= 2)
}

/// [`HOPE_CLASS`] bits: a digit (the lowest bit, so it counts), a byte that is neither a
/// digit nor a digit separator, `:`, `@`, `.`, `w` or `W`, a hex digit.
const HOPE_DIGIT: u8 = 1;
const HOPE_OTHER: u8 = 2;
const HOPE_COLON: u8 = 4;
const HOPE_AT: u8 = 8;
const HOPE_DOT: u8 = 16;
const HOPE_W: u8 = 32;
const HOPE_HEX: u8 = 64;

/// The class bits [`hope`] needs of each byte.
static HOPE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let mut class = 0;
        if byte.is_ascii_hexdigit() {
            class |= HOPE_HEX;
        }
        if byte.is_ascii_digit() {
            class |= HOPE_DIGIT;
        } else if !is_digit_separator(byte) {
            class |= HOPE_OTHER;
        }
        match byte {
            b':' => class |= HOPE_COLON,
            b'@' => class |= HOPE_AT,
            b'.' => class |= HOPE_DOT,
            b'w' | b'W' => class |= HOPE_W,
            _ => {}
        }
        t[b] = class;
        b += 1;
    }
    t
};

/// A trigger the byte loop found.
struct Trigger {
    /// The bytes that must be covered.
    range: Range<usize>,
    /// How far before it a match may start.
    look_back: LookBack,
    /// It may start an open-ended identifier (an email or a URL: an `@`, a `:` or a
    /// `www.`).
    open: bool,
    /// It alone makes [`hope`] true for the bounded automaton on any span that holds it.
    sure: bool,
    /// Its digits alone are enough for a bounded match ([`enough_digits`]): then `hope` is
    /// true on any span that holds it and a letter.
    enough: bool,
    /// Its runs of digits (0 for a trigger that is not a digit cluster).
    runs: usize,
}

impl Trigger {
    /// An `@`, a `:` or a `www.`.
    fn other(range: Range<usize>, look_back: LookBack, open: bool) -> Trigger {
        Trigger {
            range,
            look_back,
            open,
            sure: false,
            enough: false,
            runs: 0,
        }
    }
}

/// The windows worth searching, in order, disjoint.
pub(super) struct Windows<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// The window being grown, not yet returned.
    pending: Option<Window>,
    /// Look back over every one of [`CUE_WORDS`] words before a digit cluster, not only to
    /// the farthest word holding a built-in cue: for custom MRN patterns, whose cues the
    /// prefilter does not know.
    any_cue: bool,
    /// The `.` of the next `www.` at or after the scan position, once looked up
    /// ([`next_www`]; the length of the text if there is none).
    www: Option<usize>,
    /// A finding decided during the walk, handed out after the window that was pending
    /// when it was made ([`Windows::decide`]).
    ready: Option<ScanMatch>,
    /// Where the window of the last finding decided during the walk ends: no later window
    /// looks back before it.
    decided_end: usize,
    /// The validity checks run by the decisions made during the walk (for
    /// [`Scanner::find_with_work`](super::Scanner::find_with_work)).
    pub(super) validations: u64,
}

impl<'a> Windows<'a> {
    /// The windows of `text`; `any_cue` as in [`Windows::any_cue`]; `w_dot` false if no
    /// `.` follows a `w` or `W` in `text` (`normalize::prescan`), so no `www.` need be
    /// looked for.
    pub(super) fn new(text: &'a str, any_cue: bool, w_dot: bool) -> Windows<'a> {
        let bytes = text.as_bytes();
        Windows {
            text,
            bytes,
            at: 0,
            pending: None,
            any_cue,
            www: (!w_dot).then_some(bytes.len()),
            ready: None,
            decided_end: 0,
            validations: 0,
        }
    }

    /// The next trigger at or after `self.at`.
    fn next_trigger(&mut self) -> Option<Trigger> {
        let bytes = self.bytes;
        let n = bytes.len();
        let mut i = self.at;
        while i < n {
            // The hot loop: most bytes are letters and spaces. Skip eight at a time while
            // none of them can be a trigger.
            // Never past the next `www.`, whose `.` the eight-byte test does not see.
            let www = match self.www {
                Some(www) if www >= i => www,
                _ => {
                    let www = next_www(bytes, i);
                    self.www = Some(www);
                    www
                }
            };
            let stop = www.min(n);
            while let Some(chunk) = bytes.get(i..i + 8).filter(|_| i + 8 <= stop) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let mask = trigger_mask(u64::from_le_bytes(word));
                if mask != 0 {
                    // Straight to the first byte that may be a trigger.
                    i += (mask.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let Some(&byte) = bytes.get(i) else {
                break;
            };
            // Branches rather than a table of byte classes: a digit is by far the most
            // common trigger byte, and an indirect jump per byte costs more.
            match byte {
                b'0'..=b'9' => {
                    let start = i;
                    let mut count = 0;
                    let mut runs = 0;
                    // The longest run of digits with no separator, and the first two runs.
                    let mut longest_run = 0;
                    let mut leading = [0; 2];
                    let mut j = i;
                    let last = loop {
                        // One run of digits, then at most `MAX_SEPARATOR_RUN` separators
                        // that a digit follows; anything else ends the cluster.
                        let run_start = j;
                        while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                            j += 1;
                        }
                        let run = j - run_start;
                        if let Some(slot) = leading.get_mut(runs) {
                            *slot = run;
                        }
                        runs += 1;
                        count += run;
                        longest_run = longest_run.max(run);
                        let last = j - 1;
                        let separators = j;
                        while j - separators <= MAX_SEPARATOR_RUN
                            && bytes.get(j).is_some_and(|&b| is_digit_separator(b))
                        {
                            j += 1;
                        }
                        if j == separators
                            || j - separators > MAX_SEPARATOR_RUN
                            || !bytes.get(j).is_some_and(u8::is_ascii_digit)
                        {
                            break last;
                        }
                    };
                    self.at = last + 1;
                    if count >= MIN_CLUSTER_DIGITS {
                        // A match that starts before the cluster's word (after a cue, a
                        // month name or a state) holds a run of at least four digits (the
                        // year of a named date, an MRN, a ZIP, the last part of an SSN, phone
                        // or fax number) or, for the cue-led `123 456 789` SSN, nine digits.
                        // Other clusters (`120/80`, `J45.909`) need no look back.
                        // And such a match covers the cluster's first runs (the cluster starts
                        // here: no digit within three separators before it), which must
                        // then fit the digits after a cue ([`cue_led_start`]): so a numeric
                        // date such as `3/14/2024` needs no look back either.
                        let cue_led = self.any_cue
                            || ((longest_run >= MIN_CUE_LED_RUN || count >= MIN_CUE_LED_DIGITS)
                                && cue_led_start(leading));
                        // A cluster that starts with a run of four digits, or with a day
                        // and then four digits (`3, 2021`), cannot start with the digits
                        // after a built-in cue (a ZIP code's first run has five digits, an
                        // MRN's six to ten, an SSN's three, five or nine, a fax number's one
                        // or three) nor a state's ZIP: it can only end a named date.
                        let [first, second] = leading;
                        let look_back = if !cue_led {
                            LookBack::Own
                        } else if !self.any_cue && (first == 4 || (first <= 2 && second == 4)) {
                            LookBack::Year
                        } else {
                            LookBack::Cue
                        };
                        // What `hope` requires of a span for the bounded automaton (four
                        // digits, and more than five or more than two runs if there is
                        // nothing but digits and separators; enough digits for a match),
                        // met by the cluster alone; a span holding it holds at least as many
                        // digits and runs, and as long a run.
                        let enough = enough_digits(count, runs, longest_run);
                        return Some(Trigger {
                            range: start..last + 1,
                            look_back,
                            open: false,
                            sure: (count > 5 || runs > 2) && enough,
                            enough,
                            runs,
                        });
                    }
                    i = self.at;
                }
                b'@' => {
                    self.at = i + 1;
                    return Some(Trigger::other(i..i + 1, LookBack::Own, true));
                }
                b':' => {
                    let next = bytes.get(i + 1).copied().unwrap_or(0);
                    let prev = if i > 0 { bytes[i - 1] } else { 0 };
                    // `::` (compressed IPv6), `:/` (a URL), or a full eight-group IPv6
                    // address: hex on both sides and another `:` after at most four hex
                    // digits (so a time such as `14:05` is no trigger).
                    let full_ipv6 = prev.is_ascii_hexdigit()
                        && next.is_ascii_hexdigit()
                        && bytes
                            .get(i + 2..n.min(i + 6))
                            .is_some_and(|rest| rest.contains(&b':'));
                    if next == b':' || next == b'/' || full_ipv6 {
                        self.at = i + 1;
                        // A `::` may end a cue (`SSN no::123456789`) whose digits share its
                        // word and so are no trigger of their own: look back for the cue.
                        return Some(Trigger::other(i..i + 1, LookBack::Cue, next == b'/'));
                    }
                    i += 1;
                }
                b'.' if is_www_dot(bytes, i) => {
                    self.at = i + 1;
                    return Some(Trigger::other(i - 3..i + 1, LookBack::Own, true));
                }
                _ => i += 1,
            }
        }
        self.at = n;
        None
    }

    /// Grows a trigger into a window: back over the word it starts in and as many more words
    /// as `look_back` allows (room for a cue; at most [`LOOKBACK`] bytes, then to the start
    /// of that word), forward to whitespace. `floor` is where the window not yet returned starts (the bytes before
    /// it have been searched). The first flag is true if the bytes added after the trigger
    /// hold an `@`, a `:/` or a `www.` (an email or URL may then sit in the window without
    /// its own trigger having been seen); the second if the window starts before the
    /// trigger's word, at a word that may start a match: a cue, a month name, a state code,
    /// or a day before a month name, so the window holds a letter.
    fn widen(
        &self,
        trigger: Range<usize>,
        look_back: LookBack,
        floor: usize,
    ) -> (Range<usize>, bool, bool) {
        let words = look_back.words();
        let bytes = self.bytes;
        let limit = trigger.start.saturating_sub(LOOKBACK).max(floor);
        // The word the trigger starts in.
        let mut start = match bytes.get(floor..trigger.start) {
            Some(before) => {
                floor
                    + before
                        .iter()
                        .rposition(|&b| is_space(b))
                        .map_or(0, |p| p + 1)
            }
            None => trigger.start,
        };
        // Back over up to `words` more words. With the built-in patterns the window starts
        // at the farthest of them that may start a match: a word holding a cue, for a date's
        // year a month name or the word before it if it holds a digit (`3rd March 2021`),
        // or the word right before the cluster if it ends in a state code (`MA 02115`,
        // `MA, 02115`); any other match starts in the cluster's own word. Most clusters
        // (doses, vitals, codes) have no cue before them, and the automaton never sees
        // their prose.
        let own_start = start;
        let mut word_start = start;
        // Only a cluster that may end a named date (`LookBack::Year`: its first run is the
        // year, or the day and then the year) looks back for a month name: a named date's
        // digits are a day right after the month, then the year, so a match of one that
        // reaches any other cluster would have to start inside it.
        let dates = look_back == LookBack::Year;
        // A month name in the trigger's own word, before its digits (`03 Mar-2024`): the
        // word before it may hold the day.
        let mut month = dates
            && bytes
                .get(start..trigger.start)
                .is_some_and(|own| cue_in(own).month);
        for i in 0..words {
            if word_start <= limit {
                break;
            }
            let word_end = limit
                + bytes
                    .get(limit..word_start)
                    .and_then(|gap| gap.iter().rposition(|&b| !is_space(b)))
                    .map_or(0, |p| p + 1);
            word_start = word_end;
            // Back over the word, noting on the way whether it holds a digit and, where a
            // pair of [`CUE_PAIRS`] starts, which stem (what [`cue_in`] finds), so the word
            // is read once.
            let mut seen = 0;
            let mut next = WORD_ENDS;
            let mut cues = Cues::default();
            for &b in bytes
                .get(floor..word_start)
                .unwrap_or_default()
                .iter()
                .rev()
            {
                let class = WORD_CLASS[usize::from(b)];
                if class & SPACE_BIT != 0 {
                    break;
                }
                let pair = class & next;
                seen |= pair;
                word_start -= 1;
                if pair & !DIGIT_BIT != 0 {
                    stem_at(
                        bytes.get(word_start..word_end).unwrap_or_default(),
                        &mut cues,
                    );
                }
                next = PAIR_BIT[usize::from(b)];
            }
            let digit = seen & DIGIT_BIT != 0;
            if self.any_cue {
                start = word_start;
                continue;
            }
            let word = &bytes[word_start..word_end];
            // The word before a month name starts a date only if it holds the day.
            let day = month && digit;
            if cues.word || (dates && (cues.month || day)) || (i == 0 && ends_in_state(word)) {
                start = word_start;
            }
            month = cues.month;
            match look_back {
                // Neither the month nor the day right before the year: no date.
                LookBack::Year if !month && !digit => break,
                // Between a cue's first word and its digits there are only the rest of
                // the cue (`number`, `no.`, `#:`; no month name is one): past any other
                // word, no cue reaches the cluster.
                LookBack::Cue if !cues.word && !is_cue_tail(word) => break,
                _ => {}
            }
        }
        let mut end = trigger.end;
        let mut open = false;
        while let Some(&b) = bytes.get(end) {
            if is_space(b) {
                break;
            }
            open |= match b {
                b'@' => true,
                b':' => bytes.get(end + 1) == Some(&b'/'),
                b'.' => is_www_dot(bytes, end),
                _ => false,
            };
            end += 1;
        }
        (start..end, open, start < own_start)
    }
}

impl Windows<'_> {
    /// A digit cluster of three runs with no look back (`3/14/2024`, `14.03.2024`,
    /// `3-14-24`) that is a whole word, a valid numeric date and nothing else, then at most
    /// one of `,` `.` `;` `:` `)`: the finding and where its window ends, decided from the
    /// cluster's bytes as the walk leaves them. `None` for any other cluster (it becomes a
    /// window as usual).
    ///
    /// Such a cluster's window would be its word (a cluster with no look back starts at
    /// its word's start when whitespace precedes it), which [`hope`] keeps (three runs)
    /// and `search::whole_numeric_date` decides as this date: the same test
    /// (`search::numeric_date_len`), made here without the window, and decided now
    /// ([`Windows::decide`]).
    fn own_date(&self, cluster: &Range<usize>) -> Option<(ScanMatch, usize)> {
        let bytes = self.bytes;
        let (start, end) = (cluster.start, cluster.end);
        if start > 0 && !is_space(bytes[start - 1]) {
            return None;
        }
        let window_end = match bytes.get(end) {
            None => end,
            Some(&b) if is_space(b) => end,
            Some(b',' | b'.' | b';' | b':' | b')')
                if bytes.get(end + 1).is_none_or(|&b| is_space(b)) =>
            {
                end + 1
            }
            Some(_) => return None,
        };
        let len = super::search::numeric_date_len(bytes.get(start..window_end)?)?;
        Some((
            ScanMatch {
                kind: IdentifierKind::Date,
                range: start..start + len,
            },
            window_end,
        ))
    }

    /// Hands out a finding decided during the walk, whose window ends at `end`, after the
    /// window still pending, and goes on after it.
    ///
    /// Such a window is a digit cluster's own word: it starts after whitespace, so it does
    /// not merge with the pending window (which ends at whitespace before it), and it ends
    /// with the finding and at most one tail byte, so it splits no cluster. Deciding it now
    /// rather than when the next window is known is safe because no later window needs it.
    /// A later window reaches back into a word of digits only from a year, as the day before
    /// a month name (`3/14/2024 March 2021`, `3/14/2024 Mar-2021`); a search of the two
    /// merged would find this finding first and go on from its end, where only a tail byte
    /// and whitespace lie before the later window's words: so the later window starts at
    /// [`Windows::decided_end`] instead, and finds the same. (A window with no finding could
    /// not be decided so early: a match may start inside it and end in the later window, as
    /// `12 March 2021` does in `0002-1234-12 March 2021`.)
    ///
    /// The finding goes to `out` now, or, if a window is pending, after it: that window is
    /// returned, to be handed out first.
    fn decide(&mut self, found: ScanMatch, end: usize, out: &mut Vec<ScanMatch>) -> Option<Window> {
        self.at = self.at.max(end);
        self.decided_end = end;
        match self.pending.take() {
            Some(p) => {
                self.ready = Some(found);
                Some(p)
            }
            None => {
                super::search::push_finding(out, found);
                None
            }
        }
    }

    /// If the end of `window` (at whitespace) splits a digit cluster (a digit before it, then
    /// at most [`MAX_SEPARATOR_RUN`] separators, the whitespace among them, then a digit),
    /// where in `window` that cluster starts.
    fn split_cluster(&self, window: Range<usize>) -> Option<usize> {
        let bytes = self.bytes;
        let (floor, end) = (window.start, window.end);
        // Most windows end at whitespace that a letter or a line break follows: decided on
        // the bytes after the end before any byte inside is read.
        let ahead = bytes
            .get(end..)?
            .iter()
            .take(MAX_SEPARATOR_RUN + 1)
            .take_while(|&&b| is_digit_separator(b))
            .count();
        if ahead == 0 || !bytes.get(end + ahead).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let back = bytes
            .get(floor..end)?
            .iter()
            .rev()
            .take_while(|&&b| is_digit_separator(b))
            .count();
        if back + ahead > MAX_SEPARATOR_RUN {
            return None;
        }
        // The cluster's last digit before the end, then back over its runs of digits and
        // of at most `MAX_SEPARATOR_RUN` separators.
        let mut start = (end - back).checked_sub(1).filter(|&p| p >= floor)?;
        if !bytes[start].is_ascii_digit() {
            return None;
        }
        loop {
            while start > floor && bytes[start - 1].is_ascii_digit() {
                start -= 1;
            }
            let mut s = start;
            while s > floor && start - s <= MAX_SEPARATOR_RUN && is_digit_separator(bytes[s - 1]) {
                s -= 1;
            }
            if s < start
                && start - s <= MAX_SEPARATOR_RUN
                && s > floor
                && bytes[s - 1].is_ascii_digit()
            {
                start = s - 1;
                continue;
            }
            return Some(start);
        }
    }
}

/// A span of text worth searching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Window {
    /// The bytes to search.
    pub(super) range: Range<usize>,
    /// False if the window cannot hold an email or a URL (no `@`, `:` or `www.` trigger in
    /// it, nor any `@`, `:/` or `www.` in the bytes it was widened over): the open-ended
    /// patterns need not run there.
    pub(super) open: bool,
    /// True if a digit cluster in the window alone makes [`hope`] true for the bounded
    /// automaton on the whole window (its first search needs no test).
    pub(super) sure: bool,
    /// What `search::decided` said of the window when it was made, if it was asked.
    pub(super) asked: Asked,
}

/// What `search::decided` said of a window when it was made (a window that merges with a
/// later one is asked again, as the merged window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Asked {
    /// Not asked.
    No,
    /// It must be searched.
    Search,
    /// It holds no identifier.
    Nothing,
}

impl Windows<'_> {
    /// The next window to decide or search, in order; the findings decided during the walk
    /// before it go to `out` on the way.
    pub(super) fn next_window(&mut self, out: &mut Vec<ScanMatch>) -> Option<Window> {
        if let Some(found) = self.ready.take() {
            super::search::push_finding(out, found);
        }
        let bytes = self.bytes;
        loop {
            // The window not yet returned may hold the cue of this trigger's match
            // (`0000MRN 000000`): look back into it too, and merge.
            let floor = self
                .pending
                .as_ref()
                .map_or(self.decided_end, |w| w.range.start);
            match self.next_trigger() {
                Some(Trigger {
                    range: trigger,
                    look_back,
                    open: trigger_open,
                    sure,
                    enough,
                    runs,
                }) => {
                    if runs == 3
                        && look_back == LookBack::Own
                        && !self.any_cue
                        && let Some((found, end)) = self.own_date(&trigger)
                    {
                        self.validations += 1;
                        match self.decide(found, end, out) {
                            Some(p) => return Some(p),
                            None => continue,
                        }
                    }
                    let (trigger_start, trigger_end) = (trigger.start, trigger.end);
                    let (range, widened_open, reached_back) = self.widen(trigger, look_back, floor);
                    let mut window = Window {
                        range,
                        open: trigger_open || widened_open,
                        sure,
                        asked: Asked::No,
                    };
                    // Continue scanning after the window: triggers inside it are covered,
                    // except a digit cluster that goes on past the window's end (across a
                    // space or tab): its match may cross the end, so the cluster is walked
                    // again as a trigger of its own (and its window merged with this one).
                    let split = self.split_cluster(window.range.clone());
                    let resume = split
                        .filter(|&r| r > trigger_start)
                        .unwrap_or(window.range.end);
                    self.at = self.at.max(resume);
                    // A window in which no automaton can match (`hope`: too few digits for
                    // the bounded one, no `@`, `:/` or `www.` for the open-ended one), that
                    // neither merges with the window before nor splits a cluster with the
                    // text after, is dropped: its search would find nothing, and a later
                    // window may still look back over its words for a cue, a month or a
                    // day (the look back stops at the window not yet returned, which is
                    // then an earlier one: it reaches at least as far). Not with custom
                    // MRN patterns, whose matches `hope` does not know. A window that
                    // reached back to a cue, month or state word holds a letter, and holds
                    // the cluster's digits and runs: if those are enough for a match,
                    // `hope` is true without reading it (`March 3, 2021`, `MA 02115`).
                    let bounded = window.sure || (reached_back && enough);
                    if !self.any_cue
                        && !window.open
                        && !bounded
                        && split.is_none()
                        && self
                            .pending
                            .as_ref()
                            .is_none_or(|p| window.range.start > p.range.end)
                    {
                        // A window of the digit cluster alone, and separators after it
                        // (`120/80,`, `99214`, `2008.`), holds the cluster's digits and runs
                        // and nothing else: `hope` would find what `sure` says, so it need
                        // not read it.
                        let cluster_alone = window.range.start == trigger_start
                            && window.range.len() <= SHORT_SLICE
                            && bytes.get(trigger_start).is_some_and(u8::is_ascii_digit)
                            && bytes
                                .get(trigger_end..window.range.end)
                                .is_some_and(|after| after.iter().all(|&b| is_digit_separator(b)));
                        if cluster_alone {
                            continue;
                        }
                        let h = hope(bytes.get(window.range.clone()).unwrap_or_default());
                        if !h.bounded && !h.open {
                            continue;
                        }
                    }
                    match self.pending.take() {
                        Some(p) if window.range.start <= p.range.end => {
                            self.pending = Some(Window {
                                range: p.range.start..window.range.end.max(p.range.end),
                                open: p.open || window.open,
                                sure: p.sure || window.sure,
                                asked: Asked::No,
                            });
                        }
                        before => {
                            // A new window: the one before is final. With the built-in
                            // patterns, a window that splits no cluster is decided now, and
                            // one with a finding handed out at once ([`Windows::decide`]).
                            if !self.any_cue && split.is_none() {
                                let mut work = super::ScanWork::default();
                                let decided =
                                    super::search::decided(self.text, &window.range, &mut work);
                                self.validations += work.validations;
                                match decided {
                                    Some(Some(found)) => {
                                        self.pending = before;
                                        let end = window.range.end;
                                        match self.decide(found, end, out) {
                                            Some(p) => return Some(p),
                                            None => continue,
                                        }
                                    }
                                    Some(None) => window.asked = Asked::Nothing,
                                    None => window.asked = Asked::Search,
                                }
                            }
                            self.pending = Some(window);
                            if let Some(p) = before {
                                return Some(p);
                            }
                        }
                    }
                }
                None => return self.pending.take(),
            }
        }
    }
}
