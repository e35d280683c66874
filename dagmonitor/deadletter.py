"""The dead-letter path: bad input is kept, with a reason code, on ``pipeline.deadletter``.

Every service that meets a record it cannot handle calls ``DeadLetters.send`` instead of
raising: the raw bytes, where they came from (topic, partition, offset, key) and a reason code
go to ``pipeline.deadletter``, and ``dagmonitor_dead_letters_total{service,reason}`` counts it.
The ``detail`` is for operators: it names fields and schemas, never the values in them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from dagmonitor.codec import DEAD_LETTER, Codec, default_codec
from dagmonitor.rejection import Reason
from dagmonitor.telemetry import DEAD_LETTERS, get_logger, inject_trace_headers

TOPIC = "pipeline.deadletter"
_log = get_logger(__name__)


class Producer(Protocol):
    """What we need of a Kafka producer (``aiokafka.AIOKafkaProducer`` has it)."""

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> object: ...


@dataclass(frozen=True)
class Source:
    """Where a bad record came from."""

    topic: str
    key: bytes | None = None
    partition: int | None = None
    offset: int | None = None


class DeadLetters:
    """Sends bad records of one service to ``pipeline.deadletter`` (under the topic prefix)."""

    def __init__(
        self,
        producer: Producer,
        *,
        service: str,
        topic_prefix: str = "",
        codec: Codec | None = None,
    ) -> None:
        self._producer = producer
        self._service = service
        self._topic = f"{topic_prefix}{TOPIC}"
        self._codec = codec or default_codec()
        for reason in Reason:
            # Every reason's series exists from the start (at 0), so the first dead letter
            # already shows as an increase to rate() and the alert rules.
            DEAD_LETTERS.labels(service, reason.value)

    async def send(
        self, reason: Reason, detail: str, source: Source, raw: bytes | None
    ) -> dict[str, object]:
        """Publish one dead letter and wait for the broker's ack; returns the record sent."""
        key = source.key.decode("utf-8", "replace") if source.key is not None else None
        record: dict[str, object] = {
            "reason": reason.value,
            "detail": detail,
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
            "source_key": key,
            "raw": raw or b"",
            "service": self._service,
            "failed_at": datetime.now(UTC),
        }
        await self._producer.send_and_wait(
            self._topic,
            self._codec.encode(DEAD_LETTER, record),
            key=source.key,
            headers=inject_trace_headers(),
        )
        DEAD_LETTERS.labels(self._service, reason.value).inc()
        _log.warning(
            "dead_lettered",
            reason=reason.value,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
        )
        return record
