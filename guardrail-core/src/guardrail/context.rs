//! The per-request context a guarded call is checked against.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::approval::ApprovalId;
use crate::guardrail::Guardrail;
use crate::model::{AgentId, Endpoint, Principal, Purpose};
use crate::relation::LookupError;

/// Who is calling, from where, why, carried into every guarded call.
///
/// Made by [`Guardrail::context`], refined with the builder methods. Cheap to clone. The
/// generated code of `#[phi_action]` reaches the guardrail through it, so no global state is
/// needed.
///
/// ```
/// # use guardrail_core::prelude::*;
/// # fn demo(guardrail: &Guardrail) {
/// let ctx = guardrail
///     .context(Principal::new("dr-grey").role("provider").jurisdiction("US-CA"))
///     .endpoint(Endpoint::Provider)
///     .purpose(Purpose::Treatment);
/// assert_eq!(ctx.principal().id(), "dr-grey");
/// # }
/// ```
#[derive(Clone)]
pub struct Context {
    guardrail: Guardrail,
    principal: Principal,
    endpoint: Option<Endpoint>,
    purpose: Option<Purpose>,
    request_id: Arc<str>,
    approval: Option<ApprovalId>,
    break_glass: Option<Arc<str>>,
    agent: Option<AgentId>,
    session: Option<Arc<str>>,
    held: Option<crate::runtime::HeldOutcomes>,
    pub(crate) cache: crate::policy::ContextCache,
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> Arc<str> {
    // Unique within the process and across restarts (start time + counter); not a secret.
    static START: std::sync::LazyLock<u64> =
        std::sync::LazyLock::new(|| guardrail_audit::Timestamp::now().0 / 1_000_000);
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    // `req-<start hex>-<counter hex>`, written by hand: `format!` costs more than the rest
    // of building a context.
    let mut buf = [0u8; 4 + 16 + 1 + 16];
    buf[..4].copy_from_slice(b"req-");
    let mut len = 4;
    len += write_hex(&mut buf[len..], *START);
    if let Some(dash) = buf.get_mut(len) {
        *dash = b'-';
        len += 1;
    }
    len += write_hex(&mut buf[len..], n);
    // Only ASCII hex digits and `-` were written.
    Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or("req-?"))
}

/// Writes `v` in lowercase hex without leading zeros into `out`; returns the length.
fn write_hex(out: &mut [u8], v: u64) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - v.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in out.iter_mut().take(digits).enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[((v >> shift) & 0xf) as usize];
    }
    digits.min(out.len())
}

impl Context {
    pub(crate) fn new(guardrail: Guardrail, principal: Principal) -> Context {
        Context {
            principal,
            endpoint: None,
            purpose: None,
            request_id: new_request_id(),
            approval: None,
            break_glass: None,
            agent: None,
            session: None,
            held: None,
            cache: crate::policy::ContextCache::with_lookups(guardrail.inner.lookups.fresh()),
            guardrail,
        }
    }

