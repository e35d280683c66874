"""Rendering reports into mail parts: Jinja2 templates (HTML autoescaped), CSV, chart.

A ``Rendered`` report is the same for every recipient of it; ``mail.compose`` then makes one
message per recipient. Rendering is CPU work: callers run it in a worker thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from dagmonitor.covenant import TERM_TOPIC, Term
from services.distributor.chart import hotspot_chart, provisions_chart
from services.distributor.entitlements import Category, purpose_of
from services.distributor.evaluation import (
    EvaluationReport,
    evaluation_csv,
    months_between,
    shown_sections,
)
from services.distributor.evaluation import label as dutch
from services.distributor.reports import (
    Entry,
    NoticeItem,
    PostcodeCount,
    confidentiality_footer,
    daily_csv,
    daily_summary,
    group_daily,
    rank_hotspots,
)
from services.distributor.schedule import Period
from services.distributor.supplement import DayChanges

TEMPLATES = Path(__file__).resolve().parent / "templates"


class Kind:
    """Report kinds: the first part of a message's identity (kind, period, recipient)."""

    DAILY = "daily"
    HOTSPOTS = "hotspots"
    NOTICE = "notice"
    SUPPLEMENT = "supplement"
    WITHDRAWAL = "withdrawal"
    EVALUATION = "evaluation"


@dataclass(frozen=True, slots=True)
class RecordRef:
    """A provided record: its contract topic and key (``nl.dagmonitor.RecordRef``)."""

    topic: str
    key: str


@dataclass(frozen=True, slots=True)
class Part:
    """A MIME part: an attachment (``filename``) or an inline image (``cid``)."""

    maintype: str
    subtype: str
    data: bytes
    filename: str | None = None
    cid: str | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """One report, ready to be addressed: subject, both bodies, parts, and what it provides."""

    kind: str
    category: Category
    period: str
    """The report's period or batch id: with kind and recipient, it identifies a mail."""
    subject: str
    text: str
    html: str
    attachments: tuple[Part, ...] = ()
    inline: tuple[Part, ...] = ()
    records: tuple[RecordRef, ...] = field(default=())


