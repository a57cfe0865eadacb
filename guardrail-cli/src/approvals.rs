//! `guardrail approvals list|show|approve|reject --db URL ..`: a second person sees the
//! pending just-in-time approval requests held in the PostgreSQL approval store and decides
//! one, from another process than the service that opened it (the channel an AI agent
//! cannot reach).
//!
//! Deciding goes through [`Guardrail::approve`] / [`Guardrail::reject`] with the service's
//! policy (its `approver_roles`), so the same checks apply as in-process: the approver needs
//! an approver role, cannot be the requester, and the request must be pending and unexpired.
//! The step is recorded (`approval_granted` / `approval_rejected`) in the approver's own
//! file trail before the store changes state.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use guardrail_core::approval::{ApprovalId, ApprovalRequest, ApprovalState};
use guardrail_core::audit::{FileSink, FileSinkOptions, Timestamp};
use guardrail_core::{Guardrail, PgApprovalStore, PgApprovalStoreOptions, Policy, Principal};

use crate::escape::text;
use crate::read::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// List the pending requests that can still be decided, oldest first, with what a grant
    /// of each would be bound to.
    List(ListArgs),
    /// Show what request ID is bound to and its state.
    Show(ShowArgs),
    /// Grant request ID as another person than its requester.
    Approve(DecideArgs),
    /// Reject request ID for good.
    Reject(DecideArgs),
}

/// Where the approval requests are.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The PostgreSQL URL of the approval store, or `env:VAR` naming a variable holding it.
    #[arg(long, value_name = "URL")]
    db: String,
    /// The approvals table.
    #[arg(long, value_name = "TABLE", default_value = "guardrail_approvals")]
    table: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// At most this many requests (the oldest).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The request id (`apr-…`).
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DecideArgs {
    /// The request id (`apr-…`).
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    store: StoreArgs,
    /// The approver's principal id.
    #[arg(long = "as", value_name = "PERSON")]
    person: String,
    /// A role of the approver (repeat for several).
    #[arg(long = "role", value_name = "ROLE", required = true)]
    roles: Vec<String>,
    /// The service's policy file (its `[approval]` section names the approver roles).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The approver's audit trail directory (created if missing).
    #[arg(long, value_name = "DIR")]
    trail: PathBuf,
    /// The service's audit key as hex: `env:VAR`, `file:PATH` (a file holding the hex
    /// digits), or the digits themselves (visible to other users).
    #[arg(long, value_name = "HEX", conflicts_with = "key_file")]
    key_hex: Option<String>,
    /// The service's audit key as raw bytes: a file holding exactly the key bytes.
    #[arg(long, value_name = "PATH")]
    key_file: Option<String>,
}

pub(crate) fn url(spec: &str) -> Result<String, Failure> {
    match spec.strip_prefix("env:") {
        Some(var) => std::env::var(var).map_err(|_| {
            Failure::Usage(format!("`--db env:{var}`: the variable `{var}` is not set"))
        }),
        None => Ok(spec.to_owned()),
    }
}

fn connect(s: &StoreArgs) -> Result<PgApprovalStore, Failure> {
    let url = url(&s.db)?;
    // The URL may carry a password: errors name the table, never the URL.
    PgApprovalStore::connect(&url, PgApprovalStoreOptions::new().table(&s.table))
        .map_err(|e| Failure::Usage(format!("cannot open the approval store: {e}")))
}

/// What request `r` is and what a grant of it is bound to, every stored string escaped.
fn describe(r: &ApprovalRequest) -> String {
    let state = match &r.state {
        ApprovalState::Pending => "pending".to_owned(),
        ApprovalState::Granted { approver, .. } => format!("granted by {}", text(approver)),
        ApprovalState::Rejected { approver, .. } => format!("rejected by {}", text(approver)),
        other => other.as_str().to_owned(),
    };
    let b = &r.binding;
    let s = &b.scope;
    let mut out = format!(
        "request {}: {state}\n  action: {}\n  requested by: {}\n",
        text(r.id.as_str()),
        text(&r.action),
        text(&b.principal)
    );
    let opt = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), |v| text(v).into_owned());
    out.push_str(&format!("  via agent: {}\n", opt(s.agent.as_deref())));
    out.push_str(&format!("  session: {}\n", opt(s.session.as_deref())));
    out.push_str(&format!("  purpose: {}\n", opt(s.purpose.as_deref())));
    out.push_str(&format!("  endpoint: {}\n", opt(s.endpoint.as_deref())));
    out.push_str(&format!("  rule: {}\n", opt(s.rule.as_deref())));
    out.push_str(&format!(
        "  reveals: {}\n",
        opt(Some(&s.reveal).filter(|r| !r.is_empty()).map(|r| &**r))
    ));
    out.push_str(&format!(
        "  patient (token): {}\n",
        opt(b.subject.as_deref())
    ));
    out.push_str(&format!(
        "  records: {}\n",
        b.count.map_or_else(|| "-".to_owned(), |c| c.to_string())
    ));
    out.push_str(&format!(
        "  recorded arguments: {}\n",
        opt(s.arguments.as_deref())
    ));
    out.push_str(&format!("  policy sha256: {}\n", text(&s.policy_hash)));
    out.push_str(&format!("  requested at: {}\n", r.requested_at));
    out.push_str(&format!("  expires at: {}\n", r.expires_at));
    out
}

