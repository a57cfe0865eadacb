//! Minimum necessary on the way out: [`Redact`] reduces a returned value in place.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use guardrail_audit::AuditKey;

use crate::mask::{MaskingConfig, Strategy};
use crate::model::{Category, CategorySet};

/// Reduces a value to what the caller may see. `#[derive(Phi)]` implements it; every
/// `#[phi_action]` Ok type must implement it.
///
/// Types that hold no PHI implement it as a no-op (primitives, `String` when not marked as
/// PHI, `()`); containers recurse.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `Redact`, so guardrail cannot mask it",
    label = "the Ok value of a #[phi_action], and every field of a `#[derive(Phi)]` type not marked `#[phi(skip)]`, is masked through `Redact`",
    note = "derive it with `#[derive(guardrail_core::Phi)]` and mark PHI fields with `#[phi(<category>)]`, or implement `guardrail_core::Redact` (an empty impl if the type holds no PHI)"
)]
pub trait Redact {
    /// Masks, in place, every PHI field `masker` does not reveal.
    fn redact(&mut self, masker: &Masker<'_>);
}

/// A value that is itself PHI of some category (a field marked `#[phi(<category>)]`).
///
/// Implemented for `String`, `Option<T>`, `Vec<T>`, `Box<T>`, `Phi<T>`, the values of
/// `BTreeMap`/`HashMap`, and scalars (reset to 0/false unless revealed; an integer age under
/// `generalize` is capped at 90 instead).
pub trait PhiValue {
    /// Masks this value as `category` with the strategy the policy chose.
    fn mask_as(&mut self, category: Category, masker: &Masker<'_>);
}

/// What the caller of one guarded call may see, and how the rest is masked.
#[derive(Debug, Clone, Copy)]
pub struct Masker<'a> {
    reveal: CategorySet,
    config: &'a MaskingConfig,
    key: &'a AuditKey,
}

impl<'a> Masker<'a> {
    /// A masker revealing `reveal`, masking the rest per `config`, tokenizing under `key`.
    pub fn new(reveal: CategorySet, config: &'a MaskingConfig, key: &'a AuditKey) -> Masker<'a> {
        Masker {
            reveal,
            config,
            key,
        }
    }

    /// True if `category` is shown unmasked.
    pub fn reveals(&self, category: Category) -> bool {
        self.reveal.contains(category)
    }

    /// The masking configuration in force.
    pub fn config(&self) -> &MaskingConfig {
        self.config
    }

    /// The key tokens are made under.
    pub fn key(&self) -> &AuditKey {
        self.key
    }

    /// Masks a string of `category` in place, unless revealed.
    pub fn mask_string(&self, category: Category, value: &mut String) {
        if !self.reveals(category) {
            crate::mask::apply(self.config.strategy(category), category, value, self.key);
        }
    }
}

macro_rules! no_phi {
    ($($t:ty),* $(,)?) => {
        $(impl Redact for $t {
            #[inline]
            fn redact(&mut self, _: &Masker<'_>) {}
        })*
    };
}

no_phi!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    std::time::SystemTime,
    std::time::Duration,
);

