"""The approval workflow: the domain's rules applied to the store, one transaction per step.

- ``receive``: a consumed ``approval.requests`` record (or tombstone) into PostgreSQL;
- ``list_requests`` / ``view`` / ``decide``: what the HTTP API offers an officer, scoped by
  ``access``; a view and a decision each append one audit row in the same transaction;
- ``expire_due``: the periodic expiry of requests past their deadline;
- ``list_consents`` / ``grant_consent`` / ``revoke_consent``: the OM's standing consents
  (``consent``), each grant and revocation audited and published on ``approval.consents``.

A decision, its audit row and its outbox rows (the records to publish) commit together;
the outbox relay publishes them afterwards (docs/adr/0004-approval-outbox.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dagmonitor import covenant, deletion, topics
from dagmonitor.clock import Clock, utc_now
from dagmonitor.codec import APPROVAL_REQUEST, CONSENT, COVENANT_TERM, Codec, default_codec
from dagmonitor.covenant import CovenantRuleBroken, Evaluation, Term
from dagmonitor.deletion import Deletion
from dagmonitor.gates import CONSENT_CATEGORIES, GateCategory
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.streaming import Incoming
from dagmonitor.telemetry import COVENANT_IN_TERM, get_logger
from services.approval import consent, domain, metrics
from services.approval.access import (
    Capability,
    ConsentCapability,
    CovenantCapability,
    Principal,
    consent_scope,
    may,
    scope,
)
from services.approval.config import ApprovalSettings
from services.approval.consent import Consent
from services.approval.domain import (
    SYSTEM_ACTOR,
    Action,
    AuditAction,
    AuditEntry,
    Decision,
    Status,
)
from services.approval.errors import (
    ApprovalError,
    ConsentNotFound,
    CovenantRefused,
    Forbidden,
    InvalidRequest,
    OutsideTerm,
    RequestExpired,
    RequestNotFound,
    SameOfficer,
)
from services.approval.store import CovenantEvent, OutboxEntry, Store, StoredRequest, Transaction

_log = get_logger(__name__)

ERASURE_REASONS = {
    Deletion.RETENTION: "tombstone on approval.requests (retention)",
    Deletion.WITHDRAWN: "tombstone on approval.requests (withdrawn by the police)",
}
"""The audit row's reason of an erasure, by why the tombstone was written."""
RETRACTED = "; approved payload retracted"
PROVISIONS_TOPIC = "distribution.provisions"
"""Read for the evaluation reports the distributor sent (a renewal rests on one)."""
NOT_IN_TERM = "the covenant is not in force: nothing is put before officers or decided"


