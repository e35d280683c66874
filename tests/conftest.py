"""Fixtures shared by the whole suite.

Integration tests run against the real local stack (Kafka, PostgreSQL, SMTP sink) that
``dagmonitor up`` starts; the ``stack`` fixture calls it, so a bare ``pytest`` works as well as
``scripts/test.sh``. Every session uses its own topic prefix, so test data never meets a demo's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from dagmonitor import kafka_clients
from dagmonitor.settings import DagmonitorSettings


@pytest.fixture(scope="session")
def stack() -> Iterator[DagmonitorSettings]:
    """Settings pointing at a running local stack (started here when it is not running).

    Topics the session creates are deleted at its end, so a broker that serves many test runs
    does not pile up thousands of partitions.
    """
    import asyncio

    from dagmonitor_cli.platform.stack import LocalStack

    LocalStack().up(echo=lambda _line: None)
    settings = DagmonitorSettings.load()
    before = set(asyncio.run(_topics(settings)))
    yield settings
    asyncio.run(_delete(settings, [t for t in asyncio.run(_topics(settings)) if t not in before]))


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}."


@pytest.fixture(scope="session")
def kafka_settings(stack: DagmonitorSettings, topic_prefix: str) -> Iterator[DagmonitorSettings]:
    """Settings for this session's own topics, created from the topic table."""
    import asyncio

    from dagmonitor.topic_admin import apply_topics

    settings = DagmonitorSettings.load(topic_prefix=topic_prefix)
    asyncio.run(apply_topics(settings, prefix=topic_prefix))
    yield settings
    topics = asyncio.run(_topics(settings))
    asyncio.run(_delete(settings, [t for t in topics if t.startswith(topic_prefix)]))


async def _topics(settings: DagmonitorSettings) -> list[str]:

    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def _delete(settings: DagmonitorSettings, names: list[str]) -> None:

    if not names:
        return
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        for start in range(0, len(names), 100):
            await admin.delete_topics(names[start : start + 100])
    finally:
        await admin.close()


@pytest.fixture
async def fresh_settings(stack: DagmonitorSettings) -> AsyncIterator[DagmonitorSettings]:
    """Settings with a topic prefix of this test's own, every topic created (and deleted after,
    with faust's internal topics of the same prefix)."""
    from dagmonitor.topic_admin import apply_topics

    settings = DagmonitorSettings.load(topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    await apply_topics(settings)
    yield settings
    await _delete(
        settings, [t for t in await _topics(settings) if t.startswith(settings.topic_prefix)]
    )
