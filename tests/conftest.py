"""Fixtures shared by the whole suite.

Integration tests run against the real local stack (Kafka, PostgreSQL, SMTP sink) that
``dagmonitor up`` starts; the ``stack`` fixture calls it, so a bare ``pytest`` works as well as
``scripts/test.sh``. Every session uses its own topic prefix, so test data never meets a demo's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from dagmonitor.settings import DagmonitorSettings


@pytest.fixture(scope="session")
def stack() -> DagmonitorSettings:
    """Settings pointing at a running local stack (started here when it is not running)."""
    from dagmonitor.platform.stack import LocalStack

    LocalStack().up(echo=lambda _line: None)
    return DagmonitorSettings.load()


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}."


@pytest.fixture(scope="session")
def kafka_settings(stack: DagmonitorSettings, topic_prefix: str) -> Iterator[DagmonitorSettings]:
    """Settings for this session's own topics, created from the topic table."""
    import asyncio

    from dagmonitor.topic_admin import apply_topics

    settings = DagmonitorSettings.load(topic_prefix=topic_prefix)
    asyncio.run(apply_topics(settings.bootstrap_servers, prefix=topic_prefix))
    yield settings
    asyncio.run(_delete_prefixed(settings))


async def _delete_prefixed(settings: DagmonitorSettings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.fixture
async def fresh_settings(stack: DagmonitorSettings) -> DagmonitorSettings:
    """Settings with a topic prefix of this test's own, every topic created."""
    from dagmonitor.topic_admin import apply_topics

    settings = DagmonitorSettings.load(topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    await apply_topics(settings.bootstrap_servers, prefix=settings.topic_prefix)
    return settings
