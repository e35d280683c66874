"""Reports on demand (``dagmonitor report daily|hotspots --date``): the service's own path.

Render, store, send and register exactly as the running service would, directly against
PostgreSQL, SMTP and Kafka. Idempotent: a recipient who already has the report (sent or
waiting in the outbox) does not get a second one; a waiting one is sent now.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dagmonitor.clock import Checkpoint, Clock, no_checkpoint, utc_now
from dagmonitor.retry import Backoff
from dagmonitor.streaming import Outputs, new_producer
from services.distributor.app import SERVICE, open_store
from services.distributor.config import DistributorSettings
from services.distributor.covenant import CovenantStore, TermGate
from services.distributor.dispatch import Dispatcher, Outcome
from services.distributor.relay import ProvisionRelay
from services.distributor.rendering import Kind, render_evaluation
from services.distributor.sender import OutboxSender
from services.distributor.store import Store


@dataclass(frozen=True)
class ReportRun:
    """The state of one report's mails after an on-demand run."""

    outcome: Outcome
    states: dict[str, int]
    published: int
    blocked: bool

    @property
    def complete(self) -> bool:
        """Every entitled recipient's mail is sent."""
        return self.states.get("sent", 0) == self.outcome.recipients and not self.blocked


async def drain(
    sender: OutboxSender, store: Store, kind: str, period: str, *, deadline_s: float
) -> bool:
    """Send this report's due mails, waiting out backoffs, until none is pending or sending
    (or ``deadline_s`` passes). Returns False when the covenant blocks sending."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        round_ = await sender.send_due(kind=kind, period=period)
        if round_.blocked or not await sender.covenant_in_force():
            return False
        states = await store.report_states(kind, period)
        if not states.get("pending") and not states.get("sending"):
            return True
        await asyncio.sleep(0.2)
    return True


async def report_on_demand(
    settings: DistributorSettings,
    kind: str,
    day: date,
    *,
    clock: Clock = utc_now,
    checkpoint: Checkpoint = no_checkpoint,
    publish: bool = True,
) -> ReportRun:
    """Make sure the ``kind`` report for ``day`` reached every entitled recipient.

    ``day`` is the day reported on (daily) or the last of the 14 days (hotspots); the
    evaluation report covers the term's current period up to now whatever ``day`` is.
    """
    if kind not in (Kind.DAILY, Kind.HOTSPOTS, Kind.EVALUATION):
        raise ValueError(f"unknown report kind {kind!r}")
    settings.smtp_endpoint()
    store = await open_store(settings)
    try:
        sender = OutboxSender(store, settings, clock=clock, checkpoint=checkpoint)
        dispatcher = Dispatcher(store, settings, clock=clock, checkpoint=checkpoint)
        if kind == Kind.DAILY:
            outcome = await dispatcher.ensure_daily(day)
        elif kind == Kind.EVALUATION:
            outcome = await dispatcher.ensure_evaluation(await sender.term.term())
        else:
            outcome = await dispatcher.ensure_hotspots(day)
        await sender.recover()
        backoff = Backoff(settings.smtp_backoff_initial_seconds, settings.smtp_backoff_max_seconds)
        backoff_total = sum(backoff.delay(n) for n in range(1, settings.smtp_max_attempts + 1))
        in_force = await drain(
            sender, store, outcome.kind, outcome.period, deadline_s=backoff_total + 120
        )
        published = await _publish(settings, store, checkpoint) if publish else 0
        states = await store.report_states(outcome.kind, outcome.period)
        return ReportRun(outcome, states, published, blocked=not in_force)
    finally:
        await store.pool.close()


async def _publish(settings: DistributorSettings, store: Store, checkpoint: Checkpoint) -> int:
    """Relay the register rows to Kafka (a running service's relay may do it instead)."""
    producer = new_producer(settings, SERVICE)
    await producer.start()
    try:
        relay = ProvisionRelay(
            store,
            Outputs(producer, settings, SERVICE),
            settings,
            schema=settings.db_schema,
            checkpoint=checkpoint,
        )
        total = 0
        while published := await relay.publish_pending():
            total += published
        return total
    finally:
        await producer.stop()


async def retry_failed(settings: DistributorSettings) -> int:
    """Make every failed mail due again now (the service's sender picks them up)."""
    store = await open_store(settings)
    try:
        return await store.retry_failed()
    finally:
        await store.pool.close()


async def evaluation_files(
    settings: DistributorSettings, out_dir: Path, *, clock: Clock = utc_now
) -> list[Path]:
    """Build the evaluation report of the current term and write it to ``out_dir`` (HTML
    with its chart beside it, plain text, CSV) without sending it; returns the files."""
    store = await open_store(settings)
    try:
        gate = TermGate(CovenantStore(store.pool), settings, clock=clock)
        term = await gate.term()
        report = await Dispatcher(store, settings, clock=clock).build_evaluation(term)
    finally:
        await store.pool.close()
    rendered = render_evaluation(report, cid_domain=settings.message_id_domain)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    html = rendered.html
    for part in (*rendered.inline, *rendered.attachments):
        assert part.filename is not None
        path = out_dir / part.filename
        path.write_bytes(part.data)
        written.append(path)
        if part.cid:
            html = html.replace(f"cid:{part.cid}", part.filename)
    for name, body in (("evaluatie.html", html), ("evaluatie.txt", rendered.text)):
        path = out_dir / name
        path.write_text(body, encoding="utf-8")
        written.append(path)
    return written
