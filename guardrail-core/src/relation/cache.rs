//! [`Lookups`]: the host's providers and, for one request, their answers per subject.
//!
//! The memo is a short list behind a mutex: a request touches a handful of patients, and a
//! hit costs a lock and an allocation-free comparison of the subject's `Display` with each
//! remembered subject. Providers are called with the lock released, so a provider that makes
//! a guarded call of its own under the same context does not deadlock; two threads of one
//! request asking for the same unknown subject at the same moment may both ask the host
//! (the first answer stored is kept).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    AsyncConsents, AsyncRelationships, ConsentSet, Consents, LookupError, PatientFlags, Relations,
    Relationships,
};
use crate::model::Principal;

/// Which provider a failed lookup belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    Relationships,
    PatientFlags,
    Consents,
}

impl Provider {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Provider::Relationships => "relationships",
            Provider::PatientFlags => "patient_flags",
            Provider::Consents => "consents",
        }
    }
}

/// A lookup that gave no answer; the call fails closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LookupFailure {
    pub(crate) provider: Provider,
    /// `failed` (the host returned an error), `not_configured`, `not_preloaded`.
    pub(crate) why: &'static str,
}

type Answer<T> = Option<Result<T, LookupFailure>>;

#[derive(Debug, Clone)]
struct Entry {
    subject: Box<str>,
    relations: Answer<Relations>,
    flags: Answer<PatientFlags>,
    consents: Answer<ConsentSet>,
}

impl Entry {
    fn new(subject: &str) -> Entry {
        Entry {
            subject: Box::from(subject),
            relations: None,
            flags: None,
            consents: None,
        }
    }
}

#[derive(Default, Clone)]
struct Providers {
    relationships: Option<Arc<dyn Relationships>>,
    consents: Option<Arc<dyn Consents>>,
    async_relationships: Option<Arc<dyn AsyncRelationships>>,
    async_consents: Option<Arc<dyn AsyncConsents>>,
}

/// The host's relationship and consent providers, and the answers they gave for one
/// request (memoized per subject, failures included).
///
/// A guardrail built with providers ([`GuardrailBuilder::relationships`](crate::GuardrailBuilder::relationships), …)
/// gives every `Context` its own `Lookups`; a policy evaluated by hand reads them from
/// [`ContextCache::with_lookups`](crate::policy::ContextCache::with_lookups). Cloning keeps
/// the providers and copies the answers known so far.
///
/// ```
/// use std::sync::Arc;
/// use guardrail_core::relation::{Lookups, LookupError, Relations, Relationships};
/// use guardrail_core::Principal;
///
/// struct Nobody;
/// impl Relationships for Nobody {
///     fn relations(&self, _: &Principal, _: &str) -> Result<Relations, LookupError> {
///         Ok(Relations::new())
///     }
/// }
/// let lookups = Lookups::new().relationships(Arc::new(Nobody));
/// assert!(lookups.has_relationships());
/// ```
#[derive(Default)]
pub struct Lookups {
    providers: Option<Arc<Providers>>,
    entries: Mutex<Vec<Entry>>,
}

impl Clone for Lookups {
    fn clone(&self) -> Self {
        Lookups {
            providers: self.providers.clone(),
            entries: Mutex::new(self.lock().clone()),
        }
    }
}

impl fmt::Debug for Lookups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.providers.as_deref();
        f.debug_struct("Lookups")
            .field(
                "relationships",
                &p.is_some_and(|p| p.relationships.is_some()),
            )
            .field("consents", &p.is_some_and(|p| p.consents.is_some()))
            .field(
                "async_relationships",
                &p.is_some_and(|p| p.async_relationships.is_some()),
            )
            .field(
                "async_consents",
                &p.is_some_and(|p| p.async_consents.is_some()),
            )
            .field("subjects", &self.lock().len())
            .finish()
    }
}

impl Lookups {
    /// No provider: rules that need one deny (`not_configured`).
    pub fn new() -> Lookups {
        Lookups::default()
    }

    fn edit(mut self, f: impl FnOnce(&mut Providers)) -> Lookups {
        let mut providers = self.providers.as_deref().cloned().unwrap_or_default();
        f(&mut providers);
        self.providers = Some(Arc::new(providers));
        self
    }

