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
//! The traits and these functions need no database driver, so a host can implement
//! [`TxAppend`] for its own driver; the `sqlite` and `postgres` features add the
//! implementations for rusqlite and sqlx.

use guardrail_audit::AuditError;
pub use guardrail_audit::sql::{AsyncTxAppend, TxAppend};

use crate::error::GuardError;
use crate::mask::Redact;
use crate::runtime::Call;

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
pub async fn finish_tx_async<T: Redact, E: From<GuardError>, X: AsyncTxAppend + ?Sized>(
    call: Call,
    tx: &mut X,
    result: Result<T, E>,
) -> Result<T, E> {
    if result.is_err() {
        return call.finish(result);
    }
    let record = call.outcome_record(&result);
    let appended: Result<(), AuditError> = tx.append_in_tx(record).await.map(|_| ());
    call.complete(result, appended)
}
