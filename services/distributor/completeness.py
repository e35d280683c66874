"""Whether the pipeline has caught up with everything registered before a report was due.

A report is built from the distributor's tables; a lagging or restarting pipeline would give
an incomplete one. Before a scheduled report the distributor waits (bounded) until, stage by
stage, each upstream consumer group has committed what its input held (ADR 0010):

1. ingest has committed, on ``bvh.incidents``, every record produced before the due time;
2. then the classifier has committed ``ingest.incidents`` up to its end at that moment;
3. then the classifier has committed its E35 topic up to its end (E35 entries go that way);
4. then the distributor has committed ``dagmonitor.entries`` up to its end: every entry
   derived from what the police registered before the due time is in the tables.

Committed offsets are the consumers' own word that they finished a record (they commit only
handled records, ADR 0009), so nothing in flight counts as done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from dagmonitor import kafka_clients, topics
from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import get_logger

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Stage:
    """One upstream consumer group and the topics it must have committed."""

    service: str
    topics: tuple[str, ...]
    """Contract names (internal topics by their topic-table name)."""
    bounded_by_due_time: bool = False
    """The first stage waits only for records produced before the due time."""


STAGES: tuple[Stage, ...] = (
    Stage("ingest", ("bvh.incidents",), bounded_by_due_time=True),
    Stage("classifier", ("ingest.incidents",)),
    Stage("classifier", ("dagmonitor-classifier-e35-by-postcode",)),
    Stage("distributor", ("dagmonitor.entries",)),
)


class Completeness:
    """Waits until every stage has caught up, or the wait runs out."""

    def __init__(
        self,
        settings: DagmonitorSettings,
        *,
        stages: Sequence[Stage] = STAGES,
        poll_seconds: float = 1.0,
    ) -> None:
        self._settings = settings
        self._stages = tuple(stages)
        self._poll = poll_seconds

    def _physical(self, name: str) -> str:
        spec = topics.BY_NAME.get(name) or next(s for s in topics.INTERNAL_TOPICS if s.name == name)
        return spec.physical_name(self._settings.topic_prefix)

    async def wait(self, due: datetime, timeout: float) -> bool:
        """True once the pipeline caught up with what was registered before ``due``; False
        when ``timeout`` seconds passed first (the report then goes out provisional)."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._all_stages(due), timeout=timeout)
        except TimeoutError:
            _log.warning(
                "report_pipeline_not_caught_up", waited_s=round(time.monotonic() - started, 1)
            )
            return False
        _log.info("report_pipeline_caught_up", waited_s=round(time.monotonic() - started, 1))
        return True

    async def _all_stages(self, due: datetime) -> None:
        reader = kafka_clients.reader(self._settings)
        admin = kafka_clients.admin(self._settings, client_id="dagmonitor-distributor-completeness")
        await reader.start()
        await admin.start()
        try:
            for stage in self._stages:
                targets = await self._targets(reader, stage, due)
                group = self._settings.group(stage.service)
                while not _reached(await admin.list_consumer_group_offsets(group), targets):
                    await asyncio.sleep(self._poll)
        finally:
            await admin.close()
            await reader.stop()

    async def _targets(
        self, reader: AIOKafkaConsumer, stage: Stage, due: datetime
    ) -> dict[TopicPartition, int]:
        tps: list[TopicPartition] = []
        for name in stage.topics:
            spec = _spec(name)
            physical = spec.physical_name(self._settings.topic_prefix)
            tps += [TopicPartition(physical, p) for p in range(spec.partitions)]
        ends = await reader.end_offsets(tps)
        if not stage.bounded_by_due_time:
            return dict(ends)
        found = await reader.offsets_for_times({tp: int(due.timestamp() * 1000) for tp in tps})
        return {tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in tps}


def _spec(name: str) -> topics.TopicSpec:
    """A row of the topic table, internal topics included."""
    found = topics.BY_NAME.get(name)
    return found or next(spec for spec in topics.INTERNAL_TOPICS if spec.name == name)


def _reached(
    committed: Mapping[TopicPartition, object], targets: Mapping[TopicPartition, int]
) -> bool:
    for tp, target in targets.items():
        if target == 0:
            continue
        meta = committed.get(tp)
        offset = getattr(meta, "offset", -1) if meta is not None else -1
        if offset < target:
            return False
    return True
