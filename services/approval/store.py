"""PostgreSQL adapter of the approval service: requests, their personal data, consents, audit,
outbox.

Thin on purpose: SQL in, plain values out. The rules (who may, which transition, what to
publish) live in ``domain``/``access`` and are applied by ``workflow``, which runs them inside
one ``Store.transaction()`` so that a decision, its audit row and its outbox rows commit
together or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

from dagmonitor.covenant import Evaluation, Term
from dagmonitor.db import changed_rows, from_row
from dagmonitor.gates import GateCategory
from services.approval.consent import Consent
from services.approval.domain import (
    AGE_BUCKETS,
    SYSTEM_ACTOR,
    ApprovalRequest,
    ApproverRole,
    AuditEntry,
    Category,
    Decision,
    RequestState,
    Status,
)

_T = TypeVar("_T")

_REQUEST_COLUMNS = """r.request_id, r.category, r.approver_role, r.status, r.mk_code,
    r.district_code, r.created_at, r.expires_at, r.decided_by, r.decided_at, r.reason, r.step"""
_CONSENT_COLUMNS = """consent_id, category, granted_by, granted_at, reference, valid_until,
    revoked_at, revoked_by, revoke_reason"""


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """A request row; ``raw`` is the encoded ApprovalRequest (None once its data is deleted,
    or when not asked for)."""

    request_id: str
    category: Category
    approver_role: ApproverRole
    status: Status
    mk_code: str | None
    district_code: str | None
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    raw: bytes | None = None
    step: int = 0
    """Index into the category's chain: the step whose authority decides now."""

    @property
    def state(self) -> RequestState:
        return RequestState(
            self.request_id,
            self.category,
            self.approver_role,
            self.status,
            self.expires_at,
            self.step,
        )


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A record to publish: contract topic, key, encoded value, and the request (or, with
    ``request_id`` None, the consent) it is for."""

    request_id: str | None
    topic: str
    key: str
    payload: bytes | None
    """None: a tombstone (a withdrawal retracting an approved payload)."""
    consent_id: str | None = None
    covenant_event_id: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An unpublished outbox row as the relay reads it."""

    id: int
    topic: str
    key: str
    payload: bytes | None
    """None: a tombstone."""
    created_at: datetime


def _request(row: asyncpg.Record) -> StoredRequest:
    return from_row(
        StoredRequest,
        row,
        category=Category(row["category"]),
        approver_role=ApproverRole(row["approver_role"]),
        status=Status(row["status"]),
        raw=row.get("request"),
    )


def _consent(row: asyncpg.Record) -> Consent:
    return from_row(Consent, row, category=GateCategory(row["category"]))


# A covenant event's columns under the names of the ``CovenantTerm`` record (Term.from_record).
_TERM_COLUMNS = """kind AS event, covenant_start AS start_date, end_after AS end_date, period_start,
    ended_at, revision, evaluation_id"""


@dataclass(frozen=True, slots=True)
class CovenantEvent:
    """A recorded renewal or early end, as ``dagmonitor covenant status`` lists it."""

    id: int
    kind: str
    end_before: date
    end_after: date
    ended_at: datetime | None
    evaluation_id: str | None
    actor: str
    occurred_at: datetime
    reason: str | None


def _roles(scope: Collection[ApproverRole]) -> list[str]:
    return [role.value for role in scope]


