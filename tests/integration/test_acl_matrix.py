"""The principal table on the real broker: every principal x every topic x every operation.

The ACLs of every principal of ``deploy/k8s/access.py`` are created for a deployment of this
test's own prefix, exactly as ``dagmonitor up`` creates them for the stack's. Then each
principal tries, on each topic of the topic table (internal topics included): describe
(metadata), read (fetch), write (produce) and idempotent write (an idempotent producer), and on
each consumer group it might use: join. Expected is what the table's rows say (reads, writes,
describes, groups), not what the rules made of them, so a wrong rule fails here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiokafka.errors import KafkaError
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.group import JoinGroupRequest

from dagmonitor import kafka_clients, topics
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.topic_admin import apply_topics
from dagmonitor_cli.platform.principals import apply_acls, remove_acls
from deploy.k8s.access import ACCESS, PRINCIPALS, SUBSCRIBER, ExternalAccess, Row, ServiceAccess
from tests.kafkautil import until_authorized

pytestmark = pytest.mark.integration

TOPIC_OPERATIONS = ("describe", "read", "write", "idempotent write")
ALL_TOPICS = [spec.name for spec in topics.TOPICS + topics.INTERNAL_TOPICS]
GROUPS = [f"dagmonitor-{row.service}" for row in ACCESS] + [
    f"{SUBSCRIBER}-town-hall",
    "someone-else",
]
_MEMBER_ID_REQUIRED = 79
_GROUP_AUTHORIZATION_FAILED = 30
_TOPIC_AUTHORIZATION_FAILED = 29


def _everything(row: Row, physical: str) -> bool:
    if not isinstance(row, ExternalAccess):
        return False
    return row.admin or (row.sandbox_prefix is not None and physical.startswith(row.sandbox_prefix))


def expected(row: Row, topic: str, operation: str, prefix: str) -> bool:
    """What the table says ``row`` may do with ``topic`` (a contract or internal name)."""
    if _everything(row, f"{prefix}{topic}"):
        return True
    own = row.internal_topics if isinstance(row, ServiceAccess) else frozenset()
    reads, writes = row.reads | own, row.writes | own
    if operation == "describe":
        describes = row.describes if isinstance(row, ServiceAccess) else frozenset()
        return topic in reads | writes | describes
    if operation == "read":
        return topic in reads
    return topic in writes  # write and idempotent write


def expected_join(row: Row, group: str, prefix: str) -> bool:
    if _everything(row, f"{prefix}{group}"):
        return True
    if isinstance(row, ServiceAccess):
        return row.group and group == f"dagmonitor-{row.service}"
    return row.group_prefix is not None and group.startswith(row.group_prefix)


@dataclass
class Matrix:
    prefix: str
    settings: DagmonitorSettings
    """The test suite's settings under the matrix's prefix."""


@pytest.fixture(scope="module")
async def matrix(stack: DagmonitorSettings) -> AsyncIterator[Matrix]:
    if stack.kafka_credentials_file is None:
        pytest.skip("the principals exist on the local stack's broker only")
    prefix = f"test-acl{uuid.uuid4().hex[:8]}."
    settings = stack.model_copy(update={"topic_prefix": prefix})
    await apply_topics(settings)
    applied = await apply_acls(stack, prefix)
    for row in PRINCIPALS:  # CreateAcls answers before the broker applies them (kafkautil)
        if row.reads | row.writes:
            await until_authorized(settings, row.principal, sorted(row.reads | row.writes)[0])
    # One record on partition 0 of every topic, so an allowed read answers at once.
    producer = kafka_clients.producer(settings, acks="all")
    await producer.start()
    try:
        for name in ALL_TOPICS:
            await producer.send_and_wait(f"{prefix}{name}", b"seed", key=b"seed", partition=0)
    finally:
        await producer.stop()
    yield Matrix(prefix, settings)
    await remove_acls(stack, applied, prefix)


async def _describe(settings: DagmonitorSettings, names: list[str]) -> dict[str, bool]:
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        entries = await admin.describe_topics(names)
        codes = {entry["topic"]: entry["error_code"] for entry in entries}
    finally:
        await admin.close()
    assert set(codes.values()) <= {0, _TOPIC_AUTHORIZATION_FAILED}, codes
    return {name: codes[name] == 0 for name in names}


async def _read(settings: DagmonitorSettings, names: list[str]) -> dict[str, bool]:
    """One Fetch of partition 0 of every topic from offset 0 (what a consumer sends)."""
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        node = next(iter(admin._client.cluster.brokers())).nodeId
        request = FetchRequest(100, 1, 1 << 20, 0, [(name, [(0, 0, 1 << 16)]) for name in names])
        response = await admin._client.send(node, request)
    finally:
        await admin.close()
    codes = {topic: partitions[0][1] for topic, partitions in response.topics}
    assert set(codes.values()) <= {0, _TOPIC_AUTHORIZATION_FAILED}, codes
    return {name: codes[name] == 0 for name in names}


async def _write(settings: DagmonitorSettings, names: list[str], idempotent: bool) -> dict:
    producer = kafka_clients.producer(
        settings, acks="all" if idempotent else 1, enable_idempotence=idempotent
    )
    try:
        await producer.start()
    except KafkaError as exc:
        # No Write anywhere: the broker refuses the idempotent producer's id (InitProducerId).
        assert idempotent and "Authorization" in type(exc).__name__, exc
        await producer.stop()
        return dict.fromkeys(names, False)
    results = {}
    try:
        for name in names:
            try:
                await asyncio.wait_for(
                    producer.send_and_wait(name, b"probe", key=b"probe", partition=0), 30
                )
                results[name] = True
            except KafkaError as exc:
                assert "Authorization" in type(exc).__name__, exc
                results[name] = False
    finally:
        await producer.stop()
    return results


async def _join(settings: DagmonitorSettings, groups: list[str]) -> dict[str, bool]:
    """JoinGroup with no member id: an authorised caller is told to come back with one."""
    admin = kafka_clients.admin(settings)
    await admin.start()
    results = {}
    try:
        node = next(iter(admin._client.cluster.brokers())).nodeId
        for group in groups:
            request = JoinGroupRequest(
                group, 10_000, 10_000, "", None, "consumer", [("range", b"")]
            )
            response = await admin._client.send(node, request)
            code = response.error_code
            assert code in (0, _MEMBER_ID_REQUIRED, _GROUP_AUTHORIZATION_FAILED), (group, code)
            results[group] = code != _GROUP_AUTHORIZATION_FAILED
    finally:
        await admin.close()
    return results


async def test_every_principal_may_do_exactly_what_the_table_says(
    matrix: Matrix, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = matrix.prefix
    physical = [f"{prefix}{name}" for name in ALL_TOPICS]
    cells = allowed = 0
    wrong: list[str] = []
    for row in PRINCIPALS:
        settings = matrix.settings.as_principal(row.principal)
        observed = {
            "describe": await _describe(settings, physical),
            "read": await _read(settings, physical),
            "write": await _write(settings, physical, idempotent=False),
            "idempotent write": await _write(settings, physical, idempotent=True),
        }
        for operation in TOPIC_OPERATIONS:
            for name in ALL_TOPICS:
                cells += 1
                want = expected(row, name, operation, prefix)
                allowed += want
                if observed[operation][f"{prefix}{name}"] != want:
                    verdict = "refused" if want else "allowed"
                    wrong.append(f"{row.principal} {operation} {name}: {verdict}")
        joined = await _join(settings, [f"{prefix}{group}" for group in GROUPS])
        for group in GROUPS:
            cells += 1
            want = expected_join(row, group, prefix)
            allowed += want
            if joined[f"{prefix}{group}"] != want:
                wrong.append(f"{row.principal} join {group}: {'refused' if want else 'allowed'}")
    with capsys.disabled():
        print(
            f"\nACL matrix: {len(PRINCIPALS)} principals x {len(ALL_TOPICS)} topics x "
            f"{len(TOPIC_OPERATIONS)} operations + {len(PRINCIPALS)} x {len(GROUPS)} group joins "
            f"= {cells} cells ({allowed} allowed, {cells - allowed} refused by the table): "
            f"{cells - len(wrong)} as the table says, {len(wrong)} not"
        )
    assert cells == len(PRINCIPALS) * (len(ALL_TOPICS) * len(TOPIC_OPERATIONS) + len(GROUPS))
    assert not wrong, "\n".join(wrong)