class Workflow:
    """The approval service's operations; every one is a single PostgreSQL transaction."""

    def __init__(
        self,
        store: Store,
        settings: ApprovalSettings,
        *,
        codec: Codec | None = None,
        clock: Clock = utc_now,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self._codec = codec or default_codec()
        self._clock = clock
        self._on_outbox = on_outbox
        self.expiry = timedelta(days=settings.approval_expiry_days)
        self.escalation_valid = timedelta(days=settings.approval_escalation_valid_days)
        self._configured = settings.covenant_term
        self._tz = ZoneInfo(settings.report_timezone)

    # -- intake ------------------------------------------------------------------------------

    async def receive(self, incoming: Incoming) -> None:
        """Handle one record of ``approval.requests`` (the RecordConsumer's handler).

        A request is stored once (a redelivery changes nothing); a tombstone deletes the
        request's personal data; a request breaking the contract is dead-lettered.
        """
        if incoming.topic == PROVISIONS_TOPIC:
            await self._note_evaluation(incoming)
            return
        if incoming.key is None:
            raise RecordRejected(Reason.INVALID_FIELD, "approval request without a key")
        if incoming.value is None:
            await self.erase(incoming.key, deletion.reason_of(incoming.headers))
            return
        try:
            request = domain.parse_request(incoming.value)
        except InvalidRequest as exc:
            raise RecordRejected(Reason.INVALID_FIELD, str(exc)) from None
        if request.request_id != incoming.key:
            raise RecordRejected(Reason.INVALID_FIELD, "key differs from request_id")
        raw = incoming.raw or self._codec.encode(APPROVAL_REQUEST, incoming.value)
        stored = await self.store.insert_request(request, raw, request.deadline(self.expiry))
        metrics.REQUESTS_STORED.labels("stored" if stored else "duplicate").inc()
        _log.info(
            "request_received" if stored else "request_redelivered",
            request_id=request.request_id,
            category=request.category.value,
        )

    async def erase(self, request_id: str, reason: Deletion = Deletion.RETENTION) -> bool:
        """Delete a request's personal data (a tombstone from retention or its producer).

        A pending request is withdrawn altogether (nothing is left to decide on); a decided
        one keeps its ids, state and decision. When the police withdrew the request's source
        (``reason`` WITHDRAWN) and it was approved, the approved payload is retracted: a
        tombstone on its approved topic, through the outbox in the same transaction. Returns
        False when the request is unknown.
        """
        now = self._clock()
        retract = None
        async with self.store.transaction() as tx:
            stored = await tx.lock_any(request_id)
            if stored is None:
                return False
            if stored.status is Status.PENDING:
                await tx.delete_request(request_id)
            else:
                await tx.delete_subject(request_id)
            await tx.erase_reasons(request_id)
            if reason is Deletion.WITHDRAWN and stored.status is Status.APPROVED:
                retract = domain.retraction(request_id, stored.category)
            if retract is not None:
                topic, key = retract
                await tx.add_outbox([OutboxEntry(request_id, topic, key, None)])
            await tx.append_audit(
                AuditEntry(
                    SYSTEM_ACTOR,
                    AuditAction.ERASURE,
                    request_id,
                    now,
                    reason=ERASURE_REASONS[reason] + (RETRACTED if retract else ""),
                )
            )
        metrics.REQUESTS_STORED.labels("erased").inc()
        metrics.AUDIT_ROWS.labels(AuditAction.ERASURE.value).inc()
        _log.info(
            "request_erased",
            request_id=request_id,
            status=stored.status.value,
            reason=reason.value,
            retracted=retract is not None,
        )
        if retract is not None:
            self._on_outbox()
        return True

    # -- what officers do ----------------------------------------------------------------------

    async def list_requests(
        self, principal: Principal, status: Status, limit: int
    ) -> list[StoredRequest]:
        """Summaries of the requests in ``status`` that ``principal`` may see; none while the
        covenant is not in force (no request reaches an officer)."""
        if not await self.in_term():
            return []
        return await self.store.list_requests(status, scope(principal, Capability.LIST), limit)

    async def view(
        self, principal: Principal, request_id: str
    ) -> tuple[StoredRequest, dict[str, Any] | None]:
        """A request with its personal data (None once deleted), for review; audited.

        Raises RequestNotFound when it does not exist or lies outside the caller's scope, and
        OutsideTerm while the covenant is not in force.
        """
        await self._require_term()
        now = self._clock()
        async with self.store.transaction() as tx:
            stored = await tx.get_request(
                request_id, scope(principal, Capability.VIEW), with_subject=True
            )
            if stored is None:
                raise RequestNotFound("no such request")
            await tx.append_audit(AuditEntry(principal.sub, AuditAction.VIEW, request_id, now))
        metrics.AUDIT_ROWS.labels(AuditAction.VIEW.value).inc()
        record = None
        if stored.raw is not None:
            record = self._codec.decode(stored.raw, expect=APPROVAL_REQUEST).record
        return stored, record

    async def decide(
        self, principal: Principal, request_id: str, action: Action, reason: str | None
    ) -> Decision:
        """Approve or reject a pending request as ``principal``.

        Raises RequestNotFound (missing or outside scope), ReasonRequired, InvalidTransition
        (decided already), SameOfficer (the officer decided an earlier step of its chain) or
        RequestExpired (deadline passed: it is expired now instead).
        """
        if action is Action.EXPIRE:
            raise ValueError("expiry is the system's, not an officer's")
        await self._require_term()
        now = self._clock()
        expired: Decision | None = None
        async with self.store.transaction() as tx:
            stored = await tx.get_request(
                request_id, scope(principal, Capability.DECIDE), with_subject=True, lock=True
            )
            if stored is None:
                raise RequestNotFound("no such request")
            if stored.step > 0 and principal.sub in await tx.step_deciders(request_id):
                raise SameOfficer("each step of a chain is decided by another officer")
            try:
                decision = domain.decide(
                    stored.state, action, actor=principal.sub, reason=reason, now=now
                )
            except RequestExpired:
                expired = domain.decide(
                    stored.state, Action.EXPIRE, actor=SYSTEM_ACTOR, reason=None, now=now
                )
                decision = expired
            await self._commit(tx, decision, stored)
        self._committed([decision])
        if expired is not None:
            raise RequestExpired("the request passed its deadline and has expired")
        return decision

    # -- what the system does ----------------------------------------------------------------

    async def expire_due(self, batch: int = 500) -> int:
        """Expire every pending request whose deadline has passed; returns how many."""
        total = 0
        while True:
            now = self._clock()
            decisions = []
            async with self.store.transaction() as tx:
                for stored in await tx.due_requests(now, batch):
                    decision = domain.decide(
                        stored.state, Action.EXPIRE, actor=SYSTEM_ACTOR, reason=None, now=now
                    )
                    await self._commit(tx, decision, stored)
                    decisions.append(decision)
            self._committed(decisions)
            total += len(decisions)
            if len(decisions) < batch:
                return total

    async def forget_expired(self) -> dict[str, int]:
        """What this schema holds about requests older than the covenant's maximum goes, by
        this service's clock (``Store.forget_expired``), behind the retention sweep."""
        changed = await self.store.forget_expired(self._clock() - deletion.MAX_RETENTION)
        if changed:
            _log.info("expired_rows_forgotten", **changed)
        return changed

    async def refresh_metrics(self) -> None:
        """Update the pending-requests, outbox, consent and term gauges."""
        await self.in_term()
        metrics.set_pending(await self.store.pending_counts(self._clock()))
        backlog, oldest = await self.store.outbox_backlog()
        metrics.OUTBOX_BACKLOG.set(backlog)
        age = (self._clock() - oldest).total_seconds() if oldest is not None else 0
        metrics.OUTBOX_OLDEST_SECONDS.set(max(0.0, age))
        now = self._clock()
        consents = await self.store.list_consents(CONSENT_CATEGORIES)
        metrics.set_consents_in_force({c.category for c in consents if c.in_force(now)})

    # -- the OM's standing consents ----------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    @property
    def tz(self) -> ZoneInfo:
        """The zone the covenant's days are counted in."""
        return self._tz

    async def list_consents(self, principal: Principal) -> list[Consent]:
        """Every consent (revoked ones too) of the categories ``principal`` may list, newest
        first; raises Forbidden when that is none."""
        categories = consent_scope(principal, ConsentCapability.LIST)
        if not categories:
            raise Forbidden("only the OM may see the standing consents")
        return await self.store.list_consents(categories)

    async def grant_consent(
        self,
        principal: Principal,
        category: GateCategory,
        reference: str,
        valid_until: datetime | None,
    ) -> Consent:
        """Grant the standing consent of ``category`` as ``principal``; it supersedes the
        category's unrevoked consent, if any. Audited and published in the same transaction.

        Raises Forbidden (not the OM) or InvalidConsent (reference, valid_until).
        """
        if category not in consent_scope(principal, ConsentCapability.GRANT):
            raise Forbidden("only the OM may grant a standing consent")
        await self._require_term()
        now = self._clock()
        granted = consent.grant(
            consent_id=f"consent-{uuid.uuid4().hex}",
            category=category,
            reference=reference,
            valid_until=valid_until,
            actor=principal.sub,
            now=now,
            limit=(await self.term()).ends_at(self._tz),  # never beyond the covenant's end
        )
        audits = []
        async with self.store.transaction() as tx:
            await tx.lock_category(category)
            previous = await tx.unrevoked_consent(category)
            if previous is not None:
                reason = consent.SUPERSEDED.format(consent_id=granted.consent_id)
                superseded = consent.revoke(previous, actor=principal.sub, reason=reason, now=now)
                await tx.record_revocation(superseded)
                audits.append(consent.audit_of_revoke(superseded))
            await tx.insert_consent(granted)
            audits.append(consent.audit_of_grant(granted))
            for audit in audits:
                await tx.append_audit(audit)
            await tx.add_outbox([self._consent_entry(granted)])
        self._consent_committed(granted, audits)
        return granted

    async def revoke_consent(self, principal: Principal, consent_id: str, reason: str) -> Consent:
        """Revoke a consent as ``principal``: from now on its category is held. Audited and
        published in the same transaction.

        Raises ConsentNotFound, Forbidden (not the OM), ConsentRevoked (revoked already) or
        InvalidConsent (no reason).
        """
        if not consent_scope(principal, ConsentCapability.REVOKE):
            raise Forbidden("only the OM may revoke a standing consent")
        now = self._clock()
        async with self.store.transaction() as tx:
            current = await tx.lock_consent(consent_id)
            if current is None:
                raise ConsentNotFound("no such consent")
            if current.category not in consent_scope(principal, ConsentCapability.REVOKE):
                raise Forbidden("only the OM may revoke a standing consent")
            revoked = consent.revoke(current, actor=principal.sub, reason=reason, now=now)
            await tx.record_revocation(revoked)
            audit = consent.audit_of_revoke(revoked)
            await tx.append_audit(audit)
            await tx.add_outbox([self._consent_entry(revoked)])
        self._consent_committed(revoked, [audit])
        return revoked

    def _consent_entry(self, state: Consent) -> OutboxEntry:
        """The outbox row that puts ``state`` on approval.consents, keyed by category."""
        return OutboxEntry(
            None,
            consent.CONSENTS_TOPIC,
            state.category.value,
            self._codec.encode(CONSENT, state.record()),
            consent_id=state.consent_id,
        )

    def _consent_committed(self, state: Consent, audits: Sequence[AuditEntry]) -> None:
        for audit in audits:
            metrics.AUDIT_ROWS.labels(audit.action.value).inc()
            _log.info(
                "consent_"
                + ("revoked" if audit.action is AuditAction.CONSENT_REVOKE else "granted"),
                consent_id=audit.consent_id,
                category=state.category.value,
            )
        self._on_outbox()

    # -- the covenant's term (dagmonitor/covenant.py, ADR 0018) -------------------------------

    async def term(self) -> Term:
        """The term in force: the configured one changed by the recorded events."""
        recorded = await self.store.recorded_term(self._configured.start)
        return covenant.current_term(self._configured, recorded)

    async def in_term(self) -> bool:
        in_term = (await self.term()).in_term(self._clock(), self._tz)
        COVENANT_IN_TERM.labels("approval").set(1 if in_term else 0)
        return in_term

    async def _require_term(self) -> None:
        if not await self.in_term():
            metrics.REFUSED_OUTSIDE_TERM.inc()
            raise OutsideTerm(NOT_IN_TERM)

    async def covenant_status(self) -> tuple[Term, list[CovenantEvent], list[Evaluation]]:
        """The term in force, its recorded events and the evaluation reports sent."""
        start = self._configured.start
        return (
            await self.term(),
            await self.store.covenant_events(start),
            await self.store.evaluations(start),
        )

    async def renew(
        self, principal: Principal, evaluation_id: str | None, reason: str | None
    ) -> Term:
        """Renew the covenant for a year on an evaluation of the ending term (the one named,
        or the latest that counts). Audited and published in one transaction.

        Raises Forbidden (not a role that records covenant events) or CovenantRefused (no
        evaluation of the ending term sent in its last month, ended early, not in force).
        """
        if not may(principal, CovenantCapability.RECORD):
            raise Forbidden("only the OM records a renewal of the covenant")
        now = self._clock()
        evaluations = await self.store.evaluations(self._configured.start)
        async with self.store.transaction() as tx:
            await tx.lock_covenant(self._configured.start)
            before = covenant.current_term(
                self._configured, await tx.recorded_term(self._configured.start)
            )
            if evaluation_id is None:
                chosen = covenant.evaluation_of_ending_term(before, evaluations, self._tz)
            else:
                chosen = next((e for e in evaluations if e.evaluation_id == evaluation_id), None)
            try:
                after = covenant.renew(before, chosen, now, self._tz)
            except CovenantRuleBroken as exc:
                metrics.COVENANT_EVENTS.labels("renewal_refused").inc()
                raise CovenantRefused(str(exc)) from None
            await self._record_event(tx, before, after, principal, now, reason)
        metrics.COVENANT_EVENTS.labels("renewal").inc()
        _log.info("covenant_renewed", end=after.end.isoformat(), evaluation=after.evaluation_id)
        self._on_outbox()
        return after

    async def end_covenant(
        self, principal: Principal, at: datetime | None, reason: str | None
    ) -> Term:
        """End the covenant early at ``at`` (default: now). Audited and published.

        Raises Forbidden or CovenantRefused (not in force then, or ``at`` in the past).
        """
        if not may(principal, CovenantCapability.RECORD):
            raise Forbidden("only the OM records an early end of the covenant")
        now = self._clock()
        async with self.store.transaction() as tx:
            await tx.lock_covenant(self._configured.start)
            before = covenant.current_term(
                self._configured, await tx.recorded_term(self._configured.start)
            )
            try:
                after = covenant.end_early(before, at, now, self._tz)
            except CovenantRuleBroken as exc:
                raise CovenantRefused(str(exc)) from None
            await self._record_event(tx, before, after, principal, now, reason)
        metrics.COVENANT_EVENTS.labels("early_end").inc()
        _log.info("covenant_ended", at=after.ends_at(self._tz).isoformat())
        self._on_outbox()
        return after

    async def _record_event(
        self,
        tx: Transaction,
        before: Term,
        after: Term,
        principal: Principal,
        now: datetime,
        reason: str | None,
    ) -> None:
        reason = domain.normalise_reason(reason)
        event_id = await tx.insert_covenant_event(
            after, end_before=before.end, actor=principal.sub, now=now, reason=reason
        )
        renewal = after.event is covenant.TermEvent.RENEWAL
        await tx.append_audit(
            AuditEntry(
                principal.sub,
                AuditAction.COVENANT_RENEWAL if renewal else AuditAction.COVENANT_END,
                None,
                now,
                reason=(
                    f"renewed to {after.end.isoformat()} on evaluation {after.evaluation_id}"
                    if renewal
                    else f"ended at {after.ends_at(self._tz).isoformat()}"
                )
                + (f": {reason}" if reason else ""),
                covenant_event_id=event_id,
            )
        )
        await tx.add_outbox(
            [
                OutboxEntry(
                    None,
                    covenant.TERM_TOPIC,
                    after.start.isoformat(),
                    self._codec.encode(COVENANT_TERM, after.record(now)),
                    covenant_event_id=event_id,
                )
            ]
        )

    async def _note_evaluation(self, incoming: Incoming) -> None:
        """Keep an evaluation report the distributor sent (a renewal may rest on it); other
        provisions are not this service's business and are skipped."""
        value = incoming.value
        if value is None or value.get("category") != covenant.EVALUATION_CATEGORY:
            return
        refs = [r for r in value.get("record_keys", []) if r.get("topic") == covenant.TERM_TOPIC]
        try:
            start = date.fromisoformat(refs[0]["key"])
        except (IndexError, ValueError):
            raise RecordRejected(
                Reason.INVALID_FIELD, "evaluation provision without its covenant"
            ) from None
        evaluation = Evaluation(value["provision_id"], start, value["sent_at"])
        if await self.store.record_evaluation(evaluation, value["recipient_role"]):
            _log.info("covenant_evaluation_noted", evaluation=evaluation.evaluation_id)

    # -- inside the transaction ----------------------------------------------------------------

    async def _commit(self, tx: Transaction, decision: Decision, stored: StoredRequest) -> None:
        """Write the decision, its audit row and its outbox rows (same transaction)."""
        request = None
        if decision.outcome is Status.APPROVED:
            if stored.raw is None:
                raise ApprovalError("an approved request has no stored data to publish")
            record = self._codec.decode(stored.raw, expect=APPROVAL_REQUEST).record
            request = domain.parse_request(record)
        decision = replace(decision, requested_at=stored.created_at)
        emitted = domain.emissions(decision, request, escalation_valid=self.escalation_valid)
        await tx.record_decision(decision)
        await tx.append_audit(domain.audit_of(decision))
        await tx.add_outbox(self._encode(decision.request_id, emitted))

    def _encode(self, request_id: str, emitted: Sequence[domain.Emission]) -> list[OutboxEntry]:
        return [
            OutboxEntry(
                request_id,
                e.topic,
                e.key,
                self._codec.encode(topics.get(e.topic).schema, e.value),
            )
            for e in emitted
        ]

    def _committed(self, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            metrics.count_decision(decision, domain.audit_of(decision))
            _log.info(
                "request_decided" if decision.final else "request_step_approved",
                request_id=decision.request_id,
                outcome=decision.outcome.value,
                approver_role=decision.approver_role.value,
                next_role=decision.next_role.value if decision.next_role else None,
            )
        if decisions:
            self._on_outbox()
