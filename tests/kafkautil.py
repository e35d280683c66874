"""Small helpers for integration tests that read and write real topics."""

from __future__ import annotations

import asyncio
from typing import Any

from dagmonitor import kafka_clients
from dagmonitor.codec import default_codec
from dagmonitor.settings import DagmonitorSettings


async def produce(
    settings: DagmonitorSettings, topic: str, items: list[tuple[bytes | None, bytes | None]]
) -> None:
    """Send (key, value) pairs to a contract topic, in order, and wait for the acks."""
    producer = kafka_clients.producer(settings, acks="all")
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(settings.topic(topic), value, key=key)
    finally:
        await producer.stop()


async def read_all(
    settings: DagmonitorSettings,
    topic: str,
    *,
    expect: int | None = None,
    idle: float = 2.0,
    timeout: float = 60.0,
) -> list[tuple[str | None, dict[str, Any] | None]]:
    """Every (key, decoded value) on a topic from the beginning.

    Reads until ``expect`` records arrived, or (without ``expect``) until nothing new came for
    ``idle`` seconds.
    """
    codec = default_codec()
    consumer = kafka_clients.consumer(
        settings,
        settings.topic(topic),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[tuple[str | None, dict[str, Any] | None]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = loop.time()
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for m in messages:
                    key = m.key.decode() if m.key is not None else None
                    value = None if m.value is None else codec.decode(m.value).record
                    records.append((key, value))
                    last = loop.time()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and loop.time() - last > idle:
                break
    finally:
        await consumer.stop()
    return records


async def grant_services(settings: DagmonitorSettings) -> list[Any]:
    """Create the five services' own ACLs (deploy/k8s/access.py) for the test deployment of
    ``settings.topic_prefix``, so its service processes can run as their own principals."""
    from dagmonitor_cli.platform.principals import apply_acls
    from deploy.k8s.access import ACCESS, BY_SERVICE

    if settings.kafka_credentials_file is None:
        return []  # a broker the stack does not manage: the environment's credentials
    applied = await apply_acls(settings, settings.topic_prefix, ACCESS)
    await until_authorized(settings, BY_SERVICE["ingest"].principal, "bvh.incidents")
    return applied


async def until_authorized(
    settings: DagmonitorSettings, principal: str, topic: str, timeout: float = 15.0
) -> None:
    """Wait until the broker's authoriser has the new ACLs: CreateAcls answers once the
    controller has written them, the broker applies them from the metadata log a moment later,
    and a service started in that moment is refused its topics and exits."""
    name = settings.topic(topic)
    admin = kafka_clients.admin(settings.as_principal(principal))
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            described = await admin.describe_topics([name])
            if all(t["error_code"] == 0 for t in described):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{principal} still refused {name}: {described}")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


def as_service(settings: DagmonitorSettings, service: str) -> dict[str, str]:
    """Environment of a service process connecting as its own principal (after
    ``grant_services``); its topics come from ``apply_topics``, as in production."""
    from deploy.k8s.access import BY_SERVICE

    if settings.kafka_credentials_file is None:
        return {}
    return {
        "DAGMONITOR_KAFKA_SASL_USERNAME": BY_SERVICE[service].principal,
        "DAGMONITOR_KAFKA_DECLARE_TOPICS": "false",
    }
