//! The arguments the guard reads from a call: `count = ..` and `subjects = ..`, converted
//! without panicking.

use std::fmt;

/// The `count = ..` argument of a guarded call, converted without panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountArg {
    /// The action declares no count.
    Absent,
    /// A valid count.
    Value(u64),
    /// A negative or out-of-range count: the call is refused.
    Invalid,
}

/// Converts the expression given as `count = ..`.
pub trait IntoCount {
    /// The count, or [`CountArg::Invalid`].
    fn into_count(self) -> CountArg;
}

macro_rules! into_count {
    ($($t:ty),*) => {$(
        impl IntoCount for $t {
            #[inline]
            fn into_count(self) -> CountArg {
                u64::try_from(self).map_or(CountArg::Invalid, CountArg::Value)
            }
        }
    )*};
}

into_count!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

impl<T: IntoCount + Copy> IntoCount for &T {
    fn into_count(self) -> CountArg {
        (*self).into_count()
    }
}

/// Converts a `count = ..` expression.
#[inline]
pub fn count<C: IntoCount>(c: C) -> CountArg {
    c.into_count()
}

/// The `subjects = ..` argument of a bulk call: the ids, formatted once. They are only ever
/// compared and tokenized, never stored or printed.
pub struct SubjectList(pub(super) Vec<String>);

impl fmt::Debug for SubjectList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectList({} subjects)", self.0.len())
    }
}

/// Collects the expression given as `subjects = ..` (any iterable of displayable ids, e.g.
/// `&[String]`, `&Vec<u64>`, `ids.iter()`).
pub fn subjects<I>(items: I) -> SubjectList
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    SubjectList(items.into_iter().map(|s| s.to_string()).collect())
}