fn list(a: &ListArgs) -> Result<(), Failure> {
    let store = connect(&a.store)?;
    let g_store: &dyn guardrail_core::ApprovalStore = &store;
    let pending = g_store
        .list_pending(Timestamp::now(), a.limit as usize)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if pending.is_empty() {
        println!("no pending approval request in `{}`", text(&a.store.table));
        return Ok(());
    }
    println!(
        "{} pending approval request(s) in `{}`{}",
        pending.len(),
        text(&a.store.table),
        if pending.len() >= a.limit as usize {
            " (the oldest; raise --limit for more)"
        } else {
            ""
        }
    );
    for r in &pending {
        print!("{}", describe(r));
    }
    Ok(())
}

fn show(a: &ShowArgs) -> Result<(), Failure> {
    let store = connect(&a.store)?;
    let g_store: &dyn guardrail_core::ApprovalStore = &store;
    match g_store
        .get(&ApprovalId::new(&a.id))
        .map_err(|e| Failure::Usage(e.to_string()))?
    {
        Some(r) => {
            print!("{}", describe(&r));
            Ok(())
        }
        None => Err(Failure::Usage(format!("no approval request `{}`", a.id))),
    }
}

fn decide(a: &DecideArgs, grant: bool) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&a.policy).map_err(|e| {
        Failure::Usage(format!(
            "cannot read the policy `{}`: {e}",
            a.policy.display()
        ))
    })?;
    let policy = Policy::from_toml_str(&text)
        .map_err(|e| Failure::Usage(format!("the policy `{}`: {e}", a.policy.display())))?;
    let key = match (&a.key_hex, &a.key_file) {
        (Some(h), None) => crate::keys::audit_key_hex(h),
        (None, Some(f)) => crate::keys::audit_key_file(f),
        _ => Err(
            "give the audit key with `--key-hex` (hex digits: `env:VAR`, `file:PATH` or the \
             digits) or `--key-file PATH` (raw bytes)"
                .to_owned(),
        ),
    }
    .map_err(Failure::Usage)?
    .key;
    std::fs::create_dir_all(&a.trail).map_err(|e| {
        Failure::Usage(format!(
            "cannot create the trail `{}`: {e}",
            a.trail.display()
        ))
    })?;
    let sink = FileSink::open(&a.trail, FileSinkOptions::default()).map_err(|e| {
        Failure::Usage(format!(
            "cannot open the trail `{}`: {e}",
            a.trail.display()
        ))
    })?;
    let sink = Arc::new(sink);
    let g = Guardrail::builder()
        .policy(policy)
        .audit_arc(sink.clone())
        .audit_key(key)
        .approvals(connect(&a.store)?)
        .build()
        .map_err(|e| Failure::Usage(format!("cannot set up the approval: {e}")))?;
    let mut approver = Principal::new(&a.person);
    for r in &a.roles {
        approver = approver.role(r);
    }
    let id = ApprovalId::new(&a.id);
    let result = if grant {
        g.approve(&approver, &id)
    } else {
        g.reject(&approver, &id)
    };
    // The trail's last event is on disk before the command reports anything.
    sink.close()
        .map_err(|e| Failure::Usage(format!("cannot close the trail: {e}")))?;
    let request = result.map_err(|e| {
        Failure::Usage(format!(
            "{} of `{}` refused: {e}",
            if grant { "approval" } else { "rejection" },
            a.id
        ))
    })?;
    print!("{}", describe(&request));
    println!("  recorded in: {}", a.trail.display());
    Ok(())
}

pub(crate) fn run(c: &ApprovalsCommand) -> Result<(), Failure> {
    match c {
        ApprovalsCommand::List(a) => list(a),
        ApprovalsCommand::Show(a) => show(a),
        ApprovalsCommand::Approve(a) => decide(a, true),
        ApprovalsCommand::Reject(a) => decide(a, false),
    }
}