def _environment() -> Environment:
    return Environment(  # autoescape on for .html.j2 (the callable below)  # nosec B701
        loader=FileSystemLoader(TEMPLATES),
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_ENV = _environment()


def _render(name: str, **context: Any) -> str:
    """Render a mail template; every mail kind's context names its ``purpose`` and its
    ``period`` (the provision reference), which the confidentiality footer states."""
    footer = confidentiality_footer(context["purpose"], context["period"])
    return _ENV.get_template(name).render(footer=footer, **context)


def _rendered(
    kind: str,
    category: Category,
    template: str,
    context: Mapping[str, Any],
    *,
    attachments: tuple[Part, ...] = (),
    inline: tuple[Part, ...] = (),
    records: tuple[RecordRef, ...] = (),
) -> Rendered:
    """A mail of ``kind`` with both bodies from the template pair ``<template>.txt.j2`` and
    ``<template>.html.j2``; its subject and period are the context's."""
    return Rendered(
        kind=kind,
        category=category,
        period=str(context["period"]),
        subject=str(context["subject"]),
        text=_render(f"{template}.txt.j2", **context),
        html=_render(f"{template}.html.j2", **context),
        attachments=attachments,
        inline=inline,
        records=records,
    )


def _day_label(day: date) -> str:
    return day.strftime("%d-%m-%Y")


PROVISIONAL = "Voorlopig: "
"""Subject prefix of a report made before the pipeline had caught up."""


def render_daily(
    day: date, entries: Sequence[Entry], tz: ZoneInfo, *, provisional: bool = False
) -> Rendered:
    """The daily Dagmonitor of local ``day``: a summary per district and per kind, then per
    district the incidents by postcode and time; CSV attached.

    An empty day gives a short "no incidents" mail without attachment. ``provisional``: the
    pipeline had not caught up when it was made; the subject and the text say so.
    """
    districts = group_daily(entries, tz)
    context = {
        "subject": f"{PROVISIONAL if provisional else ''}Dagmonitor {_day_label(day)}",
        "provisional": provisional,
        "day_label": _day_label(day),
        "districts": districts,
        "summary": daily_summary(entries),
        "total": len(entries),
        "purpose": purpose_of(Category.DAGMONITOR_DAILY),
        "period": day.isoformat(),
    }
    attachments: tuple[Part, ...] = ()
    if entries:
        csv = daily_csv(entries, tz)
        attachments = (Part("text", "csv", csv, filename=f"dagmonitor-{day.isoformat()}.csv"),)
    return _rendered(
        Kind.DAILY,
        Category.DAGMONITOR_DAILY,
        "daily",
        context,
        attachments=attachments,
        records=tuple(RecordRef("dagmonitor.entries", e.registration_number) for e in entries),
    )


def supplement_period(day: date, number: int) -> str:
    """A supplement's period: ``2026-11-30.aanvulling-1`` (the day first, for lookups)."""
    return f"{day.isoformat()}.aanvulling-{number}"


def render_supplement(day: date, number: int, changes: DayChanges, tz: ZoneInfo) -> Rendered:
    """``Aanvulling Dagmonitor``: what is new, changed or withdrawn for a day already reported.

    New and changed entries are shown as in the daily mail; a withdrawn one as the recipients
    received it, so they can find and delete it. It provides the new and changed entries.
    """
    shown = [*changes.new, *changes.changed]
    label = _day_label(day)
    period = supplement_period(day, number)
    subject = f"Aanvulling Dagmonitor {label}" + (f" ({number})" if number > 1 else "")
    context = {
        "subject": subject,
        "day_label": label,
        "new": group_daily(changes.new, tz),
        "changed": group_daily(changes.changed, tz),
        "withdrawn": group_daily(changes.withdrawn, tz),
        "counts": {
            "new": len(changes.new),
            "changed": len(changes.changed),
            "withdrawn": len(changes.withdrawn),
        },
        "purpose": purpose_of(Category.DAGMONITOR_DAILY),
        "period": period,
    }
    csv = daily_csv([*shown, *changes.withdrawn], tz, changes.by_registration())
    return _rendered(
        Kind.SUPPLEMENT,
        Category.DAGMONITOR_DAILY,
        "supplement",
        context,
        attachments=(Part("text", "csv", csv, filename=f"aanvulling-{period}.csv"),),
        records=tuple(RecordRef("dagmonitor.entries", e.registration_number) for e in shown),
    )


def render_hotspots(
    period: Period,
    counts: Sequence[PostcodeCount],
    *,
    top: int,
    cid_domain: str,
    provisional: bool = False,
    previous: Sequence[PostcodeCount] = (),
    min_count: int = 2,
) -> Rendered:
    """The bi-weekly cumulative Dagmonitor: the ``top`` places (PC6, PC4) and the districts
    against the ``previous`` period's counts, and a chart of the top postcodes.

    It provides counts only, so it lists no record keys (the entries behind the counts were
    provided, and registered, one by one in the daily reports).
    """
    hotspots = rank_hotspots(counts, previous, top=top, min_count=min_count)
    label = f"{_day_label(period.first)} t/m {_day_label(period.last)}"
    cid = f"hotspots-chart.{period.last.isoformat()}@{cid_domain}"
    chart = hotspot_chart(hotspots.pc6, f"Hotspots per postcode, {label}")
    context = {
        "subject": f"{PROVISIONAL if provisional else ''}Cumulatieve Dagmonitor (hotspots) {label}",
        "provisional": provisional,
        "period_label": label,
        "days": period.days,
        "hotspots": hotspots,
        "chart_cid": cid,
        "purpose": purpose_of(Category.HOTSPOTS),
        "period": period.label(),
    }
    return _rendered(
        Kind.HOTSPOTS,
        Category.HOTSPOTS,
        "hotspots",
        context,
        inline=(Part("image", "png", chart, filename="hotspots.png", cid=cid),),
    )


def evaluation_period(term: Term) -> str:
    """The evaluation's period id: ``evaluation.<covenant start>.<period>``, one per term."""
    return f"evaluation.{term.start.isoformat()}.{term.label()}"


def render_evaluation(report: EvaluationReport, *, cid_domain: str) -> Rendered:
    """The evaluation report of a term's current period: every section of
    ``evaluation.SECTIONS`` as a table, provisions per month also as a chart, and the whole
    as a CSV attachment. It provides counts only; its one record reference names the
    covenant it evaluates (``covenant.term`` by start date), so a renewal can rest on it."""
    term = report.term
    period = evaluation_period(term)
    label = f"{_day_label(term.current_period_start)} t/m {_day_label(term.end)}"
    last = min(date.fromisoformat(report.generated_on), term.end)
    months = months_between(term.current_period_start, last)
    series: dict[str, list[int]] = {}
    for row in report.rows("provisions"):
        if row.dimensions[2] in months:
            counts = series.setdefault(dutch(row.dimensions[0]), [0] * len(months))
            counts[months.index(row.dimensions[2])] += row.count
    cid = f"evaluation-chart.{term.start.isoformat()}@{cid_domain}"
    chart = provisions_chart(months, series, f"Verstrekkingen per maand, {label}")
    purpose = purpose_of(Category.COVENANT_EVALUATION)
    sections = shown_sections(report)
    context = {
        "subject": f"Evaluatie convenant {label}",
        "period_label": label,
        "term": term,
        "last_month": _day_label(term.last_month_start()),
        "end_label": _day_label(term.end),
        "generated_on": _day_label(date.fromisoformat(report.generated_on)),
        "sections": sections,
        "chart_cid": cid,
        "purpose": purpose,
        "period": period,
    }
    marking = confidentiality_footer(purpose, period)[0]
    return _rendered(
        Kind.EVALUATION,
        Category.COVENANT_EVALUATION,
        "evaluation",
        context,
        attachments=(
            Part(
                "text",
                "csv",
                evaluation_csv(report, marking),
                filename=f"evaluatie-{term.label()}.csv",
            ),
        ),
        inline=(Part("image", "png", chart, filename="evaluatie.png", cid=cid),),
        records=(RecordRef(TERM_TOPIC, term.start.isoformat()),),
    )


NOTICE_HEADINGS = {
    Category.PERSON_NOTICE: "Goedgekeurde verstrekking: personen",
    Category.VICTIM_NOTICE: "Goedgekeurde verstrekking: slachtoffers woninginbraak",
    Category.VEHICLE_NOTICE: "Gestolen voertuigen (kentekens)",
}


@dataclass(frozen=True, slots=True)
class Photo:
    """A person's photo as the distributor holds it: validated and stripped at ingest."""

    photo_id: str
    subtype: str
    """``jpeg`` or ``png`` (the MIME subtype)."""
    data: bytes


def photo_cid(photo_id: str, batch_id: str, domain: str) -> str:
    """The Content-ID of a photo in one mail (a digest: no police reference in a header)."""
    digest = hashlib.sha256(f"{batch_id}\t{photo_id}".encode()).hexdigest()[:20]
    return f"photo.{digest}@{domain}"


def render_notices(
    category: Category,
    batch_id: str,
    items: Sequence[tuple[RecordRef, NoticeItem]],
    photos: Mapping[str, Photo] | None = None,
    *,
    cid_domain: str = "dagmonitor.invalid",
) -> Rendered:
    """A batch of notices of one category (persons, victims or vehicles).

    A person with a photo among ``photos`` (by photo id) has it inline (``cid:``, in the
    HTML's ``multipart/related``); one whose photo has not arrived is told so.
    """
    heading = NOTICE_HEADINGS[category]
    photos = photos or {}
    wanted = sorted({i.photo_id for _, i in items if i.photo_id and i.photo_id in photos})
    cids = {pid: photo_cid(pid, batch_id, cid_domain) for pid in wanted}
    context = {
        "subject": f"{heading} ({len(items)})",
        "heading": heading,
        "items": [item for _, item in items],
        "photo_cids": cids,
        "purpose": purpose_of(category),
        "period": batch_id,
    }
    return _rendered(
        Kind.NOTICE,
        category,
        "notice",
        context,
        inline=tuple(
            Part(
                "image",
                photos[pid].subtype,
                photos[pid].data,
                filename=f"foto-{index}.{'jpg' if photos[pid].subtype == 'jpeg' else 'png'}",
                cid=cids[pid],
            )
            for index, pid in enumerate(wanted, start=1)
        ),
        records=tuple(ref for ref, _ in items),
    )


WITHDRAWN_WHAT: dict[Category, str] = {
    Category.DAGMONITOR_DAILY: "een incident uit de Dagmonitor",
    Category.PERSON_NOTICE: "gegevens van een persoon",
    Category.VICTIM_NOTICE: "gegevens van een slachtoffer van woninginbraak",
    Category.VEHICLE_NOTICE: "het kenteken van een gestolen voertuig",
}
"""What a withdrawal notice withdraws, per category, as its text says it."""

WITHDRAWN_SHORT: dict[Category, str] = {
    Category.DAGMONITOR_DAILY: "incident Dagmonitor",
    Category.PERSON_NOTICE: "persoonsgegevens",
    Category.VICTIM_NOTICE: "gegevens slachtoffer",
    Category.VEHICLE_NOTICE: "kenteken",
}
"""The same in the subject: short enough to fit a phone's mail list and one header line, and
no personal data (a subject shows in every mail list and on a lock screen)."""


@dataclass(frozen=True, slots=True)
class ProvidedIn:
    """A mail that provided the withdrawn record to the recipient: the provision reference."""

    provision_id: str
    subject: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """One withdrawn record as its recipient has it, and the mails that provided it.

    ``entry`` for a Dagmonitor entry; ``title`` for a notice (the person's name or the
    plate, as the notice mail showed it); both None when the distributor no longer knows.
    """

    ref: RecordRef
    category: Category
    provided_in: tuple[ProvidedIn, ...]
    entry: Entry | None = None
    title: str | None = None


def withdrawal_period(withdrawn: Withdrawn) -> str:
    """The notice's identity: the first provision it withdraws and the record (each
    provision's record is withdrawn once), without the record key in clear."""
    digest = hashlib.sha256(f"{withdrawn.ref.topic}\t{withdrawn.ref.key}".encode()).hexdigest()
    return f"intrekking.{withdrawn.provided_in[0].provision_id}.{digest[:12]}"


def render_withdrawal(withdrawn: Withdrawn, tz: ZoneInfo) -> Rendered:
    """``Intrekking verstrekking``: the police withdrew a record the recipient was provided
    with. It names the provisions (mail, date, reference) and what to delete, as the
    recipient received it, and nothing more."""
    what = WITHDRAWN_WHAT[withdrawn.category]
    first = min(p.sent_at for p in withdrawn.provided_in)
    short = WITHDRAWN_SHORT[withdrawn.category]
    subject = f"Intrekking verstrekking {_day_label(first.astimezone(tz).date())}: {short}"
    period = withdrawal_period(withdrawn)
    context = {
        "subject": subject,
        "what": what,
        "title": withdrawn.title,
        "groups": group_daily([withdrawn.entry], tz) if withdrawn.entry is not None else [],
        "provided_in": [
            {
                "subject": p.subject,
                "sent": p.sent_at.astimezone(tz).strftime("%d-%m-%Y %H:%M"),
                "reference": p.provision_id,
            }
            for p in sorted(withdrawn.provided_in, key=lambda p: (p.sent_at, p.provision_id))
        ],
        "purpose": purpose_of(withdrawn.category),
        "period": period,
    }
    return _rendered(
        Kind.WITHDRAWAL,
        withdrawn.category,
        "withdrawal",
        context,
        records=(withdrawn.ref,),
    )
