//! `guardrail policy publish|list|show|rollback|replicas --db URL ..`: the central policy
//! store every replica of a service follows (`guardrail_core::policy_store`).
//!
//! `publish` validates the file exactly as a replica will (parse and compile); a policy that
//! does not validate is refused with its file, line and column, and nothing is stored (exit
//! 2). `rollback` publishes an older version's text again as a new version, recorded as a
//! rollback. `show` writes the text to stdout byte for byte (so it can be redirected to a
//! file) and its record to stderr, after checking the text against its stored SHA-256: a
//! mismatch is tampering (exit 1). Everything read from the database is escaped before it
//! reaches the terminal.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use guardrail_core::Policy;
use guardrail_core::policy_store::{PolicyStore, PolicyStoreError, PolicyStoreOptions};

use crate::escape;
use crate::read::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate a policy file and store it as the next version; replicas apply it.
    Publish(PublishArgs),
    /// List the stored versions, oldest first.
    List(StoreArgs),
    /// Print a version's text (default: the newest) to stdout, its record to stderr.
    Show(ShowArgs),
    /// Publish an older version's text again as a new version, recorded as a rollback.
    Rollback(RollbackArgs),
    /// Show each replica's heartbeat: the version it enforces, or the one it refused.
    Replicas(StoreArgs),
}

/// Where the store is.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The PostgreSQL URL of the policy store, or `env:VAR` naming a variable holding it.
    #[arg(long, value_name = "URL")]
    db: String,
    /// The prefix of the store's tables and notification channel.
    #[arg(long, value_name = "PREFIX", default_value = "guardrail_policy")]
    prefix: String,
}

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The policy file (TOML).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Who publishes (default: the `USER` environment variable).
    #[arg(long = "as", value_name = "PERSON")]
    person: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The version (default: the newest).
    #[arg(value_name = "VERSION")]
    version: Option<u64>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// The version whose text becomes the newest again.
    #[arg(value_name = "VERSION")]
    version: u64,
    #[command(flatten)]
    store: StoreArgs,
    /// Who rolls back (default: the `USER` environment variable).
    #[arg(long = "as", value_name = "PERSON")]
    person: Option<String>,
}

fn person(given: Option<&String>) -> Result<String, Failure> {
    match given {
        Some(p) => Ok(p.clone()),
        None => std::env::var("USER").map_err(|_| {
            Failure::Usage("name who publishes with `--as PERSON` (`USER` is not set)".into())
        }),
    }
}

fn store_error(e: PolicyStoreError) -> Failure {
    Failure::Usage(e.to_string())
}

/// Runs `f` against the store on a runtime of its own.
fn with_store<T>(
    args: &StoreArgs,
    f: impl AsyncFnOnce(&PolicyStore) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let url = crate::approvals::url(&args.db)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        // Errors name the store's prefix, never the URL (it may carry a password).
        let store = PolicyStore::connect(&url, PolicyStoreOptions::new().prefix(&args.prefix))
            .await
            .map_err(store_error)?;
        let result = f(&store).await;
        store.close().await;
        result
    })
}

fn publish(a: &PublishArgs) -> Result<(), Failure> {
    let who = person(a.person.as_ref())?;
    let text = std::fs::read_to_string(&a.file).map_err(|e| {
        Failure::Usage(format!(
            "cannot read the policy `{}`: {e}",
            a.file.display()
        ))
    })?;
    let stored = with_store(&a.store, async |store| {
        store.ensure_schema().await.map_err(store_error)?;
        store.publish(&text, &who).await.map_err(|e| match e {
            PolicyStoreError::Invalid(mut e) => {
                e.path = Some(a.file.clone());
                store_error(PolicyStoreError::Invalid(e))
            }
            e => store_error(e),
        })
    })?;
    println!(
        "published version {} (policy `{}`, sha256 {}) by {}",
        stored.version,
        escape::text(&stored.policy_version),
        stored.sha256,
        escape::text(&stored.published_by)
    );
    Ok(())
}

