//! The built-in patterns: the regex source of every identifier the scanner knows, ASCII-only
//! (`unicode(false)`): `\b`, `\s` and `(?i)` are ASCII, which keeps the automaton small and
//! lets the lazy DFA run on any text. What a match must pass afterwards is in `checks`; which
//! bytes are worth searching at all is in `trigger`.

/// An SSN after a cue (`SSN`, `SS#`, `social security (number|no.|#)`), then `:`, `#`, `=`,
/// `is` or `was`, then nine digits: dashed, dotted, spaced, undashed or mixed.
pub(super) const SSN_CUE: &str = r"(?i:ssn|ss#|soc(?:ial)?[ \t]?sec(?:urity)?(?:[ \t]?(?:number|num|nbr|no\.?|#))?)(?:[ \t]{0,3}(?:[:#=]{1,2}|(?i:is|was)\b))?[ \t]{0,3}(?P<id>[0-9]{3}[\-. ]?[0-9]{2}[\-. ]?[0-9]{4}|[0-9]{3} [0-9]{3} [0-9]{3})\b";
pub(super) const SSN: &str = r"\b(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4})\b";
pub(super) const ZIP_CUE: &str =
    r"(?i:zip(?: code)?|postal code)[ \t]?[:#]?[ \t]{0,3}(?P<id>[0-9]{5}(?:-[0-9]{4})?)\b";
pub(super) const EMAIL: &str =
    r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}\b";
pub(super) const URL: &str =
    r"\b(?:(?i:https?|ftp|sftp)://|(?i:www)\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+";
pub(super) const DATE_NUMERIC: &str = r"\b(?:[0-9]{1,2}[/\-][0-9]{1,2}[/\-](?:[0-9]{4}|[0-9]{2})|[0-9]{4}[/\-][0-9]{1,2}[/\-][0-9]{1,2}(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+\-][0-9]{2}:?[0-9]{2})?)?|[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{4})\b";
pub(super) const IPV4: &str = r"\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\b";
pub(super) const IPV6: &str = r"\b(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}|(?:[0-9A-Fa-f]{1,4}:){1,7}:)";
pub(super) const CARD: &str = r"\b[0-9](?:[ \-]?[0-9]){12,18}\b";

/// A North American number: optional `+1`/`1`, area code (in parentheses or not), exchange,
/// line, separated by `-`, `.` or a space.
pub(super) const PHONE_CORE: &str =
    r"(?:(?:\+1|\b1)[\-. ]?)?(?:\([0-9]{3}\)[ ]?|\b[0-9]{3}[\-. ])[0-9]{3}[\-. ][0-9]{4}\b";

pub(super) fn phone_pattern() -> String {
    PHONE_CORE.to_owned()
}

pub(super) fn fax_pattern() -> String {
    format!(
        r"(?i:fax|facsimile|telefax)(?:[ \t]?(?:no\.?|number|num|#))?[ \t]?[:#]?[ \t]{{0,3}}(?P<id>{PHONE_CORE})"
    )
}

pub(super) const MONTHS: &str = "january|february|march|april|may|june|july|august|september|october|november|december|sept|jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec";

/// The alternatives of [`MONTHS`], one by one (a unit test checks the two agree).
#[cfg(test)]
pub(super) const MONTH_NAMES: [&str; 24] = [
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
    "sept",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
];

/// True if `lower` (in lower case) is one of [`MONTH_NAMES`]: a slice pattern the compiler
/// turns into a test of the length and then of the bytes, with no call (a unit test checks
/// it against the list).
pub(super) fn is_month_name(lower: &[u8]) -> bool {
    matches!(
        lower,
        b"january"
            | b"february"
            | b"march"
            | b"april"
            | b"may"
            | b"june"
            | b"july"
            | b"august"
            | b"september"
            | b"october"
            | b"november"
            | b"december"
            | b"sept"
            | b"jan"
            | b"feb"
            | b"mar"
            | b"apr"
            | b"jun"
            | b"jul"
            | b"aug"
            | b"sep"
            | b"oct"
            | b"nov"
            | b"dec"
    )
}

pub(super) fn date_named_pattern() -> String {
    format!(
        r"\b(?:(?i:{MONTHS})\.?[ \t]{{1,2}}[0-9]{{1,2}}(?i:st|nd|rd|th)?,?[ \t]{{1,2}}[0-9]{{4}}|[0-9]{{1,2}}(?i:st|nd|rd|th)?[ \t\-]{{1,2}}(?i:{MONTHS})\.?[ \t\-,]{{1,2}}[0-9]{{4}})\b"
    )
}

pub(super) const STATES: &str = "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|VI|GU|AS|MP";

/// For each capital letter, the bit of every second letter that makes a code in [`STATES`]
/// (`MA`: bit `A` of entry `M`).
static STATE_PAIRS: [u32; 26] = {
    let mut t = [0u32; 26];
    let b = STATES.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        t[(b[i] - b'A') as usize] |= 1 << (b[i + 1] - b'A');
        i += 3;
    }
    t
};

/// True if `word` ends in a state code (then perhaps a comma) that starts at a word
/// boundary (`\b` in [`zip_state_pattern`]: the word's start or a byte that is not a letter,
/// digit or `_`), as the word before the digits of a `MA 02115` ZIP must: so `(MA,` but not
/// `NDC` (whose `DC` follows a letter).
pub(super) fn ends_in_state(word: &[u8]) -> bool {
    let word = word.strip_suffix(b",").unwrap_or(word);
    let [before @ .., a, b] = word else {
        return false;
    };
    is_state(*a, *b) && before.last().is_none_or(|&c| !is_word_byte(c))
}

/// True if `a` then `b` is a state code of [`STATES`] (upper case, as the pattern has it).
pub(super) fn is_state(a: u8, b: u8) -> bool {
    a.is_ascii_uppercase()
        && b.is_ascii_uppercase()
        && STATE_PAIRS[usize::from(a - b'A')] & (1 << (b - b'A')) != 0
}

/// A byte `\b` counts as part of a word (ASCII: letters, digits, `_`).
pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub(super) fn zip_state_pattern() -> String {
    format!(r"\b(?:{STATES}),?[ \t]{{1,2}}(?P<id>[0-9]{{5}}(?:-[0-9]{{4}})?)\b")
}
