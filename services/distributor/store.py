"""PostgreSQL adapter of the distributor: entries, notices, the outbox and the register.

Every statement is idempotent by key (and version for entries), so a redelivered record or a
repeated report run changes nothing. Names are unqualified: the pool's ``search_path`` puts
the configured schema first.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from dagmonitor import jsonio
from dagmonitor.db import changed_rows, from_row
from services.distributor.outbox import OutboxMessage, State
from services.distributor.rendering import Photo, RecordRef
from services.distributor.reports import Entry, PostcodeCount
from services.distributor.supplement import Told, entry_document, entry_from_document

_ENTRY_TYPES = {  # the entries table's columns from a DagmonitorEntry, with their SQL types
    "registration_number": "text",
    "version": "integer",
    "mk_code": "text",
    "mk_description": "text",
    "reported_at": "timestamptz",
    "committed_from": "timestamptz",
    "committed_until": "timestamptz",
    "municipality_code": "text",
    "district_code": "text",
    "district_name": "text",
    "neighbourhood_code": "text",
    "neighbourhood_name": "text",
    "city": "text",
    "postcode": "text",
    "street": "text",
    "house_number": "integer",
    "house_number_suffix": "text",
    "location_qualifier": "text",
}
_ENTRY_COLUMNS = tuple(_ENTRY_TYPES)
_ENTRY_INSERT = f"INSERT INTO entries ({', '.join((*_ENTRY_COLUMNS, 'traceparent'))}) "
_ENTRY_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_ENTRY_COLUMNS[1:], "traceparent"))
_ENTRY_ON_CONFLICT = (  # a stored newer version stays
    f" ON CONFLICT (registration_number) DO UPDATE SET {_ENTRY_UPDATES}, received_at = now() "
    "WHERE entries.version <= EXCLUDED.version"
)


def to_json(value: Mapping[str, Any]) -> str:
    """A decoded record as JSON text (``jsonio.to_json``: timestamps and dates in ISO 8601)."""
    return json.dumps(jsonio.to_json(value), ensure_ascii=False, sort_keys=True)


def _ref_arrays(refs: Sequence[RecordRef]) -> tuple[list[str], list[str]]:
    """Record refs as the topic and key arrays a statement joins by ``unnest($n, $m)``."""
    return [r.topic for r in refs], [r.key for r in refs]


@dataclass(frozen=True, slots=True)
class TellDay:
    """What a daily report or supplement tells its recipients about one day, once sent.

    ``told``: (entry, version) they then know; ``gone``: registration numbers of entries
    whose withdrawal it announces.
    """

    day: date
    told: Sequence[tuple[Entry, int]] = ()
    gone: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row taken for sending."""

    message_id: str
    provision_id: str
    category: str
    recipient_role: str
    recipient_address: str
    body: bytes
    attempts: int
    records: tuple[RecordRef, ...]
    kind: str
    withdraws: tuple[str, ...]
    """For a withdrawal notice: the provisions whose records it withdraws."""


@dataclass(frozen=True, slots=True)
class Unpublished:
    """A provision row not yet confirmed on ``distribution.provisions``."""

    provision_id: str
    message_id: str
    category: str
    recipient_role: str
    recipient_address: str
    record_keys: tuple[RecordRef, ...]
    sent_at: datetime
    legal_basis: str
    purpose: str
    publish_started_at: datetime | None
    kind: str = "PROVISION"
    withdraws: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WithdrawalDue:
    """A sent mail that carried a withdrawn record, whose recipient has no notice for it yet.

    ``shown``: the record as the recipient has it (for an entry: what their mails showed, when
    still known; else the record as stored when it was withdrawn; None when neither is known).
    """

    topic: str
    key: str
    shown: dict[str, Any] | None
    recipient_role: str
    recipient_address: str
    provision_id: str
    category: str
    subject: str
    sent_at: datetime


WITHDRAWAL_KIND = "withdrawal"
"""The outbox kind of a withdrawal notice (``rendering.Kind.WITHDRAWAL``)."""

# A regular (not withdrawal) outbox message created before the record's withdrawal carries it.
_CARRIED_BEFORE = (
    "FROM outbox_records r JOIN outbox o ON o.message_id = r.message_id "
    "WHERE r.topic = w.topic AND r.key = w.key AND o.kind <> 'withdrawal' "
    "AND o.created_at <= w.withdrawn_at"
)
# ... and that message's provision already has its withdrawal notice (stored, maybe unsent).
_NOTICED = (
    "EXISTS (SELECT 1 FROM outbox x JOIN outbox_records xr ON xr.message_id = x.message_id "
    "WHERE x.kind = 'withdrawal' AND xr.topic = w.topic AND xr.key = w.key "
    "AND x.withdraws @> ARRAY[o.provision_id])"
)


PHOTO_PREFIX = "bvh://photos/"
# Some stored notice refers to photo p (index notices_by_photo).
_PHOTO_REFERRED = (
    "EXISTS (SELECT 1 FROM notices n "
    "WHERE n.value -> 'person' ->> 'photo_ref' = 'bvh://photos/' || p.photo_id)"
)


