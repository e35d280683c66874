"""The covenant's term in the distributor, and the counts its evaluation report needs.

- ``TermGate``: the term in force, from the configured dates and the latest ``covenant.term``
  record of the same covenant (consumed into ``covenant_terms``), so a renewal or an early end
  recorded in the approval service holds here without a redeployment. Outside the term the
  sender sends nothing (``dagmonitor/covenant.py``, docs/adr/0018-covenant-term.md).
- ``facts_of``: what one consumed record of ``approval.decisions``, ``pipeline.deadletter`` or
  ``retention.events`` adds to the evaluation's counts; nothing that names a person, a key or
  a place is kept.
- ``CovenantStore``: the PostgreSQL side of both, and the evaluation's queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from dagmonitor.clock import Clock, local_date, utc_now
from dagmonitor.covenant import TERM_TOPIC, Term, current_term
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.streaming import Incoming
from dagmonitor.telemetry import COVENANT_IN_TERM
from services.distributor.config import DistributorSettings
from services.distributor.evaluation import EvaluationReport, Row
from services.distributor.metrics import COVENANT_DAYS_REMAINING

DECISIONS_TOPIC = "approval.decisions"
DEAD_LETTERS_TOPIC = "pipeline.deadletter"
RETENTION_TOPIC = "retention.events"
FACT_TOPICS: Mapping[str, str] = {
    DECISIONS_TOPIC: "decision",
    DEAD_LETTERS_TOPIC: "dead_letter",
    RETENTION_TOPIC: "retention",
}
"""The topics the evaluation counts from, and the kind of fact each gives."""


@dataclass(frozen=True, slots=True)
class Fact:
    """One counted event: when, what kind, up to three dimensions, and a waiting time."""

    occurred_at: datetime
    kind: str
    dimensions: tuple[str, str, str]
    wait_seconds: float | None = None


def facts_of(record: Incoming) -> Fact | None:
    """The fact one consumed record gives (None for a tombstone).

    A decision: (category, approver role, outcome) and its waiting time; a dead letter:
    (reason, service, source topic); a retention event: (topic, reason).
    """
    value = record.value
    if value is None:
        return None
    kind = FACT_TOPICS[record.topic]
    if kind == "decision":
        requested = value.get("requested_at")
        wait = None
        if requested is not None:
            wait = max(0.0, (value["decided_at"] - requested).total_seconds())
        return Fact(
            value["decided_at"],
            kind,
            (str(value["category"]), str(value["approver_role"]), str(value["decision"])),
            wait,
        )
    if kind == "dead_letter":
        return Fact(
            value["failed_at"],
            kind,
            (str(value["reason"]), str(value["service"]), str(value["source_topic"])),
        )
    return Fact(value["deleted_at"], kind, (str(value["topic"]), str(value["reason"]), ""))


def parse_term(key: str, value: Mapping[str, Any]) -> Term:
    """The term of a consumed ``nl.dagmonitor.CovenantTerm``; RecordRejected when the key is
    not its start date."""
    term = Term.from_record(value)
    if term.start.isoformat() != key:
        raise RecordRejected(Reason.INVALID_FIELD, f"{TERM_TOPIC}: key is not the start date")
    return term


class CovenantStore:
    """The distributor's covenant tables (``covenant_terms``, ``evaluation_facts``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def store_term(self, key: str, value: Mapping[str, Any] | None) -> None:
        """Keep the latest term of a covenant (a lower revision never replaces a higher)."""
        if value is None:
            await self.pool.execute(
                "DELETE FROM covenant_terms WHERE start_date = $1", date.fromisoformat(key)
            )
            return
        term = parse_term(key, value)
        await self.pool.execute(
            "INSERT INTO covenant_terms (start_date, end_date, period_start, ended_at, revision, "
            "event, evaluation_id) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (start_date) DO UPDATE SET end_date = EXCLUDED.end_date, "
            "period_start = EXCLUDED.period_start, ended_at = EXCLUDED.ended_at, "
            "revision = EXCLUDED.revision, event = EXCLUDED.event, "
            "evaluation_id = EXCLUDED.evaluation_id, received_at = now() "
            "WHERE covenant_terms.revision <= EXCLUDED.revision",
            term.start,
            term.end,
            term.current_period_start,
            term.ended_at,
            term.revision,
            term.event.value,
            term.evaluation_id,
        )

    async def recorded_term(self, start: date) -> Term | None:
        row = await self.pool.fetchrow(
            "SELECT start_date, end_date, period_start, ended_at, revision, event, "
            "evaluation_id FROM covenant_terms WHERE start_date = $1",
            start,
        )
        return None if row is None else Term.from_record(row)

    async def evaluation_report(
        self, term: Term, start: datetime, end: datetime, tz: str, *, generated_on: date
    ) -> EvaluationReport:
        """The counts of ``[start, end)``: the distributor's own register and held mails,
        and the facts counted from the topics it consumes. Nothing is counted by place."""
        month = "to_char(({}) AT TIME ZONE $3, 'YYYY-MM')"
        args = (start, end, tz)
        sections: dict[str, list[Row]] = {}
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            sections["provisions"] = _rows(
                await conn.fetch(
                    f"SELECT category, recipient_role, {month.format('sent_at')} AS m, "
                    "count(*) AS n FROM provisions WHERE kind = 'PROVISION' "
                    "AND sent_at >= $1 AND sent_at < $2 GROUP BY 1, 2, 3 ORDER BY 3, 1, 2",
                    *args,
                ),
                3,
            )
            sections["withdrawals"] = _rows(
                await conn.fetch(
                    f"SELECT {month.format('sent_at')} AS m, count(*) AS n FROM provisions "
                    "WHERE kind = 'WITHDRAWAL' AND sent_at >= $1 AND sent_at < $2 "
                    "GROUP BY 1 ORDER BY 1",
                    *args,
                ),
                1,
            )
            sections["held"] = _rows(
                await conn.fetch(
                    "SELECT category, count(*) AS n FROM outbox WHERE blocked_reason = $3 "
                    "AND created_at >= $1 AND created_at < $2 AND state <> 'sent' "
                    "GROUP BY 1 ORDER BY 1",
                    start,
                    end,
                    "outside_term",
                ),
                1,
            )
            sections["decisions"] = await _fact_rows(
                conn, start, end, "decision", "dimension_2", "dimension_1", "dimension_3"
            )
            sections["escalations"] = [
                Row(row.dimensions[2:], row.count, row.median_wait_hours, row.max_wait_hours)
                for row in sections["decisions"]
                if row.dimensions[1] == "YOUTH_NUISANCE_DETAIL"
            ]
            sections["dead_letters"] = await _fact_rows(
                conn, start, end, "dead_letter", "dimension_1", "dimension_2"
            )
            sections["retention"] = await _fact_rows(
                conn, start, end, "retention", "dimension_1", "dimension_2"
            )
        return EvaluationReport(term, generated_on.isoformat(), sections)

    async def add_fact(self, record: Incoming) -> bool:
        """Count one consumed record once (its offset is the identity); False if counted."""
        fact = facts_of(record)
        if fact is None:
            return False
        status = await self.pool.execute(
            "INSERT INTO evaluation_facts (topic, partition, record_offset, occurred_at, kind, "
            "dimension_1, dimension_2, dimension_3, wait_seconds) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            record.topic,
            record.partition,
            record.offset,
            fact.occurred_at,
            fact.kind,
            *fact.dimensions,
            fact.wait_seconds,
        )
        return status != "INSERT 0 0"


