"""Wiring of the distributor: consumers, scheduler, notice batcher, outbox sender, relay.

``python -m services.distributor`` runs it (HTTP on the contract's port 8084 for /metrics,
/healthz, /readyz). The same parts serve ``dagmonitor report``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer

from dagmonitor.clock import Checkpoint, Clock, no_checkpoint, utc_now
from dagmonitor.db import open_service_schema
from dagmonitor.deadletter import DeadLetters
from dagmonitor.service import ServiceParts, run_parts, serve_parts, stop_in_order
from dagmonitor.streaming import Outputs, RecordConsumer, new_producer
from dagmonitor.telemetry import ReadinessCheck, get_logger
from services.distributor.completeness import Completeness
from services.distributor.config import DistributorSettings
from services.distributor.dispatch import Dispatcher
from services.distributor.intake import TOPICS, Intake
from services.distributor.relay import ProvisionRelay
from services.distributor.scheduler import Scheduler
from services.distributor.sender import OutboxSender
from services.distributor.store import Store

SERVICE = "distributor"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_log = get_logger(__name__)


async def open_store(settings: DistributorSettings) -> Store:
    """Migrate the schema and open a pool on it."""
    # 8 for intake, dispatcher and sender, +1 held by the provision relay for its lock.
    return Store(await open_service_schema(settings, MIGRATIONS, max_size=9))


class Distributor(ServiceParts):
    """All parts of the running service; ``start``, ``run(stop)``, ``close``."""

    def __init__(
        self,
        settings: DistributorSettings,
        *,
        clock: Clock = utc_now,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        settings.smtp_endpoint()  # refuse to start on an SMTP URL that breaks the rules
        self.settings = settings
        self._clock = clock
        self._checkpoint = checkpoint
        self.store: Store | None = None
        self.producer: AIOKafkaProducer | None = None
        self.consumer: RecordConsumer | None = None
        self.sender: OutboxSender | None = None
        self.relay: ProvisionRelay | None = None
        self.dispatcher: Dispatcher | None = None
        self.scheduler: Scheduler | None = None

    async def start(self) -> None:
        settings = self.settings
        self.store = await open_store(settings)
        self.producer = new_producer(settings, SERVICE)
        await self.producer.start()
        outputs = Outputs(self.producer, settings, SERVICE)
        self.relay = ProvisionRelay(
            self.store,
            outputs,
            settings,
            schema=settings.db_schema,
            checkpoint=self._checkpoint,
        )
        self.sender = OutboxSender(
            self.store,
            settings,
            clock=self._clock,
            checkpoint=self._checkpoint,
            on_sent=self.relay.wake.set,
        )
        self.dispatcher = Dispatcher(
            self.store,
            settings,
            clock=self._clock,
            checkpoint=self._checkpoint,
            on_stored=self.sender.wake.set,
        )
        self.scheduler = Scheduler(
            self.dispatcher,
            settings,
            clock=self._clock,
            completeness=Completeness(settings),
            term=self.sender.term,
        )
        letters = DeadLetters(self.producer, service=SERVICE, topic_prefix=settings.topic_prefix)
        intake = Intake(
            self.store,
            on_withdrawal=self.scheduler.wake_notices,
            on_consent=self.scheduler.wake_held,  # what was held goes out at once
        )
        self.consumer = RecordConsumer(
            settings,
            service=SERVICE,
            topics=TOPICS,
            handler=intake.handle,
            dead_letters=letters,
            write_behind=intake.entries,  # entries a batch at a time (ADR 0022)
        )
        await self.consumer.start()
        _log.info("distributor_started", **settings.describe())

    async def run(self, stop: asyncio.Event) -> None:
        """Run every part until ``stop``. A part that fails on something transient (Kafka or
        PostgreSQL away) or ends early is started again after a pause, with a log line; a part
        that crashes on anything else stops the others, and the process exits non-zero (the
        orchestrator restarts it)."""
        assert self.consumer and self.scheduler and self.sender and self.relay
        parts: dict[str, Callable[[], Awaitable[None]]] = {
            "consumer": lambda: self.consumer.run(stop),  # type: ignore[union-attr]
            "scheduler": lambda: self.scheduler.run_daily(stop),  # type: ignore[union-attr]
            "notices": lambda: self.scheduler.run_notices(stop),  # type: ignore[union-attr]
            "supplements": lambda: self.scheduler.run_supplements(stop),  # type: ignore[union-attr]
            "sender": lambda: self.sender.run(stop),  # type: ignore[union-attr]
            "relay": lambda: self.relay.run(stop),  # type: ignore[union-attr]
        }
        await run_parts(parts, stop)

    async def stop(self) -> None:
        await stop_in_order(self.consumer, self.producer)
        if self.store is not None:
            await self.store.pool.close()

    async def kafka_ready(self) -> bool:
        return self.consumer is not None and await self.consumer.ready()

    async def postgres_ready(self) -> bool:
        return self.store is not None and await self.store.ping()

    def checks(self) -> dict[str, ReadinessCheck]:
        return {"kafka": self.kafka_ready, "postgres": self.postgres_ready}


async def serve(settings: DistributorSettings | None = None) -> None:
    """Run the distributor until SIGTERM/SIGINT (``python -m services.distributor``)."""
    settings = settings or DistributorSettings.load()
    await serve_parts(SERVICE, Distributor(settings), settings)
