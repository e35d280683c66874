"""A renewal across the services on the real broker: the distributor mails and registers the
evaluation report, the approval service learns of it from distribution.provisions, records
the renewal on it and publishes the term on covenant.term, and the distributor follows the
renewed term without a redeployment (docs/adr/0018-covenant-term.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import Outputs, new_producer
from services.approval.access import Principal
from services.approval.app import ApprovalApp
from services.approval.auth import TokenVerifier, VerificationKey
from services.approval.config import ApprovalSettings
from services.approval.errors import CovenantRefused
from services.approval.outbox import OutboxRelay
from services.distributor.app import Distributor
from services.distributor.config import DistributorSettings
from services.distributor.dispatch import Dispatcher
from services.distributor.relay import ProvisionRelay
from services.distributor.sender import OutboxSender
from tests.integration.distributor.conftest import RECIPIENTS, SmtpServer

pytestmark = pytest.mark.integration

AMS = ZoneInfo("Europe/Amsterdam")
START, END = dt.date(2026, 1, 1), dt.date(2026, 12, 31)
NOW = dt.datetime(2026, 12, 1, 7, 5, tzinfo=AMS)
OM = Principal("om-officier-1", frozenset({"OM"}))


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.2)


async def test_the_evaluation_sent_lets_the_approval_service_renew_and_the_distributor_follows(
    fresh_settings: DagmonitorSettings, db_schema: str, smtp_server: SmtpServer
) -> None:
    term = {"covenant_start_date": START, "covenant_end_date": END}
    distributor_settings = DistributorSettings.load(
        topic_prefix=fresh_settings.topic_prefix,
        db_schema=db_schema,
        smtp_url=smtp_server.url,
        smtp_allow_plaintext=True,
        distributor_recipients=RECIPIENTS,
        message_id_domain=f"t{db_schema[-8:]}.invalid",
        **term,
    )
    approval_settings = ApprovalSettings.load(
        topic_prefix=fresh_settings.topic_prefix,
        db_schema=f"approval_{uuid.uuid4().hex[:8]}",
        approval_relay_recovery_margin_seconds=60,
        **term,
    )
    verifier = TokenVerifier(
        issuer="i", audience="a", keys=[VerificationKey(None, object())], algorithms=["ES256"]
    )
    distributor = Distributor(distributor_settings, clock=lambda: NOW)
    approval = ApprovalApp(approval_settings, clock=lambda: NOW, verifier=verifier)
    await distributor.start()
    await approval.start()
    stop = asyncio.Event()
    consuming: list[asyncio.Task[None]] = []
    try:
        assert distributor.store and approval.workflow and approval.consumer
        assert distributor.consumer
        consuming += [
            asyncio.create_task(approval.consumer.run(stop)),
            asyncio.create_task(distributor.consumer.run(stop)),
        ]
        workflow = approval.workflow
        with pytest.raises(CovenantRefused):  # nothing evaluated yet
            await workflow.renew(OM, None, "te vroeg")

        # The distributor mails the evaluation and registers it on distribution.provisions.
        store = distributor.store
        await Dispatcher(store, distributor_settings, clock=lambda: NOW).ensure_evaluation(
            await OutboxSender(store, distributor_settings, clock=lambda: NOW).term.term()
        )
        assert (
            len(
                (await OutboxSender(store, distributor_settings, clock=lambda: NOW).send_due()).sent
            )
            == 3
        )
        producer = new_producer(distributor_settings, "test")
        await producer.start()
        try:
            outputs = Outputs(producer, distributor_settings, "distributor")
            relay = ProvisionRelay(
                store, outputs, distributor_settings, schema=distributor_settings.db_schema
            )
            assert await relay.publish_pending() == 3
        finally:
            await producer.stop()

        async def noted() -> bool:
            return len(await workflow.store.evaluations(START)) == 3

        await _eventually(noted)
        renewed = await workflow.renew(OM, None, "besluit stuurgroep")
        assert renewed.end == dt.date(2027, 12, 31)

        relay_a = OutboxRelay(workflow.store, approval_settings)
        assert await relay_a.start()
        try:
            assert await relay_a.run_once() == 1
        finally:
            await relay_a.stop()

        gate = OutboxSender(store, distributor_settings, clock=lambda: NOW).term

        async def followed() -> bool:
            return (await gate.term()).end == dt.date(2027, 12, 31)

        await _eventually(followed)
        later = OutboxSender(
            store, distributor_settings, clock=lambda: dt.datetime(2027, 6, 1, tzinfo=AMS)
        )
        assert await later.covenant_in_force(), "in force past the configured end"
    finally:
        stop.set()
        await asyncio.gather(*consuming, return_exceptions=True)
        await approval.stop()
        await distributor.stop()
        conn = await asyncpg.connect(approval_settings.database_url.get_secret_value())
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {approval_settings.db_schema} CASCADE")
        finally:
            await conn.close()
