"""Reports on demand (the CLI), the hotspot report, STARTTLS with AUTH, tombstones and
versions, and the register relay's crash window, on the real servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagmonitor import kafka_clients
from dagmonitor.settings import REPO_ROOT
from dagmonitor.streaming import Outputs, new_producer
from services.distributor.app import open_store
from services.distributor.dispatch import Dispatcher
from services.distributor.ondemand import report_on_demand
from services.distributor.relay import ProvisionRelay
from services.distributor.sender import OutboxSender
from tests.integration.distributor.conftest import (
    MEETING,
    RECIPIENTS,
    SAFETY,
    TEAM_LEADER,
    SettingsFactory,
    SmtpServer,
)
from tests.integration.distributor.test_outbox import SimulatedCrash, crash_at
from tests.unit.distributor.samples import DAY, IN_DAY, entry, known_day

pytestmark = pytest.mark.integration


def _cli(settings_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGMONITOR_")}
    # The suite's own Kafka principal: the test's topics are under its prefix.
    for kept in ("DAGMONITOR_KAFKA_SASL_USERNAME", "DAGMONITOR_LOCAL_DIR"):
        if kept in os.environ:
            env[kept] = os.environ[kept]
    env.update(settings_env)
    return subprocess.run(
        [str(Path(sys.executable).with_name("dagmonitor")), *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_report_cli_is_idempotent(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        for value in known_day():
            await store.upsert_entry(value)
    finally:
        await store.pool.close()
    import json

    env = {
        "DAGMONITOR_DATABASE_URL": settings.database_url.get_secret_value(),
        "DAGMONITOR_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "DAGMONITOR_TOPIC_PREFIX": settings.topic_prefix,
        "DAGMONITOR_DB_SCHEMA": settings.db_schema,
        "DAGMONITOR_SMTP_URL": settings.smtp_url.get_secret_value(),
        "DAGMONITOR_SMTP_ALLOW_PLAINTEXT": "true",
        "DAGMONITOR_DISTRIBUTOR_RECIPIENTS": json.dumps(RECIPIENTS),
        "DAGMONITOR_COVENANT_END_DATE": "2099-12-31",
        "DAGMONITOR_LOG_LEVEL": "WARNING",
    }
    first = _cli(env, "report", "daily", "--date", DAY.isoformat())
    assert first.returncode == 0, first.stderr
    assert "3 new mail(s); sent 3" in first.stdout
    second = _cli(env, "report", "daily", "--date", DAY.isoformat())
    assert second.returncode == 0, second.stderr
    assert "0 new mail(s); sent 3" in second.stdout
    mails = smtp_server.mails()
    assert sorted(m["X-Envelope-To"] for m in mails) == sorted([SAFETY, MEETING, TEAM_LEADER])

    # Without the explicit plaintext switch, a URL without credentials is refused up front.
    refused = _cli(env | {"DAGMONITOR_SMTP_ALLOW_PLAINTEXT": "false"}, "report", "daily")
    assert refused.returncode == 1
    assert "STARTTLS and authentication" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_hotspot_report_ranks_and_embeds_its_chart(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        for value in known_day():
            await store.upsert_entry(value)
        # Three more in 3581AB earlier in the period, one just before it.
        for n, days_back in enumerate((1, 5, 13, 14)):
            reported = known_day()[2]["reported_at"].replace(day=27 - days_back)
            await store.upsert_entry(
                entry(
                    f"PL0900-20260001{n:02d}",
                    mk_code="E35",
                    mk_description="MELDING OVERLAST JEUGD",
                    reported_at=reported,
                    district=("WK034403", "Oost"),
                    postcode="3581AB",
                )
            )
    finally:
        await store.pool.close()

    run = await report_on_demand(settings, "hotspots", DAY)
    assert run.complete and run.states == {"sent": 3} and run.published == 3
    again = await report_on_demand(settings, "hotspots", DAY)
    assert again.outcome.stored == 0 and again.published == 0
    mails = smtp_server.mails()
    assert len(mails) == 3
    mail = mails[0]
    assert mail["Subject"] == "Cumulatieve Dagmonitor (hotspots) 14-11-2026 t/m 27-11-2026"
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    # 3581AB: the day's E35 plus three in the period; the one 14 days back is in the previous
    # period, the comparison.
    assert "  1. 3581AB (Oost): 4 (+3)" in text
    # 3511AB: two on the day and one late on the day before (in the period too).
    assert "  2. 3511AB (Binnenstad): 3 (nieuw)" in text
    assert "  1. 3581 (Oost): 4 (+3)" in text, "aggregated to PC4"
    # The entry without a postcode is counted, never ranked as a place.
    assert "Postcode onbekend" not in text and "waarvan 1 zonder postcode" in text
    assert "  1. Oost: 5 (+4)" in text
    assert "WK034403" not in text, "names, not codes"
    related = next(p for p in mail.walk() if p.get_content_type() == "multipart/related")
    html, image = related.get_payload()  # type: ignore[misc]
    assert image.get_content_type() == "image/png"
    assert image.get_payload(decode=True).startswith(b"\x89PNG\r\n\x1a\n")
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html.get_content()


async def test_starttls_and_authentication(
    make_settings: SettingsFactory, tls_smtp_server: tuple[SmtpServer, Path]
) -> None:
    server, ca_file = tls_smtp_server
    settings = make_settings(smtp_url=server.url, smtp_allow_plaintext=False, smtp_ca_file=ca_file)
    run = await report_on_demand(settings, "daily", DAY, publish=False)
    assert run.states == {"sent": 3}
    mails = server.mails()
    assert len(mails) == 3
    # An empty day still sends a short mail, without attachment.
    text = mails[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Geen incidenten op 27-11-2026." in text
    assert list(mails[0].iter_attachments()) == []


async def test_starttls_is_required_unless_plaintext_is_allowed(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        smtp_url=f"smtp://user:pw@127.0.0.1:{smtp_server.port}", smtp_allow_plaintext=False
    )
    store = await open_store(settings)
    try:
        for value in known_day():
            await store.upsert_entry(value)
        await Dispatcher(store, settings).ensure_daily(DAY)
        round_ = await OutboxSender(store, settings).send_due()
        assert round_.retrying and not round_.sent
        error = await store.pool.fetchval("SELECT last_error FROM outbox WHERE attempts > 0")
        assert error == "connect: SMTPException"
        assert smtp_server.mails() == [], "no plaintext fallback"
    finally:
        await store.pool.close()


async def test_tombstones_delete_rows_and_unsent_mails_and_versions_only_go_up(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        for value in known_day():
            await store.upsert_entry(value)
        older = known_day()[0] | {"version": 0, "postcode": "9999ZZ"}
        assert not await store.upsert_entry(older)
        assert await store.upsert_entry(known_day()[0]), "the same version again is harmless"
        assert (
            await store.pool.fetchval(
                "SELECT postcode FROM entries WHERE registration_number = $1", IN_DAY[0]
            )
            == "3511AB"
        )
        dispatcher = Dispatcher(store, settings)
        await dispatcher.ensure_daily(DAY)
        assert await store.delete_record("dagmonitor.entries", IN_DAY[0]) == (1, 3)
        assert await store.pool.fetchval("SELECT count(*) FROM outbox") == 0
        # The next run renders the day again, without the deleted entry.
        outcome = await dispatcher.ensure_daily(DAY)
        assert (outcome.stored, outcome.records) == (3, 3)
        await OutboxSender(store, settings).send_due()
        assert len(smtp_server.mails()) == 3
        assert "Voorbeeldstraat" not in smtp_server.mails()[0].as_string()
        # Sent mails hold no body; a tombstone leaves their register rows alone.
        assert await store.pool.fetchval("SELECT count(*) FROM outbox WHERE body IS NOT NULL") == 0
        assert await store.delete_record("dagmonitor.entries", IN_DAY[1]) == (1, 0)
        assert await store.pool.fetchval("SELECT count(*) FROM provisions") == 3
    finally:
        await store.pool.close()


async def test_relay_crash_between_publish_and_mark_publishes_once(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    producer = new_producer(settings, "test")
    await producer.start()
    try:
        for value in known_day():
            await store.upsert_entry(value)
        await Dispatcher(store, settings).ensure_daily(DAY)
        await OutboxSender(store, settings).send_due()
        outputs = Outputs(producer, settings, "distributor")
        crashing = ProvisionRelay(
            store, outputs, settings, schema=settings.db_schema, checkpoint=crash_at("published")
        )
        with pytest.raises(SimulatedCrash):
            await crashing.publish_pending()
        assert (
            await store.pool.fetchval("SELECT count(*) FROM provisions WHERE published_at IS NULL")
            == 3
        )
        restarted = ProvisionRelay(store, outputs, settings, schema=settings.db_schema)
        assert await restarted.publish_pending() == 0, "found on the topic, not published again"
        assert (
            await store.pool.fetchval("SELECT count(*) FROM provisions WHERE published_at IS NULL")
            == 0
        )
        ids = {
            r["provision_id"] for r in await store.pool.fetch("SELECT provision_id FROM provisions")
        }
    finally:
        await producer.stop()
        await store.pool.close()

    reader = kafka_clients.consumer(
        settings,
        settings.topic("distribution.provisions"),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await reader.start()
    keys: list[str] = []
    try:
        end = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < end:
            for batch in (await reader.getmany(timeout_ms=300)).values():
                keys += [m.key.decode() for m in batch if m.key and m.key.decode() in ids]
            if len(keys) >= 3:
                await asyncio.sleep(0.5)
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    keys += [m.key.decode() for m in batch if m.key and m.key.decode() in ids]
                break
    finally:
        await reader.stop()
    assert sorted(keys) == sorted(ids), "every provision exactly once on the topic"