_FACTS = (
    "SELECT {dims}, count(*) AS n, "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_seconds) / 3600 AS median, "
    "max(wait_seconds) / 3600 AS longest FROM evaluation_facts "
    "WHERE kind = $3 AND occurred_at >= $1 AND occurred_at < $2 "
    "GROUP BY {group} ORDER BY {group}"
)


async def _fact_rows(
    conn: asyncpg.Connection, start: datetime, end: datetime, kind: str, *dims: str
) -> list[Row]:
    """The evaluation facts of ``kind`` in [start, end), counted by the columns ``dims``."""
    group = ", ".join(str(i) for i in range(1, len(dims) + 1))
    sql = _FACTS.format(dims=", ".join(dims), group=group)
    return _rows(await conn.fetch(sql, start, end, kind), len(dims))


def _rows(records: list[asyncpg.Record], dimensions: int) -> list[Row]:
    out = []
    for r in records:
        values = list(r.values())
        median = r.get("median")
        longest = r.get("longest")
        out.append(
            Row(
                tuple(str(v) for v in values[:dimensions]),
                int(r["n"]),
                float(median) if median is not None else None,
                float(longest) if longest is not None else None,
            )
        )
    return out


class TermGate:
    """Whether the covenant is in force now, as configured and as recorded since."""

    def __init__(
        self, store: CovenantStore, settings: DistributorSettings, *, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    async def term(self) -> Term:
        configured = self._settings.covenant_term
        return current_term(configured, await self._store.recorded_term(configured.start))

    async def in_term(self) -> bool:
        """Whether provision is allowed now; keeps the term gauges current."""
        term = await self.term()
        now = self._clock()
        in_term = term.in_term(now, self._settings.tz)
        COVENANT_IN_TERM.labels("distributor").set(1 if in_term else 0)
        COVENANT_DAYS_REMAINING.set(term.days_remaining(local_date(now, self._settings.tz)))
        return in_term
