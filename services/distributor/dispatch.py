"""Making reports and notice batches: read, render, address to the entitled recipients, store.

Each ``ensure_*`` is idempotent: a recipient who already has a stored message of the report
(sent or not) is skipped, and the outbox refuses a second copy of the same identity anyway.
Storing ends the dispatcher's job; the sender takes it from there.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dagmonitor import deletion
from dagmonitor.clock import Checkpoint, Clock, day_bounds, local_date, no_checkpoint, utc_now
from dagmonitor.covenant import Term
from dagmonitor.telemetry import get_logger
from services.distributor.config import DistributorSettings
from services.distributor.consents import ConsentGate
from services.distributor.covenant import CovenantStore
from services.distributor.entitlements import Category, Recipient, Role, entitled_recipients
from services.distributor.evaluation import EvaluationReport
from services.distributor.metrics import (
    RENDER_SECONDS,
    REPORTS_PROVISIONAL,
    SUPPLEMENT_ENTRIES,
    UNDELIVERABLE,
    WITHDRAWAL_NOTICES,
    WITHDRAWALS_OPEN,
)
from services.distributor.outbox import OutboxMessage, address
from services.distributor.rendering import (
    Kind,
    ProvidedIn,
    RecordRef,
    Rendered,
    Withdrawn,
    evaluation_period,
    render_daily,
    render_evaluation,
    render_hotspots,
    render_notices,
    render_supplement,
    render_withdrawal,
)
from services.distributor.reports import (
    Entry,
    NoticeItem,
    PostcodeCount,
    person_item,
    vehicle_item,
    victim_item,
)
from services.distributor.schedule import Period, hotspot_period
from services.distributor.store import Store, TellDay, WithdrawalDue
from services.distributor.supplement import (
    Change,
    DayChanges,
    day_changes,
    entry_from_document,
)

NO_ENTITLED_RECIPIENT = "no_entitled_recipient"
ENTRIES_TOPIC = "dagmonitor.entries"

NOTICE_SOURCES: Mapping[
    Category, tuple[str, Callable[[Mapping[str, Any], ZoneInfo], NoticeItem]]
] = {
    Category.PERSON_NOTICE: ("persons.approved", person_item),
    Category.VICTIM_NOTICE: ("victims.approved", victim_item),
    Category.VEHICLE_NOTICE: ("vehicles.signals", vehicle_item),
}
"""Each notice category: the topic its records come from and how one is shown."""

_log = get_logger(__name__)

Gate = Callable[[], Awaitable[bool]] | None
"""Waits for the pipeline to catch up before a report is made; False: it did not in time."""


async def _passed(gate: Gate, kind: str) -> bool:
    if gate is None:
        return True
    complete = await gate()
    if not complete:
        REPORTS_PROVISIONAL.labels(kind).inc()
    return complete


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an ``ensure_*`` call did for one report or batch."""

    kind: str
    period: str
    category: Category
    recipients: int
    stored: int
    records: int = 0


def notice_batch_id(category: Category, day: date, refs: Sequence[RecordRef]) -> str:
    """A batch's id, from its content: the same records always make the same batch id."""
    digest = hashlib.sha256(
        "\n".join(
            f"{r.topic}\t{r.key}" for r in sorted(refs, key=lambda r: (r.topic, r.key))
        ).encode()
    )
    return f"{category.value}.{day.isoformat()}.{digest.hexdigest()[:16]}"


