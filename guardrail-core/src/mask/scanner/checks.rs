//! The validity checks a pattern's match must pass to become a [`ScanMatch`](super::ScanMatch):
//! SSA rules for SSNs, NANP for phones, real calendar days, Luhn. Pure functions of the matched
//! text; no regex here.

/// Which check a pattern's matches must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    None,
    Ssn,
    Nanp,
    NumericDate,
    NamedDate,
    Ipv4,
    Ipv6,
    Luhn,
    Url,
}

fn digits(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0')
}

/// The first `N` digits of `s` and how many digits it has in all (no allocation: checks
/// run on every candidate).
fn digit_array<const N: usize>(s: &str) -> ([u8; N], usize) {
    let mut ds = [0; N];
    let mut len = 0;
    for d in digits(s) {
        if let Some(slot) = ds.get_mut(len) {
            *slot = d;
        }
        len += 1;
    }
    (ds, len)
}

fn number(ds: &[u8]) -> u32 {
    ds.iter().fold(0, |n, &d| n * 10 + u32::from(d))
}

/// SSA rules: area not 000, 666 or 900–999; group not 00; serial not 0000.
pub(super) fn valid_ssn(s: &str) -> bool {
    let (ds, len) = digit_array::<9>(s);
    len == 9 && ssn_digits_valid(&ds)
}

/// [`valid_ssn`] on the digits alone (nine of them).
pub(super) fn ssn_digits_valid(ds: &[u8]) -> bool {
    if ds.len() != 9 {
        return false;
    }
    let area = number(&ds[0..3]);
    let group = number(&ds[3..5]);
    let serial = number(&ds[5..9]);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// NANP: 10 digits (after an optional leading 1) whose area code and exchange start 2–9.
pub(super) fn valid_nanp(s: &str) -> bool {
    let (ds, len) = digit_array::<11>(s);
    ds.get(..len).is_some_and(nanp_digits_valid)
}

/// [`valid_nanp`] on the digits alone.
pub(super) fn nanp_digits_valid(ds: &[u8]) -> bool {
    let national = match ds.len() {
        10 => ds,
        11 if ds[0] == 1 => &ds[1..],
        _ => return false,
    };
    national[0] >= 2 && national[3] >= 2
}

pub(super) fn valid_day(month: u32, day: u32) -> bool {
    let max = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => 29,
        _ => return false,
    };
    (1..=max).contains(&day)
}

/// The numeric parts of a date, in order (runs of digits; a run too long for a `u32`
/// saturates). A byte loop: checks run on every candidate.
fn parts(s: &str) -> impl Iterator<Item = u32> + '_ {
    let mut bytes = s.bytes().peekable();
    std::iter::from_fn(move || {
        while bytes.next_if(|b| !b.is_ascii_digit()).is_some() {}
        let mut n = None;
        while let Some(b) = bytes.next_if(u8::is_ascii_digit) {
            let part: u32 = n.unwrap_or(0);
            n = Some(part.saturating_mul(10).saturating_add(u32::from(b - b'0')));
        }
        n
    })
}

pub(super) fn valid_numeric_date(s: &str) -> bool {
    let mut p = parts(s);
    let (Some(a), Some(b), Some(c)) = (p.next(), p.next(), p.next()) else {
        return false;
    };
    let first_len = s.bytes().take_while(u8::is_ascii_digit).count();
    numeric_date_numbers_valid(first_len == 4, [a, b, c])
}

/// [`valid_numeric_date`] on the date's three numbers, in order; `year_first` if the first
/// has four digits.
pub(super) fn numeric_date_numbers_valid(year_first: bool, [a, b, c]: [u32; 3]) -> bool {
    if year_first {
        // Year first: YYYY-MM-DD.
        valid_day(b, c)
    } else {
        // MM/DD/YYYY (US) or DD/MM/YYYY, DD.MM.YYYY: either reading makes it a date.
        valid_day(a, b) || valid_day(b, a)
    }
}

pub(super) fn valid_named_date(s: &str) -> bool {
    match parts(s).next() {
        Some(day) => (1..=31).contains(&day),
        None => false,
    }
}

pub(super) fn valid_luhn(s: &str) -> bool {
    let (ds, len) = digit_array::<19>(s);
    ds.get(..len).is_some_and(luhn_digits_valid)
}

/// [`valid_luhn`] on the digits alone (13 to 19 of them).
pub(super) fn luhn_digits_valid(ds: &[u8]) -> bool {
    if !(13..=19).contains(&ds.len()) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}
