"""Fixtures shared by the whole suite.

Integration tests run against the real local stack (Kafka, PostgreSQL, SMTP sink) that
``dagmonitor up`` starts; the ``stack`` fixture calls it, so a bare ``pytest`` works as well as
``scripts/test.sh``. Every session uses its own topic prefix, so test data never meets a demo's.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from dagmonitor import kafka_clients
from dagmonitor.covenant import Term
from dagmonitor.settings import DagmonitorSettings
from deploy.k8s.access import TESTS

# The suite connects to the local broker as its own principal (deploy/k8s/access.py), allowed
# only topics, groups and transactional ids starting with "test-"; processes it starts inherit
# it unless a test gives them their own (tests/kafkautil.py: as_service). A broker reused from
# the environment is reached with the environment's credentials.
os.environ.setdefault("DAGMONITOR_KAFKA_SASL_USERNAME", TESTS)

# Every service requires the covenant's term (docs/adr/0018-covenant-term.md). The suite runs
# inside one wide enough for every fixed clock its tests use (the covenant tests set their own).
TEST_TERM = Term(date(2020, 1, 1), date(2099, 12, 31))
os.environ.setdefault("DAGMONITOR_COVENANT_START_DATE", TEST_TERM.start.isoformat())
os.environ.setdefault("DAGMONITOR_COVENANT_END_DATE", TEST_TERM.end.isoformat())


# scripts/test.sh runs the suite in two parts: everything else on two workers (pytest-xdist),
# then these alone, one after the other. Each test of the parallel part has its own topics,
# schemas, SMTP server and ports; these share or disturb more than that.
SERIAL = {
    "tests/integration/test_no_loss.py": "restarts the shared broker",
    "tests/integration/e2e/": "restart the broker and PostgreSQL, or run every service as a "
    "process with timing the assertions depend on",
    "tests/integration/ops/": "whole pipelines with Prometheus; reads what every service logged",
    "tests/integration/test_platform.py": "starts and stops brokers and stacks of its own",
    "tests/integration/classifier/test_pipeline_ingest_classifier.py": "kills the services it "
    "runs mid-stream",
    "tests/integration/ingest/test_fuzz.py": "thousands of records and requests against "
    "running services, with a time bound",
    "tests/integration/retention/test_segment_roll.py": "waits on the broker's log cleaner",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent.parent
    for item in items:
        where = Path(str(item.path)).resolve().relative_to(root).as_posix()
        if any(where.startswith(prefix) for prefix in SERIAL):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="session")
def stack() -> Iterator[DagmonitorSettings]:
    """Settings pointing at a running local stack (started here when it is not running).

    Topics the session creates are deleted at its end, so a broker that serves many test runs
    does not pile up thousands of partitions.
    """
    import asyncio

    from dagmonitor_cli.platform.stack import LocalStack

    local = LocalStack()
    local.up(echo=lambda _line: None)
    settings = DagmonitorSettings.load()
    before = set(asyncio.run(_topics(settings)))
    with _session_marker(local.root) as others_running:
        yield settings
        if others_running():
            return  # their topics were created after ``before`` too: the last session cleans up
    asyncio.run(_delete(settings, [t for t in asyncio.run(_topics(settings)) if t not in before]))


@contextlib.contextmanager
def _session_marker(root: Path) -> Iterator[Callable[[], bool]]:
    """Mark this test session as running on the shared stack; yields "are others running?".

    Two sessions on one stack (a developer's and a helper's) must not delete each other's
    topics at the end; a marker of a process that is gone does not count.
    """
    markers = root / "test-sessions"
    markers.mkdir(parents=True, exist_ok=True)
    mine = markers / str(os.getpid())
    mine.touch()

    def others_running() -> bool:
        for marker in markers.iterdir():
            if marker == mine or not marker.name.isdigit():
                continue
            try:
                os.kill(int(marker.name), 0)
            except ProcessLookupError:
                marker.unlink(missing_ok=True)
            except PermissionError:
                return True
            else:
                return True
        return False

    try:
        yield others_running
    finally:
        mine.unlink(missing_ok=True)


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


@contextlib.asynccontextmanager
async def _fresh() -> AsyncIterator[DagmonitorSettings]:
    """Settings with a topic prefix of their own, every topic created (and deleted after,
    with the internal topics of the same prefix)."""
    from dagmonitor.topic_admin import apply_topics

    settings = DagmonitorSettings.load(topic_prefix=f"test-t{uuid.uuid4().hex[:10]}.")
    await apply_topics(settings)
    try:
        yield settings
    finally:
        await _delete(
            settings, [t for t in await _topics(settings) if t.startswith(settings.topic_prefix)]
        )


@pytest.fixture
async def fresh_settings(stack: DagmonitorSettings) -> AsyncIterator[DagmonitorSettings]:
    """Settings with a topic prefix of this test's own (see ``_fresh``)."""
    async with _fresh() as settings:
        yield settings


@pytest.fixture
async def other_fresh_settings(stack: DagmonitorSettings) -> AsyncIterator[DagmonitorSettings]:
    """A second prefix of this test's own, for two pipelines side by side on one broker."""
    async with _fresh() as settings:
        yield settings
