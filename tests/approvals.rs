//! Just-in-time approvals against the in-memory store: separation of duties, approver roles,
//! single use, binding to the exact call, expiry, rejection, races, and the audit of every
//! step. The same suite runs against PostgreSQL in `approvals_pg.rs`.

#[macro_use]
mod approval_suite;

use std::sync::Mutex;

use approval_suite::Backend;
use guardrail_core::MemoryApprovalStore;

/// In one process a "replica" of the memory store is a clone sharing its map.
#[derive(Default)]
struct Memory {
    current: Mutex<MemoryApprovalStore>,
}

impl Backend for Memory {
    type Store = MemoryApprovalStore;

    fn store(&self) -> MemoryApprovalStore {
        let fresh = MemoryApprovalStore::new();
        *self.current.lock().unwrap() = fresh.clone();
        fresh
    }

    fn replica(&self) -> MemoryApprovalStore {
        self.current.lock().unwrap().clone()
    }
}

approval_suite!(|_case: &str| Some(Memory::default()));
