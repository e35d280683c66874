"""Fixtures for the approval service against the real PostgreSQL and Kafka.

Each app gets its own PostgreSQL schema (dropped afterwards) and this session's topic prefix;
records are told apart by their request ids. Officers' tokens are signed with a key made
here, which the app under test trusts through ``approval_jwt_public_keys``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dagmonitor import kafka_clients
from dagmonitor.codec import APPROVAL_REQUEST, default_codec
from dagmonitor.outbox_relay import OUTBOX_ID_HEADER, OUTBOX_SOURCE_HEADER, partitions_of
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import health_app
from services.approval import domain
from services.approval.app import ApprovalApp
from services.approval.config import ApprovalSettings
from services.approval.outbox import RELAY_TOPICS
from services.approval.tokens import issue_token

ISSUER = "https://login.politie.example/realms/dagmonitor"
AUDIENCE = "dagmonitor-approval-test"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Officers:
    """Issues tokens as the configured issuer would (and some it never would)."""

    key: ec.EllipticCurvePrivateKey
    stranger: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def token(
        self,
        roles: Iterable[str],
        sub: str = "officer-1",
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        lifetime: timedelta = timedelta(minutes=30),
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        return issue_token(
            key or self.key,
            issuer=issuer,
            audience=audience,
            sub=sub,
            roles=roles,
            lifetime=lifetime,
            now=datetime.now(UTC),
        )

    def header(self, roles: Iterable[str], sub: str = "officer-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(roles, sub)}"}

    @property
    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


@pytest.fixture(scope="session")
def officers() -> Officers:
    return Officers(ec.generate_private_key(ec.SECP256R1()))


APPROVAL_TOPICS = (
    "approval.requests",
    "distribution.provisions",
    "pipeline.deadletter",
    *RELAY_TOPICS,
)


@pytest.fixture(scope="session")
def approval_kafka(stack: DagmonitorSettings) -> Iterator[DagmonitorSettings]:
    """Settings with the approval tests' own topic prefix, so that the requests, decisions
    and dead letters written here never meet another service's tests in the session's
    topics (and theirs never reach these)."""
    from dagmonitor.topic_admin import apply_topics
    from dagmonitor.topics import get

    settings = DagmonitorSettings.load(topic_prefix=f"test-approval-{uuid.uuid4().hex[:8]}.")
    specs = [get(name) for name in APPROVAL_TOPICS]
    asyncio.run(apply_topics(settings, specs=specs))
    yield settings
    asyncio.run(_delete_topics(settings))


async def _delete_topics(settings: DagmonitorSettings) -> None:

    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic(name) for name in APPROVAL_TOPICS])
    finally:
        await admin.close()


def approval_settings(
    base: DagmonitorSettings, officers: Officers, **overrides: Any
) -> ApprovalSettings:
    """Settings for one app: own schema, this session's topics, the test issuer's key."""
    values: dict[str, Any] = {
        "topic_prefix": base.topic_prefix,
        "db_schema": f"approval_{uuid.uuid4().hex[:8]}",
        "approval_jwt_issuer": ISSUER,
        "approval_jwt_audience": AUDIENCE,
        "approval_jwt_public_keys": officers.public_pem,
        "approval_relay_interval_seconds": 0.05,
        "approval_relay_recovery_margin_seconds": 60,
        "approval_sweep_interval_seconds": 0.2,
    }
    values.update(overrides)
    return ApprovalSettings.load(**values)


async def drop_schema(settings: ApprovalSettings) -> None:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {settings.db_schema} CASCADE")
    finally:
        await conn.close()


@asynccontextmanager
async def started_app(
    settings: ApprovalSettings, *, clock: Callable[[], datetime] | None = None
) -> AsyncIterator[ApprovalApp]:
    """An ApprovalApp started (migrated, connected) but not running its loops."""
    app = ApprovalApp(settings, clock=clock or FakeClock(), group=f"test-{uuid.uuid4().hex[:8]}")
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        await drop_schema(settings)


@asynccontextmanager
async def http_client(app: ApprovalApp) -> AsyncIterator[TestClient[Any, Any]]:
    """A real HTTP client against the app's routes served on localhost."""
    server = TestServer(health_app(app.checks(), app.api.routes()), host="127.0.0.1")
    async with TestClient(server) as client:
        yield client


async def seed(app: ApprovalApp, record: dict[str, Any]) -> str:
    """Store a request as if consumed from approval.requests; returns its id."""
    assert app.workflow is not None
    request = domain.parse_request(record)
    raw = default_codec().encode(APPROVAL_REQUEST, record)
    deadline = request.deadline(app.workflow.expiry)
    assert await app.workflow.store.insert_request(request, raw, deadline)
    return request.request_id


async def audit_rows(app: ApprovalApp, request_id: str | None = None) -> list[asyncpg.Record]:
    assert app.pool is not None
    if request_id is None:
        return list(await app.pool.fetch("SELECT * FROM audit_trail ORDER BY id"))
    return list(
        await app.pool.fetch(
            "SELECT * FROM audit_trail WHERE request_id = $1 ORDER BY id", request_id
        )
    )


@dataclass(frozen=True)
class Published:
    topic: str
    key: str
    value: dict[str, Any] | None
    outbox_id: int | None
    source: str | None
    headers: dict[str, str] = field(default_factory=dict)


async def read_topics(
    settings: DagmonitorSettings, names: Iterable[str], *, timeout: float = 20
) -> list[Published]:
    """Every committed record of ``names`` from the beginning up to their current end."""
    codec = default_codec()
    names = list(names)
    producer = kafka_clients.producer(settings)
    await producer.start()
    try:
        partitions = await partitions_of(producer, settings, names)
    finally:
        await producer.stop()
    by_physical = {settings.topic(n): n for n in names}
    consumer = kafka_clients.consumer(
        settings,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp: end for tp, end in ends.items() if end > 0}
        out: list[Published] = []
        async with asyncio.timeout(timeout):
            while remaining:
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset >= ends[tp]:
                            continue
                        headers = {k: v.decode() for k, v in record.headers or ()}
                        value = None
                        if record.value is not None:
                            value = codec.decode(record.value).record
                        out.append(
                            Published(
                                by_physical[tp.topic],
                                record.key.decode() if record.key else "",
                                value,
                                int(headers[OUTBOX_ID_HEADER])
                                if OUTBOX_ID_HEADER in headers
                                else None,
                                headers.get(OUTBOX_SOURCE_HEADER),
                                headers,
                            )
                        )
                for tp in list(remaining):
                    if await consumer.position(tp) >= remaining[tp]:
                        del remaining[tp]
        return out
    finally:
        await consumer.stop()
