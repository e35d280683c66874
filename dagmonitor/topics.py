"""The topic table (ARCHITECTURE.md, section 3): the one place that names every topic.

Topic creation (``dagmonitor topics apply``), the Kubernetes ``KafkaTopic`` resources, the
ACLs and the tests all derive from ``TOPICS``. A topic's key is a UTF-8 string; its value is
the Avro single-object encoding of ``schema`` (see ``dagmonitor.codec``), ``None`` being a
tombstone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

DAY_MS = 24 * 60 * 60 * 1000


class Cleanup(StrEnum):
    """Kafka ``cleanup.policy`` values the table uses."""

    DELETE = "delete"
    COMPACT_DELETE = "compact,delete"
    COMPACT = "compact"  # state that is not provided data and must not lapse by age


# Every topic's active segment is closed at least daily, so that time retention deletes a
# record at most a day after its ``retention.ms``: a topic's longest life (below) is its
# retention plus a day, and no topic that carries personal data lives longer than 365 days.
SEGMENT_MS = DAY_MS

# Compaction settings for the compacted output topics. The retention sweep writes tombstones
# 365 days after provision; these keep the tombstoned value from lingering on disk:
# a segment rolls at least daily (segment.ms), a dirty key is compacted within a day at most
# (max.compaction.lag.ms), the cleaner starts early (min.cleanable.dirty.ratio), and the
# tombstone itself is kept a week after compaction (delete.retention.ms), as long as the input
# topics keep data, so a consumer that was down for days still sees it and deletes its copy.
_COMPACTION = MappingProxyType(
    {
        "max.compaction.lag.ms": str(DAY_MS),
        "min.cleanable.dirty.ratio": "0.1",
        "delete.retention.ms": str(7 * DAY_MS),
    }
)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One row of the topic table.

    ``name`` is the contract name; the physical name adds the deployment's topic prefix.
    ``key`` says what the record key is, ``schema`` the full Avro name of the value.
    """

    name: str
    key: str
    schema: str
    partitions: int
    cleanup: Cleanup
    retention_days: int
    extra_config: Mapping[str, str] = field(default_factory=dict)
    owner: str | None = None
    """For an internal topic: the one service that writes and reads it."""

    @property
    def retention_ms(self) -> int:
        return self.retention_days * DAY_MS

    @property
    def compacted(self) -> bool:
        return self.cleanup is Cleanup.COMPACT_DELETE

    def configs(self) -> dict[str, str]:
        """The topic-level Kafka configs this row prescribes."""
        configs = {
            "cleanup.policy": self.cleanup.value,
            "retention.ms": str(self.retention_ms),
            "segment.ms": str(SEGMENT_MS),
        }
        if self.compacted:
            configs.update(_COMPACTION)
        configs.update(self.extra_config)
        return configs

    @property
    def longest_life_ms(self) -> int | None:
        """How long a record stays on the broker at most by time retention alone: its
        ``retention.ms`` plus the segment lifetime (a segment is deleted once its newest record
        is older than ``retention.ms``). None for a compact-only topic (no time retention)."""
        if self.cleanup is Cleanup.COMPACT:
            return None
        return self.retention_ms + int(self.configs()["segment.ms"])

    def physical_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"


_BVH = "nl.politie.bvh"
_OUT = "nl.dagmonitor"


