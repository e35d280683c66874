"""The covenant's term in the distributor, on the real PostgreSQL, SMTP and Kafka: outside it no
mail leaves (before the start, after an early end consumed from covenant.term), and the
evaluation report of a generated term is mailed at the start of its last month and registered
(docs/adr/0018-covenant-term.md)."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY

from dagmonitor.covenant import TERM_TOPIC, Term, TermEvent
from dagmonitor.streaming import Incoming, Outputs, new_producer
from services.distributor.app import open_store
from services.distributor.covenant import CovenantStore, TermGate
from services.distributor.dispatch import Dispatcher
from services.distributor.intake import Intake
from services.distributor.relay import ProvisionRelay
from services.distributor.scheduler import Scheduler
from services.distributor.sender import OutboxSender
from tests.integration.distributor.conftest import SettingsFactory, SmtpServer
from tests.kafkautil import read_all
from tests.unit.distributor.samples import DAY, known_day

pytestmark = pytest.mark.integration

AMS = ZoneInfo("Europe/Amsterdam")
START, END = dt.date(2026, 1, 1), dt.date(2026, 12, 31)
RUN_AT = dt.datetime(2026, 12, 1, 7, 0, tzinfo=AMS)  # the first daily run of the last month
SCREENSHOT_HTML = Path("/tmp/dagmonitor-evaluation.html")


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _incoming(topic: str, key: str, value: dict[str, Any] | None, offset: int) -> Incoming:
    return Incoming(topic, key, value, None, 0, offset, 0)


async def test_before_the_start_no_mail_leaves(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(covenant_start_date=START, covenant_end_date=END)
    store = await open_store(settings)
    try:
        for value in known_day():
            await store.upsert_entry(value)
        await Dispatcher(store, settings).ensure_daily(DAY)
        before = dt.datetime(2025, 12, 31, 23, 30, tzinfo=AMS)
        sender = OutboxSender(store, settings, clock=lambda: before)
        assert (await sender.send_due()).blocked == 3
        assert smtp_server.mails() == []
        assert metric("dagmonitor_covenant_in_term", service="distributor") == 0
        # At midnight the term starts and the held mails go.
        sender = OutboxSender(store, settings, clock=lambda: before + dt.timedelta(hours=1))
        assert len((await sender.send_due()).sent) == 3
        assert len(smtp_server.mails()) == 3
        assert metric("dagmonitor_covenant_in_term", service="distributor") == 1
    finally:
        await store.pool.close()


async def test_an_early_end_on_covenant_term_holds_every_mail_without_a_redeployment(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(covenant_start_date=START, covenant_end_date=END)
    now = dt.datetime(2026, 6, 1, 9, 0, tzinfo=AMS)
    store = await open_store(settings)
    try:
        for value in known_day():
            await store.upsert_entry(value)
        await Dispatcher(store, settings).ensure_daily(DAY)
        intake = Intake(store)
        ended = Term(
            START, END, ended_at=now - dt.timedelta(hours=1), revision=1, event=TermEvent.EARLY_END
        )
        # Another covenant's record (another start date) changes nothing here.
        other = Term(dt.date(2025, 1, 1), dt.date(2025, 12, 31), None, now, 1, TermEvent.EARLY_END)
        await intake.handle(_incoming(TERM_TOPIC, "2025-01-01", other.record(now), 0))
        gate = TermGate(CovenantStore(store.pool), settings, clock=lambda: now)
        assert await gate.in_term()
        await intake.handle(_incoming(TERM_TOPIC, START.isoformat(), ended.record(now), 1))
        assert not await gate.in_term()
        before = metric(
            "dagmonitor_distributor_provisions_blocked_total",
            reason="outside_term",
            category="dagmonitor_daily",
        )
        assert (await OutboxSender(store, settings, clock=lambda: now).send_due()).blocked == 3
        assert smtp_server.mails() == []
        after = metric(
            "dagmonitor_distributor_provisions_blocked_total",
            reason="outside_term",
            category="dagmonitor_daily",
        )
        assert after == before + 3
    finally:
        await store.pool.close()


def _html_with_chart(mail: EmailMessage) -> str:
    """The mail's HTML with its inline chart as a data URI, to look at in a browser."""
    import base64

    html = ""
    images: dict[str, bytes] = {}
    for part in mail.walk():
        if part.get_content_type() == "text/html":
            html = part.get_content()
        elif part.get_content_maintype() == "image":
            cid = str(part["Content-ID"]).strip("<>")
            images[cid] = part.get_payload(decode=True)  # type: ignore[assignment]
    for cid, data in images.items():
        html = html.replace(
            f"cid:{cid}", "data:image/png;base64," + base64.b64encode(data).decode()
        )
    return html


