//! `tx = <param>`: the body uses the transaction as declared, the outcome is written through
//! it afterwards (sync and async drivers, `mut` bindings, trait objects).
#![deny(warnings)]

use guardrail_core::audit::sql::AppendFuture;
use guardrail_core::audit::{AuditError, Receipt, Record};
use guardrail_core::prelude::*;
use guardrail_core::{AsyncTxAppend, TxAppend};

/// A transaction that keeps its rows in memory.
#[derive(Default)]
pub struct MemTx {
    rows: Vec<String>,
    events: Vec<Record>,
}

impl TxAppend for MemTx {
    fn append_in_tx(&mut self, record: Record) -> Result<Receipt, AuditError> {
        self.events.push(record);
        Ok(Receipt {
            seq: self.events.len() as u64,
        })
    }
}

impl AsyncTxAppend for MemTx {
    fn append_in_tx(&mut self, record: Record) -> AppendFuture<'_> {
        Box::pin(async move { TxAppend::append_in_tx(self, record) })
    }
}

#[phi_action(kind = "update", role = "provider", tx = tx)]
pub fn add_row(ctx: &Context, tx: &mut MemTx, row: String) -> Result<usize, GuardError> {
    tx.rows.push(row);
    Ok(tx.rows.len())
}

#[phi_action(kind = "update", role = "provider", tx = tx)]
pub fn replace_tx(ctx: &Context, mut tx: &mut MemTx, other: &mut MemTx) -> Result<(), GuardError> {
    tx.rows.clear();
    tx = other;
    tx.rows.clear();
    Ok(())
}

#[phi_action(kind = "update", role = "provider", tx = tx)]
pub fn through_dyn(ctx: &Context, tx: &mut dyn TxAppend) -> Result<(), GuardError> {
    let _ = tx;
    Ok(())
}

#[phi_action(kind = "update", role = "provider", tx = tx)]
pub async fn add_row_async(
    ctx: &Context,
    tx: &mut MemTx,
    row: String,
) -> Result<usize, GuardError> {
    tx.rows.push(row);
    Ok(tx.rows.len())
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let _ = add_row;
    let _ = replace_tx;
    let _ = through_dyn;
    let guardrail: Option<&Guardrail> = None;
    if let Some(g) = guardrail {
        let ctx = g.context(Principal::new("dr"));
        let mut tx = MemTx::default();
        let fut = add_row_async(&ctx, &mut tx, String::new());
        assert_send(&fut);
    }
}