TOPICS: tuple[TopicSpec, ...] = (
    # Police-facing input: the police systems publish here (BVH = Basisvoorziening Handhaving).
    TopicSpec(
        "bvh.incidents", "registration_number", f"{_BVH}.IncidentEvent", 6, Cleanup.DELETE, 7
    ),
    TopicSpec("bvh.persons", "notice_id", f"{_BVH}.PersonNotice", 3, Cleanup.DELETE, 7),
    # The municipality's reporting system (e.g. Signalen) publishes its youth-nuisance reports
    # here: counted towards an E35 escalation, never shared (ADR 0013).
    TopicSpec("municipal.reports", "report_id", f"{_OUT}.MunicipalReport", 3, Cleanup.DELETE, 14),
    # Validated and de-duplicated by ingest.
    TopicSpec(
        "ingest.incidents", "registration_number", f"{_BVH}.IncidentEvent", 6, Cleanup.DELETE, 7
    ),
    TopicSpec("ingest.persons", "notice_id", f"{_BVH}.PersonNotice", 3, Cleanup.DELETE, 7),
    TopicSpec("ingest.municipal", "report_id", f"{_OUT}.MunicipalReport", 3, Cleanup.DELETE, 14),
    # Persons' photos the police PUT at ingest (decoded, stripped of metadata), for the notice
    # mails; the distributor keeps each with the notices that refer to it (ADR 0017). Delete,
    # not compacted: the topic holds a photo no longer than an approval may take.
    TopicSpec("ingest.photos", "photo_id", f"{_OUT}.Photo", 3, Cleanup.DELETE, 14),
    TopicSpec("pipeline.deadletter", "source key", f"{_OUT}.DeadLetter", 3, Cleanup.DELETE, 7),
    # What the covenant lets the municipality receive; kept no longer than its period (at most
    # 365 days, services/retention/periods.csv) by the sweep's tombstones; the 364-day time
    # retention (365 with the segment's day) is only a safety net behind them.
    TopicSpec(
        "dagmonitor.entries",
        "registration_number",
        f"{_OUT}.DagmonitorEntry",
        6,
        Cleanup.COMPACT_DELETE,
        364,
    ),
    TopicSpec(
        "vehicles.signals",
        'registration_number + ":" + plate_ref',
        f"{_OUT}.VehicleSignal",
        3,
        Cleanup.COMPACT_DELETE,
        364,
    ),
    TopicSpec(
        "approval.requests", "request_id", f"{_OUT}.ApprovalRequest", 3, Cleanup.COMPACT_DELETE, 364
    ),
    TopicSpec(
        "approval.decisions", "request_id", f"{_OUT}.ApprovalDecision", 3, Cleanup.DELETE, 364
    ),
    TopicSpec(
        "persons.approved", "request_id", f"{_OUT}.ApprovedPerson", 3, Cleanup.COMPACT_DELETE, 364
    ),
    TopicSpec(
        "victims.approved", "request_id", f"{_OUT}.ApprovedVictim", 3, Cleanup.COMPACT_DELETE, 364
    ),
    TopicSpec(
        "escalations.approved", "postcode", f"{_OUT}.Escalation", 3, Cleanup.COMPACT_DELETE, 364
    ),
    # The OM's standing consents, the current one per category (dagmonitor/gates.py). Not
    # provided data (no citizen in it), so not a compacted output the retention sweep owns;
    # compaction only: a category's current consent must never lapse by age on the topic, or
    # a distributor rebuilding from it would hold what the OM allowed (retention.ms unused).
    TopicSpec("approval.consents", "category", f"{_OUT}.Consent", 1, Cleanup.COMPACT, 366),
    # The covenant's term after recorded renewals and early ends (dagmonitor/covenant.py),
    # published by the approval service; every service that provides reads it. State, not
    # provided data: compaction only, so a renewal never lapses by age on the topic.
    TopicSpec("covenant.term", "start_date", f"{_OUT}.CovenantTerm", 1, Cleanup.COMPACT, 366),
    # The provision register's stream (record keys, recipient): a year from the provision,
    # then only the distributor's pseudonymised register remains (ADR 0019).
    TopicSpec(
        "distribution.provisions", "provision_id", f"{_OUT}.Provision", 3, Cleanup.DELETE, 364
    ),
    # A deletion's audit event names the deleted record's key: kept a week, as long as a
    # tombstone (delete.retention.ms), for consumers to act on; the counts stay in the
    # retention service's sweep log.
    TopicSpec(
        "retention.events", 'topic + ":" + key', f"{_OUT}.RetentionEvent", 3, Cleanup.DELETE, 7
    ),
)

BY_NAME: Mapping[str, TopicSpec] = MappingProxyType({spec.name: spec for spec in TOPICS})


def _changelog(service: str, table: str, follows: str) -> TopicSpec:
    """A table's changelog: partitioned like the input it follows, values JSON."""
    source = BY_NAME[follows]
    return TopicSpec(
        f"dagmonitor-{service}-{table}-changelog",
        source.key,
        "json",
        source.partitions,
        Cleanup.COMPACT_DELETE,
        364,
        owner=service,
    )


# Internal topics of the stateful services (``dagmonitor.processor``): the changelogs of their
# tables and the classifier's E35 repartition topic. Their physical name is the service's
# consumer group (which carries the prefix) plus a suffix.
INTERNAL_TOPICS: tuple[TopicSpec, ...] = (
    _changelog("ingest", "incident-versions", "bvh.incidents"),
    _changelog("ingest", "notice-versions", "bvh.persons"),
    _changelog("classifier", "incident-outputs", "ingest.incidents"),
    _changelog("classifier", "notice-outputs", "ingest.persons"),
    # The postcode area each municipal report counts in, so a withdrawal or a move uncounts it.
    _changelog("classifier", "municipal-reports", "ingest.municipal"),
    # The E35 windows per postcode area, partitioned like the E35 topic below. (Both have
    # escalations.approved's 3 partitions, as when they shared its partitions; the approved
    # escalations are now a view every instance holds whole, ADR 0016. A new count would
    # re-key the windows.)
    _changelog("classifier", "e35-windows", "escalations.approved"),
    # E35 reports (police and municipal) keyed by postcode area, carrying only what the window
    # counts (key, time, district); needed only until the classifier has counted them.
    TopicSpec(
        "dagmonitor-classifier-e35-by-postcode",
        "postcode",
        "json",
        BY_NAME["escalations.approved"].partitions,
        Cleanup.DELETE,
        7,
        owner="classifier",
    ),
)


def internal(service: str) -> tuple[TopicSpec, ...]:
    """The internal topics of ``service``."""
    return tuple(spec for spec in INTERNAL_TOPICS if spec.owner == service)


def get(name: str) -> TopicSpec:
    """The row for a contract topic name; a ``KeyError`` names the unknown topic."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no topic {name!r} in the topic table") from None


def compacted_outputs() -> tuple[TopicSpec, ...]:
    """The compacted output topics: every record on them is 'provided' and expires."""
    return tuple(spec for spec in TOPICS if spec.compacted)


def markdown_table() -> str:
    """The topic table as Markdown rows, as ``docs/architecture.md`` shows it."""
    lines = [
        "| topic | key | value | partitions | cleanup | retention |",
        "|---|---|---|---:|---|---|",
    ]
    for spec in TOPICS + INTERNAL_TOPICS:
        name = f"`{spec.name}`" + (f" (internal, {spec.owner})" if spec.owner else "")
        value = spec.schema.rsplit(".", 1)[-1]
        lines.append(
            f"| {name} | {spec.key} | {value} | {spec.partitions} | {spec.cleanup.value} "
            f"| {spec.retention_days} days |"
        )
    return "\n".join(lines)