async def test_the_evaluation_of_a_generated_term_is_mailed_in_its_last_month_and_registered(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(covenant_start_date=START, covenant_end_date=END)
    store = await open_store(settings)
    producer = new_producer(settings, "test")
    await producer.start()
    clock_now = [dt.datetime(2026, 11, 28, 7, 0, tzinfo=AMS)]

    def clock() -> dt.datetime:
        return clock_now[0]

    try:
        # A term's working: a daily report sent, decisions, dead letters, a retention deletion.
        for value in known_day():
            await store.upsert_entry(value)
        await Dispatcher(store, settings, clock=clock).ensure_daily(DAY)
        assert len((await OutboxSender(store, settings, clock=clock).send_due()).sent) == 3
        intake = Intake(store)
        decided = dt.datetime(2026, 11, 20, 10, 0, tzinfo=AMS)
        for offset, (category, role, outcome, hours) in enumerate(
            [
                ("SUSPECT", "OM", "APPROVED", 5),
                ("SUSPECT", "OM", "REJECTED", 30),
                ("YOUTH_NUISANCE_DETAIL", "POLICE_DISTRICT", "APPROVED", 2),
            ]
        ):
            value = {
                "request_id": f"r-{offset}",
                "decision": outcome,
                "category": category,
                "approver_role": role,
                "decided_by": "om-officier-7",
                "reason": None,
                "decided_at": decided,
                "requested_at": decided - dt.timedelta(hours=hours),
            }
            await intake.handle(_incoming("approval.decisions", f"r-{offset}", value, offset))
        dead = {
            "reason": "invalid_postcode",
            "detail": "location.postcode",
            "source_topic": "bvh.incidents",
            "source_partition": 0,
            "source_offset": 1,
            "source_key": "PL0900-2026012345",
            "raw": b"\x00",
            "service": "ingest",
            "failed_at": decided,
        }
        await intake.handle(_incoming("pipeline.deadletter", "PL0900-2026012345", dead, 0))
        await intake.handle(_incoming("pipeline.deadletter", "PL0900-2026012345", dead, 0))  # again
        deleted = {
            "topic": "dagmonitor.entries",
            "key": "PL0900-2025000001",
            "provided_at": decided - dt.timedelta(days=365),
            "deleted_at": decided,
            "reason": "retention",
        }
        await intake.handle(_incoming("retention.events", "x", deleted, 0))

        # Before the last month the scheduler sends no evaluation; on its first day it does.
        sender = OutboxSender(store, settings, clock=clock)
        dispatcher = Dispatcher(store, settings, clock=clock)
        scheduler = Scheduler(dispatcher, settings, clock=clock, term=sender.term)
        await scheduler.run_reports(clock_now[0])
        assert await store.report_states("evaluation", _period()) == {}
        clock_now[0] = RUN_AT
        await scheduler.run_reports(RUN_AT)
        await scheduler.run_reports(RUN_AT)  # idempotent: once per term
        assert await store.report_states("evaluation", _period()) == {"pending": 3}
        await sender.send_due()
        mails = [m for m in smtp_server.mails() if "Evaluatie convenant" in str(m["Subject"])]
        assert len(mails) == 3
        mail = mails[0]
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        for expected in (
            "Dagmonitor (dagelijks, met aanvullingen), Eenheid Veiligheid: 1",
            "2026-11: 3",
            "OM, Verdachte, goedgekeurd: 1 (5.0 / 5.0 uur)",
            "OM, Verdachte, afgewezen: 1 (30.0 / 30.0 uur)",
            "goedgekeurd: 1 (2.0 / 2.0 uur)",
            "invalid_postcode, ingest: 1",
            "dagmonitor.entries, bewaartermijn verstreken: 1",
        ):
            assert expected in text, expected
        assert "om-officier-7" not in mail.as_string() and "PL0900" not in mail.as_string()
        assert "wijk of buurt" in text and "gemaakt op 01-12-2026" in text
        (csv_part,) = [p for p in mail.iter_attachments() if p.get_content_type() == "text/csv"]
        assert csv_part.get_filename() == "evaluatie-2026-01-01..2026-12-31.csv"
        SCREENSHOT_HTML.write_text(_html_with_chart(mail))

        # Registered like every mail: in the register and on distribution.provisions.
        rows = await store.pool.fetch(
            "SELECT recipient_role, record_keys FROM provisions "
            "WHERE category = 'covenant_evaluation' ORDER BY recipient_role"
        )
        assert len(rows) == 3
        relay = ProvisionRelay(
            store, Outputs(producer, settings, "distributor"), settings, schema=settings.db_schema
        )
        assert await relay.publish_pending() >= 3
        published = [
            v
            for _, v in await read_all(settings, "distribution.provisions", idle=1.5)
            if v is not None
            and v["category"] == "covenant_evaluation"
            and v["message_id"].endswith(settings.message_id_domain + ">")
        ]
        assert len(published) == 3
        assert published[0]["record_keys"] == [{"topic": TERM_TOPIC, "key": "2026-01-01"}]
    finally:
        await producer.stop()
        await store.pool.close()


def _period() -> str:
    return "evaluation.2026-01-01.2026-01-01..2026-12-31"