class Dispatcher:
    """Renders and stores reports for the recipients entitled to them."""

    def __init__(
        self,
        store: Store,
        settings: DistributorSettings,
        *,
        clock: Clock = utc_now,
        checkpoint: Checkpoint = no_checkpoint,
        on_stored: Callable[[], None] = lambda: None,
        consents: ConsentGate | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._checkpoint = checkpoint
        self._on_stored = on_stored
        # The gate table's standing consents: a report or batch without one in force is held.
        self.consents = consents or ConsentGate(store.pool, clock=clock)

    def _recipients(self, category: Category) -> list[Recipient]:
        recipients = entitled_recipients(category, self._settings.recipients)
        if not recipients:
            UNDELIVERABLE.labels(category.value, NO_ENTITLED_RECIPIENT).inc()
            _log.error("no_entitled_recipient", category=category.value)
        return recipients

    async def _missing(
        self, kind: str, period: str, recipients: list[Recipient]
    ) -> list[Recipient]:
        have = await self._store.addresses_with_message(
            kind, period, [r.address for r in recipients]
        )
        return [r for r in recipients if r.address not in have]

    def _address_all(
        self, rendered: Rendered, recipients: Sequence[Recipient]
    ) -> list[OutboxMessage]:
        now = self._clock()
        return [
            address(
                rendered,
                recipient,
                sender=self._settings.smtp_from,
                domain=self._settings.message_id_domain,
                date=now,
            )
            for recipient in recipients
        ]

    async def _store_rendered(
        self,
        messages: list[OutboxMessage],
        *,
        batch: tuple[str, Sequence[RecordRef]] | None = None,
        tell: TellDay | None = None,
    ) -> int:
        self._checkpoint("rendered")
        stored = await self._store.store_messages(messages, batch=batch, tell=tell)
        self._checkpoint("stored")
        if stored:
            self._on_stored()
        return stored

    async def ensure_daily(
        self, day: date, gate: Gate = None, *, only: Sequence[str] | None = None
    ) -> Outcome:
        """The daily Dagmonitor of local ``day`` for every entitled recipient lacking it
        (of the addresses ``only``, when given).

        ``gate``, when given, is awaited once there is something to make: it waits for the
        pipeline to catch up and says whether it did (if not, the report is provisional).
        """
        category = Category.DAGMONITOR_DAILY
        period = day.isoformat()
        recipients = self._recipients(category)
        if only is not None:
            recipients = [r for r in recipients if r.address in only]
        todo = await self._missing(Kind.DAILY, period, recipients)
        if not todo:
            return Outcome(Kind.DAILY, period, category, len(recipients), 0)
        if not await self.consents.passes(category, Kind.DAILY, period, day):  # held
            return Outcome(Kind.DAILY, period, category, len(recipients), 0)
        provisional = not await _passed(gate, Kind.DAILY)
        versioned = await self._store.versioned_entries_between(*day_bounds(day, self._settings.tz))
        entries = [entry for entry, _ in versioned]
        messages = await asyncio.to_thread(self._render_daily, day, entries, todo, provisional)
        stored = await self._store_rendered(messages, tell=TellDay(day, told=versioned))
        _log.info(
            "report_stored", kind=Kind.DAILY, period=period, recipients=stored, records=len(entries)
        )
        return Outcome(Kind.DAILY, period, category, len(recipients), stored, len(entries))

    def _render_daily(
        self, day: date, entries: list[Entry], todo: list[Recipient], provisional: bool
    ) -> list[OutboxMessage]:
        started = time.perf_counter()
        rendered = render_daily(day, entries, self._settings.tz, provisional=provisional)
        messages = self._address_all(rendered, todo)
        RENDER_SECONDS.labels(Kind.DAILY).observe(time.perf_counter() - started)
        return messages

    async def ensure_supplements(self) -> list[Outcome]:
        """Supplements of recently reported days, and daily reports to make again.

        Each recipient of a day's report gets a supplement when the day's entries differ from
        what their sent mails told them, at most one per ``supplement_interval_seconds``
        (counted from the report or the previous supplement) and never while a mail of that
        day is still unsent to them. Days older than ``supplement_horizon_days`` get none, and
        what was told about them is forgotten. A daily report whose unsent mail a tombstone
        purged is made again first, without the withdrawn entry.
        """
        if not await self.consents.passes(Category.DAGMONITOR_DAILY, Kind.SUPPLEMENT):  # held
            return []
        settings = self._settings
        today = local_date(self._clock(), settings.tz)
        since = today - timedelta(days=settings.supplement_horizon_days)
        await self._store.forget_told_before(since)
        outcomes = []
        for day, addresses in (await self._store.remakes()).items():
            outcomes.append(await self.ensure_daily(day, only=addresses))
            await self._store.remade(day, addresses)
        entitled = {r.address: r for r in self._recipients(Category.DAGMONITOR_DAILY)}
        for day in await self._store.reported_days(since):
            due = await self._store.supplement_due(day, settings.supplement_interval_seconds)
            due = {a: n for a, n in due.items() if a in entitled}
            if not due:
                continue
            current, told = await self._store.day_state(
                day, *day_bounds(day, settings.tz), list(due)
            )
            for address_, number in sorted(due.items()):
                changes = day_changes(current, told[address_])
                if changes:
                    outcome = await self._store_supplement(
                        day, number, changes, current, entitled[address_]
                    )
                    outcomes.append(outcome)
                elif changes.versions:
                    await self._store.record_versions(day, address_, changes.versions)
        return outcomes

    async def _store_supplement(
        self,
        day: date,
        number: int,
        changes: DayChanges,
        current: Mapping[str, tuple[Entry, int]],
        recipient: Recipient,
    ) -> Outcome:
        def render() -> list[OutboxMessage]:
            started = time.perf_counter()
            rendered = render_supplement(day, number, changes, self._settings.tz)
            messages = self._address_all(rendered, [recipient])
            RENDER_SECONDS.labels(Kind.SUPPLEMENT).observe(time.perf_counter() - started)
            return messages

        messages = await asyncio.to_thread(render)
        told = [current[registration] for registration, _ in changes.versions]
        gone = [e.registration_number for e in changes.withdrawn]
        stored = await self._store_rendered(messages, tell=TellDay(day, told=told, gone=gone))
        if stored:
            for change, entries in (
                (Change.NEW, changes.new),
                (Change.CHANGED, changes.changed),
                (Change.WITHDRAWN, changes.withdrawn),
            ):
                SUPPLEMENT_ENTRIES.labels(change.value).inc(len(entries))
            _log.info(
                "supplement_stored",
                period=messages[0].period,
                role=recipient.role.value,
                new=len(changes.new),
                changed=len(changes.changed),
                withdrawn=len(changes.withdrawn),
            )
        return Outcome(
            Kind.SUPPLEMENT,
            messages[0].period,
            Category.DAGMONITOR_DAILY,
            1,
            stored,
            len(changes.new) + len(changes.changed),
        )

    async def build_evaluation(self, term: Term) -> EvaluationReport:
        """The evaluation report of ``term``'s current period up to now (ADR 0018)."""
        tz = self._settings.tz
        start = day_bounds(term.current_period_start, tz)[0]
        now = self._clock()
        end = min(now, term.ends_at(tz))
        store = CovenantStore(self._store.pool)
        return await store.evaluation_report(
            term, start, end, self._settings.report_timezone, generated_on=local_date(now, tz)
        )

    async def ensure_evaluation(self, term: Term) -> Outcome:
        """The evaluation report of ``term`` for every entitled recipient lacking it: once
        per period (the scheduler calls it from the start of the term's last month)."""
        category = Category.COVENANT_EVALUATION
        period = evaluation_period(term)
        recipients = self._recipients(category)
        todo = await self._missing(Kind.EVALUATION, period, recipients)
        if not todo:
            return Outcome(Kind.EVALUATION, period, category, len(recipients), 0)
        report = await self.build_evaluation(term)
        rendered = await asyncio.to_thread(
            render_evaluation, report, cid_domain=self._settings.message_id_domain
        )
        stored = await self._store_rendered(self._address_all(rendered, todo))
        _log.info("report_stored", kind=Kind.EVALUATION, period=period, recipients=stored)
        return Outcome(Kind.EVALUATION, period, category, len(recipients), stored)

    async def ensure_hotspots(self, last_day: date, gate: Gate = None) -> Outcome:
        """The cumulative Dagmonitor of the 14 local days ending with ``last_day``."""
        category = Category.HOTSPOTS
        period = hotspot_period(last_day)
        recipients = self._recipients(category)
        todo = await self._missing(Kind.HOTSPOTS, period.label(), recipients)
        if not todo:
            return Outcome(Kind.HOTSPOTS, period.label(), category, len(recipients), 0)
        if not await self.consents.passes(category, Kind.HOTSPOTS, period.label(), last_day):
            return Outcome(Kind.HOTSPOTS, period.label(), category, len(recipients), 0)  # held
        provisional = not await _passed(gate, Kind.HOTSPOTS)
        counts = await self._store.postcode_counts(*period.bounds(self._settings.tz))
        previous = await self._store.postcode_counts(*period.previous().bounds(self._settings.tz))
        messages = await asyncio.to_thread(
            self._render_hotspots, period, counts, previous, todo, provisional
        )
        stored = await self._store_rendered(messages)
        total = sum(c.count for c in counts)
        _log.info(
            "report_stored",
            kind=Kind.HOTSPOTS,
            period=period.label(),
            recipients=stored,
            records=total,
        )
        return Outcome(Kind.HOTSPOTS, period.label(), category, len(recipients), stored, total)

    def _render_hotspots(
        self,
        period: Period,
        counts: list[PostcodeCount],
        previous: list[PostcodeCount],
        todo: list[Recipient],
        provisional: bool,
    ) -> list[OutboxMessage]:
        started = time.perf_counter()
        rendered = render_hotspots(
            period,
            counts,
            top=self._settings.hotspots_chart_top,
            cid_domain=self._settings.message_id_domain,
            provisional=provisional,
            previous=previous,
            min_count=self._settings.hotspots_min_count,
        )
        messages = self._address_all(rendered, todo)
        RENDER_SECONDS.labels(Kind.HOTSPOTS).observe(time.perf_counter() - started)
        return messages

    async def batch_notices(self) -> list[Outcome]:
        """One batch per notice category with records waiting, to its entitled recipients.

        Records of a category nobody may receive stay unbatched (and are reported each time):
        they go out once an entitled recipient is configured.
        """
        outcomes = []
        today = local_date(self._clock(), self._settings.tz)
        await self._store.forget_unclaimed_photos(self._settings.photo_unclaimed_days)
        for category in NOTICE_SOURCES:
            waiting = await self._store.unbatched_notices(category.value)
            if not waiting or not await self.consents.passes(category, Kind.NOTICE):  # held
                continue
            recipients = self._recipients(category)
            if not recipients:
                continue
            refs = [ref for ref, _ in waiting]
            batch_id = notice_batch_id(category, today, refs)
            rendered = await self._render_notices(category, batch_id, waiting)
            messages = self._address_all(rendered, recipients)
            stored = await self._store_rendered(messages, batch=(batch_id, refs))
            _log.info(
                "notice_batch_stored",
                category=category.value,
                batch_id=batch_id,
                recipients=stored,
                records=len(refs),
            )
            outcomes.append(
                Outcome(Kind.NOTICE, batch_id, category, len(recipients), stored, len(refs))
            )
        return outcomes

    async def _render_notices(
        self, category: Category, batch_id: str, records: Sequence[tuple[RecordRef, Any]]
    ) -> Rendered:
        """The notice batch ``batch_id`` of ``records`` (each its ref and stored value), shown
        as ``NOTICE_SOURCES`` says, with the photos they refer to."""
        to_item = NOTICE_SOURCES[category][1]
        items = [(ref, to_item(value, self._settings.tz)) for ref, value in records]
        return render_notices(
            category,
            batch_id,
            items,
            await self._store.photos([i.photo_id for _, i in items if i.photo_id]),
            cid_domain=self._settings.message_id_domain,
        )

    async def _remake_notices(self) -> list[Outcome]:
        """Notice batches made again for one recipient, whose mail a withdrawal purged: the
        batch's other records, in a batch of their own (an empty one is just dropped)."""
        outcomes = []
        for batch_id, address_, role, records in await self._store.notice_remakes():
            category = Category(batch_id.split(".", 1)[0])
            if records:
                refs = [ref for ref, _ in records]
                remade_id = f"{batch_id}.{notice_batch_id(category, date.min, refs)[-16:]}"
                rendered = await self._render_notices(category, remade_id, records)
                messages = self._address_all(rendered, [Recipient(Role(role), address_)])
                stored = await self._store_rendered(messages)
                outcomes.append(Outcome(Kind.NOTICE, remade_id, category, 1, stored, len(records)))
            await self._store.notice_remade(batch_id, address_)
        return outcomes

    async def forget_expired(self) -> dict[str, int]:
        """The backstop behind the retention sweep: what this schema holds longer than the
        covenant's maximum goes or loses its keys (``Store.forget_expired``)."""
        changed = await self._store.forget_expired(self._clock(), deletion.MAX_RETENTION)
        if changed:
            _log.info("expired_rows_forgotten", **changed)
        return changed

    async def ensure_withdrawals(self) -> list[Outcome]:
        """Withdrawal notices (``Intrekking verstrekking``) for records the police withdrew.

        Every recipient of a sent mail that carried a withdrawn record gets one notice per
        record, naming each of their mails that carried it (an entry can be in a daily report
        and a supplement) and what to delete, as they received it. Unsent mails that carry it
        are purged first (their reports and batches are made again without it); a withdrawal
        is forgotten once no mail made before it is unsent and every provision has its notice.
        Idempotent: a provision's record is withdrawn once (``outbox.withdraws``).
        """
        await self._store.purge_withdrawn_unsent()
        outcomes = await self._remake_notices()
        due = await self._store.withdrawals_due()
        groups: dict[tuple[str, str, str], list[WithdrawalDue]] = {}
        for row in due:
            groups.setdefault((row.topic, row.key, row.recipient_address), []).append(row)
        for rows in groups.values():
            outcomes.append(await self._store_withdrawal(rows))
        await self._store.forget_withdrawn()
        WITHDRAWALS_OPEN.set(await self._store.withdrawn_count())
        return outcomes

    async def _store_withdrawal(self, rows: Sequence[WithdrawalDue]) -> Outcome:
        first = rows[0]
        category = Category(first.category)
        entry = title = None
        if first.shown is not None:
            if first.topic == ENTRIES_TOPIC:
                entry = entry_from_document(first.shown)
            else:
                title = NOTICE_SOURCES[category][1](first.shown, self._settings.tz).title
        withdrawn = Withdrawn(
            RecordRef(first.topic, first.key),
            category,
            tuple(ProvidedIn(r.provision_id, r.subject, r.sent_at) for r in rows),
            entry=entry,
            title=title,
        )
        rendered = render_withdrawal(withdrawn, self._settings.tz)
        recipient = Recipient(Role(first.recipient_role), first.recipient_address)
        messages = [
            replace(m, withdraws=tuple(r.provision_id for r in rows))
            for m in self._address_all(rendered, [recipient])
        ]
        stored = await self._store_rendered(messages)
        if stored:
            WITHDRAWAL_NOTICES.labels(category.value).inc(stored)
            _log.info(
                "withdrawal_notice_stored",
                category=category.value,
                role=first.recipient_role,
                provisions=len(rows),
            )
        return Outcome(Kind.WITHDRAWAL, rendered.period, category, 1, stored, 1)