class Store:
    """Queries of the distributor, over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT true"))

    # -- consumed records ----------------------------------------------------------------

    async def upsert_entry(
        self, value: Mapping[str, Any], *, traceparent: str | None = None
    ) -> bool:
        """Insert or replace an entry unless a newer version is stored; True when written.

        ``traceparent`` is the trace context of the span that consumed it (for the mail's span).
        """
        placeholders = ", ".join(f"${i}" for i in range(1, len(_ENTRY_COLUMNS) + 2))
        status = await self.pool.execute(
            f"{_ENTRY_INSERT}VALUES ({placeholders}){_ENTRY_ON_CONFLICT}",
            *(value.get(c) for c in _ENTRY_COLUMNS),
            traceparent,
        )
        return status.endswith(" 1")

    async def upsert_entries(
        self, entries: Sequence[tuple[Mapping[str, Any], str | None]]
    ) -> set[str]:
        """``upsert_entry`` for many entries (value, traceparent) in one statement, each key
        at most once; returns the registration numbers written (the others had a newer
        version stored)."""
        types = (*_ENTRY_TYPES.values(), "text")
        arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
        columns = [[value.get(c) for value, _ in entries] for c in _ENTRY_COLUMNS]
        rows = await self.pool.fetch(
            f"{_ENTRY_INSERT}SELECT * FROM unnest({arrays}){_ENTRY_ON_CONFLICT} "
            "RETURNING registration_number",
            *columns,
            [traceparent for _, traceparent in entries],
        )
        return {row["registration_number"] for row in rows}

    async def upsert_notice(
        self,
        topic: str,
        key: str,
        category: str,
        value: Mapping[str, Any],
        *,
        traceparent: str | None = None,
    ) -> None:
        """Insert or refresh an approved record; a record already batched stays batched."""
        await self.pool.execute(
            "INSERT INTO notices (topic, key, category, value, traceparent) "
            "VALUES ($1, $2, $3, $4::jsonb, $5) "
            "ON CONFLICT (topic, key) DO UPDATE SET value = EXCLUDED.value, "
            "category = EXCLUDED.category, traceparent = EXCLUDED.traceparent",
            topic,
            key,
            category,
            to_json(value),
            traceparent,
        )

    @staticmethod
    async def traceparents(
        conn: asyncpg.Connection, records: Sequence[RecordRef]
    ) -> list[str | None]:
        """The stored trace contexts of ``records`` (those still stored)."""
        entries = [r.key for r in records if r.topic == "dagmonitor.entries"]
        notices = [r for r in records if r.topic != "dagmonitor.entries"]
        rows = await conn.fetch(
            "SELECT traceparent FROM entries WHERE registration_number = ANY($1::text[]) "
            "UNION ALL SELECT n.traceparent FROM notices n "
            "JOIN unnest($2::text[], $3::text[]) AS r(topic, key) "
            "ON n.topic = r.topic AND n.key = r.key",
            entries,
            *_ref_arrays(notices),
        )
        return [row["traceparent"] for row in rows]

    async def delete_record(self, topic: str, key: str) -> tuple[int, int]:
        """A tombstone of the retention sweep: the record's period is over, so it is forgotten
        everywhere in this schema.

        The record goes, with every unsent mail that carries it (a purged daily report is
        noted in ``report_remakes``, to be made again without the record for the recipients it
        was for) and its photo; so do what sent mails told about it (``daily_provided``,
        ``outbox_tells``), the links of sent mails to it (``outbox_records``), a pending
        withdrawal of it, and its key in the provision register, which counts it in
        ``records_forgotten`` instead (ADR 0019). Mails already sent hold no body. Returns
        (records deleted, unsent messages deleted).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if topic == "dagmonitor.entries":
                status = await conn.execute(
                    "DELETE FROM entries WHERE registration_number = $1", key
                )
                deleted = int(status.split()[-1])
                await conn.execute("DELETE FROM daily_provided WHERE registration_number = $1", key)
                await conn.execute("DELETE FROM outbox_tells WHERE registration_number = $1", key)
            else:
                row = await conn.fetchrow(
                    "DELETE FROM notices WHERE topic = $1 AND key = $2 "
                    "RETURNING value -> 'person' ->> 'photo_ref' AS photo_ref",
                    topic,
                    key,
                )
                await self._drop_photos_of(conn, row)
                deleted = 0 if row is None else 1
            purged = await self._purge_unsent(conn, topic, key, ("pending", "sending", "failed"))
            await conn.execute(
                "DELETE FROM withdrawn_records WHERE topic = $1 AND key = $2", topic, key
            )
            await self._forget_in_register(conn, topic, key)
        return deleted, purged

    @staticmethod
    async def _forget_in_register(conn: asyncpg.Connection, topic: str, key: str) -> None:
        """Take the record's key out of the provision register and the sent mails' links."""
        ref = to_json({"topic": topic, "key": key})
        await conn.execute(
            "UPDATE provisions SET records_forgotten = records_forgotten + 1, record_keys = "
            "coalesce((SELECT jsonb_agg(k) FROM jsonb_array_elements(record_keys) k "
            "WHERE k <> $1::jsonb), '[]'::jsonb) WHERE record_keys @> jsonb_build_array($1::jsonb)",
            ref,
        )
        await conn.execute("DELETE FROM outbox_records WHERE topic = $1 AND key = $2", topic, key)

    async def forget_expired(self, now: datetime, period: timedelta) -> dict[str, int]:
        """The backstop behind the sweep's tombstones: whatever in this schema is older than
        the longest retention ``period`` goes, or is pseudonymised, by this service's own clock
        (a record whose tombstone never came, a sent mail's row, the register's keys).

        Returns rows changed per table (only those with changes)."""
        cutoff = now - period
        statements: dict[str, tuple[str, object]] = {
            "entries": ("DELETE FROM entries WHERE received_at < $1", cutoff),
            "notices": ("DELETE FROM notices WHERE received_at < $1", cutoff),
            "photos": ("DELETE FROM photos WHERE received_at < $1", cutoff),
            "daily_provided": ("DELETE FROM daily_provided WHERE day < $1", cutoff.date()),
            "withdrawn_records": (
                "DELETE FROM withdrawn_records WHERE withdrawn_at < $1",
                cutoff,
            ),
            # outbox_records and outbox_tells go with their message (ON DELETE CASCADE).
            "outbox": ("DELETE FROM outbox WHERE state = 'sent' AND sent_at < $1", cutoff),
            "provisions": (
                "UPDATE provisions SET records_forgotten = records_forgotten + "
                "jsonb_array_length(record_keys), record_keys = '[]'::jsonb "
                "WHERE sent_at < $1 AND record_keys <> '[]'::jsonb",
                cutoff,
            ),
        }
        return await changed_rows(self.pool, statements)

    async def withdraw_record(self, topic: str, key: str) -> tuple[int, int]:
        """A withdrawal (a tombstone the police caused): delete the record and the unsent
        mails that carry it, and remember how its recipients know it, for their notices.

        A mail being sent right now ('sending') is left alone: if it goes out, its provision
        gets a notice like every other; if it fails, the next sweep purges it, and the sender
        never claims it again (``claim``). Returns (records deleted, unsent mails purged).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if topic == "dagmonitor.entries":
                row = await conn.fetchrow(
                    f"DELETE FROM entries WHERE registration_number = $1 "
                    f"RETURNING {', '.join(_ENTRY_COLUMNS)}",
                    key,
                )
                shown = None if row is None else to_json(entry_document(Entry.from_mapping(row)))
            else:
                row = await conn.fetchrow(
                    "DELETE FROM notices WHERE topic = $1 AND key = $2 RETURNING value::text, "
                    "value -> 'person' ->> 'photo_ref' AS photo_ref",
                    topic,
                    key,
                )
                shown = None if row is None else row["value"]
                await self._drop_photos_of(conn, row)
            await conn.execute(
                "INSERT INTO withdrawn_records (topic, key, shown) VALUES ($1, $2, $3::jsonb) "
                "ON CONFLICT (topic, key) DO UPDATE SET withdrawn_at = now(), "
                "shown = coalesce(EXCLUDED.shown, withdrawn_records.shown) "
                "WHERE EXCLUDED.shown IS NOT NULL",
                topic,
                key,
                shown,
            )
            purged = await self._purge_unsent(conn, topic, key, ("pending", "failed"))
        return (0 if row is None else 1), purged

    # -- photos (ADR 0017) ------------------------------------------------------------------

    async def upsert_photo(self, photo_id: str, media_type: str, data: bytes) -> None:
        """Store a person's photo (a newer delivery of the same id replaces it)."""
        await self.pool.execute(
            "INSERT INTO photos (photo_id, media_type, data) VALUES ($1, $2, $3) "
            "ON CONFLICT (photo_id) DO UPDATE SET media_type = EXCLUDED.media_type, "
            "data = EXCLUDED.data, received_at = now()",
            photo_id,
            media_type,
            data,
        )

    async def delete_photo(self, photo_id: str) -> int:
        """The police withdrew a photo; returns how many rows went (0 or 1)."""
        status = await self.pool.execute("DELETE FROM photos WHERE photo_id = $1", photo_id)
        return int(status.split()[-1])

    async def photos(self, photo_ids: Sequence[str]) -> dict[str, Photo]:
        """The stored photos among ``photo_ids``, by id (those not arrived are absent)."""
        rows = await self.pool.fetch(
            "SELECT photo_id, media_type, data FROM photos WHERE photo_id = ANY($1::text[])",
            list(set(photo_ids)),
        )
        return {
            r["photo_id"]: Photo(r["photo_id"], r["media_type"].lower(), bytes(r["data"]))
            for r in rows
        }

    async def forget_unclaimed_photos(self, days: int) -> int:
        """Delete photos older than ``days`` that no stored notice refers to."""
        status = await self.pool.execute(
            "DELETE FROM photos p WHERE received_at < now() - make_interval(days => $1) "
            f"AND NOT {_PHOTO_REFERRED}",
            days,
        )
        return int(status.split()[-1])

    @staticmethod
    async def _drop_photos_of(conn: asyncpg.Connection, deleted: asyncpg.Record | None) -> None:
        """A deleted notice's photo goes with it, unless another notice still refers to it."""
        photo_ref = None if deleted is None else deleted["photo_ref"]
        if photo_ref and photo_ref.startswith(PHOTO_PREFIX):
            await conn.execute(
                f"DELETE FROM photos p WHERE photo_id = $1 AND NOT {_PHOTO_REFERRED}",
                photo_ref.removeprefix(PHOTO_PREFIX),
            )

    @staticmethod
    async def _purge_unsent(
        conn: asyncpg.Connection, topic: str, key: str, states: Sequence[str]
    ) -> int:
        """Delete the mails in ``states`` that carry the record (never a withdrawal notice).

        What the purged mails were for is made again without the record: a daily report for
        its recipient (``report_remakes``), a notice batch for its recipient with the batch's
        other records (``notice_remakes``), so a withdrawal costs no other record its mail.
        """
        purged = await conn.fetch(
            "DELETE FROM outbox WHERE state = ANY($3::text[]) AND kind <> 'withdrawal' "
            "AND message_id IN "
            "(SELECT message_id FROM outbox_records WHERE topic = $1 AND key = $2) "
            "RETURNING kind, period, recipient_address, recipient_role",
            topic,
            key,
            list(states),
        )
        await conn.executemany(
            "INSERT INTO report_remakes (period, recipient_address) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            [(r["period"], r["recipient_address"]) for r in purged if r["kind"] == "daily"],
        )
        await conn.executemany(
            "INSERT INTO notice_remakes (batch_id, recipient_address, recipient_role) "
            "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [
                (r["period"], r["recipient_address"], r["recipient_role"])
                for r in purged
                if r["kind"] == "notice"
            ],
        )
        return len(purged)

    # -- withdrawal notices ------------------------------------------------------------------

    async def purge_withdrawn_unsent(self) -> int:
        """Purge the unsent mails (made before the withdrawal) that carry a withdrawn record:
        ones that were being sent when it came and failed, or were made while it came."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT DISTINCT w.topic, w.key FROM withdrawn_records w "
                f"WHERE EXISTS (SELECT 1 {_CARRIED_BEFORE} AND o.state IN ('pending', 'failed'))"
            )
            total = 0
            for r in rows:
                total += await self._purge_unsent(conn, r["topic"], r["key"], ("pending", "failed"))
        return total

    async def withdrawals_due(self, limit: int = 1000) -> list[WithdrawalDue]:
        """Sent mails carrying a withdrawn record whose provision has no notice yet."""
        rows = await self.pool.fetch(
            "SELECT w.topic, w.key, coalesce(dp.shown, w.shown)::text AS shown, "
            "o.recipient_role, o.recipient_address, o.provision_id, o.category, o.subject, "
            "o.sent_at FROM withdrawn_records w "
            "JOIN outbox_records r ON r.topic = w.topic AND r.key = w.key "
            "JOIN outbox o ON o.message_id = r.message_id "
            "LEFT JOIN LATERAL (SELECT d.shown FROM daily_provided d "
            "WHERE w.topic = 'dagmonitor.entries' AND d.registration_number = w.key "
            "AND d.recipient_address = o.recipient_address ORDER BY d.day DESC LIMIT 1) dp "
            "ON true "
            "WHERE o.state = 'sent' AND o.kind <> 'withdrawal' "
            f"AND o.created_at <= w.withdrawn_at AND NOT {_NOTICED} "
            "ORDER BY w.topic, w.key, o.recipient_address, o.sent_at, o.provision_id LIMIT $1",
            limit,
        )
        return [
            from_row(WithdrawalDue, r, shown=None if r["shown"] is None else json.loads(r["shown"]))
            for r in rows
        ]

    async def forget_withdrawn(self) -> int:
        """Drop withdrawals that are done: every mail made before it that carried the record
        is sent and has its notice (or was purged). Returns how many were dropped."""
        status = await self.pool.execute(
            "DELETE FROM withdrawn_records w WHERE NOT EXISTS "
            f"(SELECT 1 {_CARRIED_BEFORE} AND (o.state <> 'sent' OR NOT {_NOTICED}))"
        )
        return int(status.split()[-1])

    async def withdrawn_count(self) -> int:
        """Withdrawals not yet done (for the gauge)."""
        return int(await self.pool.fetchval("SELECT count(*) FROM withdrawn_records"))

    async def notice_remakes(self) -> list[tuple[str, str, str, list[tuple[RecordRef, Any]]]]:
        """Notice batches to make again for one recipient each (batch id, address, role, and
        the batch's records still stored); the rows are left for ``notice_remade``."""
        rows = await self.pool.fetch(
            "SELECT m.batch_id, m.recipient_address, m.recipient_role, n.topic, n.key, "
            "n.value::text AS value FROM notice_remakes m "
            "LEFT JOIN notices n ON n.batch_id = m.batch_id "
            "OR starts_with(m.batch_id, n.batch_id || '.') "  # a remade batch, purged again
            "ORDER BY m.batch_id, m.recipient_address, n.topic, n.key"
        )
        todo: dict[tuple[str, str, str], list[tuple[RecordRef, Any]]] = {}
        for r in rows:
            records = todo.setdefault(
                (r["batch_id"], r["recipient_address"], r["recipient_role"]), []
            )
            if r["topic"] is not None:
                records.append((RecordRef(r["topic"], r["key"]), json.loads(r["value"])))
        return [(b, a, role, records) for (b, a, role), records in todo.items()]

    async def notice_remade(self, batch_id: str, address: str) -> None:
        await self.pool.execute(
            "DELETE FROM notice_remakes WHERE batch_id = $1 AND recipient_address = $2",
            batch_id,
            address,
        )

    # -- report input ----------------------------------------------------------------------

    async def versioned_entries_between(
        self, start: datetime, end: datetime, *, conn: asyncpg.Connection | None = None
    ) -> list[tuple[Entry, int]]:
        """Entries reported in ``[start, end)`` with their versions."""
        rows = await (conn or self.pool).fetch(
            f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM entries "
            "WHERE reported_at >= $1 AND reported_at < $2 ORDER BY reported_at",
            start,
            end,
        )
        return [(Entry.from_mapping(row), row["version"]) for row in rows]

    # -- supplements -----------------------------------------------------------------------

    async def reported_days(self, since: date) -> list[date]:
        """Days from ``since`` on whose daily report has been stored (for some recipient)."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT period FROM outbox WHERE kind = 'daily' AND period >= $1 "
            "ORDER BY period",
            since.isoformat(),
        )
        return [date.fromisoformat(r["period"]) for r in rows]

    async def supplement_due(self, day: date, interval_s: float) -> dict[str, int]:
        """Recipients due a supplement of ``day``, with its number.

        Due: the recipient has the day's report, nothing of the day is unsent to them, and
        ``interval_s`` has passed since their report or last supplement of the day was made.
        """
        rows = await self.pool.fetch(
            "SELECT recipient_address, "
            "count(*) FILTER (WHERE kind = 'supplement') AS supplements FROM outbox "
            "WHERE (kind = 'daily' AND period = $1) "
            "OR (kind = 'supplement' AND split_part(period, '.', 1) = $1) "
            "GROUP BY recipient_address "
            "HAVING bool_or(kind = 'daily') AND bool_and(state = 'sent') "
            "AND now() >= max(created_at) + make_interval(secs => $2)",
            day.isoformat(),
            interval_s,
        )
        return {r["recipient_address"]: int(r["supplements"]) + 1 for r in rows}

    async def day_state(
        self, day: date, start: datetime, end: datetime, addresses: Sequence[str]
    ) -> tuple[dict[str, tuple[Entry, int]], dict[str, dict[str, Told]]]:
        """The day's entries now, and what each of ``addresses`` was told, in one snapshot."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            current = await self.versioned_entries_between(start, end, conn=conn)
            rows = await conn.fetch(
                "SELECT recipient_address, registration_number, version, shown "
                "FROM daily_provided p WHERE day = $1 AND recipient_address = ANY($2::text[]) "
                "AND NOT EXISTS (SELECT 1 FROM withdrawn_records w "
                "WHERE w.topic = 'dagmonitor.entries' AND w.key = p.registration_number)",
                day,
                list(addresses),
            )
        told: dict[str, dict[str, Told]] = {a: {} for a in addresses}
        for r in rows:
            told[r["recipient_address"]][r["registration_number"]] = Told(
                r["version"], entry_from_document(json.loads(r["shown"]))
            )
        return {e.registration_number: (e, v) for e, v in current}, told

    async def record_versions(
        self, day: date, address: str, versions: Sequence[tuple[str, int]]
    ) -> None:
        """Newer versions that show nothing new: recorded as told, without a mail."""
        await self.pool.execute(
            "UPDATE daily_provided p SET version = t.v FROM unnest($3::text[], $4::int[]) "
            "AS t(r, v) WHERE p.day = $1 AND p.recipient_address = $2 "
            "AND p.registration_number = t.r",
            day,
            address,
            [r for r, _ in versions],
            [v for _, v in versions],
        )

    async def forget_told_before(self, day: date) -> int:
        """Drop what was told about days before ``day`` (past the supplement horizon)."""
        status = await self.pool.execute("DELETE FROM daily_provided WHERE day < $1", day)
        await self.pool.execute("DELETE FROM report_remakes WHERE period < $1", day.isoformat())
        return int(status.split()[-1])

    async def remakes(self) -> dict[date, list[str]]:
        """Daily reports to make again (their unsent mail was purged by a tombstone)."""
        rows = await self.pool.fetch(
            "SELECT period, recipient_address FROM report_remakes ORDER BY period"
        )
        todo: dict[date, list[str]] = {}
        for r in rows:
            todo.setdefault(date.fromisoformat(r["period"]), []).append(r["recipient_address"])
        return todo

    async def remade(self, day: date, addresses: Sequence[str]) -> None:
        await self.pool.execute(
            "DELETE FROM report_remakes WHERE period = $1 AND recipient_address = ANY($2)",
            day.isoformat(),
            list(addresses),
        )

    @staticmethod
    async def _store_tells(
        conn: asyncpg.Connection, messages: Sequence[OutboxMessage], tell: TellDay
    ) -> None:
        rows: list[tuple[str, int | None, str | None]] = [
            (e.registration_number, v, to_json(entry_document(e))) for e, v in tell.told
        ]
        rows += [(r, None, None) for r in tell.gone]
        for m in messages:
            await conn.executemany(
                "INSERT INTO outbox_tells (message_id, day, registration_number, version, "
                "shown) VALUES ($1, $2, $3, $4, $5::jsonb)",
                [(m.message_id, tell.day, *row) for row in rows],
            )

    @staticmethod
    async def _apply_tells(conn: asyncpg.Connection, claimed: Claimed) -> None:
        """What a sent mail told its recipient becomes what they were told."""
        await conn.execute(
            "INSERT INTO daily_provided (day, recipient_address, registration_number, version, "
            "shown) SELECT day, $2, registration_number, version, shown FROM outbox_tells "
            "WHERE message_id = $1 AND version IS NOT NULL "
            "ON CONFLICT (day, recipient_address, registration_number) DO UPDATE "
            "SET version = EXCLUDED.version, shown = EXCLUDED.shown",
            claimed.message_id,
            claimed.recipient_address,
        )
        await conn.execute(
            "DELETE FROM daily_provided p USING outbox_tells t WHERE t.message_id = $1 "
            "AND t.version IS NULL AND p.day = t.day AND p.recipient_address = $2 "
            "AND p.registration_number = t.registration_number",
            claimed.message_id,
            claimed.recipient_address,
        )
        await conn.execute("DELETE FROM outbox_tells WHERE message_id = $1", claimed.message_id)

    async def postcode_counts(self, start: datetime, end: datetime) -> list[PostcodeCount]:
        """Entries reported in ``[start, end)``, counted per district and postcode."""
        rows = await self.pool.fetch(
            "SELECT district_code, max(district_name) AS district_name, postcode, "
            "count(*) AS n FROM entries WHERE reported_at >= $1 AND reported_at < $2 "
            "GROUP BY district_code, postcode",
            start,
            end,
        )
        return [
            PostcodeCount(r["district_code"], r["district_name"], r["postcode"], r["n"])
            for r in rows
        ]

    async def addresses_with_message(
        self, kind: str, period: str, addresses: Sequence[str]
    ) -> set[str]:
        """Which of ``addresses`` already have a stored message of this report."""
        rows = await self.pool.fetch(
            "SELECT recipient_address FROM outbox WHERE kind = $1 AND period = $2 "
            "AND recipient_address = ANY($3::text[])",
            kind,
            period,
            list(addresses),
        )
        return {r["recipient_address"] for r in rows}

    async def store_messages(
        self,
        messages: Sequence[OutboxMessage],
        *,
        batch: tuple[str, Sequence[RecordRef]] | None = None,
        tell: TellDay | None = None,
    ) -> int:
        """Store messages (a message already stored is left as it is); returns how many new.

        With ``batch`` (batch id, notice records), the notices are marked as batched in the
        same transaction, so a notice is in exactly one batch or in none. With ``tell``, what
        a daily report or supplement tells is stored with each new message, to count as told
        when the message is marked sent.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = []
            for m in messages:
                status = await conn.execute(
                    "INSERT INTO outbox (message_id, provision_id, kind, period, category, "
                    "recipient_role, recipient_address, subject, body, record_count, withdraws) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                    "ON CONFLICT DO NOTHING",
                    m.message_id,
                    m.provision_id,
                    m.kind,
                    m.period,
                    m.category,
                    m.recipient_role,
                    m.recipient_address,
                    m.subject,
                    m.body,
                    len(m.records),
                    list(m.withdraws),
                )
                if status.endswith(" 1"):
                    inserted.append(m)
            for m in inserted:
                if m.records:
                    await conn.copy_records_to_table(
                        "outbox_records",
                        records=[(m.message_id, r.topic, r.key) for r in set(m.records)],
                        columns=("message_id", "topic", "key"),
                        schema_name=await self._schema(conn),
                    )
            if tell is not None and inserted:
                await self._store_tells(conn, inserted, tell)
            # A withdrawn entry's notice replaces what supplements would say of it.
            await conn.executemany(
                "DELETE FROM daily_provided WHERE registration_number = $1 "
                "AND recipient_address = $2",
                [
                    (r.key, m.recipient_address)
                    for m in inserted
                    if m.kind == WITHDRAWAL_KIND
                    for r in m.records
                    if r.topic == "dagmonitor.entries"
                ],
            )
            if batch is not None:
                batch_id, refs = batch
                await conn.execute(
                    "UPDATE notices SET batch_id = $1 FROM unnest($2::text[], $3::text[]) "
                    "AS r(topic, key) WHERE notices.topic = r.topic AND notices.key = r.key "
                    "AND notices.batch_id IS NULL",
                    batch_id,
                    *_ref_arrays(refs),
                )
        return len(inserted)

    @staticmethod
    async def _schema(conn: asyncpg.Connection) -> str:
        return str(await conn.fetchval("SELECT current_schema()"))

    async def unbatched_notices(
        self, category: str, limit: int = 500
    ) -> list[tuple[RecordRef, dict[str, Any]]]:
        """Approved records of ``category`` not yet in a notice batch, oldest first."""
        rows = await self.pool.fetch(
            "SELECT topic, key, value FROM notices WHERE category = $1 AND batch_id IS NULL "
            "ORDER BY received_at, topic, key LIMIT $2",
            category,
            limit,
        )
        return [(RecordRef(r["topic"], r["key"]), json.loads(r["value"])) for r in rows]

    # -- sending -----------------------------------------------------------------------------

    async def due_message_ids(
        self,
        limit: int,
        *,
        kind: str | None = None,
        period: str | None = None,
        held: Sequence[str] = (),
    ) -> list[str]:
        """Messages whose next attempt is due (pending or failed), oldest first; only those
        of one report when ``kind`` and ``period`` are given; none of the ``held`` categories
        but their withdrawal notices."""
        rows = await self.pool.fetch(
            "SELECT message_id FROM outbox WHERE state IN ('pending', 'failed') "
            "AND next_attempt_at <= now() AND ($2::text IS NULL OR kind = $2) "
            "AND ($3::text IS NULL OR period = $3) "
            "AND (kind = 'withdrawal' OR NOT category = ANY($4::text[])) "
            "ORDER BY created_at, message_id LIMIT $1",
            limit,
            kind,
            period,
            list(held),
        )
        return [r["message_id"] for r in rows]

    @staticmethod
    async def try_lock(conn: asyncpg.Connection, message_id: str) -> bool:
        """A session lock on one message: held by the process that may be talking SMTP about
        it, released when that process's connection ends (also when the process dies)."""
        return bool(
            await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 7341))", message_id
            )
        )

    @staticmethod
    async def unlock(conn: asyncpg.Connection, message_id: str) -> None:
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 7341))", message_id)

    @staticmethod
    async def claim(conn: asyncpg.Connection, message_id: str) -> Claimed | None:
        """Commit state 'sending' for a due message (the caller holds its lock)."""
        row = await conn.fetchrow(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1, "
            "sending_since = now(), blocked_reason = NULL "
            "WHERE message_id = $1 AND state IN ('pending', 'failed') "
            "AND next_attempt_at <= now() AND (kind = 'withdrawal' OR NOT EXISTS "
            "(SELECT 1 FROM outbox_records r JOIN withdrawn_records w "
            "ON w.topic = r.topic AND w.key = r.key WHERE r.message_id = outbox.message_id "
            "AND outbox.created_at <= w.withdrawn_at)) "
            "RETURNING message_id, provision_id, category, recipient_role, recipient_address, "
            "body, attempts, kind, withdraws",
            message_id,
        )
        if row is None:
            return None
        refs = await conn.fetch(
            "SELECT topic, key FROM outbox_records WHERE message_id = $1 ORDER BY topic, key",
            message_id,
        )
        return from_row(
            Claimed,
            row,
            body=bytes(row["body"]),
            records=tuple(RecordRef(r["topic"], r["key"]) for r in refs),
            withdraws=tuple(row["withdraws"]),
        )

    @staticmethod
    async def mark_sent(
        conn: asyncpg.Connection,
        claimed: Claimed,
        *,
        sent_at: datetime,
        legal_basis: str,
        purpose: str,
    ) -> bool:
        """Mark sent (dropping the body) and write its provision, in one transaction.

        The provision is written even when the row vanished meanwhile (a tombstone purged it
        while it was on the wire): the mail did go out, so the register must say so.
        Returns False when the row was not in state 'sending' any more.
        """
        async with conn.transaction():
            status = await conn.execute(
                "UPDATE outbox SET state = 'sent', sent_at = $2, body = NULL, last_error = NULL "
                "WHERE message_id = $1 AND state = 'sending'",
                claimed.message_id,
                sent_at,
            )
            await Store._apply_tells(conn, claimed)
            await conn.execute(
                "INSERT INTO provisions (provision_id, message_id, category, recipient_role, "
                "recipient_address, record_keys, sent_at, legal_basis, purpose, kind, withdraws) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11) "
                "ON CONFLICT (provision_id) DO NOTHING",
                claimed.provision_id,
                claimed.message_id,
                claimed.category,
                claimed.recipient_role,
                claimed.recipient_address,
                json.dumps([{"topic": r.topic, "key": r.key} for r in claimed.records]),
                sent_at,
                legal_basis,
                purpose,
                "WITHDRAWAL" if claimed.kind == WITHDRAWAL_KIND else "PROVISION",
                list(claimed.withdraws),
            )
        return status.endswith(" 1")

    @staticmethod
    async def mark_attempt_failed(
        conn: asyncpg.Connection, message_id: str, *, error: str, retry_in: float, give_up: bool
    ) -> None:
        """Back to pending (or failed, when the attempts are used up) with the next try time."""
        await conn.execute(
            "UPDATE outbox SET state = $2, last_error = $3, "
            "next_attempt_at = now() + make_interval(secs => $4) "
            "WHERE message_id = $1 AND state = 'sending'",
            message_id,
            State.FAILED.value if give_up else State.PENDING.value,
            error,
            retry_in,
        )

    async def sending_message_ids(self) -> list[str]:
        rows = await self.pool.fetch("SELECT message_id FROM outbox WHERE state = 'sending'")
        return [r["message_id"] for r in rows]

    @staticmethod
    async def recover(conn: asyncpg.Connection, message_id: str) -> str | None:
        """Put a 'sending' row whose sender is gone back to pending; returns its category."""
        category: str | None = await conn.fetchval(
            "UPDATE outbox SET state = 'pending', next_attempt_at = now(), "
            "resent_after_crash = resent_after_crash + 1 "
            "WHERE message_id = $1 AND state = 'sending' RETURNING category",
            message_id,
        )
        return category

    async def block_due(
        self, reason: str, *, categories: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Mark due messages as blocked (once each), all or those of ``categories`` (their
        withdrawal notices excepted); returns newly blocked counts by category."""
        rows = await self.pool.fetch(
            "UPDATE outbox SET blocked_reason = $1 WHERE state IN ('pending', 'failed') "
            "AND blocked_reason IS DISTINCT FROM $1 AND ($2::text[] IS NULL OR "
            "(kind <> 'withdrawal' AND category = ANY($2::text[]))) RETURNING category",
            reason,
            None if categories is None else list(categories),
        )
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["category"]] = counts.get(r["category"], 0) + 1
        return counts

    async def backlog(self) -> dict[str, int]:
        """Unsent messages per state."""
        rows = await self.pool.fetch(
            "SELECT state, count(*) AS n FROM outbox WHERE state <> 'sent' GROUP BY state"
        )
        counts = {s.value: 0 for s in State if s is not State.SENT}
        counts.update({r["state"]: r["n"] for r in rows})
        return counts

    async def retry_failed(self) -> int:
        """Make every failed message due now, with a fresh set of attempts."""
        status = await self.pool.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = now() "
            "WHERE state = 'failed'"
        )
        return int(status.split()[-1])

    async def report_states(self, kind: str, period: str) -> dict[str, int]:
        """Messages of one report per state (for the CLI's summary)."""
        rows = await self.pool.fetch(
            "SELECT state, count(*) AS n FROM outbox WHERE kind = $1 AND period = $2 "
            "GROUP BY state",
            kind,
            period,
        )
        return {r["state"]: r["n"] for r in rows}

    # -- the register on Kafka -----------------------------------------------------------

    async def start_publishing(self, limit: int) -> list[Unpublished]:
        """Up to ``limit`` unpublished provisions in register order, their
        ``publish_started_at`` committed (kept from an earlier start) before they are sent."""
        rows = await self.pool.fetch(
            "WITH batch AS (SELECT provision_id FROM provisions WHERE published_at IS NULL "
            "ORDER BY sent_at, provision_id LIMIT $1) "
            "UPDATE provisions p SET publish_started_at = coalesce(p.publish_started_at, now()) "
            "FROM batch WHERE p.provision_id = batch.provision_id RETURNING p.*",
            limit,
        )
        return sorted(
            (
                from_row(
                    Unpublished,
                    r,
                    record_keys=tuple(
                        RecordRef(k["topic"], k["key"]) for k in json.loads(r["record_keys"])
                    ),
                    withdraws=tuple(r["withdraws"]),
                )
                for r in rows
            ),
            key=lambda row: (row.sent_at, row.provision_id),
        )

    async def oldest_publish_started(self) -> datetime | None:
        """When the earliest provision started but not marked published was started."""
        started: datetime | None = await self.pool.fetchval(
            "SELECT min(publish_started_at) FROM provisions WHERE published_at IS NULL"
        )
        return started

    async def mark_published(self, ids: Collection[str]) -> int:
        """Mark started provisions published; returns how many were not yet."""
        status = await self.pool.execute(
            "UPDATE provisions SET published_at = now() WHERE provision_id = ANY($1::text[]) "
            "AND published_at IS NULL AND publish_started_at IS NOT NULL",
            list(ids),
        )
        return int(status.split()[-1])
