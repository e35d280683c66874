"""The subscriber kit against the secured broker: ``dagmonitor subscribe`` as the subscriber
principal, with only the subscriber's ACLs in place for this test's deployment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.errors import GroupAuthorizationFailedError

from dagmonitor import kafka_clients
from dagmonitor.codec import ESCALATION, default_codec
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.topic_admin import apply_topics
from dagmonitor_cli.platform.principals import apply_acls, remove_acls
from deploy.k8s.access import BY_PRINCIPAL, SUBSCRIBER
from tests.kafkautil import produce, until_authorized
from tests.samples import escalation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def deployment(stack: DagmonitorSettings) -> AsyncIterator[DagmonitorSettings]:
    if stack.kafka_credentials_file is None:
        pytest.skip("the subscriber principal exists on the local stack's broker only")
    settings = stack.model_copy(update={"topic_prefix": f"test-sub{uuid.uuid4().hex[:8]}."})
    await apply_topics(settings)
    applied = await apply_acls(stack, settings.topic_prefix, [BY_PRINCIPAL[SUBSCRIBER]])
    await until_authorized(settings, SUBSCRIBER, "escalations.approved")
    codec = default_codec()
    await produce(
        settings,
        "escalations.approved",
        [
            *((pc.encode(), codec.encode(ESCALATION, escalation(pc))) for pc in ("3511", "3512")),
            (b"3511", None),  # withdrawn: the subscriber deletes its copy
        ],
    )
    yield settings
    await remove_acls(stack, applied, settings.topic_prefix)


def _subscribe(settings: DagmonitorSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGMONITOR_KAFKA_SASL_USERNAME"}
    env["DAGMONITOR_TOPIC_PREFIX"] = settings.topic_prefix
    return subprocess.run(
        [sys.executable, "-m", "dagmonitor_cli", "subscribe", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_subscribe_prints_decoded_lines_and_continues_from_the_committed_position(
    deployment: DagmonitorSettings,
) -> None:
    first = _subscribe(deployment, "escalations.approved", "--group", "town-hall", "--max", "2")
    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert [line["key"] for line in lines] == ["3511", "3512"]
    assert lines[0]["value"]["postcode"] == "3511"
    assert lines[0]["value"]["valid_until"].startswith("2026-12-01")
    assert "subscribe: 2 records of escalations.approved printed" in first.stderr
    assert "3511" not in first.stderr, "progress never shows record contents"

    rest = _subscribe(deployment, "escalations.approved", "--group", "town-hall", "--idle", "3")
    assert rest.returncode == 0, rest.stderr
    tombstone = [json.loads(line) for line in rest.stdout.splitlines()]
    assert [(t["key"], t["value"]) for t in tombstone] == [("3511", None)]

    other = _subscribe(deployment, "escalations.approved", "--group", "archive", "--idle", "3")
    assert len(other.stdout.splitlines()) == 3, "a new group starts at the beginning"


def test_subscribe_refuses_topics_with_personal_data(deployment: DagmonitorSettings) -> None:
    result = _subscribe(deployment, "persons.approved", "--idle", "1")
    assert result.returncode == 1
    assert "not for subscribers" in result.stderr
    assert result.stdout == ""


async def test_the_subscriber_principal_cannot_use_a_group_outside_its_prefix(
    deployment: DagmonitorSettings,
) -> None:
    """The broker, not the kit, enforces the group prefix: a group named otherwise is refused."""
    settings = deployment.as_principal(SUBSCRIBER)
    consumer = kafka_clients.consumer(
        settings,
        settings.topic("escalations.approved"),
        group_id=f"{settings.topic_prefix}dagmonitor-distributor",
        auto_offset_reset="earliest",
    )
    with pytest.raises(GroupAuthorizationFailedError):
        await consumer.start()
        try:
            await asyncio.wait_for(consumer.getmany(timeout_ms=5000), 30)
        finally:
            await consumer.stop()