class Transaction:
    """The statements a workflow step runs inside one transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def _one(self, to: Callable[[asyncpg.Record], _T], sql: str, *args: Any) -> _T | None:
        """The row ``sql`` selects made into its object by ``to``; None when there is none."""
        row = await self.conn.fetchrow(sql, *args)
        return None if row is None else to(row)

    async def get_request(
        self,
        request_id: str,
        scope: Collection[ApproverRole],
        *,
        with_subject: bool = False,
        lock: bool = False,
    ) -> StoredRequest | None:
        """The request if its approver role is in ``scope``; ``lock`` takes a row lock so that
        two decisions on it serialise (the second then sees the first's state)."""
        if not scope:
            return None
        subject = ", s.request" if with_subject else ""
        join = " LEFT JOIN request_subjects s USING (request_id)" if with_subject else ""
        return await self._one(
            _request,
            f"SELECT {_REQUEST_COLUMNS}{subject} FROM requests r{join} "
            "WHERE r.request_id = $1 AND r.approver_role = ANY($2::text[])"
            + (" FOR UPDATE OF r" if lock else ""),
            request_id,
            _roles(scope),
        )

    async def lock_any(self, request_id: str) -> StoredRequest | None:
        """The request whatever its approver role, row-locked (for system actions)."""
        return await self._one(
            _request,
            f"SELECT {_REQUEST_COLUMNS} FROM requests r WHERE r.request_id = $1 FOR UPDATE",
            request_id,
        )

    async def due_requests(self, now: datetime, limit: int) -> list[StoredRequest]:
        """Pending requests whose deadline has passed, locked; ones being decided right now
        are skipped (the next sweep sees them if they are still pending)."""
        rows = await self.conn.fetch(
            f"SELECT {_REQUEST_COLUMNS} FROM requests r "
            "WHERE r.status = 'PENDING' AND r.expires_at <= $1 "
            "ORDER BY r.expires_at, r.request_id LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        return [_request(row) for row in rows]

    async def record_decision(self, decision: Decision) -> None:
        """Store the decision (a step: pass the request to the chain's next authority);
        delete the personal data when the outcome says so."""
        if not decision.final:
            assert decision.next_role is not None and decision.next_step is not None
            await self.conn.execute(
                "UPDATE requests SET step = $2, approver_role = $3 WHERE request_id = $1",
                decision.request_id,
                decision.next_step,
                decision.next_role.value,
            )
            return
        await self.conn.execute(
            "UPDATE requests SET status = $2, decided_by = $3, decided_at = $4, reason = $5 "
            "WHERE request_id = $1",
            decision.request_id,
            decision.outcome.value,
            decision.decided_by,
            decision.decided_at,
            decision.reason,
        )
        if decision.deletes_personal_data:
            await self.delete_subject(decision.request_id)

    async def delete_subject(self, request_id: str) -> bool:
        """Delete the request's personal data; True if there was any."""
        status = await self.conn.execute(
            "DELETE FROM request_subjects WHERE request_id = $1", request_id
        )
        return status != "DELETE 0"

    async def delete_request(self, request_id: str) -> None:
        """Delete the request and (by cascade) its personal data."""
        await self.conn.execute("DELETE FROM requests WHERE request_id = $1", request_id)

    async def append_audit(self, entry: AuditEntry) -> None:
        """Append an audit row; an officer's free text goes to ``audit_reasons`` beside it
        (erased with the request's personal data), the system's fixed texts stay in it."""
        officer_text = entry.reason if entry.actor != SYSTEM_ACTOR else None
        audit_id = await self.conn.fetchval(
            "INSERT INTO audit_log (occurred_at, actor, action, request_id, outcome, reason, "
            "consent_id, approver_role, covenant_event_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            entry.occurred_at,
            entry.actor,
            entry.action.value,
            entry.request_id,
            entry.outcome.value if entry.outcome is not None else None,
            entry.reason if officer_text is None else None,
            entry.consent_id,
            entry.approver_role.value if entry.approver_role is not None else None,
            entry.covenant_event_id,
        )
        if officer_text:
            await self.conn.execute(
                "INSERT INTO audit_reasons (audit_id, request_id, reason) VALUES ($1, $2, $3)",
                audit_id,
                entry.request_id,
                officer_text,
            )

    async def erase_reasons(self, request_id: str) -> None:
        """Forget the free text about a request: the officers' reasons (the decision stays)."""
        await self.conn.execute("DELETE FROM audit_reasons WHERE request_id = $1", request_id)
        await self.conn.execute(
            "UPDATE requests SET reason = NULL WHERE request_id = $1 AND reason IS NOT NULL",
            request_id,
        )

    async def add_outbox(self, entries: Sequence[OutboxEntry]) -> None:
        await self.conn.executemany(
            "INSERT INTO outbox (request_id, topic, record_key, payload, tombstone, consent_id, "
            "covenant_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (
                    e.request_id,
                    e.topic,
                    e.key,
                    e.payload,
                    e.payload is None,
                    e.consent_id,
                    e.covenant_event_id,
                )
                for e in entries
            ],
        )

    # -- the covenant's term (dagmonitor/covenant.py) ----------------------------------------

    async def lock_covenant(self, start: date) -> None:
        """Serialise renewals and ends of one covenant until the transaction ends."""
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('dagmonitor-covenant:' || $1))",
            start.isoformat(),
        )

    async def recorded_term(self, start: date) -> Term | None:
        return await self._one(
            Term.from_record,
            f"SELECT {_TERM_COLUMNS} FROM covenant_events WHERE covenant_start = $1 "
            "ORDER BY revision DESC LIMIT 1",
            start,
        )

    async def insert_covenant_event(
        self, term: Term, *, end_before: date, actor: str, now: datetime, reason: str | None
    ) -> int:
        """Record the event that made ``term``; returns its id."""
        return int(
            await self.conn.fetchval(
                "INSERT INTO covenant_events (kind, covenant_start, end_before, end_after, "
                "period_start, ended_at, revision, evaluation_id, actor, occurred_at, reason) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                term.event.value,
                term.start,
                end_before,
                term.end,
                term.current_period_start,
                term.ended_at,
                term.revision,
                term.evaluation_id,
                actor,
                now,
                reason,
            )
        )

    # -- standing consents (services/approval/consent.py) ------------------------------------

    async def step_deciders(self, request_id: str) -> set[str]:
        """Who approved the earlier steps of the request's chain (the audit log's step rows)."""
        rows = await self.conn.fetch(
            "SELECT actor FROM audit_log WHERE request_id = $1 AND action = 'step'", request_id
        )
        return {row["actor"] for row in rows}

    async def lock_category(self, category: GateCategory) -> None:
        """Serialise the grants of one category until the transaction ends (two concurrent
        grants would otherwise both find no unrevoked consent to supersede)."""
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('dagmonitor-consent:' || $1))",
            category.value,
        )

    async def unrevoked_consent(self, category: GateCategory) -> Consent | None:
        """The category's unrevoked consent (at most one), row-locked."""
        return await self._one(
            _consent,
            f"SELECT {_CONSENT_COLUMNS} FROM consents "
            "WHERE category = $1 AND revoked_at IS NULL FOR UPDATE",
            category.value,
        )

    async def lock_consent(self, consent_id: str) -> Consent | None:
        return await self._one(
            _consent,
            f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE consent_id = $1 FOR UPDATE",
            consent_id,
        )

    async def insert_consent(self, consent: Consent) -> None:
        await self.conn.execute(
            f"INSERT INTO consents ({_CONSENT_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            consent.consent_id,
            consent.category.value,
            consent.granted_by,
            consent.granted_at,
            consent.reference,
            consent.valid_until,
            consent.revoked_at,
            consent.revoked_by,
            consent.revoke_reason,
        )

    async def record_revocation(self, consent: Consent) -> None:
        await self.conn.execute(
            "UPDATE consents SET revoked_at = $2, revoked_by = $3, revoke_reason = $4 "
            "WHERE consent_id = $1 AND revoked_at IS NULL",
            consent.consent_id,
            consent.revoked_at,
            consent.revoked_by,
            consent.revoke_reason,
        )