    /// Loads what the guardrail's relationship and consent providers know about `subject`
    /// for this context's principal, so that the guarded calls of this request decide on
    /// it without asking again. Async hosts (`async_relationships`, `async_consents`) must
    /// call it before a guarded call whose rules need those answers; otherwise the call
    /// denies (`not_preloaded`). A provider's error is remembered (the calls deny) and
    /// returned.
    ///
    /// ```
    /// # use guardrail_core::prelude::*;
    /// # async fn handler(ctx: &Context) -> Result<(), guardrail_core::relation::LookupError> {
    /// ctx.preload("p-100").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn preload(&self, subject: impl fmt::Display) -> Result<(), LookupError> {
        let subject = subject.to_string();
        self.cache.lookups.preload(&self.principal, &subject).await
    }

    /// Sets the endpoint the call came through.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Context {
        self.endpoint = Some(endpoint);
        self
    }

    /// Sets the purpose of use.
    pub fn purpose(mut self, purpose: Purpose) -> Context {
        self.purpose = Some(purpose);
        self
    }

    /// Presents an approval grant for a retried call.
    pub fn approval(mut self, id: ApprovalId) -> Context {
        self.approval = Some(id);
        self
    }

    /// Declares an emergency: the purpose of use is emergency treatment from now on
    /// (whatever `.purpose(..)` says, before or after) and `reason` is recorded. The policy
    /// decides whether break-glass may open the call.
    pub fn break_glass(mut self, reason: impl AsRef<str>) -> Context {
        self.break_glass = Some(Arc::from(reason.as_ref()));
        self
    }

    /// Replaces the generated request id (e.g. with the id of the incoming HTTP request).
    pub fn request_id(mut self, id: impl AsRef<str>) -> Context {
        self.request_id = Arc::from(id.as_ref());
        self
    }

    /// The same context under a new request id: how a long-lived session (an MCP session)
    /// starts each of its calls without rebuilding who, where, why and through which agent.
    pub fn next_request(&self) -> Context {
        let mut next = self.clone();
        next.request_id = new_request_id();
        next
    }

    /// Names the software agent (an AI assistant's MCP client) the principal acts through.
    ///
    /// Set it from server configuration only, never from request arguments: rules with
    /// `agents = [..]` or `direct_only = true` decide on it, and every event records it as
    /// `via` next to the principal.
    pub fn agent(mut self, agent: AgentId) -> Context {
        self.agent = Some(agent);
        self
    }

    /// Names the session (e.g. an MCP session) the call belongs to; every event records it.
    pub fn session(mut self, id: impl AsRef<str>) -> Context {
        self.session = Some(Arc::from(id.as_ref()));
        self
    }

    /// Holds the `ok` outcome events of calls made under this context in `held` until
    /// [`HeldOutcomes::release`](crate::HeldOutcomes::release) appends them with a digest of
    /// what was delivered (how an MCP server records the JSON a model received).
    pub fn hold_outcomes(mut self, held: &crate::runtime::HeldOutcomes) -> Context {
        self.held = Some(held.clone());
        self
    }

    pub(crate) fn held_outcomes(&self) -> Option<&crate::runtime::HeldOutcomes> {
        self.held.as_ref()
    }

    /// The agent the principal acts through, if any.
    pub fn get_agent(&self) -> Option<&AgentId> {
        self.agent.as_ref()
    }

    /// The session id, if set.
    pub fn get_session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    pub(crate) fn session_arc(&self) -> Option<&Arc<str>> {
        self.session.as_ref()
    }

    /// The guardrail this context belongs to.
    pub fn guardrail(&self) -> &Guardrail {
        &self.guardrail
    }

    /// The acting principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The endpoint, if set.
    pub fn get_endpoint(&self) -> Option<Endpoint> {
        self.endpoint
    }

    /// The purpose of use: emergency treatment once break-glass is declared, otherwise the
    /// one set, if any. The refinements' order never changes it.
    pub fn get_purpose(&self) -> Option<Purpose> {
        match self.break_glass {
            Some(_) => Some(Purpose::EmergencyTreatment),
            None => self.purpose,
        }
    }

    /// The request id shared by every event of this context.
    pub fn get_request_id(&self) -> &str {
        &self.request_id
    }

    pub(crate) fn request_arc(&self) -> &Arc<str> {
        &self.request_id
    }

    /// The approval grant presented, if any.
    pub fn get_approval(&self) -> Option<&ApprovalId> {
        self.approval.as_ref()
    }

    /// The break-glass reason, if an emergency was declared.
    pub fn get_break_glass(&self) -> Option<&str> {
        self.break_glass.as_deref()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("principal", &self.principal)
            .field("endpoint", &self.endpoint)
            .field("purpose", &self.get_purpose())
            .field("request_id", &self.request_id)
            .field("approval", &self.approval)
            .field(
                "break_glass",
                &self.break_glass.as_ref().map(|_| "[declared]"),
            )
            .field("agent", &self.agent)
            .field("session", &self.session)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::write_hex;

    #[test]
    fn request_ids_are_hex_as_format_would_write_them() {
        for v in [0u64, 1, 9, 10, 15, 16, 255, 4096, 0xdead_beef, u64::MAX] {
            let mut buf = [0u8; 16];
            let n = write_hex(&mut buf, v);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), format!("{v:x}"));
        }
    }
}