    /// Answers `relations = [..]`, `self_only` for representatives, `vip` and `restricted`.
    pub fn relationships(self, provider: Arc<dyn Relationships>) -> Lookups {
        self.edit(|p| p.relationships = Some(provider))
    }

    /// Answers `consent = [..]`.
    pub fn consents(self, provider: Arc<dyn Consents>) -> Lookups {
        self.edit(|p| p.consents = Some(provider))
    }

    /// Answers relationships for [`Context::preload`](crate::Context::preload) (async hosts).
    pub fn async_relationships(self, provider: Arc<dyn AsyncRelationships>) -> Lookups {
        self.edit(|p| p.async_relationships = Some(provider))
    }

    /// Answers consents for [`Context::preload`](crate::Context::preload) (async hosts).
    pub fn async_consents(self, provider: Arc<dyn AsyncConsents>) -> Lookups {
        self.edit(|p| p.async_consents = Some(provider))
    }

    /// True if a relationship provider (sync or async) is configured.
    pub fn has_relationships(&self) -> bool {
        self.providers
            .as_deref()
            .is_some_and(|p| p.relationships.is_some() || p.async_relationships.is_some())
    }

    /// The same providers with no answer yet (a new request's memo).
    pub(crate) fn fresh(&self) -> Lookups {
        Lookups {
            providers: self.providers.clone(),
            entries: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The memoized answer in `slot` for `subject`, or the provider's (then memoized).
    fn answer<T: Clone, R>(
        &self,
        subject: &dyn fmt::Display,
        slot: fn(&mut Entry) -> &mut Answer<T>,
        fetch: impl FnOnce(&Providers, &str) -> Result<T, LookupFailure>,
        read: impl Fn(&T) -> R,
    ) -> Result<R, LookupFailure> {
        {
            let mut entries = self.lock();
            if let Some(entry) = entries
                .iter_mut()
                .find(|e| display_equals(subject, &e.subject))
            {
                if let Some(answer) = slot(entry) {
                    return answer.as_ref().map(&read).map_err(|f| *f);
                }
            }
        }
        let key = subject.to_string();
        let fetched = match self.providers.as_deref() {
            Some(p) => fetch(p, &key),
            None => fetch(&Providers::default(), &key),
        };
        let out = fetched.as_ref().map(&read).map_err(|f| *f);
        self.store(&key, slot, fetched);
        out
    }

    fn store<T>(
        &self,
        subject: &str,
        slot: fn(&mut Entry) -> &mut Answer<T>,
        value: Result<T, LookupFailure>,
    ) {
        let mut entries = self.lock();
        let i = match entries.iter().position(|e| &*e.subject == subject) {
            Some(i) => i,
            None => {
                entries.push(Entry::new(subject));
                entries.len() - 1
            }
        };
        if let Some(entry) = entries.get_mut(i) {
            let s = slot(entry);
            if s.is_none() {
                *s = Some(value);
            }
        }
    }

    /// The index in `wanted` of the first relation `principal` has to `subject`.
    pub(crate) fn relation_in<S: AsRef<str>>(
        &self,
        principal: &Principal,
        subject: &dyn fmt::Display,
        wanted: &[S],
    ) -> Result<Option<usize>, LookupFailure> {
        self.answer(
            subject,
            |e| &mut e.relations,
            |p, s| match (&p.relationships, &p.async_relationships) {
                (Some(r), _) => r
                    .relations(principal, s)
                    .map_err(|_| failed(Provider::Relationships)),
                (None, Some(_)) => Err(not_preloaded(Provider::Relationships)),
                (None, None) => Err(not_configured(Provider::Relationships)),
            },
            |relations| wanted.iter().position(|w| relations.contains(w.as_ref())),
        )
    }

    /// `(vip, restricts principal)` for `subject`.
    pub(crate) fn flags(
        &self,
        principal: &Principal,
        subject: &dyn fmt::Display,
    ) -> Result<(bool, bool), LookupFailure> {
        self.answer(
            subject,
            |e| &mut e.flags,
            |p, s| match (&p.relationships, &p.async_relationships) {
                (Some(r), _) => r.patient(s).map_err(|_| failed(Provider::PatientFlags)),
                (None, Some(_)) => Err(not_preloaded(Provider::PatientFlags)),
                (None, None) => Err(not_configured(Provider::PatientFlags)),
            },
            |flags| (flags.is_vip(), flags.restricts(principal)),
        )
    }

    /// The consents on file for `principal` reading `subject`.
    pub(crate) fn consents_of(
        &self,
        principal: &Principal,
        subject: &dyn fmt::Display,
    ) -> Result<ConsentSet, LookupFailure> {
        self.answer(
            subject,
            |e| &mut e.consents,
            |p, s| match (&p.consents, &p.async_consents) {
                (Some(c), _) => c
                    .consents(principal, s)
                    .map_err(|_| failed(Provider::Consents)),
                (None, Some(_)) => Err(not_preloaded(Provider::Consents)),
                (None, None) => Err(not_configured(Provider::Consents)),
            },
            |c| *c,
        )
    }

    fn known(&self, subject: &str, has: fn(&Entry) -> bool) -> bool {
        self.lock().iter().any(|e| &*e.subject == subject && has(e))
    }

    /// Asks the async providers (or the sync ones where no async one is configured) every
    /// question a decision about `subject` may need, and memoizes the answers. A failure is
    /// memoized too (the decision then denies) and returned.
    pub(crate) async fn preload(
        &self,
        principal: &Principal,
        subject: &str,
    ) -> Result<(), LookupError> {
        let Some(p) = self.providers.clone() else {
            return Ok(());
        };
        let mut first_error = None;
        let mut keep = |r: Result<(), LookupError>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        if !self.known(subject, |e| e.relations.is_some()) {
            let answer = match (&p.async_relationships, &p.relationships) {
                (Some(a), _) => Some(a.relations(principal, subject).await),
                (None, Some(s)) => Some(s.relations(principal, subject)),
                (None, None) => None,
            };
            if let Some(answer) = answer {
                keep(answer.as_ref().map(|_| ()).map_err(Clone::clone));
                self.store(
                    subject,
                    |e| &mut e.relations,
                    answer.map_err(|_| failed(Provider::Relationships)),
                );
            }
        }
        if !self.known(subject, |e| e.flags.is_some()) {
            let answer = match (&p.async_relationships, &p.relationships) {
                (Some(a), _) => Some(a.patient(subject).await),
                (None, Some(s)) => Some(s.patient(subject)),
                (None, None) => None,
            };
            if let Some(answer) = answer {
                keep(answer.as_ref().map(|_| ()).map_err(Clone::clone));
                self.store(
                    subject,
                    |e| &mut e.flags,
                    answer.map_err(|_| failed(Provider::PatientFlags)),
                );
            }
        }
        if !self.known(subject, |e| e.consents.is_some()) {
            let answer = match (&p.async_consents, &p.consents) {
                (Some(a), _) => Some(a.consents(principal, subject).await),
                (None, Some(s)) => Some(s.consents(principal, subject)),
                (None, None) => None,
            };
            if let Some(answer) = answer {
                keep(answer.as_ref().map(|_| ()).map_err(Clone::clone));
                self.store(
                    subject,
                    |e| &mut e.consents,
                    answer.map_err(|_| failed(Provider::Consents)),
                );
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn failed(provider: Provider) -> LookupFailure {
    LookupFailure {
        provider,
        why: "failed",
    }
}

fn not_configured(provider: Provider) -> LookupFailure {
    LookupFailure {
        provider,
        why: "not_configured",
    }
}

fn not_preloaded(provider: Provider) -> LookupFailure {
    LookupFailure {
        provider,
        why: "not_preloaded",
    }
}

/// True if `value` formats exactly as `expected`, without allocating.
pub(crate) fn display_equals(value: &dyn fmt::Display, expected: &str) -> bool {
    struct Compare<'e> {
        rest: &'e str,
    }
    impl fmt::Write for Compare<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match self.rest.strip_prefix(s) {
                Some(rest) => {
                    self.rest = rest;
                    Ok(())
                }
                // Stops formatting at the first difference.
                None => Err(fmt::Error),
            }
        }
    }
    let mut compare = Compare { rest: expected };
    fmt::write(&mut compare, format_args!("{value}")).is_ok() && compare.rest.is_empty()
}
