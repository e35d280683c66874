"""The approval outbox as the shared relay publishes it (``dagmonitor.outbox_relay``).

The decision and its outbox rows commit in one PostgreSQL transaction (``workflow``). The relay
publishes the rows in id order, each record carrying the headers ``dagmonitor-outbox-id`` and
``dagmonitor-outbox-source`` (this schema), and marks them published after the broker's acks.
Recovery reads the target topics from shortly before the oldest unpublished row was written
and marks the rows whose ids it finds in those headers. See docs/adr/0004-approval-outbox.md.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from aiokafka import ConsumerRecord

from dagmonitor import deletion
from dagmonitor.covenant import TERM_TOPIC
from dagmonitor.deletion import Deletion
from dagmonitor.outbox_relay import (
    Outbound,
    ProducerFactory,
    Relay,
    RelayEvents,
    id_from_headers,
    id_headers,
)
from dagmonitor.streaming import new_producer
from services.approval import metrics
from services.approval.config import ApprovalSettings
from services.approval.consent import CONSENTS_TOPIC
from services.approval.domain import APPROVED_TOPIC, DECISIONS_TOPIC
from services.approval.store import OutboxRow, Store

SERVICE = "approval"
RELAY_TOPICS: tuple[str, ...] = (
    DECISIONS_TOPIC,
    *sorted(set(APPROVED_TOPIC.values())),
    CONSENTS_TOPIC,
    TERM_TOPIC,
)
"""Every topic the outbox publishes to (and recovery reads back)."""

EVENTS = RelayEvents(
    standby="outbox_relay_standby", recovered="outbox_recovered", failed="outbox_publish_failed"
)


class ApprovalOutbox:
    """The ``outbox`` table of one schema; records are found again by their id header."""

    topics = RELAY_TOPICS

    def __init__(self, store: Store, source: str) -> None:
        self._store = store
        self._source = source

    async def pending(self, limit: int) -> list[OutboxRow]:
        return await self._store.fetch_unpublished(limit)

    def outbound(self, row: OutboxRow) -> Outbound[int]:
        headers = id_headers(row.id, self._source)
        if row.payload is None:  # only withdrawals retract: docs/adr/0015-withdrawals.md
            headers = (*headers, *deletion.headers(Deletion.WITHDRAWN))
        return Outbound(row.id, row.topic, row.key, row.payload, headers)

    def identify(self, record: ConsumerRecord[bytes, bytes]) -> int | None:
        row_id = id_from_headers(record, self._source)
        return None if row_id is None else int(row_id)

    async def recover_since(self) -> datetime | None:
        backlog, oldest = await self._store.outbox_backlog()
        return oldest if backlog else None

    async def mark_published(self, ids: Collection[int]) -> int:
        return await self._store.mark_published(ids)

    async def after_round(self, published: int) -> None:
        backlog, _ = await self._store.outbox_backlog()
        metrics.OUTBOX_BACKLOG.set(backlog)


class OutboxRelay(Relay[OutboxRow, int]):
    """Publishes the outbox of one schema to Kafka; one active relay per schema."""

    def __init__(
        self,
        store: Store,
        settings: ApprovalSettings,
        *,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        super().__init__(
            ApprovalOutbox(store, settings.db_schema),
            store.pool,
            settings,
            service=SERVICE,
            lock_name=f"dagmonitor-approval-relay:{settings.db_schema}",
            producer=producer_factory or (lambda: new_producer(settings, SERVICE)),
            batch_size=settings.approval_relay_batch_size,
            interval=settings.approval_relay_interval_seconds,
            recovery_margin=timedelta(seconds=settings.approval_relay_recovery_margin_seconds),
            events=EVENTS,
        )

    def wake(self) -> None:
        """Publish soon: a decision has just committed outbox rows."""
        self._wake.set()
