"""``dagmonitor topics apply``: make the broker's topics match the topic table, idempotently.

Missing topics are created with the table's partitions and configs; existing ones get their
configs set to the table's (AlterConfigs replaces the topic's dynamic configs as a whole, so the
table stays the single source of truth) and their partition count raised when it is lower.
Partitions are never removed: Kafka cannot, and a lower table value is reported instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from dagmonitor import kafka_clients
from dagmonitor.errors import TopicError
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.topics import INTERNAL_TOPICS, TOPICS, TopicSpec

_TOPIC_ALREADY_EXISTS = 36


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class TopicChange:
    """What ``apply_topics`` did to one topic; ``details`` never names record data."""

    topic: str
    action: Action
    details: tuple[str, ...] = ()


async def apply_topics(
    settings: DagmonitorSettings,
    *,
    prefix: str | None = None,
    specs: Iterable[TopicSpec] = TOPICS + INTERNAL_TOPICS,
    replication_factor: int | None = None,
) -> list[TopicChange]:
    """Create or update every topic of ``specs`` on the cluster the settings name, under
    ``prefix`` (default: the settings' topic prefix).

    The replication factor defaults to min(3, brokers in the cluster). Raises ``TopicError``
    with the broker's message when the broker refuses a change.
    """
    admin = kafka_clients.admin(settings, client_id="dagmonitor-topics")
    try:
        await admin.start()
        prefix = settings.topic_prefix if prefix is None else prefix
        return await _apply(admin, list(specs), prefix, replication_factor)
    except KafkaError as exc:
        raise TopicError(f"talking to Kafka at {settings.kafka_bootstrap} failed: {exc}") from exc
    finally:
        await admin.close()


async def _apply(
    admin: AIOKafkaAdminClient,
    specs: list[TopicSpec],
    prefix: str,
    replication_factor: int | None,
) -> list[TopicChange]:
    if replication_factor is None:
        cluster = await admin.describe_cluster()
        replication_factor = max(1, min(3, len(cluster["brokers"])))
    existing = set(await admin.list_topics())
    changes: list[TopicChange] = []
    missing = [spec for spec in specs if spec.physical_name(prefix) not in existing]
    if missing:
        await _create(admin, missing, prefix, replication_factor)
        changes += [TopicChange(s.physical_name(prefix), Action.CREATED) for s in missing]
    present = [spec for spec in specs if spec.physical_name(prefix) in existing]
    if present:
        changes += await _reconcile(admin, present, prefix)
    order = {spec.physical_name(prefix): i for i, spec in enumerate(specs)}
    return sorted(changes, key=lambda change: order[change.topic])


async def _create(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], prefix: str, replication_factor: int
) -> None:
    response = await admin.create_topics(
        [
            NewTopic(
                spec.physical_name(prefix),
                spec.partitions,
                replication_factor,
                topic_configs=spec.configs(),
            )
            for spec in specs
        ]
    )
    for topic, code, message in response.topic_errors:
        # A concurrent `apply` may have created it between our listing and our request.
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            raise TopicError(f"creating topic {topic} failed (error {code}): {message}")
    await _until_visible(admin, {spec.physical_name(prefix): spec.partitions for spec in specs})


async def _until_visible(
    admin: AIOKafkaAdminClient, partitions: dict[str, int], timeout: float = 30.0
) -> None:
    """Return once every created topic shows all its partitions, each with a leader.

    CreateTopics answers before the new metadata has reached every broker listener; a client
    that starts right after (a service, a test) would meet "topic not found in cluster
    metadata" or a partial partition list. ``apply`` returns when the topics are usable.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    waiting = dict(partitions)
    while waiting:
        for entry in await admin.describe_topics(list(waiting)):
            ready = [p for p in entry.get("partitions", ()) if p.get("leader", -1) >= 0]
            if entry.get("error_code", 0) == 0 and len(ready) >= waiting.get(entry["topic"], 0):
                waiting.pop(entry["topic"], None)
        if not waiting:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TopicError(f"created topics not visible after {timeout:.0f} s: {sorted(waiting)}")
        await asyncio.sleep(0.1)


async def _reconcile(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], prefix: str
) -> list[TopicChange]:
    names = [spec.physical_name(prefix) for spec in specs]
    current_configs = await _describe_configs(admin, names)
    partitions = {
        entry["topic"]: len(entry["partitions"]) for entry in await admin.describe_topics(names)
    }
    changes: list[TopicChange] = []
    alter: list[ConfigResource] = []
    grow: dict[str, NewPartitions] = {}
    for spec, name in zip(specs, names, strict=True):
        details: list[str] = []
        wanted = spec.configs()
        current = current_configs.get(name, {})
        differing = sorted(key for key, value in wanted.items() if current.get(key) != value)
        if differing:
            alter.append(ConfigResource(ConfigResourceType.TOPIC, name, configs=wanted))
            details += [f"{key}: {current.get(key)} -> {wanted[key]}" for key in differing]
        have = partitions.get(name, 0)
        if have < spec.partitions:
            grow[name] = NewPartitions(spec.partitions)
            details.append(f"partitions: {have} -> {spec.partitions}")
        elif have > spec.partitions:
            details.append(f"partitions: {have} on the broker, table says {spec.partitions}")
        action = Action.UPDATED if (differing or name in grow) else Action.UNCHANGED
        changes.append(TopicChange(name, action, tuple(details)))
    if alter:
        for response in await admin.alter_configs(alter):
            for code, message, _type, resource in response.resources:
                if code != 0:
                    raise TopicError(f"configuring topic {resource} failed ({code}): {message}")
    if grow:
        response = await admin.create_partitions(grow)
        for topic, code, message in response.topic_errors:
            if code != 0:
                raise TopicError(f"adding partitions to {topic} failed ({code}): {message}")
    if alter or grow:
        await _until_configured(admin, alter, {name: new.total_count for name, new in grow.items()})
    return changes


async def _until_configured(
    admin: AIOKafkaAdminClient,
    altered: list[ConfigResource],
    partitions: dict[str, int],
    timeout: float = 30.0,
) -> None:
    """Return once the broker describes every altered topic with its new configs and every
    grown one with its new partitions.

    AlterConfigs answers once the change is in the metadata log; the broker applies it a moment
    later, and a DescribeConfigs in between still shows the old values (seen here: a
    ``retention.ms`` read back unchanged right after ``apply`` said it was updated). ``apply``
    returns when what it reports is what the broker shows.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    wanted = {resource.name: dict(resource.configs or {}) for resource in altered}
    while wanted:
        current = await _describe_configs(admin, list(wanted))
        for name, configs in list(wanted.items()):
            have = current.get(name, {})
            if all(have.get(key) == value for key, value in configs.items()):
                wanted.pop(name)
        if not wanted:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise TopicError(
                f"altered configs not in effect after {timeout:.0f} s: {sorted(wanted)}"
            )
        await asyncio.sleep(0.1)
    if partitions:
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        await _until_visible(admin, partitions, timeout=remaining or 1.0)


async def _describe_configs(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, dict[str, str]]:
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise TopicError(
                    f"reading the configs of {resource['resource_name']} failed: "
                    f"{resource['error_message']}"
                )
            configs[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
            }
    return configs