/// A borrowed string cannot be masked in place, and one returned from a guarded call is not
/// PHI unless it is wrapped or marked: a no-op, as for `String`.
impl Redact for &str {
    #[inline]
    fn redact(&mut self, _: &Masker<'_>) {}
}

impl<T: Redact> Redact for Option<T> {
    fn redact(&mut self, m: &Masker<'_>) {
        if let Some(v) = self {
            v.redact(m);
        }
    }
}

impl<T: Redact> Redact for Vec<T> {
    fn redact(&mut self, m: &Masker<'_>) {
        for v in self {
            v.redact(m);
        }
    }
}

impl<T: ?Sized> Redact for std::marker::PhantomData<T> {
    #[inline]
    fn redact(&mut self, _: &Masker<'_>) {}
}

impl<T: Redact> Redact for Box<T> {
    fn redact(&mut self, m: &Masker<'_>) {
        (**self).redact(m);
    }
}

impl<T: Redact, const N: usize> Redact for [T; N] {
    fn redact(&mut self, m: &Masker<'_>) {
        for v in self {
            v.redact(m);
        }
    }
}

impl<K: Ord, V: Redact> Redact for BTreeMap<K, V> {
    fn redact(&mut self, m: &Masker<'_>) {
        for v in self.values_mut() {
            v.redact(m);
        }
    }
}

impl<K, V: Redact, S: BuildHasher> Redact for HashMap<K, V, S> {
    fn redact(&mut self, m: &Masker<'_>) {
        for v in self.values_mut() {
            v.redact(m);
        }
    }
}

macro_rules! tuples {
    ($(($($n:tt $t:ident),+)),+ $(,)?) => {
        $(impl<$($t: Redact),+> Redact for ($($t,)+) {
            fn redact(&mut self, m: &Masker<'_>) {
                $(self.$n.redact(m);)+
            }
        })+
    };
}

tuples!((0 A), (0 A, 1 B), (0 A, 1 B, 2 C), (0 A, 1 B, 2 C, 3 D));

impl PhiValue for String {
    fn mask_as(&mut self, category: Category, m: &Masker<'_>) {
        m.mask_string(category, self);
    }
}

impl<T: PhiValue> PhiValue for Option<T> {
    fn mask_as(&mut self, category: Category, m: &Masker<'_>) {
        if let Some(v) = self {
            v.mask_as(category, m);
        }
    }
}

impl<T: PhiValue> PhiValue for Vec<T> {
    fn mask_as(&mut self, category: Category, m: &Masker<'_>) {
        for v in self {
            v.mask_as(category, m);
        }
    }
}

impl<T: PhiValue> PhiValue for Box<T> {
    fn mask_as(&mut self, category: Category, m: &Masker<'_>) {
        (**self).mask_as(category, m);
    }
}

impl<K: Ord, V: PhiValue> PhiValue for BTreeMap<K, V> {
    /// Masks the values; keys are not PHI of the field's category (use a struct if they are).
    fn mask_as(&mut self, category: Category, m: &Masker<'_>) {
        for v in self.values_mut() {
            v.mask_as(category, m);
        }
    }
}

impl<K, V: PhiValue, S: BuildHasher> PhiValue for HashMap<K, V, S> {
    /// Masks the values; keys are not PHI of the field's category (use a struct if they are).
    fn mask_as(&mut self, category: Category, m: &Masker<'_>) {
        for v in self.values_mut() {
            v.mask_as(category, m);
        }
    }
}

macro_rules! integer_phi {
    ($($t:ty),* $(,)?) => {
        $(impl PhiValue for $t {
            /// A number cannot hold a partial mask or a token: unless revealed it becomes 0,
            /// except an age under `generalize`, which is capped at 90 (Safe Harbor's single
            /// "90 or older" category, in a type that cannot say `90+`).
            fn mask_as(&mut self, category: Category, m: &Masker<'_>) {
                if m.reveals(category) {
                    return;
                }
                let generalize = m.config().strategy(category) == Strategy::Generalize;
                if category == Category::Age && generalize {
                    // 0..=89 stay, above becomes 90, a negative age is no age.
                    *self = (*self).clamp(0, 90);
                } else {
                    *self = 0;
                }
            }
        })*
    };
}

integer_phi!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

macro_rules! scalar_phi {
    ($($t:ty),* $(,)?) => {
        $(impl PhiValue for $t {
            /// Unless revealed it becomes its default.
            fn mask_as(&mut self, category: Category, m: &Masker<'_>) {
                if !m.reveals(category) {
                    *self = <$t>::default();
                }
            }
        })*
    };
}

scalar_phi!(f32, f64, bool);