fn rollback(a: &RollbackArgs) -> Result<(), Failure> {
    let who = person(a.person.as_ref())?;
    let stored = with_store(&a.store, async |store| {
        store.rollback(a.version, &who).await.map_err(store_error)
    })?;
    println!(
        "published version {} as a rollback to version {} (policy `{}`, sha256 {}) by {}",
        stored.version,
        a.version,
        escape::text(&stored.policy_version),
        stored.sha256,
        escape::text(&stored.published_by)
    );
    Ok(())
}

fn list(a: &StoreArgs) -> Result<(), Failure> {
    let versions = with_store(a, async |store| store.list().await.map_err(store_error))?;
    if versions.is_empty() {
        println!("no versions in policy store `{}`", a.prefix);
        return Ok(());
    }
    println!("version  published at                    by  policy  sha256  note");
    for v in versions {
        let note = v
            .rollback_of
            .map_or_else(|| "-".to_owned(), |o| format!("rollback to {o}"));
        println!(
            "{}  {}  {}  {}  {}  {note}",
            v.version,
            v.published_at,
            escape::text(&v.published_by),
            escape::text(&v.policy_version),
            v.sha256
        );
    }
    Ok(())
}

/// True when `text` may reach the terminal as it is: no unsafe character but line breaks
/// and tabs.
fn printable(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c != '\n' && c != '\t' && escape::is_unsafe(c))
}

fn show(a: &ShowArgs) -> Result<(), Failure> {
    let stored = with_store(&a.store, async |store| match a.version {
        Some(v) => store.get(v).await.map_err(store_error),
        None => store.latest().await.map_err(store_error),
    })?;
    let Some(stored) = stored else {
        return Err(Failure::Usage(match a.version {
            Some(v) => format!("policy store `{}` has no version {v}", a.store.prefix),
            None => format!("policy store `{}` has no versions", a.store.prefix),
        }));
    };
    // Policy::sha256 is the SHA-256 of exactly this text.
    let actual = Policy::from_toml_str(&stored.text).map(|p| p.sha256().to_owned());
    match actual {
        Ok(sha) if sha == stored.sha256 => {}
        Ok(sha) => {
            return Err(Failure::Tampered(format!(
                "the text of version {} has sha256 {sha}, but the store records {}",
                stored.version, stored.sha256
            )));
        }
        Err(e) => {
            return Err(Failure::Tampered(format!(
                "the text of version {} no longer validates ({e}); it was validated when \
                 published",
                stored.version
            )));
        }
    }
    eprintln!(
        "version {} (policy `{}`, sha256 {}) published by {} at {}{}",
        stored.version,
        escape::text(&stored.policy_version),
        stored.sha256,
        escape::text(&stored.published_by),
        stored.published_at,
        stored
            .rollback_of
            .map_or_else(String::new, |o| format!(", a rollback to version {o}"))
    );
    if printable(&stored.text) {
        print!("{}", stored.text);
    } else {
        for line in stored.text.split('\n') {
            println!("{}", escape::text(line));
        }
    }
    Ok(())
}

fn replicas(a: &StoreArgs) -> Result<(), Failure> {
    let beats = with_store(a, async |store| {
        store.replicas(None).await.map_err(store_error)
    })?;
    if beats.is_empty() {
        println!("no replica has reported to policy store `{}`", a.prefix);
        return Ok(());
    }
    println!("replica  version  policy  sha256  state  last seen (age)");
    for b in beats {
        let version = b.version.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let state = match (b.rejected_version, &b.detail) {
            (Some(v), Some(why)) => format!("{} {v}: {}", b.state, escape::text(why)),
            (Some(v), None) => format!("{} {v}", b.state),
            _ => b.state.clone(),
        };
        println!(
            "{}  {version}  {}  {}  {state}  {} ({} ms ago)",
            escape::text(&b.replica_id),
            escape::text(&b.policy_version),
            escape::text(&b.sha256),
            b.last_seen,
            b.age.as_millis()
        );
    }
    Ok(())
}

pub(crate) fn run(c: &PolicyCommand) -> Result<(), Failure> {
    match c {
        PolicyCommand::Publish(a) => publish(a),
        PolicyCommand::List(a) => list(a),
        PolicyCommand::Show(a) => show(a),
        PolicyCommand::Rollback(a) => rollback(a),
        PolicyCommand::Replicas(a) => replicas(a),
    }
}
