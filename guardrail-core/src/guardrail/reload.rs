//! Hot policy reload: validate fully, record, then swap.
//!
//! The policy lives behind an [`arc_swap::ArcSwap`]: a guarded call loads it once, at the
//! start of its decision, and keeps that `Arc` for its whole life (decision event, outcome
//! event, masking), so a call never mixes two policies, and every event names the version and
//! hash it was decided under. A reload
//!
//! 1. parses and validates the new policy completely (a bad file is refused with its path,
//!    line and column, and the old policy keeps serving),
//! 2. checks that every sink the new policy's `[audit] required` names is configured,
//! 3. appends a `policy_reload` event (old and new version and SHA-256) to the audit trail,
//!    under the policy still in force; if the trail cannot record it, the reload is refused,
//! 4. swaps the pointer: calls that start afterwards use the new policy.
//!
//! A refused reload is also recorded (best effort) as a `policy_reload` event with
//! `decision = "refused"`, counted in `guardrail_policy_reloads_total{result="refused"}` and
//! raised as an [`AlertKind::PolicyReloadRefused`] alert. Reloads are serialized within the
//! process, so the "old" version of a reload event is always the one it replaced.
//!
//! With the `watch` feature, [`Guardrail::watch_policy`] reloads a file whenever it changes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use guardrail_audit::{EventKind, Record};

use crate::alert::{Alert, AlertKind};
use crate::guardrail::{BuildError, Guardrail};
use crate::policy::{Policy, PolicyError};

