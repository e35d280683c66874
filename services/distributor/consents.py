"""The distributor's side of the gates (``dagmonitor.gates``): consents in force, and holding.

The covenant: "De politie verstrekt slechts strafrechtelijke gegevens na toestemming van het
bevoegd gezag, zijnde het OM." ``GATE_OF`` says which gate rows each provision category
passes. Person and victim notices pass by their approval chain: their records arrive on
``persons.approved`` / ``victims.approved`` only after its last approval, so they need nothing
more here. The Dagmonitor (daily report, supplements, hotspot report) and stolen-vehicle
notices need the OM's standing consent, consumed from ``approval.consents`` into the table
``consents``. Before such a report or batch is made, ``ConsentGate.passes`` checks that a
consent is in force at that moment (granted, not revoked, ``valid_until`` in the future). If
none is, nothing is made: the records stay, a held report is written down in
``held_reports``, and ``dagmonitor_provisions_held`` shows it. Once a consent is in force,
``release`` makes the held reports (the scheduler calls it every minute) and the next notice
batch takes the held records.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Protocol

import asyncpg

from dagmonitor import gates
from dagmonitor.clock import Clock, utc_now
from dagmonitor.gates import GateCategory
from dagmonitor.rejection import Reason, RecordRejected
from dagmonitor.telemetry import get_logger
from services.distributor.entitlements import Category
from services.distributor.metrics import PROVISIONS_HELD

CONSENTS_TOPIC = "approval.consents"

GATE_OF: Mapping[Category, tuple[GateCategory, ...]] = MappingProxyType(
    {
        Category.DAGMONITOR_DAILY: (GateCategory.DAGMONITOR,),
        Category.HOTSPOTS: (GateCategory.DAGMONITOR,),
        Category.PERSON_NOTICE: (GateCategory.SUSPECT, GateCategory.PERSON_OF_INTEREST),
        Category.VICTIM_NOTICE: (GateCategory.VICTIM,),
        Category.VEHICLE_NOTICE: (GateCategory.VEHICLE_SIGNAL,),
        # Counts of the pipeline's own working, no police data: no gate (ADR 0018).
        Category.COVENANT_EVALUATION: (),
    }
)
"""The gate-table rows each provision category passes (supplements are daily reports)."""

HELD_REPORTS = "reports"
HELD_RECORDS = "records"
HELD_UNIT: Mapping[Category, str] = MappingProxyType(
    {
        Category.DAGMONITOR_DAILY: HELD_REPORTS,
        Category.HOTSPOTS: HELD_REPORTS,
        Category.VEHICLE_NOTICE: HELD_RECORDS,
    }
)
"""What ``dagmonitor_provisions_held`` counts per consent-gated category."""

_log = get_logger(__name__)


def consent_needed(category: Category) -> GateCategory | None:
    """The standing consent a provision of ``category`` needs; None when it passes by a chain."""
    needed = [g for g in GATE_OF[category] if gates.needs_consent(g)]
    if len(needed) > 1:
        raise AssertionError(f"{category.value} needs more than one consent")  # pragma: no cover
    return needed[0] if needed else None


CONSENT_GATED: tuple[Category, ...] = tuple(c for c in Category if consent_needed(c) is not None)
"""The provision categories that are held without a consent in force."""


def parse_consent(key: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """The row of a consumed ``nl.dagmonitor.Consent``; RecordRejected when the key is not
    its category or the category is not one that passes by a standing consent."""
    category = value.get("category")
    if category != key:
        raise RecordRejected(Reason.INVALID_FIELD, f"{CONSENTS_TOPIC}: key is not the category")
    try:
        if not gates.needs_consent(str(category)):
            raise ValueError(category)
    except (KeyError, ValueError):
        raise RecordRejected(
            Reason.INVALID_FIELD, f"{CONSENTS_TOPIC}: category passes by no standing consent"
        ) from None
    return {
        "category": category,
        "consent_id": value["consent_id"],
        "granted_by": value["granted_by"],
        "granted_at": value["granted_at"],
        "reference": value["reference"],
        "valid_until": value["valid_until"],
        "revoked_at": value.get("revoked_at"),
    }


class Reports(Protocol):
    """What ``release`` needs of the dispatcher."""

    async def ensure_daily(self, day: date) -> Any: ...

    async def ensure_hotspots(self, last_day: date) -> Any: ...


class ConsentGate:
    """The consents table and the hold, on the distributor's pool."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Clock = utc_now) -> None:
        self._pool = pool
        self._clock = clock

    async def store(self, key: str, value: Mapping[str, Any] | None) -> None:
        """Apply one record of ``approval.consents``: the category's current consent (a
        tombstone: none)."""
        if value is None:
            await self._pool.execute("DELETE FROM consents WHERE category = $1", key)
        else:
            row = parse_consent(key, value)
            await self._pool.execute(
                "INSERT INTO consents (category, consent_id, granted_by, granted_at, reference, "
                "valid_until, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (category) DO UPDATE SET consent_id = EXCLUDED.consent_id, "
                "granted_by = EXCLUDED.granted_by, granted_at = EXCLUDED.granted_at, "
                "reference = EXCLUDED.reference, valid_until = EXCLUDED.valid_until, "
                "revoked_at = EXCLUDED.revoked_at, received_at = now()",
                *row.values(),
            )
        _log.info("consent_received", category=key, revoked=bool(value and value["revoked_at"]))
        await self.refresh()

    async def in_force(self, category: GateCategory, at: datetime | None = None) -> bool:
        """Whether ``category``'s consent is in force at ``at`` (default now)."""
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM consents WHERE category = $1 AND revoked_at IS NULL "
                "AND granted_at <= $2 AND valid_until > $2)",
                category.value,
                at or self._clock(),
            )
        )

    async def passes(
        self, category: Category, kind: str, period: str | None = None, day: date | None = None
    ) -> bool:
        """Whether a ``kind`` provision of ``category`` may be made now. When not, a report
        (``period`` and ``day`` given) is written down as held; a notice batch's records
        simply stay unbatched."""
        needed = consent_needed(category)
        if needed is None:
            return True
        if await self.in_force(needed):
            if period is not None:
                await self._pool.execute(
                    "DELETE FROM held_reports WHERE kind = $1 AND period = $2", kind, period
                )
            return True
        if period is not None and day is not None:
            await self._pool.execute(
                "INSERT INTO held_reports (kind, period, day, category, held_since) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, period) DO NOTHING",
                kind,
                period,
                day,
                category.value,
                self._clock(),
            )
        _log.warning(
            "provision_held", category=category.value, kind=kind, period=period, gate=needed.value
        )
        await self.refresh()
        return False

    async def held_reports(self) -> list[tuple[str, str, date]]:
        """(kind, period, day) of every held report, oldest first."""
        rows = await self._pool.fetch(
            "SELECT kind, period, day FROM held_reports ORDER BY held_since, kind, period"
        )
        return [(r["kind"], r["period"], r["day"]) for r in rows]

    async def release(self, reports: Reports) -> int:
        """Make the held reports whose consent is in force now; returns how many were made.
        (Each ``ensure_*`` passes the gate again, which deletes its held row.)"""
        released = 0
        for kind, period, day in await self.held_reports():
            category = Category.HOTSPOTS if kind == "hotspots" else Category.DAGMONITOR_DAILY
            needed = consent_needed(category)
            if needed is None or not await self.in_force(needed):
                continue
            if kind == "hotspots":
                await reports.ensure_hotspots(day)
            else:
                await reports.ensure_daily(day)
            await self._pool.execute(
                "DELETE FROM held_reports WHERE kind = $1 AND period = $2", kind, period
            )
            _log.info("held_report_released", kind=kind, period=period)
            released += 1
        await self.refresh()
        return released

    async def refresh(self) -> None:
        """Set ``dagmonitor_provisions_held``: held reports per report category, and the
        unbatched records of a notice category while its consent is not in force."""
        reports = {
            r["category"]: r["n"]
            for r in await self._pool.fetch(
                "SELECT category, count(*) AS n FROM held_reports GROUP BY category"
            )
        }
        for category in CONSENT_GATED:
            if HELD_UNIT[category] == HELD_REPORTS:
                PROVISIONS_HELD.labels(category.value).set(reports.get(category.value, 0))
                continue
            needed = consent_needed(category)
            held = 0
            if needed is not None and not await self.in_force(needed):
                held = await self._pool.fetchval(
                    "SELECT count(*) FROM notices WHERE category = $1 AND batch_id IS NULL",
                    category.value,
                )
            PROVISIONS_HELD.labels(category.value).set(held)
