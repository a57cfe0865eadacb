//! Shared fixtures of the benchmarks.
//!
//! The decision benchmarks use a policy of 250 actions: 50 resources × 5 kinds, one allow rule
//! per action naming 2 of 5 roles, the provider and admin endpoints, the treatment and
//! operations purposes and a `US-*` jurisdiction condition; exports have a record limit;
//! two deny rules (deletes from the patient portal, exports from Texas) apply across them.

use std::fmt::Write as _;

use guardrail_core::__private::inventory;
use guardrail_core::registry::{ActionDescriptor, ActionRegistration};
use guardrail_core::{
    ActionKind, AuditKey, Endpoint, Guardrail, MemorySink, Policy, Principal, Purpose,
};

/// Resources in the fixture policy.
pub const RESOURCES: usize = 50;
/// Kinds per resource.
pub const KINDS: [ActionKind; 5] = [
    ActionKind::Create,
    ActionKind::Read,
    ActionKind::Update,
    ActionKind::Delete,
    ActionKind::Export,
];
/// The roles of the fixture policy.
pub const ROLES: [&str; 5] = ["provider", "nurse", "billing", "researcher", "admin"];
/// The record limit of export rules.
pub const EXPORT_LIMIT: u64 = 500;

/// The two roles the rule for resource `r` and kind index `k` admits.
fn rule_roles(r: usize, k: usize) -> [&'static str; 2] {
    // Resource 7 reads are the benchmarked allow: the provider must be admitted there.
    let first = match k {
        1 => "provider",
        4 => "researcher",
        _ => ROLES[(r + k) % 5],
    };
    let second = ROLES[(r + k + 1) % 5];
    [first, second]
}

/// The fixture policy's TOML text (250 allow rules, 2 deny rules).
pub fn policy_text() -> String {
    let mut s = String::from("version = \"bench-250\"\n\n");
    s.push_str(
        "[[rule]]\nid = \"no-portal-deletes\"\neffect = \"deny\"\nactions = [\"*\"]\n\
         kinds = [\"delete\"]\nendpoints = [\"patient\"]\n\n",
    );
    s.push_str(
        "[[rule]]\nid = \"no-texas-exports\"\neffect = \"deny\"\nactions = [\"bench::*::export\"]\n\
         jurisdictions = [\"US-TX\"]\n\n",
    );
    for r in 0..RESOURCES {
        for (k, kind) in KINDS.iter().enumerate() {
            let [a, b] = rule_roles(r, k);
            let _ = write!(
                s,
                "[[rule]]\nid = \"r{r:02}-{kind}\"\neffect = \"allow\"\nactions = [\"bench::r{r:02}::{kind}\"]\n\
                 kinds = [\"{kind}\"]\nresources = [\"r{r:02}\"]\nroles = [\"{a}\", \"{b}\"]\n\
                 endpoints = [\"provider\", \"admin\"]\njurisdictions = [\"US-*\"]\n\
                 purposes = [\"treatment\", \"operations\"]\nreveal = [\"name\", \"diagnosis\"]\n"
            );
            if *kind == ActionKind::Export {
                let _ = writeln!(s, "max_count = {EXPORT_LIMIT}");
            }
            s.push('\n');
        }
    }
    s
}

/// The compiled fixture policy.
pub fn policy() -> Policy {
    match Policy::from_toml_str(&policy_text()) {
        Ok(p) => p,
        Err(e) => panic!("the fixture policy does not load: {e}"),
    }
}

/// `bench::r07::read`, registered like a `#[phi_action]` would.
pub static READ: ActionDescriptor = ActionDescriptor::new("bench::r07::read", ActionKind::Read)
    .resource("r07")
    .roles(&["provider", "nurse"])
    .phi(&["name", "diagnosis"])
    .located(module_path!(), file!(), line!())
    .function("read");
inventory::submit! { ActionRegistration(&READ) }

/// `bench::r07::export`, registered like a `#[phi_action]` would.
pub static EXPORT: ActionDescriptor =
    ActionDescriptor::new("bench::r07::export", ActionKind::Export)
        .resource("r07")
        .roles(&["researcher", "provider"])
        .phi(&["name", "diagnosis"])
        .located(module_path!(), file!(), line!())
        .function("export");
inventory::submit! { ActionRegistration(&EXPORT) }

/// The principal of the benchmarked exports: a researcher in California.
pub fn researcher() -> Principal {
    Principal::new("r-lee")
        .role("researcher")
        .jurisdiction("US-CA")
}

/// The principal of the benchmarked calls: a provider in California.
pub fn provider() -> Principal {
    Principal::new("dr-grey")
        .role("provider")
        .jurisdiction("US-CA")
}

/// A guardrail with the fixture policy and a memory sink (returned too, to clear it between
/// samples so the trail does not grow without bound).
pub fn guardrail() -> (Guardrail, MemorySink) {
    let sink = MemorySink::new();
    let key = match AuditKey::from_bytes(b"bench-key-0123456789abcdef") {
        Ok(k) => k,
        Err(e) => panic!("bench key: {e}"),
    };
    match Guardrail::builder()
        .policy(policy())
        .audit(sink.clone())
        .audit_key(key)
        .build()
    {
        Ok(g) => (g, sink),
        Err(e) => panic!("bench guardrail: {e}"),
    }
}

/// The endpoint and purpose of the benchmarked allowed calls.
pub const ENDPOINT: Endpoint = Endpoint::Provider;
/// See [`ENDPOINT`].
pub const PURPOSE: Purpose = Purpose::Treatment;
