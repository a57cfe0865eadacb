//! The approver's side of just-in-time approval, as methods of the guardrail (the workflow
//! itself is `approval::flow`).

use crate::approval::{ApprovalError, ApprovalId, ApprovalRequest};
use crate::guardrail::Guardrail;
use crate::model::Principal;

impl Guardrail {
    /// Grants approval request `id`, so that its requester's retried call (with
    /// `ctx.approval(id)`) runs once.
    ///
    /// `approver` must hold one of the policy's `[approval] approver_roles` and must not be
    /// the requester (separation of duties); the request must be pending and unexpired. The
    /// step is recorded in the audit trail before it takes effect; a refused attempt is
    /// recorded too. The grant is bound to the exact action, principal, subject and count
    /// of the request and expires with it.
    ///
    /// ```
    /// # use guardrail_core::prelude::*;
    /// # fn demo(guardrail: &Guardrail, request: ApprovalId) -> Result<(), guardrail_core::ApprovalError> {
    /// let officer = Principal::new("po-kim").role("privacy_officer");
    /// let granted = guardrail.approve(&officer, &request)?;
    /// assert_eq!(granted.state.as_str(), "granted");
    /// # Ok(()) }
    /// ```
    pub fn approve(
        &self,
        approver: &Principal,
        id: &ApprovalId,
    ) -> Result<ApprovalRequest, ApprovalError> {
        crate::approval::flow::settle(self, approver, id, true)
    }

    /// Rejects approval request `id` for good: it can never be granted later. Same checks
    /// and audit as [`Guardrail::approve`].
    pub fn reject(
        &self,
        approver: &Principal,
        id: &ApprovalId,
    ) -> Result<ApprovalRequest, ApprovalError> {
        crate::approval::flow::settle(self, approver, id, false)
    }

    /// Records that `approver`'s attempt to grant (`grant`) or reject request `id` was
    /// refused by the channel it came through, before [`Guardrail::approve`] or
    /// [`Guardrail::reject`] saw it: a form whose CSRF check failed, say. The step the
    /// attempt named gets a `refused` event with `reason`, as the flow's own refusals do,
    /// so the trail shows every refused attempt (a forged request in an approver's browser
    /// included), not only those the flow refuses. Nothing else changes.
    ///
    /// `reason` is recorded as given: a fixed text, never anything the request carried.
    ///
    /// ```
    /// # use guardrail_core::prelude::*;
    /// # fn demo(guardrail: &Guardrail, request: ApprovalId) -> Result<(), guardrail_core::ApprovalError> {
    /// let officer = Principal::new("po-kim").role("privacy_officer");
    /// guardrail.record_refused_attempt(&officer, &request, true, "the form check failed")?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ApprovalError::Store`] if the trail could not record the event.
    pub fn record_refused_attempt(
        &self,
        approver: &Principal,
        id: &ApprovalId,
        grant: bool,
        reason: &'static str,
    ) -> Result<(), ApprovalError> {
        crate::approval::flow::record_refused_attempt(self, approver, id, grant, reason)
    }

    /// The pending requests `approver` may decide now, oldest first, at most `limit`: what
    /// an approver's queue shows (each request's binding holds labels and keyed tokens only).
    ///
    /// `approver` must hold one of the policy's `[approval] approver_roles`
    /// ([`ApprovalError::NotApprover`] otherwise), the same role check as
    /// [`Guardrail::approve`]. Expired requests are left out. A request of `approver`'s own is
    /// listed too: deciding it is refused by [`Guardrail::approve`] (separation of duties),
    /// which a page can say next to it. The store must support listing
    /// ([`ApprovalStore::list_pending`](crate::approval::ApprovalStore::list_pending)).
    ///
    /// ```
    /// # use guardrail_core::prelude::*;
    /// # fn demo(guardrail: &Guardrail) -> Result<(), guardrail_core::ApprovalError> {
    /// let officer = Principal::new("po-kim").role("privacy_officer");
    /// for request in guardrail.pending_approvals(&officer, 100)? {
    ///     println!("{} {} by {}", request.id, request.action, request.binding.principal);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn pending_approvals(
        &self,
        approver: &Principal,
        limit: usize,
    ) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let policy = self.policy();
        crate::approval::flow::check_approver_role(policy.approver_roles(), approver)?;
        self.approval_store()
            .list_pending(self.clock().now(), limit)
    }

    /// Reads approval request `id` from the store.
    pub fn approval_request(
        &self,
        id: &ApprovalId,
    ) -> Result<Option<ApprovalRequest>, ApprovalError> {
        self.approval_store().get(id)
    }
}
