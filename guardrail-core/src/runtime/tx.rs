//! What `#[phi_action(tx = <param>)]` expands to: the outcome event of an allowed call goes
//! through the caller's database transaction, so the record of a change commits or rolls
//! back with the change.
//!
//! The decision event is written to the guardrail's sinks before the body runs, as for every
//! guarded call. After the body:
//!
//! * `Ok`: the outcome event is appended through the transaction ([`TxAppend`] /
//!   [`AsyncTxAppend`]). It becomes visible only when the caller commits; a rollback removes
//!   it together with the change, leaving no gap in the table's chain. If the append fails,
//!   the `Ok` becomes `Err(AuditUnavailable)` and the caller (who now has an error in hand)
//!   rolls the change back: no change without its record.
//! * `Err`: the caller is about to roll back, which would erase an outcome written through the
//!   transaction, so the `error` outcome goes to the guardrail's sinks instead (durable
//!   whatever the caller does with the transaction).
//! * panic or cancellation: [`Call`]'s `Drop` records it in the guardrail's sinks, as without
//!   `tx`.
//!
//! * Session settings (async drivers): after the decision allowed the call and before the
//!   body runs, [`enter_tx_async`] publishes the call to the transaction's session
//!   ([`AsyncTxAppend::swap_call_settings`]; on PostgreSQL `guardrail.action`,
//!   `guardrail.principal` and `guardrail.categories`, transaction-local), and
//!   [`finish_tx_async`] puts back what was there before (so a nested guarded call on the
//!   same transaction hands its caller's settings back). If publishing fails, the body does
//!   not run and the call fails with `AuditUnavailable` (`session_settings`), its `error`
//!   outcome recorded in the guardrail's sinks; if restoring fails after an `Ok` body, the
//!   `Ok` becomes that error (the transaction is aborted then: PostgreSQL refuses every
//!   further statement until the caller rolls back).
//!
//! * Readiness: before the body (and before the session settings), [`enter_tx`] /
//!   [`enter_tx_async`] ask the transaction whether an append can succeed at all
//!   ([`TxAppend::check_ready`]): a forgotten `ensure_schema` (no audit tables) or a
//!   connection outside a transaction fails the call with `AuditUnavailable` (detail
//!   `outcome`: it could not be recorded; the message names `ensure_schema`), its `error` outcome recorded in the
//!   guardrail's sinks, instead of running the body and failing only after it.
//!
//! The traits and these functions need no database driver, so a host can implement
//! [`TxAppend`] for its own driver; the `sqlite` and `postgres` features add the
//! implementations for rusqlite and sqlx.

use std::sync::Arc;

use guardrail_audit::AuditError;
use guardrail_audit::sql::CallSettings;
pub use guardrail_audit::sql::{AsyncTxAppend, TxAppend};

use crate::error::GuardError;
use crate::mask::Redact;
use crate::runtime::Call;
use crate::runtime::call::TX_SINK;

/// The session settings a transaction held before a guarded call published its own
/// ([`enter_tx_async`]); [`finish_tx_async`] restores them.
#[derive(Debug)]
pub struct Entered(CallSettings);

/// What an allowed call publishes to its transaction's session: the action, the principal
/// and the action's declared `phi = [..]` categories, comma-separated.
fn settings_of(call: &Call) -> CallSettings {
    CallSettings {
        action: call.action.name.to_owned(),
        principal: call.identity.principal.to_string(),
        categories: call.action.phi.join(","),
    }
}

fn settings_failed(call: &Call, e: AuditError) -> GuardError {
    GuardError::AuditUnavailable {
        action: call.action.name,
        sink: TX_SINK.into(),
        detail: "session_settings".into(),
        source: Arc::new(e),
    }
}

fn not_ready(call: &Call, e: AuditError) -> GuardError {
    GuardError::AuditUnavailable {
        action: call.action.name,
        sink: TX_SINK.into(),
        detail: "outcome".into(),
        source: Arc::new(e),
    }
}

/// Checks before the body runs that `tx` can record the outcome (synchronous drivers): see
/// [`TxAppend::check_ready`]. On an error the body must not run: the generated code ends the
/// call with it.
pub fn enter_tx<X: TxAppend + ?Sized>(call: &Call, tx: &mut X) -> Result<(), GuardError> {
    tx.check_ready().map_err(|e| not_ready(call, e))
}

/// Checks that `tx` can record the outcome ([`AsyncTxAppend::check_ready`]), then publishes
/// the allowed call to `tx`'s session, before the body runs (asynchronous drivers). On an
/// error the body must not run: the generated code ends the call with it.
pub async fn enter_tx_async<X: AsyncTxAppend + ?Sized>(
    call: &Call,
    tx: &mut X,
) -> Result<Entered, GuardError> {
    tx.check_ready().await.map_err(|e| not_ready(call, e))?;
    match tx.swap_call_settings(settings_of(call)).await {
        Ok(previous) => Ok(Entered(previous)),
        Err(e) => Err(settings_failed(call, e)),
    }
}

/// Ends an allowed call whose outcome is recorded through the caller's transaction `tx`
/// (synchronous drivers). See the module docs for where each outcome goes.
pub fn finish_tx<T: Redact, E: From<GuardError>, X: TxAppend + ?Sized>(
    call: Call,
    tx: &mut X,
    result: Result<T, E>,
) -> Result<T, E> {
    if result.is_err() {
        return call.finish(result);
    }
    let record = call.outcome_record(&result);
    let appended: Result<(), AuditError> = tx.append_in_tx(record).map(|_| ());
    call.complete(result, appended)
}

/// Ends an allowed call whose outcome is recorded through the caller's transaction `tx`
/// (asynchronous drivers). Dropping the future before it completes records `cancelled` in
/// the guardrail's sinks.
///
/// First restores the session settings `entered` holds (see the module docs).
pub async fn finish_tx_async<T: Redact, E: From<GuardError>, X: AsyncTxAppend + ?Sized>(
    call: Call,
    tx: &mut X,
    entered: Entered,
    result: Result<T, E>,
) -> Result<T, E> {
    let restored = tx.swap_call_settings(entered.0).await;
    if result.is_err() {
        // The body's error is what the caller needs; a failed restore has aborted the
        // transaction anyway.
        return call.finish(result);
    }
    if let Err(e) = restored {
        let failed = settings_failed(&call, e);
        return call.finish(Err(E::from(failed)));
    }
    let record = call.outcome_record(&result);
    let appended: Result<(), AuditError> = tx.append_in_tx(record).await.map(|_| ());
    call.complete(result, appended)
}
