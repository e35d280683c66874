"""Exactly once per recipient on the real PostgreSQL and a real SMTP server: crash points,
SMTP outages, the attempt limit and the covenant's end date."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from services.distributor.app import open_store
from services.distributor.config import DistributorSettings
from services.distributor.dispatch import Dispatcher
from services.distributor.sender import OutboxSender
from services.distributor.store import Store
from tests.integration.distributor.conftest import (
    MEETING,
    SAFETY,
    TEAM_LEADER,
    SettingsFactory,
    SmtpServer,
)
from tests.unit.distributor.samples import DAY, known_day

pytestmark = pytest.mark.integration

ALL = sorted([SAFETY, MEETING, TEAM_LEADER])


class SimulatedCrash(BaseException):
    """Stands for the process dying: no ``except Exception`` in our code catches it."""


def crash_at(stage: str):  # type: ignore[no-untyped-def]
    def checkpoint(reached: str) -> None:
        if reached == stage:
            raise SimulatedCrash(stage)

    return checkpoint


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def seeded(
    make_settings: SettingsFactory,
) -> AsyncIterator[tuple[DistributorSettings, Store]]:
    settings = make_settings()
    store = await open_store(settings)
    for value in known_day():
        await store.upsert_entry(value)
    yield settings, store
    await store.pool.close()


def delivered(server: SmtpServer) -> Counter[tuple[str, str]]:
    """(envelope recipient, Message-ID) -> how many copies the server received."""
    return Counter((m["X-Envelope-To"], m["Message-ID"]) for m in server.mails())


async def states(store: Store) -> dict[str, int]:
    rows = await store.pool.fetch("SELECT state, count(*) AS n FROM outbox GROUP BY state")
    return {r["state"]: r["n"] for r in rows}


async def provisions(store: Store) -> list[tuple[str, str]]:
    rows = await store.pool.fetch(
        "SELECT recipient_address, message_id FROM provisions ORDER BY recipient_address"
    )
    return [(r["recipient_address"], r["message_id"]) for r in rows]


async def test_crash_after_render_before_store_then_rerun_sends_each_once(
    seeded: tuple[DistributorSettings, Store], smtp_server: SmtpServer
) -> None:
    settings, store = seeded
    crashing = Dispatcher(store, settings, checkpoint=crash_at("rendered"))
    with pytest.raises(SimulatedCrash):
        await crashing.ensure_daily(DAY)
    assert await states(store) == {}, "nothing stored before the crash"

    outcome = await Dispatcher(store, settings).ensure_daily(DAY)
    assert outcome.stored == 3
    await OutboxSender(store, settings).send_due()

    copies = delivered(smtp_server)
    assert sorted(to for to, _ in copies) == ALL
    assert set(copies.values()) == {1}
    assert await provisions(store) == sorted(copies)


async def test_crash_after_store_before_send_then_rerun_sends_each_once(
    seeded: tuple[DistributorSettings, Store], smtp_server: SmtpServer
) -> None:
    settings, store = seeded
    with pytest.raises(SimulatedCrash):
        await Dispatcher(store, settings, checkpoint=crash_at("stored")).ensure_daily(DAY)
    assert await states(store) == {"pending": 3}

    # A second run of the same report (scheduler catch-up or the CLI) adds nothing.
    assert (await Dispatcher(store, settings).ensure_daily(DAY)).stored == 0
    # A sender dies after committing 'sending' but before any SMTP conversation.
    with pytest.raises(SimulatedCrash):
        await OutboxSender(store, settings, checkpoint=crash_at("claimed")).send_due()
    assert await states(store) == {"pending": 2, "sending": 1}
    assert smtp_server.mails() == []

    restarted = OutboxSender(store, settings)
    assert await restarted.recover() == 1
    round_ = await restarted.send_due()
    assert len(round_.sent) == 3
    copies = delivered(smtp_server)
    assert sorted(to for to, _ in copies) == ALL
    assert set(copies.values()) == {1}, "every recipient exactly one mail"
    assert await states(store) == {"sent": 3}
    assert await provisions(store) == sorted(copies)


async def test_crash_after_send_before_mark_resends_with_the_same_message_id(
    seeded: tuple[DistributorSettings, Store], smtp_server: SmtpServer
) -> None:
    settings, store = seeded
    await Dispatcher(store, settings).ensure_daily(DAY)
    before = metric(
        "dagmonitor_distributor_mails_resent_after_crash_total", category="dagmonitor_daily"
    )
    with pytest.raises(SimulatedCrash):
        await OutboxSender(store, settings, checkpoint=crash_at("sent")).send_due()
    first = smtp_server.mails()
    assert len(first) == 1, "the server accepted the first mail, then the sender died"
    assert await states(store) == {"pending": 2, "sending": 1}

    restarted = OutboxSender(store, settings)
    assert await restarted.recover() == 1
    await restarted.send_due()

    copies = delivered(smtp_server)
    # SMTP's limit: the crashed mail arrives twice, both copies with one Message-ID, so the
    # receiving system can drop the second; every other mail arrives once.
    assert copies[(first[0]["X-Envelope-To"], first[0]["Message-ID"])] == 2
    assert sorted(to for to, _ in copies) == ALL
    assert sum(copies.values()) == 4
    bodies = [m.get_body(("plain",)).get_content() for m in smtp_server.mails()]  # type: ignore[union-attr]
    assert len(set(bodies)) == 1, "the re-sent copy is the stored message, unchanged"
    # The register has one delivery per recipient, not two.
    assert await provisions(store) == sorted(copies)
    assert (
        metric("dagmonitor_distributor_mails_resent_after_crash_total", category="dagmonitor_daily")
        == before + 1
    )


async def test_a_live_senders_message_is_not_recovered_by_another(
    seeded: tuple[DistributorSettings, Store], smtp_server: SmtpServer
) -> None:
    settings, store = seeded
    await Dispatcher(store, settings).ensure_daily(DAY)
    message_id = (await store.due_message_ids(1))[0]
    async with store.pool.acquire() as conn:
        assert await store.try_lock(conn, message_id)
        assert await store.claim(conn, message_id) is not None
        # While this "sender" holds the lock, a recovery elsewhere leaves its row alone.
        assert await OutboxSender(store, settings).recover() == 0
        await store.unlock(conn, message_id)
    assert await OutboxSender(store, settings).recover() == 1


async def test_smtp_down_then_up_retries_and_sends_once(
    seeded: tuple[DistributorSettings, Store], smtp_server: SmtpServer
) -> None:
    settings, store = seeded
    await Dispatcher(store, settings).ensure_daily(DAY)
    smtp_server.stop()
    before = metric("dagmonitor_distributor_mails_retrying_total", category="dagmonitor_daily")
    sender = OutboxSender(store, settings)
    round_ = await sender.send_due()
    assert round_.retrying and not round_.sent
    assert metric(
        "dagmonitor_distributor_mails_retrying_total", category="dagmonitor_daily"
    ) == before + len(round_.retrying)
    row = await store.pool.fetchrow("SELECT last_error, attempts FROM outbox WHERE attempts > 0")
    assert row["last_error"].startswith("connect: ")
    assert "@" not in row["last_error"]

    smtp_server.start()
    for _ in range(50):
        await sender.send_due()
        if await states(store) == {"sent": 3}:
            break
        await _sleep(0.1)
    copies = delivered(smtp_server)
    assert sorted(to for to, _ in copies) == ALL
    assert set(copies.values()) == {1}


async def test_attempt_limit_leaves_the_mail_failed_in_the_outbox_until_retried(
    seeded: tuple[DistributorSettings, Store], smtp_server: SmtpServer
) -> None:
    settings, store = seeded
    await Dispatcher(store, settings).ensure_daily(DAY)
    smtp_server.stop()
    sender = OutboxSender(store, settings)
    before = metric("dagmonitor_distributor_mails_failed_total", category="dagmonitor_daily")
    for _ in range(100):
        await sender.send_due()
        if await states(store) == {"failed": 3}:
            break
        await _sleep(0.05)
    assert await states(store) == {"failed": 3}
    assert (
        metric("dagmonitor_distributor_mails_failed_total", category="dagmonitor_daily")
        == before + 3
    )
    assert (await sender.update_backlog())["failed"] == 3
    assert await store.due_message_ids(10) == [], "failed mails wait for the slow retry"

    smtp_server.start()
    assert await store.retry_failed() == 3
    await sender.send_due()
    assert await states(store) == {"sent": 3}
    assert set(delivered(smtp_server).values()) == {1}


async def test_covenant_expired_nothing_is_provided(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    yesterday = dt.date.today() - dt.timedelta(days=1)
    settings = make_settings(
        covenant_start_date=yesterday - dt.timedelta(days=365), covenant_end_date=yesterday
    )
    store = await open_store(settings)
    try:
        for value in known_day():
            await store.upsert_entry(value)
        await Dispatcher(store, settings).ensure_daily(DAY)
        before = metric(
            "dagmonitor_distributor_provisions_blocked_total",
            reason="outside_term",
            category="dagmonitor_daily",
        )
        sender = OutboxSender(store, settings)
        round_ = await sender.send_due()
        again = await sender.send_due()
        assert round_.blocked == 3 and again.blocked == 0, "counted once per mail"
        assert smtp_server.mails() == []
        assert await states(store) == {"pending": 3}, "the mails stay unsent in the outbox"
        assert await provisions(store) == []
        assert (
            metric(
                "dagmonitor_distributor_provisions_blocked_total",
                reason="outside_term",
                category="dagmonitor_daily",
            )
            == before + 3
        )
        assert metric("dagmonitor_covenant_days_remaining") < 0
    finally:
        await store.pool.close()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
