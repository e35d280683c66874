"""Which topics and consumer groups each principal may use: the one principal and ACL table.

Principals (ARCHITECTURE.md, section 9): one per service (``ACCESS``), the external systems and
the admin (``EXTERNAL``), and the test suite's own (local broker only). ``acl_rules`` turns a row
into Kafka ACLs; the ``KafkaUser`` of each principal (``base/<service>/kafkauser.yaml``,
``base/principals/``) is generated from them by ``python -m deploy.k8s.generate``, and
``dagmonitor up`` applies the same rules to the local broker (ADR 0021).

Least privilege: a service reads only what it consumes (or reads back to recover an outbox),
writes only what it produces, and joins only its own consumer group. A stateful stream service
(ingest, classifier) also reads and writes its own internal topics (table changelogs, the E35
repartition topic: ``topics.INTERNAL_TOPICS``).

tests/unit/ops/test_access.py checks this table against what each service's code subscribes
to and produces; the pipeline test (tests/integration/ops) checks it against what the running
services counted in ``dagmonitor_records_in_total`` / ``dagmonitor_records_out_total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dagmonitor import topics

DEAD_LETTERS = "pipeline.deadletter"


@dataclass(frozen=True)
class ServiceAccess:
    """One row: what one service may read and write, in contract topic names."""

    service: str
    reads: frozenset[str]
    """Topics it consumes, or reads back (the outbox relays' recovery scans)."""
    writes: frozenset[str]
    """Topics it produces to (tombstones included)."""
    stateful: bool = False
    """A stream processor with tables: it uses its internal topics of the topic table."""
    group: bool = True
    """It consumes as the consumer group ``dagmonitor-<service>`` (under the topic prefix)."""
    describes: frozenset[str] = frozenset()
    """Topics whose offsets it only looks at (no read, no write): the report completeness
    check (ADR 0010). Internal topics by their topic-table name."""
    describes_groups: frozenset[str] = frozenset()
    """Services whose consumer group's committed offsets it looks at (ADR 0010)."""

    @property
    def principal(self) -> str:
        """The SCRAM user (Strimzi ``KafkaUser``) the service connects as."""
        return f"dagmonitor-{self.service}"

    @property
    def internal_topics(self) -> frozenset[str]:
        """Its internal topics by their topic-table name (read and written)."""
        if not self.stateful:
            return frozenset()
        return frozenset(spec.name for spec in topics.internal(self.service))


_COMPACTED = frozenset(spec.name for spec in topics.compacted_outputs())
_APPROVAL_RELAYED = frozenset(
    {
        "approval.decisions",
        "persons.approved",
        "victims.approved",
        "escalations.approved",
        "approval.consents",
        "covenant.term",
    }
)
"""What the approval service's outbox relay publishes (``services.approval.outbox``)."""

ACCESS: tuple[ServiceAccess, ...] = (
    ServiceAccess(
        "ingest",
        reads=frozenset({"bvh.incidents", "bvh.persons", "municipal.reports"}),
        # bvh.* and municipal.reports: records POSTed over HTTP are published there, as the
        # police's and the municipality's systems would.
        writes=frozenset(
            {
                "bvh.incidents",
                "bvh.persons",
                "municipal.reports",
                "ingest.incidents",
                "ingest.persons",
                "ingest.municipal",
                "ingest.photos",  # PUT /v1/photos/{photo_id}: validated at the HTTP API
                DEAD_LETTERS,
            }
        ),
        stateful=True,
    ),
    ServiceAccess(
        "classifier",
        reads=frozenset(
            {"ingest.incidents", "ingest.persons", "ingest.municipal", "escalations.approved"}
        ),
        writes=frozenset(
            {"dagmonitor.entries", "vehicles.signals", "approval.requests", DEAD_LETTERS}
        ),
        stateful=True,
    ),
    ServiceAccess(
        "approval",
        # The relayed topics are read back by the outbox relay's recovery scan.
        reads=_APPROVAL_RELAYED
        | {
            "approval.requests",
            # the evaluation reports sent: a renewal rests on one (ADR 0018)
            "distribution.provisions",
        },
        writes=_APPROVAL_RELAYED | {DEAD_LETTERS},
    ),
    ServiceAccess(
        "distributor",
        # distribution.provisions is read back by the provision relay's recovery scan.
        reads=frozenset(
            {
                "dagmonitor.entries",
                "persons.approved",
                "victims.approved",
                "vehicles.signals",
                "approval.consents",  # the OM's standing consents (dagmonitor/gates.py)
                "ingest.photos",  # persons' photos, inline in the notices (ADR 0017)
                "distribution.provisions",
                "covenant.term",  # renewals and early ends (ADR 0018)
                # counted for the evaluation report, nothing else kept (ADR 0018)
                "approval.decisions",
                "pipeline.deadletter",
                "retention.events",
            }
        ),
        writes=frozenset({"distribution.provisions", DEAD_LETTERS}),
        describes=frozenset(
            {"bvh.incidents", "ingest.incidents", "dagmonitor-classifier-e35-by-postcode"}
        ),
        describes_groups=frozenset({"ingest", "classifier"}),
    ),
    ServiceAccess(
        "retention",
        # ARCHITECTURE.md section 2: every compacted output topic in, tombstones back on them.
        reads=_COMPACTED,
        writes=_COMPACTED | {"retention.events", DEAD_LETTERS},
    ),
)

BY_SERVICE = {row.service: row for row in ACCESS}


@dataclass(frozen=True)
class ExternalAccess:
    """One principal that is not a service: an external system, the admin, the test suite."""

    principal: str
    about: str
    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    group_prefix: str | None = None
    """Consumer groups it may join: every group whose name starts so (under the prefix)."""
    admin: bool = False
    """Everything on every resource: topic management, ACLs (a super user on the local broker)."""
    sandbox_prefix: str | None = None
    """Everything on topics, groups and transactional ids starting so, no matter the deployment
    prefix: the test suite's own, on the local broker only."""
    local_only: bool = False
    """Not a ``KafkaUser`` of a deployment."""


POLICE_PUBLISHER = "police-publisher"
SUBSCRIBER = "dagmonitor-subscriber"
MUNICIPAL_REPORTING = "municipal-reporting"
ADMIN = "dagmonitor-admin"
TESTS = "dagmonitor-tests"
TEST_PREFIX = "test-"
"""Every topic prefix the test suite uses starts so (tests/conftest.py)."""

SUBSCRIBED = frozenset({"dagmonitor.entries", "escalations.approved"})
"""What a downstream subscriber may read: no personal data; that stays on the e-mail channel the
covenant names ("Deze verstrekking vindt plaats via een email")."""

EXTERNAL: tuple[ExternalAccess, ...] = (
    ExternalAccess(
        POLICE_PUBLISHER,
        "the police systems (BVH) publishing incidents and person notices",
        writes=frozenset(spec.name for spec in topics.TOPICS if spec.name.startswith("bvh.")),
    ),
    ExternalAccess(
        SUBSCRIBER,
        "a downstream municipal system reading what may be shared by subscription",
        reads=SUBSCRIBED,
        group_prefix=f"{SUBSCRIBER}-",
    ),
    ExternalAccess(
        MUNICIPAL_REPORTING,
        "the municipality's reporting system (e.g. Signalen) publishing youth-nuisance reports",
        writes=frozenset({"municipal.reports"}),
    ),
    ExternalAccess(ADMIN, "topic and ACL management (dagmonitor topics apply, up)", admin=True),
    ExternalAccess(
        TESTS,
        "the test suite: its own topics, groups and transactional ids only",
        sandbox_prefix=TEST_PREFIX,
        local_only=True,
    ),
)

Row = ServiceAccess | ExternalAccess
PRINCIPALS: tuple[Row, ...] = (*ACCESS, *EXTERNAL)
BY_PRINCIPAL: dict[str, Row] = {row.principal: row for row in PRINCIPALS}


class Resource(StrEnum):
    """Kafka ACL resource types, as Strimzi spells them."""

    TOPIC = "topic"
    GROUP = "group"
    CLUSTER = "cluster"
    TRANSACTIONAL_ID = "transactionalId"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    """Kafka ACL operations, as Strimzi spells them."""

    ALL = "All"
    READ = "Read"
    WRITE = "Write"
    DESCRIBE = "Describe"


@dataclass(frozen=True)
class AclRule:
    """Operations allowed on one resource pattern (host: any)."""

    resource: Resource
    name: str
    pattern: Pattern
    operations: tuple[Operation, ...]


def _service_rules(row: ServiceAccess, prefix: str) -> list[AclRule]:
    rules = []
    topic, literal = Resource.TOPIC, Pattern.LITERAL
    for name in sorted(row.reads | row.writes):
        operations = [Operation.READ] if name in row.reads else []
        operations += [Operation.WRITE] if name in row.writes else []
        rules.append(AclRule(topic, f"{prefix}{name}", literal, (*operations, Operation.DESCRIBE)))
    for name in sorted(row.internal_topics):
        rules.append(
            AclRule(
                topic,
                f"{prefix}{name}",
                literal,
                (Operation.READ, Operation.WRITE, Operation.DESCRIBE),
            )
        )
    for name in sorted(row.describes):
        rules.append(AclRule(topic, f"{prefix}{name}", literal, (Operation.DESCRIBE,)))
    if row.group:
        rules.append(
            AclRule(Resource.GROUP, f"{prefix}dagmonitor-{row.service}", literal, (Operation.READ,))
        )
    for service in sorted(row.describes_groups):
        rules.append(
            AclRule(Resource.GROUP, f"{prefix}dagmonitor-{service}", literal, (Operation.DESCRIBE,))
        )
    return rules


def _external_rules(row: ExternalAccess, prefix: str) -> list[AclRule]:
    if row.admin:
        everything = (Operation.ALL,)
        return [
            AclRule(Resource.CLUSTER, "kafka-cluster", Pattern.LITERAL, everything),
            *(
                AclRule(kind, "*", Pattern.LITERAL, everything)
                for kind in (Resource.TOPIC, Resource.GROUP, Resource.TRANSACTIONAL_ID)
            ),
        ]
    if row.sandbox_prefix is not None:
        return [
            AclRule(kind, row.sandbox_prefix, Pattern.PREFIXED, (Operation.ALL,))
            for kind in (Resource.TOPIC, Resource.GROUP, Resource.TRANSACTIONAL_ID)
        ]
    rules = []
    for name in sorted(row.reads | row.writes):
        operations = [Operation.READ] if name in row.reads else []
        operations += [Operation.WRITE] if name in row.writes else []
        rules.append(
            AclRule(
                Resource.TOPIC,
                f"{prefix}{name}",
                Pattern.LITERAL,
                (*operations, Operation.DESCRIBE),
            )
        )
    if row.group_prefix is not None:
        rules.append(
            AclRule(
                Resource.GROUP, f"{prefix}{row.group_prefix}", Pattern.PREFIXED, (Operation.READ,)
            )
        )
    return rules


def acl_rules(row: Row, prefix: str = "") -> list[AclRule]:
    """The ACLs of one principal for the deployment with topic prefix ``prefix``.

    Nothing is allowed that is not here (the broker denies by default). Idempotent producers
    need no rule of their own: Write on a topic implies IdempotentWrite (KIP-679). No principal
    uses transactions, so only the admin and the test suite hold transactional-id rules.
    """
    if isinstance(row, ServiceAccess):
        return _service_rules(row, prefix)
    return _external_rules(row, prefix)
