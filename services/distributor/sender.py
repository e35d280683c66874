"""The outbox sender: stored mails to SMTP, each exactly once per recipient where SMTP allows.

Per message (docs/adr/0005-distributor-outbox.md):

1. take a PostgreSQL session lock on the message (a live sender keeps it until it is done;
   a dead sender's lock goes with its connection);
2. commit state ``sending`` (attempts + 1);
3. SMTP transaction; the server answers 250;
4. commit state ``sent`` and the provision row, in one transaction, right after the 250.

A crash before 3 leaves ``sending`` without a mail; a crash between 3 and 4 leaves
``sending`` with a delivered mail. Nothing on our side tells the two apart, so ``recover``
re-sends every ``sending`` row whose lock is free, with the same Message-ID and bytes, and
counts it (``..._resent_after_crash_total``): no mail is ever lost; in the one window of a
few milliseconds between the 250 and the commit a recipient may get a second copy with
the same Message-ID, which mail systems drop as a duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from dagmonitor.clock import Checkpoint, Clock, no_checkpoint, utc_now
from dagmonitor.gates import GateCategory
from dagmonitor.retry import Backoff, pause
from dagmonitor.telemetry import get_logger, links_to
from services.distributor.config import DistributorSettings
from services.distributor.consents import CONSENT_GATED, ConsentGate, consent_needed
from services.distributor.covenant import CovenantStore, TermGate
from services.distributor.entitlements import LEGAL_BASIS, Category, purpose_of
from services.distributor.errors import DeliveryError
from services.distributor.metrics import (
    MAILS_FAILED,
    MAILS_RESENT_AFTER_CRASH,
    MAILS_RETRYING,
    MAILS_SENT,
    OUTBOX_BACKLOG,
    PROVISIONS,
    PROVISIONS_BLOCKED,
)
from services.distributor.smtp import SmtpSession
from services.distributor.store import Claimed, Store

OUTSIDE_TERM = "outside_term"
"""Outside the covenant's term no mail leaves, withdrawal notices included (nothing is
provided; what was provided before is deleted by retention on its own)."""
CONSENT_MISSING = "consent_missing"
"""A stored mail of a consent-gated category whose consent was revoked or lapsed since: it
waits, unsent, until a consent is in force again (ADR 0014)."""

_log = get_logger(__name__)


def _consent_of(category: Category) -> GateCategory:
    needed = consent_needed(category)
    assert needed is not None, category
    return needed


@dataclass
class Round:
    """What one sending round did."""

    sent: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: int = 0


class OutboxSender:
    """Sends due outbox messages; ``run`` loops until stopped."""

    def __init__(
        self,
        store: Store,
        settings: DistributorSettings,
        *,
        clock: Clock = utc_now,
        checkpoint: Checkpoint = no_checkpoint,
        on_sent: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._consents = ConsentGate(store.pool, clock=clock)
        self.term = TermGate(CovenantStore(store.pool), settings, clock=clock)
        self._on_sent = on_sent
        self._settings = settings
        self._endpoint = settings.smtp_endpoint()
        self._clock = clock
        self._checkpoint = checkpoint
        self._tracer = trace.get_tracer("dagmonitor.distributor")
        self.wake = asyncio.Event()

    async def held_categories(self) -> list[str]:
        """Consent-gated categories without a consent in force now: their stored mails are
        not sent (a revocation also stops what was made before it; withdrawal notices still
        go: they only tell the recipient to delete)."""
        return [
            category.value
            for category in CONSENT_GATED
            if not await self._consents.in_force(_consent_of(category))
        ]

    async def covenant_in_force(self) -> bool:
        """Whether the covenant's term runs now (as configured and as recorded since)."""
        return await self.term.in_term()

    async def recover(self) -> int:
        """Re-queue ``sending`` rows whose sender is gone (its lock is free); returns how many."""
        recovered = 0
        for message_id in await self._store.sending_message_ids():
            async with self._store.pool.acquire() as conn:
                if not await self._store.try_lock(conn, message_id):
                    continue  # a live sender is on it
                try:
                    category = await self._store.recover(conn, message_id)
                finally:
                    await self._store.unlock(conn, message_id)
            if category is not None:
                recovered += 1
                MAILS_RESENT_AFTER_CRASH.labels(category).inc()
                _log.warning("outbox_recovered_sending", message_id=message_id, category=category)
        return recovered

    async def send_due(
        self, *, kind: str | None = None, period: str | None = None, limit: int = 100
    ) -> Round:
        """One round: every due message (of one report, when given) is tried once."""
        result = Round()
        if not await self.covenant_in_force():
            newly = await self._store.block_due(OUTSIDE_TERM)
            for category, count in newly.items():
                PROVISIONS_BLOCKED.labels(OUTSIDE_TERM, category).inc(count)
                _log.error("provision_blocked", reason=OUTSIDE_TERM, category=category, mails=count)
            result.blocked = sum(newly.values())
            return result
        held = await self.held_categories()
        if held:
            newly = await self._store.block_due(CONSENT_MISSING, categories=held)
            for category, count in newly.items():
                PROVISIONS_BLOCKED.labels(CONSENT_MISSING, category).inc(count)
                _log.error(
                    "provision_blocked", reason=CONSENT_MISSING, category=category, mails=count
                )
            result.blocked = sum(newly.values())
        due = await self._store.due_message_ids(limit, kind=kind, period=period, held=held)
        if not due:
            return result
        session: SmtpSession | None = None
        try:
            for message_id in due:
                if session is None:
                    session = SmtpSession(
                        self._endpoint, timeout=self._settings.smtp_timeout_seconds
                    )
                    connected = await self._send_one(message_id, session, result, connect=True)
                else:
                    connected = await self._send_one(message_id, session, result, connect=False)
                if not connected:
                    session = None
                    break  # the server is unreachable: the rest waits for the next round
        finally:
            if session is not None:
                await session.close()
            if result.sent:
                self._on_sent()
        return result

    async def _send_one(
        self, message_id: str, session: SmtpSession, result: Round, *, connect: bool
    ) -> bool:
        """Send one message; False when the SMTP connection is unusable afterwards."""
        store = self._store
        span: Span | None = None
        async with store.pool.acquire() as conn:
            if not await store.try_lock(conn, message_id):
                return True
            try:
                claimed = await store.claim(conn, message_id)
                if claimed is None:
                    return True
                span = await self._mail_span(conn, claimed)
                self._checkpoint("claimed")
                try:
                    if connect:
                        await session.open()
                    await session.send(
                        self._settings.smtp_from, claimed.recipient_address, claimed.body
                    )
                except DeliveryError as exc:
                    span.set_status(StatusCode.ERROR, type(exc).__name__)
                    await self._attempt_failed(
                        conn, claimed.message_id, claimed.category, claimed.attempts, exc, result
                    )
                    if session.usable:
                        return True
                    await session.close()
                    return False
                self._checkpoint("sent")
                await store.mark_sent(
                    conn,
                    claimed,
                    sent_at=self._clock(),
                    legal_basis=LEGAL_BASIS,
                    purpose=purpose_of(Category(claimed.category)),
                )
                MAILS_SENT.labels(claimed.category).inc()
                PROVISIONS.labels(claimed.category).inc()
                result.sent.append(message_id)
                _log.info(
                    "mail_sent",
                    message_id=message_id,
                    category=claimed.category,
                    role=claimed.recipient_role,
                    attempt=claimed.attempts,
                    records=len(claimed.records),
                )
                return True
            finally:
                if span is not None:
                    span.end()
                await store.unlock(conn, message_id)

    async def _mail_span(self, conn: asyncpg.Connection, claimed: Claimed) -> Span:
        """A span for sending one mail, in the trace of the records it provides.

        One record: the mail's span continues that record's trace (ingest -> classifier ->
        distributor -> mail). Several (a daily report): it links to each record's trace.
        """
        links = links_to(await self._store.traceparents(conn, claimed.records))
        parent = None
        if len(links) == 1:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(links[0].context))
        return self._tracer.start_span(
            "distributor send mail",
            context=parent,
            kind=SpanKind.CLIENT,
            links=links,
            attributes={
                "dagmonitor.category": claimed.category,
                "dagmonitor.recipient_role": claimed.recipient_role,
                "dagmonitor.records": len(claimed.records),
                "dagmonitor.attempt": claimed.attempts,
            },
        )

    async def _attempt_failed(
        self,
        conn: asyncpg.Connection,
        message_id: str,
        category: str,
        attempts: int,
        exc: DeliveryError,
        result: Round,
    ) -> None:
        settings = self._settings
        give_up = attempts >= settings.smtp_max_attempts
        retry_in = (
            settings.smtp_failed_retry_seconds
            if give_up
            else Backoff(
                settings.smtp_backoff_initial_seconds, settings.smtp_backoff_max_seconds
            ).delay(attempts)
        )
        await self._store.mark_attempt_failed(
            conn,
            message_id,
            error=exc.summary,
            retry_in=retry_in,
            give_up=give_up,
        )
        logged = {
            "message_id": message_id,
            "category": category,
            "error": exc.summary,
            "retry_in_s": retry_in,
        }
        if give_up:
            MAILS_FAILED.labels(category).inc()
            result.failed.append(message_id)
            _log.error("mail_failed", attempts=attempts, **logged)
        else:
            MAILS_RETRYING.labels(category).inc()
            result.retrying.append(message_id)
            _log.warning("mail_retrying", attempt=attempts, **logged)

    async def update_backlog(self) -> dict[str, int]:
        backlog = await self._store.backlog()
        for state, count in backlog.items():
            OUTBOX_BACKLOG.labels(state).set(count)
        return backlog

    async def run(self, stop: asyncio.Event) -> None:
        """Recover, send what is due, sleep until woken or the poll interval passes."""
        from dagmonitor.streaming import TRANSIENT_ERRORS

        while not stop.is_set():
            self.wake.clear()
            try:
                await self.recover()
                await self.send_due()
                await self.update_backlog()
            except TRANSIENT_ERRORS as exc:
                _log.warning("outbox_round_failed", error=type(exc).__name__)
            await pause(stop, self._settings.outbox_poll_seconds, wake=self.wake)