/// Why a reload was refused. The policy in force is unchanged in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The new policy does not parse or validate (names file, line, column, field).
    #[error("policy reload refused: {0}")]
    Policy(#[from] PolicyError),
    /// The new policy does not fit this guardrail (e.g. it requires a sink that is not
    /// configured).
    #[error("policy reload refused: {0}")]
    Config(#[from] BuildError),
    /// The reload could not be recorded in the audit trail.
    #[error("policy reload refused: the audit trail could not record it (sink `{sink}`): {detail}")]
    AuditUnavailable {
        /// The sink that failed.
        sink: String,
        /// What failed.
        detail: String,
    },
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Version of the policy replaced.
    pub old_version: String,
    /// SHA-256 of the policy replaced.
    pub old_sha256: String,
    /// Version of the policy now in force.
    pub new_version: String,
    /// SHA-256 of the policy now in force.
    pub new_sha256: String,
    /// False when the new policy was byte-identical to the old one (nothing swapped, nothing
    /// recorded).
    pub changed: bool,
    /// Sequence number of the `policy_reload` event in the first sink, when recorded.
    pub audit_seq: Option<u64>,
}

/// Serializes reloads, so that a reload event's "old" is the policy it actually replaced.
/// Reloads are rare; one lock for the process is plenty.
static RELOAD_LOCK: Mutex<()> = Mutex::new(());

impl Guardrail {
    /// Replaces the policy in force with `policy`, after checking it fits this guardrail and
    /// recording the reload in the audit trail. Calls already deciding keep the policy they
    /// started with.
    ///
    /// ```
    /// # use guardrail_core::prelude::*;
    /// # fn demo(guardrail: &Guardrail, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let report = guardrail.reload(Policy::from_toml_str(text)?)?;
    /// println!("policy {} -> {}", report.old_version, report.new_version);
    /// # Ok(()) }
    /// ```
    pub fn reload(&self, policy: Policy) -> Result<ReloadReport, ReloadError> {
        self.reload_inner(Ok(policy), Origin::Direct)
    }

    /// Reads, parses and validates the policy file at `path`, then reloads it as
    /// [`Guardrail::reload`] does. A bad file is refused with its line and column and the
    /// old policy keeps serving.
    pub fn reload_from_path(&self, path: impl AsRef<Path>) -> Result<ReloadReport, ReloadError> {
        let path = path.as_ref();
        self.reload_inner(Policy::from_path(path), Origin::File(path))
    }

    /// Reloads a policy read from a central store (`policy_store`): the same steps, with the
    /// store and its version number in the reload event's details.
    #[cfg(feature = "postgres")]
    pub(crate) fn reload_from_store(
        &self,
        parsed: Result<Policy, PolicyError>,
        store: &str,
        version: u64,
    ) -> Result<ReloadReport, ReloadError> {
        self.reload_inner(parsed, Origin::Store { store, version })
    }

    fn reload_inner(
        &self,
        parsed: Result<Policy, PolicyError>,
        origin: Origin<'_>,
    ) -> Result<ReloadReport, ReloadError> {
        let _serial = RELOAD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.policy();
        let checked = parsed.map_err(ReloadError::from).and_then(|new| {
            crate::guardrail::check_required_sinks(&new, self.sinks())?;
            Ok(new)
        });
        let new = match checked {
            Ok(new) => new,
            Err(e) => {
                self.refused(&old, origin, &e);
                return Err(e);
            }
        };
        let mut report = ReloadReport {
            old_version: old.version().to_owned(),
            old_sha256: old.sha256().to_owned(),
            new_version: new.version().to_owned(),
            new_sha256: new.sha256().to_owned(),
            changed: old.sha256() != new.sha256(),
            audit_seq: None,
        };
        if !report.changed {
            crate::telemetry::policy_reload("ok");
            return Ok(report);
        }
        let mut record = Record::at(EventKind::PolicyReload, self.clock().now());
        record.decision = Some(Arc::from("reloaded"));
        record.policy_version = Some(new.version_arc());
        record.policy_hash = Some(new.hash_arc());
        record.detail = reload_detail(&old, Some(&new), origin);
        match self.append(&old, record) {
            Ok(receipt) => report.audit_seq = Some(receipt.seq),
            Err(f) => {
                let e = ReloadError::AuditUnavailable {
                    sink: f.sink,
                    detail: f.error.to_string(),
                };
                self.refused(&old, origin, &e);
                return Err(e);
            }
        }
        self.inner.policy.store(Arc::new(new));
        crate::telemetry::policy_reload("ok");
        Ok(report)
    }

    /// Counts, records (best effort) and alerts a refused reload.
    fn refused(&self, old: &Policy, origin: Origin<'_>, error: &ReloadError) {
        crate::telemetry::policy_reload("refused");
        let mut record = Record::at(EventKind::PolicyReload, self.clock().now());
        record.decision = Some(Arc::from("refused"));
        record.reason = Some(Arc::from(error.to_string()));
        record.policy_version = Some(old.version_arc());
        record.policy_hash = Some(old.hash_arc());
        record.detail = reload_detail(old, None, origin);
        // The refusal stands whether or not the trail took it (a sink failure alerts itself).
        let _ = self.append(old, record);
        self.raise(Alert::new(
            AlertKind::PolicyReloadRefused,
            self.clock().now(),
            format!("{error}; policy `{}` stays in force", old.version()),
        ));
    }
}

/// Where a reloaded policy came from, for the reload event's details.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// A `Policy` handed to [`Guardrail::reload`].
    Direct,
    /// A policy file.
    File(&'a Path),
    /// A version of a central policy store.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Store { store: &'a str, version: u64 },
}

fn reload_detail(
    old: &Policy,
    new: Option<&Policy>,
    origin: Origin<'_>,
) -> std::collections::BTreeMap<String, String> {
    let mut d = std::collections::BTreeMap::new();
    d.insert("old_version".into(), old.version().to_owned());
    d.insert("old_sha256".into(), old.sha256().to_owned());
    if let Some(new) = new {
        d.insert("new_version".into(), new.version().to_owned());
        d.insert("new_sha256".into(), new.sha256().to_owned());
    }
    match origin {
        Origin::Direct => {}
        Origin::File(p) => {
            d.insert("path".into(), p.display().to_string());
        }
        Origin::Store { store, version } => {
            d.insert("store".into(), store.to_owned());
            d.insert("store_version".into(), version.to_string());
        }
    }
    d
}

#[cfg(feature = "watch")]
#[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
pub use watch::PolicyWatcher;

#[cfg(feature = "watch")]
mod watch {
    //! Reloads a policy file when it changes (feature `watch`).

    use std::fmt;
    use std::path::{Path, PathBuf};
    use std::sync::mpsc::{RecvTimeoutError, channel};
    use std::time::Duration;

    use notify::{RecursiveMode, Watcher};

    use super::ReloadError;
    use crate::guardrail::Guardrail;

    /// Watches a policy file and reloads it on change; dropping it stops the watch.
    ///
    /// Changes are debounced (an editor's save is often several events: truncate, write,
    /// rename); the file is reloaded once things are quiet for the debounce period. A bad
    /// file is refused exactly as [`Guardrail::reload_from_path`] refuses it: the old
    /// policy keeps serving, the refusal is recorded, alerted and counted.
    pub struct PolicyWatcher {
        // Dropping the watcher closes the event channel, which ends the reload thread.
        _watcher: notify::RecommendedWatcher,
        path: PathBuf,
    }

    impl fmt::Debug for PolicyWatcher {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("PolicyWatcher")
                .field("path", &self.path)
                .finish_non_exhaustive()
        }
    }

    impl PolicyWatcher {
        /// The watched file.
        pub fn path(&self) -> &Path {
            &self.path
        }
    }

    impl Guardrail {
        /// Reloads the policy at `path` whenever the file changes, `debounce` after the last
        /// change event (200 ms is a good default). The directory is watched, so editors that
        /// save by rename are seen too.
        pub fn watch_policy(
            &self,
            path: impl AsRef<Path>,
            debounce: Duration,
        ) -> Result<PolicyWatcher, ReloadError> {
            let path = path.as_ref().to_path_buf();
            let watch_error = |e: &dyn fmt::Display| {
                ReloadError::Policy(crate::policy::PolicyError {
                    path: Some(path.clone()),
                    line: None,
                    column: None,
                    field: None,
                    message: format!("cannot watch the policy file: {e}"),
                })
            };
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let file_name = path.file_name().map(|n| n.to_os_string());
            let (tx, rx) = channel::<()>();
            let mut watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    let Ok(event) = event else { return };
                    let ours = event
                        .paths
                        .iter()
                        .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name);
                    if ours && !event.kind.is_access() {
                        let _ = tx.send(());
                    }
                })
                .map_err(|e| watch_error(&e))?;
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|e| watch_error(&e))?;
            let guardrail = self.clone();
            let reload_path = path.clone();
            std::thread::Builder::new()
                .name("guardrail-policy-watch".into())
                .spawn(move || {
                    // Wait for a change, then for quiet, then reload once.
                    while rx.recv().is_ok() {
                        loop {
                            match rx.recv_timeout(debounce) {
                                Ok(()) => continue,
                                Err(RecvTimeoutError::Timeout) => break,
                                Err(RecvTimeoutError::Disconnected) => return,
                            }
                        }
                        // Refusals are recorded, alerted and counted inside.
                        let _result = guardrail.reload_from_path(&reload_path);
                        #[cfg(feature = "tracing")]
                        match &_result {
                            Ok(r) if r.changed => tracing::info!(
                                old = %r.old_version, new = %r.new_version, "policy reloaded"
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "policy reload refused"),
                        }
                    }
                })
                .map_err(|e| watch_error(&e))?;
            Ok(PolicyWatcher {
                _watcher: watcher,
                path,
            })
        }
    }
}
