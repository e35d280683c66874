"""The one place Kafka clients are made.

Every producer, consumer and admin client — of the services, the CLI, the benchmarks and the
tests — gets the deployment's connection options from the settings here (bootstrap servers,
and on ``SASL_SSL`` the SCRAM-SHA-512 login and the brokers' CA), so none can forget them.
``options`` are aiokafka's own keyword arguments.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    InvalidProducerEpoch,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from dagmonitor.settings import DagmonitorSettings

PRODUCER_STATE_ERRORS: tuple[type[Exception], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
)
"""Errors after which an idempotent producer never sends again (its producer id and sequence
numbers no longer match the broker's, e.g. after a broker restart: aiokafka #1017): only a new
producer can. Retrying with the same one retries for ever."""


def producer(settings: DagmonitorSettings, **options: Any) -> AIOKafkaProducer:
    """A producer as aiokafka makes it by default, connected as the settings say."""
    return AIOKafkaProducer(**settings.kafka_client_options(), **options)


def reliable_producer(settings: DagmonitorSettings, client_id: str) -> AIOKafkaProducer:
    """The services' producer: idempotent, waiting for every in-sync replica."""
    return producer(settings, client_id=client_id, acks="all", enable_idempotence=True, linger_ms=5)


def consumer(settings: DagmonitorSettings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer (subscribed to ``topics`` when given), connected as the settings say."""
    return AIOKafkaConsumer(*topics, **settings.kafka_client_options(), **options)


def reader(settings: DagmonitorSettings, **options: Any) -> AIOKafkaConsumer:
    """A consumer of no group that commits nothing: it reads the partitions it is assigned
    from the positions it seeks (a restore, a catch-up, a scan)."""
    return consumer(settings, group_id=None, enable_auto_commit=False, **options)


def group_consumer(
    settings: DagmonitorSettings, group: str, service: str, *topics: str, **options: Any
) -> AIOKafkaConsumer:
    """A consumer of the group ``group`` as the services consume: offsets committed only by
    the code (after the work is done), a new group starting at the beginning, and only
    committed transactional records read."""
    return consumer(
        settings,
        *topics,
        group_id=group,
        client_id=f"dagmonitor-{service}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **options,
    )


def admin(settings: DagmonitorSettings, **options: Any) -> AIOKafkaAdminClient:
    """An admin client, connected as the settings say."""
    return AIOKafkaAdminClient(**settings.kafka_client_options(), **options)