class Store:
    """The approval schema, through a pool whose connections act as the service's role."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield Transaction(conn)

    async def ping(self) -> bool:
        return await self.pool.fetchval("SELECT 1") == 1

    async def insert_request(
        self, request: ApprovalRequest, raw: bytes, deadline: datetime
    ) -> bool:
        """Store a new pending request and its personal data; False (and nothing written) when
        the request id is known already, so a redelivered request is stored once."""
        async with self.transaction() as tx:
            inserted = await tx.conn.fetchval(
                "INSERT INTO requests (request_id, category, approver_role, mk_code, "
                "district_code, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (request_id) DO NOTHING RETURNING true",
                request.request_id,
                request.category.value,
                request.approver_role.value,
                request.mk_code,
                request.district_code,
                request.created_at,
                deadline,
            )
            if not inserted:
                return False
            await tx.conn.execute(
                "INSERT INTO request_subjects (request_id, request) VALUES ($1, $2)",
                request.request_id,
                raw,
            )
            return True

    async def list_requests(
        self, status: Status, scope: Collection[ApproverRole], limit: int
    ) -> list[StoredRequest]:
        """Summaries (no personal data) of requests in ``status`` within ``scope``, oldest
        first."""
        if not scope:
            return []
        rows = await self.pool.fetch(
            f"SELECT {_REQUEST_COLUMNS} FROM requests r "
            "WHERE r.status = $1 AND r.approver_role = ANY($2::text[]) "
            "ORDER BY r.created_at, r.request_id LIMIT $3",
            status.value,
            _roles(scope),
            limit,
        )
        return [_request(row) for row in rows]

    async def recorded_term(self, start: date) -> Term | None:
        """The covenant's term after its recorded events (None: none recorded)."""
        async with self.transaction() as tx:
            return await tx.recorded_term(start)

    async def covenant_events(self, start: date) -> list[CovenantEvent]:
        """The covenant's recorded renewals and early ends, oldest first."""
        rows = await self.pool.fetch(
            "SELECT id, kind, end_before, end_after, ended_at, evaluation_id, actor, "
            "occurred_at, reason FROM covenant_events WHERE covenant_start = $1 ORDER BY revision",
            start,
        )
        return [CovenantEvent(**dict(row)) for row in rows]

    async def record_evaluation(self, evaluation: Evaluation, recipient_role: str) -> bool:
        """Note an evaluation report that was sent; False when known already."""
        status = await self.pool.execute(
            "INSERT INTO covenant_evaluations (evaluation_id, covenant_start, recipient_role, "
            "sent_at) VALUES ($1, $2, $3, $4) ON CONFLICT (evaluation_id) DO NOTHING",
            evaluation.evaluation_id,
            evaluation.covenant_start,
            recipient_role,
            evaluation.sent_at,
        )
        return status != "INSERT 0 0"

    async def evaluations(self, start: date) -> list[Evaluation]:
        """The evaluation reports sent for the covenant starting on ``start``."""
        rows = await self.pool.fetch(
            "SELECT evaluation_id, covenant_start, sent_at FROM covenant_evaluations "
            "WHERE covenant_start = $1 ORDER BY sent_at",
            start,
        )
        return [Evaluation(r["evaluation_id"], r["covenant_start"], r["sent_at"]) for r in rows]

    async def list_consents(self, categories: Collection[GateCategory]) -> list[Consent]:
        """The consents of ``categories``, newest grant first (revoked ones included)."""
        if not categories:
            return []
        rows = await self.pool.fetch(
            f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE category = ANY($1::text[]) "
            "ORDER BY granted_at DESC, consent_id",
            [c.value for c in categories],
        )
        return [_consent(row) for row in rows]

    async def forget_expired(self, cutoff: datetime) -> dict[str, int]:
        """The backstop behind the retention sweep (ADR 0019): requests created before
        ``cutoff`` lose their personal data and the officers' free text, and published outbox
        rows before it go. The audit log keeps its rows. Returns rows changed per table."""
        statements = {
            "request_subjects": (
                "DELETE FROM request_subjects s USING requests r "
                "WHERE r.request_id = s.request_id AND r.created_at < $1",
                cutoff,
            ),
            "audit_reasons": (
                "DELETE FROM audit_reasons x USING audit_log a "
                "WHERE a.id = x.audit_id AND a.occurred_at < $1",
                cutoff,
            ),
            "requests": (
                "UPDATE requests SET reason = NULL WHERE created_at < $1 AND reason IS NOT NULL",
                cutoff,
            ),
            "outbox": ("DELETE FROM outbox WHERE published_at < $1", cutoff),
        }
        return await changed_rows(self.pool, statements)

    async def pending_counts(self, now: datetime) -> dict[tuple[ApproverRole, str], int]:
        """Pending requests per (approver role, age bucket label)."""
        bounds = [bound.total_seconds() for _, bound in AGE_BUCKETS if bound is not None]
        rows = await self.pool.fetch(
            "SELECT approver_role, "
            "width_bucket(extract(epoch FROM $1::timestamptz - created_at)::float8, "
            "$2::float8[]) AS bucket, count(*) AS n "
            "FROM requests WHERE status = 'PENDING' GROUP BY 1, 2",
            now,
            bounds,
        )
        return {
            (ApproverRole(row["approver_role"]), AGE_BUCKETS[row["bucket"]][0]): row["n"]
            for row in rows
        }

    async def fetch_unpublished(self, limit: int) -> list[OutboxRow]:
        """Unpublished outbox rows, in id order."""
        rows = await self.pool.fetch(
            "SELECT id, topic, record_key, payload, created_at FROM outbox "
            "WHERE published_at IS NULL ORDER BY id LIMIT $1",
            limit,
        )
        return [
            OutboxRow(r["id"], r["topic"], r["record_key"], r["payload"], r["created_at"])
            for r in rows
        ]

    async def mark_published(self, ids: Collection[int]) -> int:
        """Mark rows published and clear their payload; returns how many were unpublished."""
        if not ids:
            return 0
        status = await self.pool.execute(
            "UPDATE outbox SET published_at = now(), payload = NULL "
            "WHERE id = ANY($1::bigint[]) AND published_at IS NULL",
            list(ids),
        )
        return int(status.split()[-1])

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """How many rows wait to be published, and when the oldest was written."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE published_at IS NULL"
        )
        return int(row["n"]), row["oldest"]
