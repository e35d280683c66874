"""The approval workflow: the domain's rules applied to the store, one transaction per step.

- ``receive``: a consumed ``approval.requests`` record (or tombstone) into PostgreSQL;
- ``list_requests`` / ``view`` / ``decide``: what the HTTP API offers an officer, scoped by
  ``access``; a view and a decision each append one audit row in the same transaction;
- ``expire_due``: the periodic expiry of requests past their deadline.

A decision, its audit row and its outbox rows (the records to publish) commit together;
the outbox relay publishes them afterwards (docs/adr/0004-approval-outbox.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from dagmonitor import topics
from dagmonitor.clock import Clock, utc_now
from dagmonitor.codec import APPROVAL_REQUEST, Codec, default_codec
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.streaming import Incoming
from dagmonitor.telemetry import get_logger
from services.approval import domain, metrics
from services.approval.access import Capability, Principal, scope
from services.approval.config import ApprovalSettings
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
    InvalidRequest,
    RequestExpired,
    RequestNotFound,
)
from services.approval.store import OutboxEntry, Store, StoredRequest, Transaction

_log = get_logger(__name__)

ERASURE_REASON = "tombstone on approval.requests"


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

    # -- intake ------------------------------------------------------------------------------

    async def receive(self, incoming: Incoming) -> None:
        """Handle one record of ``approval.requests`` (the RecordConsumer's handler).

        A request is stored once (a redelivery changes nothing); a tombstone deletes the
        request's personal data; a request breaking the contract is dead-lettered.
        """
        if incoming.key is None:
            raise RecordRejected(Reason.INVALID_FIELD, "approval request without a key")
        if incoming.value is None:
            await self.erase(incoming.key)
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

    async def erase(self, request_id: str) -> bool:
        """Delete a request's personal data (a tombstone from retention or its producer).

        A pending request is withdrawn altogether (nothing is left to decide on); a decided
        one keeps its ids, state and decision. Returns False when the request is unknown.
        """
        now = self._clock()
        async with self.store.transaction() as tx:
            stored = await tx.lock_any(request_id)
            if stored is None:
                return False
            if stored.status is Status.PENDING:
                await tx.delete_request(request_id)
            else:
                await tx.delete_subject(request_id)
            await tx.append_audit(
                AuditEntry(
                    SYSTEM_ACTOR, AuditAction.ERASURE, request_id, now, reason=ERASURE_REASON
                )
            )
        metrics.REQUESTS_STORED.labels("erased").inc()
        metrics.AUDIT_ROWS.labels(AuditAction.ERASURE.value).inc()
        _log.info("request_erased", request_id=request_id, status=stored.status.value)
        return True

    # -- what officers do ----------------------------------------------------------------------

    async def list_requests(
        self, principal: Principal, status: Status, limit: int
    ) -> list[StoredRequest]:
        """Summaries of the requests in ``status`` that ``principal`` may see."""
        return await self.store.list_requests(status, scope(principal, Capability.LIST), limit)

    async def view(
        self, principal: Principal, request_id: str
    ) -> tuple[StoredRequest, dict[str, Any] | None]:
        """A request with its personal data (None once deleted), for review; audited.

        Raises RequestNotFound when it does not exist or lies outside the caller's scope.
        """
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
        (decided already) or RequestExpired (deadline passed: it is expired now instead).
        """
        if action is Action.EXPIRE:
            raise ValueError("expiry is the system's, not an officer's")
        now = self._clock()
        expired: Decision | None = None
        async with self.store.transaction() as tx:
            stored = await tx.get_request(
                request_id, scope(principal, Capability.DECIDE), with_subject=True, lock=True
            )
            if stored is None:
                raise RequestNotFound("no such request")
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

    async def refresh_metrics(self) -> None:
        """Update the pending-requests and outbox gauges."""
        metrics.set_pending(await self.store.pending_counts(self._clock()))
        backlog, oldest = await self.store.outbox_backlog()
        metrics.OUTBOX_BACKLOG.set(backlog)
        age = (self._clock() - oldest).total_seconds() if oldest is not None else 0
        metrics.OUTBOX_OLDEST_SECONDS.set(max(0.0, age))

    # -- inside the transaction ----------------------------------------------------------------

    async def _commit(self, tx: Transaction, decision: Decision, stored: StoredRequest) -> None:
        """Write the decision, its audit row and its outbox rows (same transaction)."""
        request = None
        if decision.outcome is Status.APPROVED:
            if stored.raw is None:
                raise ApprovalError("an approved request has no stored data to publish")
            record = self._codec.decode(stored.raw, expect=APPROVAL_REQUEST).record
            request = domain.parse_request(record)
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
                "request_decided",
                request_id=decision.request_id,
                outcome=decision.outcome.value,
                approver_role=decision.approver_role.value,
            )
        if decisions:
            self._on_outbox()
