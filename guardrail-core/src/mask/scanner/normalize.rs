//! The normalized view the patterns run on: look-alike characters mapped to the ASCII the
//! patterns know (Unicode dashes and minus to `-`, fullwidth digits and punctuation to ASCII,
//! Unicode spaces to a space), invisible format characters (zero-width spaces and joiners,
//! word joiner, BOM, soft hyphen) dropped, with the map from each byte of the view back to
//! the original text, so matches found on the view mask the original bytes. Also
//! [`is_blank_text`].

use std::ops::Range;

/// What a character becomes in the normalized view.
enum Fold {
    /// Kept as it is.
    Keep,
    /// Replaced by this ASCII byte.
    Ascii(u8),
    /// Dropped (invisible).
    Drop,
}

/// Invisible format characters: zero-width space, non-joiner and joiner, word joiner, byte
/// order mark / zero-width no-break space, soft hyphen, the invisible operators, the
/// directional marks, embeddings and isolates, and the Mongolian vowel separator.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
    )
}

fn fold(c: char) -> Fold {
    match c {
        // Hyphen, non-breaking hyphen, figure dash, en dash, em dash, horizontal bar, minus
        // sign, small em dash, small hyphen-minus.
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => Fold::Ascii(b'-'),
        // Fullwidth ASCII (digits, hyphen-minus, `@`, `.`, `/`, `(`, `)`, letters…).
        '\u{FF01}'..='\u{FF5E}' => Fold::Ascii((u32::from(c) - 0xFF01 + 0x21) as u8),
        // No-break, figure, narrow no-break and the other fixed-width spaces; ideographic space.
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => {
            Fold::Ascii(b' ')
        }
        // One dot leader, fraction slash.
        '\u{2024}' => Fold::Ascii(b'.'),
        '\u{2044}' => Fold::Ascii(b'/'),
        c if is_invisible_format(c) => Fold::Drop,
        _ => Fold::Keep,
    }
}

/// `text` with look-alikes folded, and where each byte of it came from.
#[derive(Debug)]
pub(super) struct Normalized {
    /// The normalized text.
    pub(super) text: String,
    /// For each byte of `text`, the range of the original character it came from.
    origin: Vec<Range<usize>>,
}

impl Normalized {
    /// The normalized view of `text`, or `None` if it would be `text` itself (nothing to
    /// fold). ASCII text never needs one: [`prescan`] tells, in a cheaper pass than this
    /// one's test.
    pub(super) fn of(text: &str) -> Option<Normalized> {
        if !text.chars().any(|c| !matches!(fold(c), Fold::Keep)) {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut origin = Vec::with_capacity(text.len());
        for (at, c) in text.char_indices() {
            let span = at..at + c.len_utf8();
            match fold(c) {
                Fold::Keep => {
                    out.push(c);
                    origin.extend(std::iter::repeat_n(span, c.len_utf8()));
                }
                Fold::Ascii(b) => {
                    out.push(char::from(b));
                    origin.push(span);
                }
                Fold::Drop => {}
            }
        }
        Some(Normalized { text: out, origin })
    }

    /// The original byte range of `range` of the normalized text (on character boundaries
    /// of the original; dropped characters inside it are included).
    pub(super) fn original(&self, range: &Range<usize>) -> Option<Range<usize>> {
        let first = self.origin.get(range.start)?;
        let last = self.origin.get(range.end.checked_sub(1)?)?;
        Some(first.start..last.end)
    }
}

/// What one pass over a text's bytes tells before it is scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Prescan {
    /// Every byte is ASCII: the text needs no normalized view.
    pub(super) ascii: bool,
    /// A `.` follows a `w` or a `W` somewhere: the text may hold a `www.` (the trigger
    /// loop looks for one only then).
    pub(super) w_dot: bool,
}

/// Reads `bytes` once for [`Prescan`]. The bytes are or-ed together, and each byte tested
/// with the one before, 32 at a time with no early exit, which the compiler turns into
/// vector instructions: on the ASCII text that is nearly all the scanner sees, cheaper than
/// `<[u8]>::is_ascii` (eight bytes at a time) and a search for `w.` and one for `W.`.
pub(super) fn prescan(bytes: &[u8]) -> Prescan {
    let Some((&first, next)) = bytes.split_first() else {
        return Prescan {
            ascii: true,
            w_dot: false,
        };
    };
    // Each byte after the first (`next`) beside the one before it (`before`).
    let before = bytes.get(..next.len()).unwrap_or_default();
    let mut high = [0u8; 32];
    let mut w_dot = [0u8; 32];
    let mut befores = before.chunks_exact(32);
    let mut nexts = next.chunks_exact(32);
    for (b, n) in (&mut befores).zip(&mut nexts) {
        for (((h, w), &b), &n) in high.iter_mut().zip(&mut w_dot).zip(b).zip(n) {
            *h |= n;
            *w |= u8::from((b | 0x20) == b'w') & u8::from(n == b'.');
        }
    }
    let mut seen = high.iter().fold(first, |a, &h| a | h);
    let mut found = w_dot.iter().fold(0, |a, &w| a | w);
    for (&b, &n) in befores.remainder().iter().zip(nexts.remainder()) {
        seen |= n;
        found |= u8::from((b | 0x20) == b'w') & u8::from(n == b'.');
    }
    Prescan {
        ascii: seen < 0x80,
        w_dot: found != 0,
    }
}

/// True when `text` has no visible character: it is empty or holds only whitespace, control
/// characters and invisible format characters (zero-width space, non-joiner and joiner
/// U+200B–U+200D, word joiner U+2060, BOM U+FEFF, soft hyphen, directional marks, the
/// Hangul fillers, braille blank). For refusing a reason that says nothing, such as a
/// break-glass justification of `"\u{200B} \u{FEFF}"`.
///
/// ```
/// use guardrail_core::mask::is_blank_text;
/// assert!(is_blank_text(""));
/// assert!(is_blank_text(" \t\n\u{200B}\u{200D}\u{2060}\u{FEFF}\u{00A0}"));
/// assert!(!is_blank_text("\u{200B}patient coding in ER"));
/// ```
pub fn is_blank_text(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || c.is_control()
            || is_invisible_format(c)
            || matches!(
                c,
                '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}' | '\u{034F}'
            )
    })
}
