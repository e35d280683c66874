"""Wiring of the approval service: migrations, pool, consumer, outbox relay, sweep, HTTP API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaProducer

from dagmonitor import db
from dagmonitor.clock import Clock, utc_now
from dagmonitor.deadletter import DeadLetters
from dagmonitor.retry import pause
from dagmonitor.service import ServiceParts, run_parts, serve_parts, stop_in_order
from dagmonitor.streaming import TRANSIENT_ERRORS, RecordConsumer, new_producer
from dagmonitor.telemetry import ReadinessCheck, get_logger
from services.approval.api import ApprovalApi
from services.approval.auth import TokenVerifier
from services.approval.config import ApprovalSettings
from services.approval.outbox import OutboxRelay
from services.approval.store import Store
from services.approval.workflow import PROVISIONS_TOPIC, Workflow

SERVICE = "approval"
REQUESTS_TOPIC = "approval.requests"
MIGRATIONS = Path(__file__).with_name("migrations")
_log = get_logger(__name__)


class ApprovalApp(ServiceParts):
    """The service's parts. ``start`` connects; ``run`` works until stopped; ``stop`` closes."""

    def __init__(
        self,
        settings: ApprovalSettings,
        *,
        clock: Clock = utc_now,
        group: str | None = None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.group = group
        self.verifier = verifier or TokenVerifier.from_settings(settings)
        self.workflow: Workflow | None = None
        self.relay: OutboxRelay | None = None
        self.consumer: RecordConsumer | None = None
        self.pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self.api = ApprovalApi(lambda: self.workflow, self.verifier)

    async def start(self) -> None:
        """Migrate, connect to PostgreSQL and Kafka; the API answers from then on."""
        settings = self.settings
        self.pool = await db.open_service_schema(
            settings,
            MIGRATIONS,
            role=settings.approval_db_role,
            max_size=settings.approval_db_pool_size + 1,  # +1: the relay's lock connection
        )
        store = Store(self.pool)
        self.relay = OutboxRelay(store, settings)
        self._producer = new_producer(settings, SERVICE)
        await self._producer.start()
        letters = DeadLetters(self._producer, service=SERVICE, topic_prefix=settings.topic_prefix)
        workflow = Workflow(store, settings, clock=self.clock, on_outbox=self.relay.wake)
        self.consumer = RecordConsumer(
            settings,
            service=SERVICE,
            # distribution.provisions: the evaluation reports sent (a renewal rests on one).
            topics=[REQUESTS_TOPIC, PROVISIONS_TOPIC],
            handler=workflow.receive,
            dead_letters=letters,
            group=self.group,
        )
        await self.consumer.start()
        self.workflow = workflow

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, relay and sweep until ``stop`` is set, each supervised
        (``dagmonitor.service.run_parts``): a transient failure restarts the part, any other
        crash stops all."""
        if self.consumer is None or self.relay is None:
            raise RuntimeError("start() the approval service first")
        consumer, relay = self.consumer, self.relay
        await run_parts(
            {
                "consumer": lambda: consumer.run(stop),
                "relay": lambda: relay.run(stop),
                "sweep": lambda: self.sweep(stop),
            },
            stop,
        )

    async def sweep(self, stop: asyncio.Event) -> None:
        """Expire overdue requests and refresh the gauges, every sweep interval."""
        interval = self.settings.approval_sweep_interval_seconds
        while not stop.is_set():
            if self.workflow is not None:
                try:
                    expired = await self.workflow.expire_due()
                    if expired:
                        _log.info("requests_expired", count=expired)
                    await self.workflow.forget_expired()
                    await self.workflow.refresh_metrics()
                except TRANSIENT_ERRORS as exc:
                    _log.warning("sweep_failed", error=type(exc).__name__)
            await pause(stop, interval)

    async def stop(self) -> None:
        self.workflow = None
        await stop_in_order(self.consumer, self.relay, self._producer)
        self.consumer = self._producer = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def checks(self) -> dict[str, ReadinessCheck]:
        """Readiness: PostgreSQL answers and the consumer is subscribed. (The relay may wait
        as a standby while another replica holds its lock; that replica is still ready.)"""

        async def postgres() -> bool:
            return self.workflow is not None and await self.workflow.store.ping()

        async def kafka() -> bool:
            return self.consumer is not None and await self.consumer.ready()

        return {"postgres": postgres, "kafka": kafka}

    def routes(self) -> list[web.RouteDef]:
        return list(self.api.routes())


async def serve(settings: ApprovalSettings | None = None) -> None:
    """Run the approval service until SIGTERM/SIGINT (``python -m services.approval``)."""
    settings = settings or ApprovalSettings.load()
    await serve_parts(SERVICE, ApprovalApp(settings), settings)
