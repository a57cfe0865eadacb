//! `Phi<T>`: a value that never prints itself.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::mask::{Masker, PhiValue, Redact};
use crate::model::Category;

/// Holds a PHI value. `Debug`, `Display` and `Serialize` print only `[PHI]`, never the value
/// nor its length; [`Phi::expose`] is the one explicit, greppable way in.
///
/// ```
/// use guardrail_core::Phi;
/// let ssn = Phi::new(String::from("123-45-6789"));
/// assert_eq!(format!("{ssn:?}"), "Phi([PHI])");
/// assert_eq!(ssn.to_string(), "[PHI]");
/// assert_eq!(ssn.expose(), "123-45-6789");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Phi<T>(T);

impl<T> Phi<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Phi<T> {
        Phi(value)
    }

    /// The raw value. Every call is a place to review.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The raw value, mutably.
    pub fn expose_mut(&mut self) -> &mut T {
        &mut self.0
    }

    /// Unwraps the raw value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Phi<T> {
    fn from(value: T) -> Self {
        Phi(value)
    }
}

impl<T> fmt::Debug for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phi([PHI])")
    }
}

impl<T> fmt::Display for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[PHI]")
    }
}

impl<T> Serialize for Phi<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[PHI]")
    }
}

impl<T: PhiValue> PhiValue for Phi<T> {
    fn mask_as(&mut self, category: Category, masker: &Masker<'_>) {
        self.0.mask_as(category, masker);
    }
}

impl<T: Redact> Redact for Phi<T> {
    fn redact(&mut self, masker: &Masker<'_>) {
        self.0.redact(masker);
    }
}
