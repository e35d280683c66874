"""The provision register on Kafka: rows of ``provisions`` relayed to ``distribution.provisions``.

The register row is written in the same transaction that marks a mail sent; the shared relay
(``dagmonitor.outbox_relay``) then publishes it, keyed by its deterministic ``provision_id``,
exactly once:

- one relay at a time (a PostgreSQL session lock; a second replica waits);
- ``publish_started_at`` is committed before a row is published, ``published_at`` after the
  broker's ack;
- a row that was started but never marked (the relay died between the ack and the mark, or
  the publish failed) is first looked up on the topic by key, from shortly before its start
  time; only when its ``provision_id`` is not there is it published (again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord

from dagmonitor import topics
from dagmonitor.clock import Checkpoint, no_checkpoint
from dagmonitor.codec import Codec, default_codec
from dagmonitor.outbox_relay import Outbound, Relay, RelayEvents, id_from_key
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import Outputs
from services.distributor.metrics import PROVISIONS_PUBLISHED
from services.distributor.store import Store, Unpublished

SERVICE = "distributor"
TOPIC = "distribution.provisions"
BATCH_SIZE = 200
RECOVERY_MARGIN = timedelta(seconds=30)
"""Clock skew allowed between PostgreSQL's start times and the broker's timestamps."""

EVENTS = RelayEvents(
    standby="provision_relay_standby",
    recovered="provision_relay_recovered",
    failed="provision_relay_failed",
)


def provision_record(row: Unpublished) -> dict[str, Any]:
    """The ``Provision`` value of a register row."""
    return {
        "provision_id": row.provision_id,
        "record_keys": [{"topic": r.topic, "key": r.key} for r in row.record_keys],
        "category": row.category,
        "recipient_role": row.recipient_role,
        "recipient_address": row.recipient_address,
        "sent_at": row.sent_at,
        "message_id": row.message_id,
        "legal_basis": row.legal_basis,
        "purpose": row.purpose,
        "kind": row.kind,
        "withdraws": list(row.withdraws),
    }


class ProvisionOutbox:
    """The ``provisions`` table as an outbox; records are found again by their key."""

    topics = (TOPIC,)

    def __init__(self, store: Store, codec: Codec | None = None) -> None:
        self._store = store
        self._codec = codec or default_codec()

    async def pending(self, limit: int) -> list[Unpublished]:
        return await self._store.start_publishing(limit)

    def outbound(self, row: Unpublished) -> Outbound[str]:
        value = self._codec.encode(topics.get(TOPIC).schema, provision_record(row))
        return Outbound(row.provision_id, TOPIC, row.provision_id, value)

    def identify(self, record: ConsumerRecord[bytes, bytes]) -> str | None:
        return id_from_key(record)

    async def recover_since(self) -> datetime | None:
        return await self._store.oldest_publish_started()

    async def mark_published(self, ids: Collection[str]) -> int:
        return await self._store.mark_published(ids)

    async def after_round(self, published: int) -> None:
        PROVISIONS_PUBLISHED.inc(published)


class ProvisionRelay(Relay[Unpublished, str]):
    """Publishes unpublished provisions with the service's producer; ``run`` loops until
    stopped, ``publish_pending`` publishes one batch (the CLI's on-demand runs)."""

    def __init__(
        self,
        store: Store,
        outputs: Outputs,
        settings: DagmonitorSettings,
        *,
        schema: str,
        poll_seconds: float = 2.0,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.wake = asyncio.Event()
        super().__init__(
            ProvisionOutbox(store),
            store.pool,
            settings,
            service=SERVICE,
            lock_name=f"dagmonitor-distributor-relay:{schema}",
            producer=outputs.producer,
            batch_size=BATCH_SIZE,
            interval=poll_seconds,
            recovery_margin=RECOVERY_MARGIN,
            events=EVENTS,
            wake=self.wake,
            checkpoint=checkpoint,
        )
