"""Which topics and consumer groups each service may use: the one ACL table.

The ``KafkaUser`` of each service (``base/<service>/kafkauser.yaml``) is generated from
``ACCESS`` by ``python -m deploy.k8s.generate``. Least privilege: a service reads only what it
consumes (or reads back to recover an outbox), writes only what it produces, and joins only its
own consumer group. A stateful stream service (ingest, classifier) also reads and writes its
own internal topics (table changelogs, the E35 repartition topic: ``topics.INTERNAL_TOPICS``).

tests/unit/ops/test_access.py checks this table against what each service's code subscribes
to and produces; the pipeline test (tests/integration/ops) checks it against what the running
services counted in ``dagmonitor_records_in_total`` / ``dagmonitor_records_out_total``.
"""

from __future__ import annotations

from dataclasses import dataclass

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


_COMPACTED = frozenset(spec.name for spec in topics.compacted_outputs())

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
        # The decision topics are read back by the outbox relay's recovery scan.
        reads=frozenset(
            {
                "approval.requests",
                "approval.decisions",
                "persons.approved",
                "victims.approved",
                "escalations.approved",
                "approval.consents",
                "covenant.term",
                # the evaluation reports sent: a renewal rests on one (ADR 0018)
                "distribution.provisions",
            }
        ),
        writes=frozenset(
            {
                "approval.decisions",
                "persons.approved",
                "victims.approved",
                "escalations.approved",
                "approval.consents",
                "covenant.term",
                DEAD_LETTERS,
            }
        ),
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
